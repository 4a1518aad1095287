import ast
import datetime as dt
import subprocess
import sys

from pyspark.sql import SparkSession

from cdp.spark import JIT_HUGE_METHODS, SESSION_TIME_ZONE, session_zone


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


def test_session_zone_reads_regions_and_offsets_as_spark_does(spark: SparkSession) -> None:
    instant = dt.datetime(2026, 3, 1, 17, 30, tzinfo=dt.UTC)
    was = spark.conf.get(SESSION_TIME_ZONE)
    try:
        for zone in ("Asia/Shanghai", "+08:00", "-03:30", "UTC", "America/New_York"):
            spark.conf.set(SESSION_TIME_ZONE, zone)
            spark_wall = spark.sql(f"SELECT CAST(TIMESTAMP'{instant.isoformat()}' AS STRING) AS t").first().t
            assert instant.astimezone(session_zone(spark)).strftime("%Y-%m-%d %H:%M:%S") == spark_wall, zone
    finally:
        spark.conf.set(SESSION_TIME_ZONE, was)
