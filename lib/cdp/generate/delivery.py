"""A delivery: the lines one source sends, how they are encoded, and the truth about who is in them."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp.generate.noise import csv_line, damage
from cdp.generate.params import Params
from cdp.generate.rand import Rng


@dataclass(frozen=True)
class Delivery:
    source: str
    lines: DataFrame  # one column, `line`
    format: str  # "csv" or "jsonl"
    header: str | None = None  # CSV header line
    encoding: str = "UTF-8"
    truth: DataFrame | None = None  # (record_id, person_id) of every record, once


def csv_delivery(
    source: str,
    records: DataFrame,
    columns: list[tuple[str, Column]],
    params: Params,
    *,
    encoding: str = "UTF-8",
    truth: DataFrame | None = None,
    damaged: bool = True,
) -> Delivery:
    """CSV lines of `columns` (header name, value), the first being the record id."""
    # Fields first, as columns of their own: csv_line refers to each field three times, and a
    # projection in between keeps Spark from copying each field's expression into all three.
    fields = records.select(*[c.alias(f"_{i}") for i, (_, c) in enumerate(columns)])
    lines = fields.select(csv_line(*[F.col(f"_{i}") for i in range(len(columns))]).alias("line"))
    if damaged:
        lines = _damage(lines, source, params, json=False)
    return Delivery(source, lines, "csv", header=",".join(h for h, _ in columns), encoding=encoding, truth=truth)


def json_delivery(
    source: str, records: DataFrame, fields: list[Column], params: Params, *, truth: DataFrame
) -> Delivery:
    """JSON lines of `fields` (named columns, record id first); null fields are left out."""
    lines = records.select(F.to_json(F.struct(*fields), {"ignoreNullFields": "true"}).alias("line"))
    return Delivery(source, _damage(lines, source, params, json=True), "jsonl", truth=truth)


def _damage(lines: DataFrame, source: str, params: Params, *, json: bool) -> DataFrame:
    n = params.noise
    return damage(
        lines,
        Rng(params.seed),
        source=source,
        duplicate_rate=n.duplicate_rate,
        malformed_rate=n.malformed_rate,
        json=json,
    )


def local_time(seconds: Column, pattern: str) -> Column:
    """Wall-clock seconds formatted with a datetime pattern (the session time zone is UTC)."""
    return F.date_format(F.timestamp_seconds(seconds), pattern)


def epoch_millis(seconds: Column) -> Column:
    """Wall-clock seconds in China (UTC+8) as real epoch milliseconds."""
    return (seconds - F.lit(8 * 3600)) * 1000


def year_of(seconds: Column) -> Column:
    return F.year(F.timestamp_seconds(seconds))
