"""Column helpers shared by the generator and the jobs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F


def constant_array(values: Sequence[Any]) -> Column:
    """An array literal built in one expression (Spark folds it to a constant).

    `F.array(*map(F.lit, values))` costs one driver round trip per element, which adds up to
    seconds for word lists of hundreds of entries used in many columns.
    """
    return F.from_json(F.lit(json.dumps(list(values), ensure_ascii=False)), f"array<{_json_type(values)}>")


def constant_map(mapping: Mapping[str, Any]) -> Column:
    """A string-keyed map literal built in one expression (see `constant_array`)."""
    value_type = _json_type(list(mapping.values()))
    return F.from_json(F.lit(json.dumps(dict(mapping), ensure_ascii=False)), f"map<string,{value_type}>")


def _json_type(values: Sequence[Any]) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "bigint"
    if all(isinstance(v, list | tuple) for v in values):
        return f"array<{_json_type([x for v in values for x in v])}>"
    raise TypeError(
        f"constants hold strings, integers or lists of them, not {sorted({type(v).__name__ for v in values})}"
    )
