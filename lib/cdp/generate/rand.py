"""Deterministic randomness as Spark columns.

Every draw is a hash of (seed, purpose, row keys), not `F.rand`: the value a row gets does not
depend on how the data is partitioned, so the same seed gives the same data on a laptop and on a
cluster, and re-running a crashed generation reproduces it exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_POSITIVE = 0x7FFFFFFFFFFFFFFF


class Rng:
    """Draws keyed by `seed`; `purpose` names the draw so that two draws on one row differ."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, purpose: str, *keys: Column) -> Column:
        """Uniform in [0, 1)."""
        h = F.xxhash64(F.lit(self.seed), F.lit(purpose), *keys).bitwiseAND(F.lit(_POSITIVE))
        return h.cast("double") / F.lit(float(2**63))

    def chance(self, p: float, purpose: str, *keys: Column) -> Column:
        """True with probability `p`."""
        return self.uniform(purpose, *keys) < F.lit(p)

    def integer(self, lo: int | Column, hi: int | Column, purpose: str, *keys: Column) -> Column:
        """Uniform integer in [lo, hi]."""
        lo_c, hi_c = _col(lo), _col(hi)
        return (lo_c + F.floor(self.uniform(purpose, *keys) * (hi_c - lo_c + 1))).cast("long")

    def normal(self, purpose: str, *keys: Column) -> Column:
        """Standard normal (Box-Muller)."""
        u1 = F.lit(1.0) - self.uniform(purpose + "/1", *keys)
        u2 = self.uniform(purpose + "/2", *keys)
        return F.sqrt(F.lit(-2.0) * F.log(u1)) * F.cos(F.lit(2 * math.pi) * u2)

    def pick(
        self, values: Sequence[Any], purpose: str, *keys: Column, weights: Sequence[float] | None = None
    ) -> Column:
        """One of `values`, uniformly or by `weights`."""
        return pick(values, self.uniform(purpose, *keys), weights=weights)

    def hex(self, length: int, purpose: str, *keys: Column) -> Column:
        """`length` hex characters (up to 64), practically unique per key."""
        return F.substring(F.sha2(F.concat_ws("|", F.lit(self.seed), F.lit(purpose), *keys), 256), 1, length)


def pick(values: Sequence[Any], u: Column, *, weights: Sequence[float] | None = None) -> Column:
    """The value whose share of [0, 1) contains `u`."""
    array = constant_array(values)
    if weights is None:
        index = F.least(F.floor(u * len(values)).cast("int"), F.lit(len(values) - 1))
        return F.get(array, index)
    if len(weights) != len(values):
        raise ValueError(f"{len(values)} values but {len(weights)} weights")
    total = float(sum(weights))
    index: Column = F.lit(len(values) - 1)
    cumulative = 0.0
    bounds = []
    for w in weights[:-1]:
        cumulative += w / total
        bounds.append(cumulative)
    for i, bound in reversed(list(enumerate(bounds))):
        index = F.when(u < F.lit(bound), F.lit(i)).otherwise(index)
    return F.get(array, index)


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


def permute(x: Column, *, multiplier: int, offset: int, modulus: int) -> Column:
    """A bijection of [0, modulus) (multiplier coprime with modulus): unique ids that hide the person."""
    if math.gcd(multiplier, modulus) != 1:
        raise ValueError(f"{multiplier} is not coprime with {modulus}")
    if multiplier * modulus >= 2**63:
        raise ValueError("multiplier * modulus overflows a long")
    return (x * F.lit(multiplier) + F.lit(offset)) % F.lit(modulus)


def digits(x: Column, width: int) -> Column:
    return F.lpad(x.cast("string"), width, "0")


def _col(value: int | Column) -> Column:
    return value if isinstance(value, Column) else F.lit(value)
