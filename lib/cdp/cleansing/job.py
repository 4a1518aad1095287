"""Job `cleanse`: landing batches not yet processed -> silver.<source>, quality.quarantine, checked by GX.

For each source (products first, so SKUs can be checked) and each complete landing batch that
`quality.batches` has not recorded: read, standardise, quarantine, deduplicate, validate the silver
rows with the source's Great Expectations suite (a critical failure stops before anything is
written), write the batch's silver and quarantine partitions, check the reconciliation equation,
and record the batch. Every write replaces the batch's partitions, so a re-run after a crash gives
the same tables as a clean run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType, TimestampType

from cdp import schemas
from cdp.cleansing import engine
from cdp.cleansing.sources import SOURCES, Rules, Source
from cdp.errors import CdpError
from cdp.lake import Lake
from cdp.lake.landing import charset_allowed, complete_batches, landing_path
from cdp.quality import validation
from cdp.runtime import Job, JobContext, job_main, stage

logger = logging.getLogger(__name__)

QUARANTINE = "quality.quarantine"
BATCHES = "quality.batches"
VALIDATION_RUNS = "quality.validation_runs"
BATCHES_SCHEMA = StructType(
    [
        StructField("source", StringType()),
        StructField("batch", StringType()),
        StructField("run_id", StringType()),
        StructField("lines", LongType()),
        StructField("silver_rows", LongType()),
        StructField("quarantined", LongType()),
        StructField("duplicates", LongType()),
        StructField("superseded", LongType()),  # rows of earlier batches this batch re-delivered
        StructField("drift", ArrayType(StringType())),
        StructField("processed_at", TimestampType()),
    ]
)


def run(ctx: JobContext) -> None:
    rules = Rules(cfg=ctx.cfg.cleansing, today=dt.datetime.now(dt.UTC).date())
    wanted = ctx.args.sources.split(",") if ctx.args.sources else list(SOURCES)
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        raise CdpError(f"--sources: unknown source {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    done = _processed(ctx)
    for name in (s for s in SOURCES if s in wanted):
        source = SOURCES[name]
        todo = [b for b in complete_batches(ctx.spark, ctx.lake.root, name) if (name, b) not in done]
        logger.info("%s: %d new batches", name, len(todo))
        for batch in todo:
            with stage(f"cleanse {name}/{batch}"), charset_allowed(ctx.spark, source.encoding):
                cleanse_batch(ctx, source, batch, rules)
    docs = _docs_dir(ctx)
    if docs and Path(docs).exists():
        logger.info("Data Docs: %s", validation.write_docs_index(docs))


def cleanse_batch(ctx: JobContext, source: Source, batch: str, rules: Rules) -> None:
    spark, lake = ctx.spark, ctx.lake.scoped(f"{source.name}/{batch}")
    parsed = engine.read_batch(spark, source, landing_path(lake.root, source.name, batch))
    if parsed.drift:
        logger.warning(
            "%s/%s: columns not declared for the source, not loaded: %s", source.name, batch, ", ".join(parsed.drift)
        )
    skus = _known_skus(ctx) if source.needs_products else None
    result = engine.split(parsed, source, rules, batch=batch, run_id=ctx.run_id, known_skus=skus)
    report = validation.validate(result.silver, f"silver.{source.name}", run_id=ctx.run_id, docs_dir=_docs_dir(ctx))
    rows = validation.report_rows(report, table=f"silver.{source.name}")
    lake.append(VALIDATION_RUNS, spark.createDataFrame(rows, validation.VALIDATION_RUNS_SCHEMA))
    for outcome in report.warnings:
        logger.warning(
            "%s: warning %s on %s: %s unexpected",
            report.suite,
            outcome.expectation,
            outcome.column,
            outcome.unexpected_count,
        )
    validation.raise_on_critical(report)

    lake.replace_partitions(f"silver.{source.name}", result.silver, partition_by=["batch"])
    superseded = _supersede(ctx, lake, source, batch, result.silver)
    part = [{"source": source.name, "batch": batch}]
    lake.replace_partitions(QUARANTINE, result.quarantine, partition_by=["source", "batch"], partitions=part)
    # Counted from the data (both are checkpointed), not from the writes: a re-run of a crashed run
    # skips the writes that had committed, and the equation must still be checked.
    silver_rows, quarantined = result.silver.count(), result.quarantine.count()
    engine.reconcile(
        source, batch, lines=parsed.lines, silver=silver_rows, quarantined=quarantined, duplicates=result.duplicates
    )
    logger.info(
        "%s/%s: %d lines = %d silver + %d quarantined + %d duplicates",
        source.name, batch, parsed.lines, silver_rows, quarantined, result.duplicates,
    )  # fmt: skip
    share = quarantined / parsed.lines if parsed.lines else 0.0
    if share > ctx.cfg.cleansing.max_quarantine_share:
        logger.warning("%s/%s: %.1f%% of the lines quarantined", source.name, batch, 100 * share)
    record = (
        source.name, batch, ctx.run_id, parsed.lines, silver_rows, quarantined, result.duplicates, superseded,
        parsed.drift, dt.datetime.now(dt.UTC),
    )  # fmt: skip
    lake.replace_partitions(BATCHES, spark.createDataFrame([record], BATCHES_SCHEMA), partition_by=["source", "batch"])


def _supersede(ctx: JobContext, lake: Lake, source: Source, batch: str, silver: DataFrame) -> int:
    """Remove from earlier batches' partitions the records this batch delivers again; return how many.

    The latest delivery of a record is the one kept. This write comes after the batch's own silver
    write and only when there is something to remove, so a re-run after a crash makes the same
    sequence of writes. The count is derived from what the earlier batches recorded and what their
    partitions hold now, so it is the same on a re-run that finds nothing left to remove.
    """
    table, key = f"silver.{source.name}", schemas.RECORD_KEY[source.name]
    older = lake.read(table).where(F.col("batch") < batch)
    keys = silver.select(*key)
    affected = [r.batch for r in older.join(keys, on=key, how="left_semi").select("batch").distinct().collect()]
    if affected:
        kept = older.where(F.col("batch").isin(*affected)).join(keys, on=key, how="left_anti")
        lake.replace_partitions(table, kept, partition_by=["batch"], partitions=[{"batch": b} for b in affected])
    if not lake.exists(BATCHES):
        return 0
    recorded = (
        lake.read(BATCHES)
        .where((F.col("source") == source.name) & (F.col("batch") < batch))
        .agg(F.sum("silver_rows").alias("rows"), F.sum(F.coalesce("superseded", F.lit(0))).alias("removed"))
        .first()
    )
    before = (recorded["rows"] or 0) - (recorded["removed"] or 0)
    return before - lake.read(table).where(F.col("batch") < batch).count()


def _docs_dir(ctx: JobContext) -> str | None:
    """Data Docs HTML goes under the lake when the lake is a local folder."""
    return None if "://" in ctx.lake.root else f"{ctx.lake.root}/quality/data_docs"


def _processed(ctx: JobContext) -> set[tuple[str, str]]:
    if not ctx.lake.exists(BATCHES):
        return set()
    return {(r.source, r.batch) for r in ctx.lake.read(BATCHES).select("source", "batch").collect()}


def _known_skus(ctx: JobContext) -> DataFrame | None:
    """The catalogue's SKUs (`silver.products`), or None before any product batch was cleansed."""
    if not ctx.lake.exists("silver.products"):
        return None
    return ctx.lake.read("silver.products").select("sku")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sources", help=f"comma-separated sources to cleanse (default: all of {', '.join(SOURCES)})")


JOB = Job(name="cleanse", description=__doc__.splitlines()[0], run=run, add_arguments=_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, argv)


if __name__ == "__main__":
    sys.exit(main())
