"""Delta statistics from Parquet footers: bounds are only ever widened."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cdp.lake.stats import STRING_PREFIX, footer_stats


def stats_of(tmp_path: Path, table: pa.Table, row_group_size: int = 2) -> dict:
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, row_group_size=row_group_size)
    return footer_stats(pq.read_metadata(path))


def test_min_max_null_count_across_row_groups(tmp_path: Path) -> None:
    stats = stats_of(tmp_path, pa.table({"n": [5, None, 1, 9, None], "s": ["b", "a", None, "c", "b"]}))
    assert stats["numRecords"] == 5
    assert stats["minValues"] == {"n": 1, "s": "a"}
    assert stats["maxValues"] == {"n": 9, "s": "c"}
    assert stats["nullCount"] == {"n": 2, "s": 1}


def test_timestamps_round_outwards_to_milliseconds(tmp_path: Path) -> None:
    ts = pa.array(
        [dt.datetime(2024, 1, 1, 0, 0, 0, 1500), dt.datetime(2024, 1, 1, 0, 0, 0, 2001)],
        pa.timestamp("us", "UTC"),
    )
    stats = stats_of(tmp_path, pa.table({"ts": ts}))
    assert stats["minValues"]["ts"] == "2024-01-01T00:00:00.001Z"
    assert stats["maxValues"]["ts"] == "2024-01-01T00:00:00.003Z"


def test_long_strings_keep_a_prefix_minimum_and_no_maximum(tmp_path: Path) -> None:
    long = "x" * (STRING_PREFIX + 5)
    stats = stats_of(tmp_path, pa.table({"s": [long, long + "y"]}))
    assert stats["minValues"]["s"] == "x" * STRING_PREFIX
    assert "s" not in stats["maxValues"]


def test_no_bounds_for_floats_booleans_or_wide_decimals(tmp_path: Path) -> None:
    table = pa.table(
        {
            "f": [1.0, float("nan")],
            "b": [True, False],
            "narrow": pa.array([Decimal("1.25"), Decimal("-3.50")], pa.decimal128(10, 2)),
            "wide": pa.array([Decimal("1.5"), Decimal("2.5")], pa.decimal128(38, 18)),
        }
    )
    stats = stats_of(tmp_path, table)
    assert stats["minValues"] == {"narrow": -3.5}
    assert stats["maxValues"] == {"narrow": 1.25}
    assert stats["nullCount"] == {"f": 0, "b": 0, "narrow": 0, "wide": 0}


def test_nested_structs_nest_and_lists_are_skipped(tmp_path: Path) -> None:
    table = pa.table(
        {
            "addr": [{"city": "a", "zip": 1}, {"city": None, "zip": 3}],
            "tags": [["x"], []],
            "d": [dt.date(2024, 1, 2), dt.date(2023, 5, 6)],
        }
    )
    stats = stats_of(tmp_path, table)
    assert stats["minValues"] == {"addr": {"city": "a", "zip": 1}, "d": "2023-05-06"}
    assert stats["maxValues"] == {"addr": {"city": "a", "zip": 3}, "d": "2024-01-02"}
    assert stats["nullCount"] == {"addr": {"city": 1, "zip": 0}, "d": 0}
