"""A short account of one as-of date's tags: persons, tag values, lifecycle stages and RFM segments."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence

from pyspark.sql import functions as F

from cdp.errors import CdpError
from cdp.lake import Lake
from cdp.tags.catalogue import Catalogue
from cdp.tags.job import CUSTOMER_TAGS, PROFILE

DISTRIBUTIONS = ("lifecycle_stage", "rfm_segment")


def summary(lake: Lake, catalogue: Catalogue, as_of: dt.date | None = None) -> list[str]:
    """The lines of the summary for `as_of` (default: the latest date computed)."""
    if not lake.exists(PROFILE):
        raise CdpError(f"table {PROFILE} does not exist under {lake.root}: run `cdp run tags` first")
    profile = lake.read(PROFILE)
    if as_of is None:
        as_of = profile.agg(F.max("as_of")).first()[0]
    profile = profile.where(F.col("as_of") == F.lit(as_of))
    persons = profile.count()
    if persons == 0:
        raise CdpError(f"{PROFILE} has no tags as of {as_of}: run `cdp run tags --as-of {as_of}` first")
    values = lake.read(CUSTOMER_TAGS).where(F.col("as_of") == F.lit(as_of)).count()
    lines = [
        f"tags as of {as_of}: {persons:,} one_ids, {len(catalogue)} tags in {len(catalogue.families)} families, "
        f"{values:,} tag values",
    ]
    for key in DISTRIBUTIONS:
        if key in profile.columns:
            lines += _distribution(profile, key, catalogue[key].spec.values if key in catalogue.by_key else None)
    return lines


def _distribution(profile, key: str, order: Sequence[str] | None) -> list[str]:
    counts = {r[key]: r["n"] for r in profile.groupBy(key).agg(F.count("*").alias("n")).collect()}
    total = sum(counts.values())
    ranked = [v for v in (order or []) if v in counts] + sorted(
        v for v in counts if v not in (order or []) and v is not None
    )
    if None in counts:
        ranked.append(None)
    lines = [f"{key}:"]
    for value in ranked:
        n = counts[value]
        label = value if value is not None else "(none)"
        pad = " " * max(0, 26 - _width(label))
        lines.append(f"  {label}{pad} {n:>12,} {100 * n / total:6.1f}%")
    return lines


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
