"""The `cdp` command and the job runtime, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cdp.cli import main
from cdp.lake import Lake
from cdp.lake.delta_rs import DeltaRsEngine

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: SparkSession) -> None:
    monkeypatch.chdir(tmp_path)  # logs/ lands here; the session fixture is the active session
    monkeypatch.delenv("CDP_LAKE", raising=False)


def job_runs(spark: SparkSession, root: Path) -> list[tuple]:
    lake = Lake(spark, str(root), engine=DeltaRsEngine(spark))
    return sorted((r.job, r.run_id, r.status) for r in lake.read("ops.job_runs").collect())


def test_run_records_each_attempt(tmp_path: Path, spark: SparkSession) -> None:
    root = tmp_path / "lake"
    assert main(["run", "maintain", "--lake", str(root), "--run-id", "r1"]) == 0
    assert main(["run", "pipeline", "--lake", str(root), "--run-id", "r1"]) == 0
    # The pipeline runs every job (nothing to cleanse, resolve or tag in an empty lake).
    assert job_runs(spark, root) == [
        ("cleanse", "r1", "succeeded"),
        ("identity", "r1", "succeeded"),
        ("maintain", "r1", "succeeded"),
        ("maintain", "r1", "succeeded"),
        ("tags", "r1", "succeeded"),
    ]
    assert (tmp_path / "logs" / "maintain-r1.log").is_file()
    assert (tmp_path / "logs" / "pipeline-r1.log").is_file()


def test_failure_is_one_line_with_the_log_path(
    tmp_path: Path, spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lake"
    broken = root / "silver" / "broken" / "_delta_log"
    broken.mkdir(parents=True)
    (broken / "00000000000000000000.json").write_text("{not json\n")
    code = main(["run", "maintain", "--lake", str(root), "--run-id", "bad"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert code == 2
    assert len(errors) == 1, err
    assert "table silver.broken: DeltaError" in errors[0]
    assert "(log: logs/maintain-bad.log)" in errors[0]
    assert "Traceback" not in err
    assert "Traceback" in (tmp_path / "logs" / "maintain-bad.log").read_text()
    assert job_runs(spark, root) == [("maintain", "bad", "failed")]


def test_configuration_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "maintain", "--env", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no such environment overlay 'nowhere'" in err[0]


def test_tables_lists_version_and_rows(tmp_path: Path, spark: SparkSession, capsys) -> None:
    root = tmp_path / "lake"
    lake = Lake(spark, str(root), engine=DeltaRsEngine(spark), job="t", run_id="1")
    lake.overwrite("silver.members", spark.range(1234))
    lake.append("silver.members", spark.range(6))
    assert main(["tables", "--lake", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 tables" in out
    line = next(x for x in out.splitlines() if x.startswith("silver.members"))
    assert line.split()[1:3] == ["1", "1,240"]


@pytest.mark.slow
def test_spark_submit_runs_the_job_file(tmp_path: Path, spark: SparkSession) -> None:
    root = tmp_path / "lake"
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local[1]",
            str(REPO / "jobs" / "maintain.py"),
            "--lake",
            str(root),
            "--run-id",
            "submitted",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert job_runs(spark, root) == [("maintain", "submitted", "succeeded")]
