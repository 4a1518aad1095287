"""Score cut points are exact quantiles, whatever the partitioning: checked against a sort in Python."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession

from cdp.tags import engine
from cdp.tags.catalogue import Names, Score, Tag


def score(key: str, quantiles: int, where: str | None = None) -> Tag:
    spec = Score(
        kind="score", key=key, name=Names(zh=key, en=key), description=key, of="v", quantiles=quantiles, where=where
    )
    return Tag(spec=spec, family="f", file=Path("f.yaml"))


def oracle(values: list[float | None], quantiles: int) -> list[float]:
    """For i = 1 .. q-1, the smallest value that ceil(i n / q) of the n values reach."""
    ranked = sorted(v for v in values if v is not None)
    n = len(ranked)
    return [ranked[math.ceil(i * n / quantiles) - 1] for i in range(1, quantiles)] if n else []


def profile(spark: SparkSession, values: list[float | None], partitions: int) -> DataFrame:
    rows = [(i, v, i % 3 != 0) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, "one_id long, v double, buyer boolean").repartition(partitions)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.one_of(st.none(), st.integers(0, 6).map(float), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=0,
        max_size=300,
    ),
    quantiles=st.integers(2, 10),
    partitions=st.integers(1, 7),
)
def test_cut_points_are_the_exact_quantiles(
    spark: SparkSession, values: list[float | None], quantiles: int, partitions: int
) -> None:
    tags = [score("all", quantiles), score("buyers", quantiles, where="buyer")]
    cuts = engine._quantiles(profile(spark, values, partitions), tags)
    buyers = [v if i % 3 != 0 else None for i, v in enumerate(values)]
    assert cuts == {"all": oracle(values, quantiles), "buyers": oracle(buyers, quantiles)}


@pytest.mark.parametrize("partitions", [1, 8])
def test_cut_points_of_more_values_than_the_approximation_keeps_are_sql_percentile_disc(
    spark: SparkSession, partitions: int
) -> None:
    # 60 000 values: percentile_approx alone would be off by up to 6 ranks.
    values = [float((v * 7919) % 50_021) + (v % 3) / 4 for v in range(60_003)] + [1e9] * 10
    df = profile(spark, values, partitions)
    points = ", ".join(f"percentile_disc({i}/5) WITHIN GROUP (ORDER BY v)" for i in range(1, 5))
    want = list(df.selectExpr(f"array({points}) AS c").first()["c"])
    assert want == oracle(values, 5)
    assert engine._quantiles(df, [score("s", 5)]) == {"s": want}


def test_a_bracket_that_misses_its_rank_is_widened(spark: SparkSession, caplog: pytest.LogCaptureFixture) -> None:
    values = [float(v) for v in range(100)]
    df = profile(spark, values, 3)
    wrong = {"v": [engine.Bracket(rank=50, low=60.0, high=70.0), engine.Bracket(rank=90, low=85.0, high=95.0)]}
    with caplog.at_level(logging.WARNING, logger="cdp.tags.engine"):
        assert engine._ranked_values(df, wrong) == {"v": [49.0, 89.0]}
    assert "outside its bracket" in caplog.text
    right = {"v": [engine.Bracket(rank=50, low=40.0, high=60.0), engine.Bracket(rank=90, low=89.0, high=89.0)]}
    assert engine._ranked_values(df, right) == {"v": [49.0, 89.0]}
