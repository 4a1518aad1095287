"""How every job runs: one `main` shape for the CLI, `spark-submit jobs/<job>.py`, tests and notebooks.

`main` parses the standard arguments (`--env`, `--lake`, `--run-id`, `--conf-dir`, plus the job's
own), loads the configuration, configures logging, gets the session and calls the job's `run`.
Errors end as one line on stderr with the log file's path (exit 2 for a `CdpError`, 1 otherwise);
the full traceback is in the log file only. Each run is recorded in `ops.job_runs`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from cdp import logs
from cdp.config import Config, load_config
from cdp.errors import CdpError
from cdp.lake import Lake
from cdp.spark import get_spark

logger = logging.getLogger(__name__)

JOB_RUNS_TABLE = "ops.job_runs"
JOB_RUNS_SCHEMA = StructType(
    [
        StructField("job", StringType()),
        StructField("run_id", StringType()),
        StructField("status", StringType()),
        StructField("started_at", TimestampType()),
        StructField("finished_at", TimestampType()),
        StructField("seconds", DoubleType()),
        StructField(
            "writes",
            ArrayType(
                StructType(
                    [
                        StructField("table", StringType()),
                        StructField("version", LongType()),
                        StructField("rows", LongType()),
                        StructField("skipped", BooleanType()),
                    ]
                )
            ),
        ),
        StructField("error", StringType()),
    ]
)


@dataclass(frozen=True)
class JobContext:
    """What a job's `run` receives."""

    spark: SparkSession
    cfg: Config
    lake: Lake
    run_id: str
    args: argparse.Namespace


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    run: Callable[[JobContext], None]
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def add_standard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="local", help="configuration overlay conf/<env>.yaml (default: local)")
    parser.add_argument("--lake", metavar="PATH", help="lake root; overrides CDP_LAKE and lake.root")
    parser.add_argument(
        "--run-id", metavar="ID", help="id of this run; pass the id of a crashed run to finish it safely"
    )
    parser.add_argument("--conf-dir", metavar="DIR", help="folder of the YAML configuration (default: conf/)")


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Log the start and the duration of one stage of a job."""
    logger.info("stage %s: started", name)
    start = time.monotonic()
    yield
    logger.info("stage %s: done in %.1fs", name, time.monotonic() - start)


def job_main(job: Job, argv: Sequence[str] | None = None) -> int:
    """The `main` of one job (console script, spark-submit target, test and notebook entry)."""
    parser = argparse.ArgumentParser(prog=f"cdp run {job.name}", description=job.description)
    add_standard_arguments(parser)
    job.add_arguments(parser)
    return execute([job], parser.parse_args(argv))


def execute(jobs: Sequence[Job], args: argparse.Namespace, *, label: str | None = None) -> int:
    """Run jobs in order with one run id; return the process exit code. `label` names the log file."""
    try:
        cfg = load_config(args.env, conf_dir=args.conf_dir, lake_root=args.lake)
    except CdpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_id = args.run_id or new_run_id()
    name = label or jobs[0].name
    log_path = logs.configure(level=cfg.logging.level, log_dir=cfg.logging.dir, job=name, run_id=run_id)
    logger.info("run %s of %s, lake %s (env %s)", run_id, ", ".join(j.name for j in jobs), cfg.lake.root, cfg.env)
    try:
        spark = get_spark(cfg)
        for job in jobs:
            run_job(job, spark, cfg, run_id, args)
    except Exception as e:
        logger.debug("traceback", exc_info=True)
        logger.error("%s (log: %s)", one_line(e), log_path)
        return 2 if isinstance(e, CdpError) else 1
    logger.info("run %s finished (log: %s)", run_id, log_path)
    return 0


def run_job(job: Job, spark: SparkSession, cfg: Config, run_id: str, args: argparse.Namespace) -> Lake:
    """Run one job and record it in `ops.job_runs`, failed or not; return its lake handle."""
    lake = Lake.from_config(spark, cfg, job=job.name, run_id=run_id)
    started = dt.datetime.now(dt.UTC)
    error = None
    try:
        with stage(job.name):
            job.run(JobContext(spark=spark, cfg=cfg, lake=lake, run_id=run_id, args=args))
    except Exception as e:
        error = one_line(e)
        raise
    finally:
        _record(lake, job.name, run_id, started, error)
    return lake


def _record(lake: Lake, job: str, run_id: str, started: dt.datetime, error: str | None) -> None:
    finished = dt.datetime.now(dt.UTC)
    writes = [(r.table, r.version, r.rows, r.skipped) for r in lake.results]
    row = (
        job,
        run_id,
        "failed" if error else "succeeded",
        started,
        finished,
        (finished - started).total_seconds(),
        writes,
        error,
    )
    # Every attempt is its own record: a retried run id appends a second row, never skips it.
    ops = Lake(lake.spark, lake.root, engine=lake.engine, job="ops", run_id=f"{job}-{run_id}-{uuid.uuid4().hex[:8]}")
    try:
        ops.append(JOB_RUNS_TABLE, lake.spark.createDataFrame([row], JOB_RUNS_SCHEMA).coalesce(1))
    except Exception:
        if error is None:
            raise
        logger.warning("could not record the failed run in %s", JOB_RUNS_TABLE, exc_info=True)


def one_line(error: BaseException) -> str:
    """The first line of an error, prefixed by its class unless it is one of ours."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, CdpError) else f"{type(error).__name__}: {text}"
