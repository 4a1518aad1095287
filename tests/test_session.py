from pyspark.sql import SparkSession

from cdp.spark import JIT_HUGE_METHODS


def test_local_session_jvm_compiles_large_generated_methods(spark: SparkSession) -> None:
    # The JVM's own arguments (a test may ask the JVM; library code does not): the option reached
    # the driver, whatever else `spark.driver.extraJavaOptions` carries.
    arguments = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert JIT_HUGE_METHODS in arguments
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in arguments)
