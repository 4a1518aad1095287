"""What the tag tests share: the operators of a physical plan."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from pyspark.sql import DataFrame


def operators(plan: str, *, outside_caches: bool = False) -> list[str]:
    """The operators of a printed physical plan, one per line, without their code generation stage;
    with `outside_caches`, without the plans that cached data was made by."""
    kept, cached_at = [], None
    for line in plan.splitlines():
        depth = len(line) - len(line.lstrip(" :+-"))
        if outside_caches and cached_at is not None and depth > cached_at:
            continue
        cached_at = depth if "InMemoryRelation" in line else None
        kept.append(re.sub(r"^\*\(\d+\) ", "", line.strip(" :+-")))
    return kept


@pytest.fixture
def plan_of(capsys: pytest.CaptureFixture) -> Callable[..., list[str]]:
    """`plan_of(df, outside_caches=False)`: the operators of `df`'s physical plan, as Spark plans it
    now (call it inside the settings the plan is meant for)."""

    def plan(df: DataFrame, *, outside_caches: bool = False) -> list[str]:
        capsys.readouterr()
        df.explain()
        return operators(capsys.readouterr().out, outside_caches=outside_caches)

    return plan
