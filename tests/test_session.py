import ast
import subprocess
import sys

from pyspark.sql import SparkSession

from cdp.spark import JIT_HUGE_METHODS


def test_local_session_jvm_compiles_large_generated_methods(spark: SparkSession) -> None:
    # The JVM's own arguments (a test may ask the JVM; library code does not): the option reached
    # the driver, whatever else `spark.driver.extraJavaOptions` carries.
    arguments = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert JIT_HUGE_METHODS in arguments
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in arguments)


def test_configured_driver_options_are_added_to_the_projects(tmp_path) -> None:
    """`spark.driver.extraJavaOptions` in `spark.conf` comes after the project's options, not instead of them.

    A new JVM: the test session's own was started already (its own process).
    """
    script = f"""
from cdp.config import load_config
from cdp.spark import get_spark
cfg = load_config("local", lake_root={str(tmp_path)!r})
conf = {{**cfg.spark.conf, "spark.driver.extraJavaOptions": "-Dcdp.probe=1"}}
cfg = cfg.model_copy(update={{"spark": cfg.spark.model_copy(update={{"conf": conf}})}})
spark = get_spark(cfg)
print(list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    arguments = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert "-Dcdp.probe=1" in arguments and JIT_HUGE_METHODS in arguments
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in arguments)
    assert arguments.index(JIT_HUGE_METHODS) < arguments.index("-Dcdp.probe=1")  # the JVM keeps the last
