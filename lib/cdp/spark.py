"""The one place a SparkSession is made, and what that session can do.

Three ways in, chosen in this order:
1. Spark Connect, when `spark.remote` (config) or `SPARK_REMOTE` names a server;
2. an existing session or JVM gateway (a notebook, Databricks, or `spark-submit`, which sets
   `PYSPARK_GATEWAY_PORT`): no master is set, jars and storage come from the cluster;
3. a local session with the configured master (`local[*]` by default).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from cdp.config import Config
from cdp.errors import ConfigError, EnvironmentProblem

logger = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
SESSION_TIME_ZONE = "spark.sql.session.timeZone"
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


# HotSpot leaves methods over 8000 bytes of bytecode to the interpreter, and whole-stage codegen
# writes larger ones (a projection of tens of tag expressions is one method): this lets the JIT
# compile them. The tag profile's derived columns at 1M persons: 16-25 s -> 4-6 s; writing the
# profile and the long table: 87 s -> 59 s. Spark's alternative, `spark.sql.codegen.hugeMethodLimit`
# = 8000, gives the same there but turns off codegen for the tag aggregations (their pass: 55 s
# of task time -> 73 s). On a cluster, set it in `spark.executor.extraJavaOptions` (deploy/README.md).
JIT_HUGE_METHODS = "-XX:-DontCompileHugeMethods"


def java_version() -> str | None:
    """The first line `java -version` prints, or None when no Java is on PATH or JAVA_HOME."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).splitlines()[0] if done.returncode == 0 else None


def get_spark(cfg: Config) -> SparkSession:
    """Return the session for this configuration, creating it when needed.

    Local sessions get the configured master, the `spark.conf` settings and quiet logs. No
    checkpoint directory is set: the jobs checkpoint locally (`localCheckpoint()`, which Spark
    Connect has too), and a directory set for a session gets an empty folder of its own, never removed.
    """
    remote = cfg.spark.remote or os.environ.get("SPARK_REMOTE")
    if remote:
        logger.info("Spark Connect session at %s", remote)
        builder = SparkSession.builder.remote(remote)
        here = remote.startswith("local")
        if here:
            # A Connect server started here is a local driver, with the driver's settings too (its
            # memory: 1 GB without them).
            builder = _local_driver(builder, cfg)
        session = _apply_conf(builder, cfg, runtime_only=not here).getOrCreate()
        _stop_at_exit(session)
        return session

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    builder = SparkSession.builder.appName(cfg.spark.app_name)
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not under_submit:
        if java_version() is None:
            raise EnvironmentProblem(
                "Java is not installed: install a Java 17 runtime (e.g. apt-get install openjdk-17-jre-headless)"
            )
        builder = _local_driver(builder.master(cfg.spark.master or "local[*]"), cfg)
    spark = _apply_conf(builder, cfg, runtime_only=under_submit).getOrCreate()
    logger.debug("Spark %s session, master %s", spark.version, cfg.spark.master or "from spark-submit")
    return spark


def _local_driver(builder: SparkSession.Builder, cfg: Config) -> SparkSession.Builder:
    """`builder` with what a driver started on this machine needs (a local session, or a local Connect
    server): the project's JVM options (`local_java_options`), and Python workers running this interpreter.

    Python UDF workers must run this interpreter, which has the project's packages, not the first
    `python3` on PATH. PySpark reads the worker's interpreter from this variable when the session
    starts (the `spark.pyspark.python` setting is read by spark-submit only), so it is set unless
    the user did.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.config(DRIVER_JAVA_OPTIONS, local_java_options(cfg.spark.conf.get(DRIVER_JAVA_OPTIONS)))


def local_java_options(configured: str | None) -> str:
    """The driver's JVM options of a local session: the project's log4j configuration and
    `JIT_HUGE_METHODS`, then those configured (`spark.conf`), which win where they repeat one (the
    JVM keeps the last)."""
    log4j = resources.files("cdp") / "resources" / "log4j2.properties"
    ours = f"-Dlog4j2.configurationFile=file:{log4j} {JIT_HUGE_METHODS}"
    return f"{ours} {configured}" if configured else ours


def _apply_conf(builder: SparkSession.Builder, cfg: Config, *, runtime_only: bool) -> SparkSession.Builder:
    for key, value in cfg.spark.conf.items():
        # Under spark-submit or Connect the driver exists already: its memory is not ours to set.
        # A local session has the driver's JVM options already, these included (`local_java_options`).
        if (runtime_only and key.startswith(("spark.driver.", "spark.executor."))) or key == DRIVER_JAVA_OPTIONS:
            continue
        builder = builder.config(key, value)
    return builder


@dataclass(frozen=True)
class Capabilities:
    """What the session has on its classpath, found by asking Spark (no JVM access: works over Connect)."""

    spark_version: str
    connect: bool
    delta_extension: bool
    graphframes: bool

    @property
    def lake_engine(self) -> str:
        return "delta-spark" if self.delta_extension else "delta-rs"


_capabilities: dict[int, Capabilities] = {}


def capabilities(spark: SparkSession) -> Capabilities:
    """Detect the Delta Lake extension and GraphFrames once per session."""
    key = id(spark)
    if key not in _capabilities:
        _capabilities[key] = Capabilities(
            spark_version=spark.version,
            connect=is_connect(spark),
            delta_extension=_delta_extension_active(spark),
            graphframes=_graphframes_loaded(spark),
        )
        logger.info(
            "capabilities: Spark %s%s, Delta extension %s, GraphFrames %s",
            spark.version,
            " (Connect)" if _capabilities[key].connect else "",
            "active" if _capabilities[key].delta_extension else "absent",
            "loaded" if _capabilities[key].graphframes else "absent",
        )
    return _capabilities[key]


def _stop_at_exit(session: SparkSession) -> None:
    """Stop the Connect session when the interpreter exits (once per session), before its objects are collected.

    A cached or checkpointed DataFrame of a Connect session asks the server to drop its cache when it is
    collected. Collected during the interpreter's shutdown, that request waits for a thread that never
    starts: a `cdp run pipeline` over Connect logged "finished" and never exited (its identity job
    leaves local checkpoints referenced until the end). A stopped session's client is closed, and
    its DataFrames then skip the request; over a local server (`local[...]`), stopping also ends it.
    """
    atexit.unregister(session.stop)  # registered once, however often `get_spark` returns it
    atexit.register(session.stop)


def session_zone(spark: SparkSession) -> dt.tzinfo:
    """The session's time zone (`spark.sql.session.timeZone`): where Spark's dates, hours and days
    of timestamps fall (`to_date(ts)`, `hour(ts)`), as Python's for the same instants.

    Raises:
        ConfigError: naming the setting, when it is neither a region (`Asia/Shanghai`) nor an offset (`+08:00`).
    """
    name = spark.conf.get(SESSION_TIME_ZONE) or "UTC"
    offset = _OFFSET.match(name)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(
            f"{SESSION_TIME_ZONE} is {name!r}: not a time zone region (Asia/Shanghai) or offset (+08:00)"
        ) from e


def is_connect(spark: SparkSession) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _delta_extension_active(spark: SparkSession) -> bool:
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_EXTENSION not in extensions:
        return False
    # The setting alone does not prove the jar is there: resolving the data source does.
    try:
        spark.read.format("delta").load("/__cdp_probe_of_delta__").schema  # noqa: B018
    except PySparkException as e:
        return "DATA_SOURCE_NOT_FOUND" not in str(e)
    return True


def _graphframes_loaded(spark: SparkSession) -> bool:
    """True when GraphFrames' JVM classes answer (classic) or its Connect plugin does.

    graphframes-py is a thin client: the only reliable probe is a graph operation that needs the JVM
    side. `triplets` does (the classes in classic Spark, the server plugin over Connect); `degrees`
    does not (the client computes it with DataFrame operations), so a Connect session without the
    plugin passed that probe, and its connected components then failed with
    CONNECT_INVALID_PLAN.NO_HANDLER_FOR_EXTENSION.
    """
    try:
        from graphframes import GraphFrame
    except ImportError:
        return False
    try:
        vertices = spark.range(1)
        edges = spark.range(0).selectExpr("id AS src", "id AS dst")
        GraphFrame(vertices, edges).triplets.schema  # noqa: B018 - analysed on the JVM side
    except Exception as e:  # the client raises TypeError, Py4J or Connect errors when the jar is absent
        logger.debug("GraphFrames probe failed: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return False
    return True
