"""The one engine that turns any declared `Source` batch into silver rows, quarantined rows and counts.

1. Read the batch's files as strings, keeping malformed lines whole (`_corrupt`), file by file
   header for CSV (columns matched by name, missing optional columns as null, extra ones reported).
2. Standardise: silver columns, flags (`issues`), and the first rejection rule that applies.
3. Split: rejected and malformed rows to quarantine with their raw payload; the rest deduplicated
   on the record key, newest delivery first.
4. Reconcile: data lines in the files = silver rows + quarantined rows + duplicates removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cdp import schemas
from cdp.cleansing.sources import Rules, Source, raw
from cdp.columns import constant_map
from cdp.errors import CdpError, DataQualityError

logger = logging.getLogger(__name__)

REASONS = {
    "malformed": "the line does not parse (wrong number of fields, broken JSON or undecodable bytes)",
    "missing_key": "the record id is missing",
    "bad_time": "the time is missing, impossible or outside the plausible window",
    "bad_amount": "the amount is missing, not a number or negative",
    "unknown_sku": "the SKU is not in the product catalogue",
}


@dataclass(frozen=True)
class Parsed:
    rows: DataFrame  # raw fields (strings), `_corrupt`, `_file`
    lines: int  # non-blank data lines in the files (headers excluded)
    drift: list[str]  # columns delivered that the source does not declare


@dataclass(frozen=True)
class Split:
    silver: DataFrame
    quarantine: DataFrame
    parsed: int
    duplicates: int


def read_batch(spark: SparkSession, source: Source, path: str) -> Parsed:
    """The rows of one landing batch, nothing dropped: a line that does not parse is kept in `_corrupt`.

    Spark checks a CSV charset whenever the rows are computed, so everything done with them must
    run inside `charset_allowed(spark, source.encoding)`.
    """
    files = _files(spark, path, source.encoding)
    if not files:
        return Parsed(_empty(spark, source), 0, [])
    if source.format == "json":
        return _read_json(spark, source, path, files)
    return _read_csv(spark, source, files)


def _files(spark: SparkSession, path: str, encoding: str) -> dict[str, int]:
    """file -> non-blank lines, for every non-empty file of the batch."""
    try:
        text = spark.read.option("encoding", encoding).text(path)
        rows = (
            text.where(F.trim("value") != "")
            .groupBy(F.col("_metadata.file_path").alias("file"))
            .agg(F.count(F.lit(1)).alias("lines"))
            .collect()
        )
    except Exception as e:
        raise CdpError(f"landing batch {path}: cannot read its files: {e}") from e
    return {r.file: r.lines for r in rows}


def _read_csv(spark: SparkSession, source: Source, files: dict[str, int]) -> Parsed:
    groups: dict[tuple[str, ...], list[str]] = {}
    for file in sorted(files):
        header = tuple(_header(spark, source, file))
        missing = [c for c in source.required if c not in header]
        if missing:
            raise DataQualityError(
                f"{file}: required column {', '.join(missing)} missing from the header of source {source.name}"
            )
        groups.setdefault(header, []).append(file)
    parts, drift = [], set()
    for header, paths in groups.items():
        drift |= set(header) - set(source.raw_fields)
        schema = ", ".join(f"`{c}` string" for c in _dedupe(header)) + ", _corrupt string"
        df = (
            spark.read.schema(schema)
            .option("header", True)
            .option("encoding", source.encoding)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", "_corrupt")
            .csv(paths)
        )
        present = set(header)
        parts.append(
            df.select(
                *[(raw(c) if c in present else F.lit(None).cast("string")).alias(c) for c in source.raw_fields],
                "_corrupt",
                F.col("_metadata.file_path").alias("_file"),
            )
        )
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.unionByName(part)
    return Parsed(rows, sum(n - 1 for n in files.values()), sorted(drift))


def _header(spark: SparkSession, source: Source, file: str) -> list[str]:
    try:
        return spark.read.option("header", True).option("encoding", source.encoding).csv(file).columns
    except Exception as e:
        raise DataQualityError(f"{file}: cannot read the CSV header of source {source.name}: {e}") from e


def _dedupe(header: Sequence[str]) -> list[str]:
    """Header names made unique (a repeated column gets a numeric suffix) so Spark accepts the schema."""
    seen: dict[str, int] = {}
    out = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h}_{seen[h]}")
    return out


def _read_json(spark: SparkSession, source: Source, path: str, files: dict[str, int]) -> Parsed:
    df = (
        spark.read.schema(f"{source.json_schema}, _corrupt string")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt")
        .json(path)
    )
    rows = df.select("*", F.col("_metadata.file_path").alias("_file"))
    return Parsed(rows, sum(files.values()), [])


def _empty(spark: SparkSession, source: Source) -> DataFrame:
    if source.format == "json":
        schema = f"{source.json_schema}, _corrupt string, _file string"
    else:
        schema = ", ".join(f"`{c}` string" for c in source.raw_fields) + ", _corrupt string, _file string"
    return spark.createDataFrame([], schema)


def split(
    parsed: Parsed, source: Source, rules: Rules, *, batch: str, run_id: str, known_skus: DataFrame | None = None
) -> Split:
    """Standardise a parsed batch and split it into silver and quarantine (see the module docstring)."""
    rows = parsed.rows
    if source.needs_products:
        rows = _check_skus(rows, source, known_skus)
    columns = source.columns(rules)
    issues = F.filter(
        F.array(*[F.when(cond, F.lit(flag)) for flag, cond in source.flags(rules)] or [F.lit(None)]),
        lambda x: x.isNotNull(),
    )
    reject = F.when(F.col("_corrupt").isNotNull(), F.lit("malformed"))
    for rule, cond in source.rejects(rules):
        reject = reject.when(F.coalesce(cond, F.lit(False)), F.lit(rule))
    std = rows.select(
        "*",
        *[expr.alias(f"_s_{name}") for name, expr in columns.items()],
        issues.alias("_issues"),
        reject.alias("_reject"),
    ).localCheckpoint()

    key = schemas.RECORD_KEY[source.name]
    first = source.raw_fields[0]
    payload = F.coalesce(F.col("_corrupt"), F.to_json(F.struct(*[raw(c) for c in source.raw_fields])))
    record_key = F.coalesce(F.concat_ws("|", *[F.col(f"_s_{k}").cast("string") for k in key]), F.lit(""))
    record_key = F.when(record_key != "", record_key).otherwise(_key_from_line(source, first))
    reasons = constant_map(REASONS)
    quarantine = std.where(F.col("_reject").isNotNull()).select(
        F.lit(source.name).alias("source"),
        F.lit(batch).alias("batch"),
        record_key.alias("record_key"),
        F.col("_reject").alias("rule"),
        F.element_at(reasons, F.col("_reject")).alias("reason"),
        payload.alias("raw"),
        F.col("_file").alias("file"),
        F.lit(run_id).alias("run_id"),
    )
    clean = std.where(F.col("_reject").isNull())
    order: list[Column] = [F.col(f"_s_{c}").desc_nulls_last() for c in source.newest_first]
    newest = Window.partitionBy(*[F.col(f"_s_{k}") for k in key]).orderBy(*order, F.col("_file").desc())
    deduped = clean.withColumn("_n", F.row_number().over(newest)).where(F.col("_n") == 1)
    target = schemas.SILVER[source.name]
    silver = deduped.select(
        *[
            F.col(f"_s_{f.name}").cast(f.dataType).alias(f.name)
            for f in target.fields
            if f.name not in ("issues", "batch")
        ],
        F.col("_issues").alias("issues"),
        F.lit(batch).alias("batch"),
    ).localCheckpoint()
    parsed_rows = std.count()
    if source.format == "json":
        _require_json_fields(std, source, batch)
    clean_rows = std.where(F.col("_reject").isNull()).count()
    return Split(silver=silver, quarantine=quarantine, parsed=parsed_rows, duplicates=clean_rows - silver.count())


def _check_skus(rows: DataFrame, source: Source, known_skus: DataFrame | None) -> DataFrame:
    """Add `_known_sku` (the row's SKU is in the catalogue, or absent) and `_unknown_items` (count).

    Broadcast joins against the catalogue's SKUs (one column `sku`): a literal list compared row
    by row costs (rows x SKUs) and took minutes at a million persons.
    """
    spark = rows.sparkSession
    catalogue = (
        (known_skus if known_skus is not None else spark.createDataFrame([], "sku string"))
        .select(F.upper(F.trim("sku")).alias("_ksku"))
        .distinct()
    )
    catalogue = F.broadcast(catalogue)
    if "sku" in source.raw_fields:
        sku = F.upper(F.trim(raw("sku")))
        rows = rows.withColumn("_sku", sku).join(catalogue, F.col("_sku") == F.col("_ksku"), "left")
        known = F.col("_sku").isNull() | (F.col("_sku") == "") | F.col("_ksku").isNotNull()
        rows = rows.withColumn("_known_sku", known).drop("_sku", "_ksku")
    if "items" in source.raw_fields:
        key = raw(source.raw_fields[0])
        skus = F.transform(raw("items"), lambda i: F.upper(F.trim(i["sku"])))
        items = rows.where(key.isNotNull()).select(
            key.alias("_ikey"), F.col("_file").alias("_ifile"), F.explode(skus).alias("_isku")
        )
        unknown = (
            items.distinct()
            .join(catalogue, F.col("_isku") == F.col("_ksku"), "left_anti")
            .groupBy("_ikey", "_ifile")
            .agg(F.count(F.lit(1)).alias("_unknown_items"))
        )
        on = (key == F.col("_ikey")) & (F.col("_file") == F.col("_ifile"))
        rows = rows.join(unknown, on, "left").drop("_ikey", "_ifile")
        rows = rows.withColumn("_unknown_items", F.coalesce("_unknown_items", F.lit(0)))
    return rows


def _require_json_fields(std: DataFrame, source: Source, batch: str) -> None:
    """JSON has no header: a required field that no parsed record carries means the export changed."""
    parsed = std.where(F.col("_corrupt").isNull())
    counts = parsed.select(
        F.count(F.lit(1)).alias("_rows"), *[F.count(raw(c)).alias(c) for c in source.required]
    ).first()
    if counts is None or counts["_rows"] == 0:
        return
    missing = [c for c in source.required if counts[c] == 0]
    if missing:
        files = sorted({r._file for r in parsed.select("_file").distinct().limit(3).collect()})
        raise DataQualityError(
            f"{', '.join(files)}: required field {', '.join(missing)} missing from every record of source "
            f"{source.name} batch {batch}"
        )


def _key_from_line(source: Source, first: str) -> Column:
    """The record id of a malformed line: its first CSV field, or the first JSON string value."""
    if source.format == "json":
        return F.regexp_extract(F.col("_corrupt"), r'^\s*\{\s*"[^"]+"\s*:\s*"([^"]*)"', 1)
    return F.split(F.coalesce(F.col("_corrupt"), F.lit("")), ",")[0]


def reconcile(source: Source, batch: str, *, lines: int, silver: int, quarantined: int, duplicates: int) -> None:
    """Every data line of the batch ends in silver, in quarantine, or as a removed duplicate."""
    if lines != silver + quarantined + duplicates:
        raise DataQualityError(
            f"source {source.name} batch {batch}: {lines} lines in the files but {silver} silver + "
            f"{quarantined} quarantined + {duplicates} duplicates = {silver + quarantined + duplicates}"
        )
