"""Deterministic randomness as Spark columns.

Every draw is a hash of (seed, purpose, row keys), not `F.rand`: the value a row gets does not
depend on how the data is partitioned, so the same seed gives the same data on a laptop and on a
cluster, and re-running a crashed generation reproduces it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp.columns import constant_array

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
