"""A job killed with SIGKILL in the middle of an overwrite leaves the previous version intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from cdp.lake import Lake
from cdp.lake.delta_rs import DeltaRsEngine

# The child process writes version 0, then overwrites with a bigger table and is killed mid-way.
CHILD = textwrap.dedent(
    """
    import sys, pathlib
    from pyspark.sql import SparkSession, functions as F
    from cdp.lake import Lake
    from cdp.lake.delta_rs import DeltaRsEngine

    root, marker, point = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    spark = (SparkSession.builder.master("local[2]")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
             .config("spark.ui.enabled", "false").getOrCreate())
    engine = DeltaRsEngine(spark)
    lake = Lake(spark, root, engine=engine, job="crash", run_id="r1")
    lake.overwrite("gold.victim", spark.range(100).withColumn("gen", F.lit(0)))
    marker.write_text("v0")
    if point == "before-commit":
        # Stop between the last data file and the commit: the widest window of the write.
        written = engine._add_actions
        def hold(*args):
            actions = written(*args)
            marker.write_text("files written")
            import time; time.sleep(600)
            return actions
        engine._add_actions = hold
    big = spark.range(0, 3_000_000, numPartitions=200).withColumn("gen", F.lit(1))
    lake.overwrite("gold.victim", big)
    """
)


def _data_files(table: Path) -> int:
    return sum(1 for _ in table.rglob("*.parquet"))


@pytest.mark.slow
@pytest.mark.parametrize("point", ["during-parquet-write", "before-commit"])
def test_sigkill_mid_overwrite_keeps_previous_version(tmp_path: Path, spark: SparkSession, point: str) -> None:
    root, marker = tmp_path / "lake", tmp_path / "marker"
    table = root / "gold" / "victim"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(marker), point],
        start_new_session=True,  # its own process group: the kill takes the JVM down too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        files_v0 = None
        while time.monotonic() < deadline:
            state = marker.read_text() if marker.exists() else ""
            if state == "v0" and files_v0 is None:
                files_v0 = _data_files(table)
            if point == "during-parquet-write" and files_v0 is not None and _data_files(table) > files_v0:
                break
            if point == "before-commit" and state == "files written":
                break
            assert child.poll() is None, "the writer finished before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail(f"the overwrite did not reach {point} in time")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    assert DeltaTable(str(table)).version() == 0
    lake = Lake(spark, str(root), engine=DeltaRsEngine(spark), job="check", run_id="after-crash")
    rows = lake.read("gold.victim").groupBy("gen").count().collect()
    assert [(r["gen"], r["count"]) for r in rows] == [(0, 100)]

    # Re-running the crashed run finishes it; vacuum then removes the dead files of the killed write.
    rerun = Lake(spark, str(root), engine=DeltaRsEngine(spark), job="crash", run_id="r1")
    assert rerun.overwrite("gold.victim", spark.range(100).selectExpr("id", "0 AS gen")).skipped
    assert not rerun.overwrite("gold.victim", spark.range(7).selectExpr("id", "1 AS gen")).skipped
    assert lake.read("gold.victim").count() == 7
    removed = lake.vacuum("gold.victim", retention_hours=0)
    assert removed, "the killed write's files should be unreferenced"
    assert lake.read("gold.victim").count() == 7
