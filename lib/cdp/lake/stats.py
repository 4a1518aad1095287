"""Delta file statistics from Parquet footers, so that any Delta reader can skip files.

Spark already wrote min, max and null counts into every row group's footer; reading the footer
costs one small range read per file. Stats follow the Delta protocol's `stats` JSON:
`{"numRecords", "minValues", "maxValues", "nullCount"}`, nested for struct columns.

Bounds are only ever widened, never narrowed, so skipping stays correct:
- timestamps are written at millisecond precision: minimum rounded down, maximum rounded up;
- strings keep a 32-character prefix as the minimum; a longer maximum is left out;
- floating point (NaN is not ordered), booleans, binary, and decimals too wide for a JSON double
  get null counts only.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import pyarrow.parquet as pq

STRING_PREFIX = 32
_EXACT_DECIMAL_DIGITS = 15


def footer_stats(metadata: pq.FileMetaData) -> dict[str, Any]:
    """The Delta stats of one Parquet file, from its footer metadata."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, Any] = {}
    schema = metadata.schema
    for j in range(metadata.num_columns):
        column = schema.column(j)
        if column.max_repetition_level > 0:  # inside a list or map: no per-row statistics
            continue
        chunks = [metadata.row_group(i).column(j).statistics for i in range(metadata.num_row_groups)]
        path = column.path.split(".")
        if chunks and all(s is not None and s.has_null_count for s in chunks):
            _put(nulls, path, sum(s.null_count for s in chunks))
        # A row group of nulls only has no bounds and adds none; any other row group without
        # bounds makes the file's bounds unknown.
        valued = [s for s in chunks if s is None or s.has_min_max or s.num_values > 0]
        if not valued or not all(s is not None and s.has_min_max for s in valued):
            continue
        low = _bound(min(s.min for s in valued), upper=False)
        high = _bound(max(s.max for s in valued), upper=True)
        if low is not None:
            _put(mins, path, low)
        if high is not None:
            _put(maxs, path, high)
    return {"numRecords": metadata.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def stats_json(metadata: pq.FileMetaData) -> str:
    return json.dumps(footer_stats(metadata), separators=(",", ":"), ensure_ascii=False)


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def _bound(value: Any, *, upper: bool) -> Any:
    if isinstance(value, bool | float | bytes):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        return _timestamp_millis(value, upper=upper)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        digits = len(value.as_tuple().digits)
        return float(value) if digits <= _EXACT_DECIMAL_DIGITS else None
    if isinstance(value, str):
        if len(value) <= STRING_PREFIX:
            return value
        return None if upper else value[:STRING_PREFIX]
    return None


def _timestamp_millis(value: dt.datetime, *, upper: bool) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    extra = value.microsecond % 1000
    value = value - dt.timedelta(microseconds=extra)
    if upper and extra:
        value += dt.timedelta(milliseconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
