"""Hygiene before the graph: which identifier values may join records, and which may not.

Applied in order, each rule only to the values the previous ones kept:

1. Non-linking types (`link: false`) never join records; they are attributes.
2. Blocklists: per type, listed values, whole-value regular expressions (placeholders, test data)
   and the values of reference columns (the stores' own phones, typed at the till for walk-ins).
3. Hubs: per type, values carried by more than `max_records` records, or by records with more
   than `max_names` distinct person names, or seen on the same records as more than `max_holders`
   values of stronger types (a store phone typed for walk-in customers, a family's phone, a shared
   or second-hand device logged into by several members).
4. Caps: a value of a stronger type (higher `priority`) keeps at most `max_per_holder` values of a
   capped type, the best-supported ones (most records; ties by id); on the records that hold both,
   the extra values are dropped.

Everything removed is returned with its rule, so that the job can report its would-be effect.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp.columns import constant_map
from cdp.config import IdentifierTypeConfig
from cdp.schemas import RECORD


@dataclass(frozen=True)
class Hygiene:
    links: DataFrame  # source, record_id, id_type, identifier: what may join records
    removed: DataFrame  # identifier, id_type, rule, records, names: values removed as a whole
    capped: DataFrame  # source, record_id, id_type, identifier, rule: links dropped on single records


def apply(
    observations: DataFrame, types: Mapping[str, IdentifierTypeConfig], *, reference: DataFrame | None = None
) -> Hygiene:
    """Split identifier observations into links and removed values: `split(assess(...))`.

    Args:
        observations: `source`, `record_id`, `id_type`, `identifier`, `value`, `name`.
        types: the configuration of every identifier type; types not listed do not link.
        reference: `id_type`, `value` read from the types' `block_from` columns, if any.
    """
    return split(observations, assess(observations, types, reference=reference), types)


def assess(
    observations: DataFrame, types: Mapping[str, IdentifierTypeConfig], *, reference: DataFrame | None = None
) -> DataFrame:
    """Every value of a linking type with its statistics and the rule that removes it (rules 1-3).

    Output columns: `identifier`, `id_type`, `value`, `records`, `names`, `holders`, `rule` (null: kept).
    """
    obs = _linking(observations, types)
    stats = obs.groupBy("identifier", "id_type", "value").agg(F.count("*").alias("records"))
    stats = (
        stats.join(_names(obs, types), on="identifier", how="left")
        .join(_holders(obs, types), on="identifier", how="left")
        .fillna(0, subset=["holders"])
    )
    # Names are counted for the types that use them (`max_names`); null for the others.
    named = [t for t, c in types.items() if c.max_names is not None]
    stats = stats.withColumn("names", F.when(F.col("id_type").isin(*named), F.coalesce("names", F.lit(0))))
    if reference is not None:
        listed = reference.select("id_type", "value", F.lit(True).alias("referenced")).distinct()
        stats = stats.join(listed, on=["id_type", "value"], how="left")
    else:
        stats = stats.withColumn("referenced", F.lit(None).cast("boolean"))
    rule = F.lit(None).cast("string")
    for condition, name in reversed(_rules(types)):
        rule = F.when(condition, F.lit(name)).otherwise(rule)
    return stats.select("identifier", "id_type", "value", "records", "names", "holders", rule.alias("rule"))


def split(observations: DataFrame, verdict: DataFrame, types: Mapping[str, IdentifierTypeConfig]) -> Hygiene:
    """Apply a verdict (`assess`) and the caps (rule 4) to the observations."""
    obs = _linking(observations, types)
    removed = verdict.where(F.col("rule").isNotNull()).select("identifier", "id_type", "rule", "records", "names")
    kept = obs.join(removed.select("identifier"), on="identifier", how="left_anti").select(
        *RECORD, "id_type", "identifier"
    )
    support = verdict.where(F.col("rule").isNull()).select("identifier", "records")
    capped = _capped(kept, support, types)
    links = kept.join(capped.select(*RECORD, "identifier"), on=[*RECORD, "identifier"], how="left_anti").select(
        *RECORD, "id_type", "identifier"
    )
    return Hygiene(links=links, removed=removed, capped=capped)


def _linking(observations: DataFrame, types: Mapping[str, IdentifierTypeConfig]) -> DataFrame:
    linking = [t for t, c in types.items() if c.link]
    return observations.where(F.col("id_type").isin(*linking)) if linking else observations.limit(0)


def distinct_names(names: Column) -> Column:
    """How many of `names` (an array of distinct names) are different people: a name within one
    edit of an earlier one is taken for a typo of it (王小明 / 王小名), not for another person."""
    return F.size(
        F.filter(
            names,
            lambda name, i: ~F.exists(F.slice(names, 1, i), lambda earlier: F.levenshtein(name, earlier) <= 1),
        )
    ).cast("long")  # a count, typed like every other count in the identity tables


def _rules(types: Mapping[str, IdentifierTypeConfig]) -> list[tuple[Column, str]]:
    """(condition over a value's statistics, rule name), in the order they are tried."""
    blocked, hubs = [], []
    listed = {f"{t}\x1f{v}": 1 for t, c in types.items() for v in c.blocklist}
    if listed:
        key = F.concat_ws("\x1f", "id_type", "value")
        blocked.append((constant_map(listed)[key].isNotNull(), "blocklist:value"))
    for id_type, cfg in types.items():
        is_type = F.col("id_type") == id_type
        if cfg.block_patterns:
            # One match per pattern: joined into one alternation, the group numbers of later patterns
            # would shift and their back-references (`1(\d)\1{9}`) would point into another pattern.
            matches = [F.col("value").rlike(f"^(?:{p})$") for p in cfg.block_patterns]
            blocked.append((is_type & reduce(operator.or_, matches), "blocklist:pattern"))
        if cfg.max_records is not None:
            hubs.append((is_type & (F.col("records") > cfg.max_records), "hub:records"))
        if cfg.max_names is not None:
            hubs.append((is_type & (F.col("names") > cfg.max_names), "hub:names"))
        if cfg.max_holders is not None:
            hubs.append((is_type & (F.col("holders") > cfg.max_holders), "hub:holders"))
    blocked.append((F.col("referenced").isNotNull(), "blocklist:table"))
    return blocked + hubs


def _names(obs: DataFrame, types: Mapping[str, IdentifierTypeConfig]) -> DataFrame:
    """For values of types with `max_names`: how many different persons' names their records carry.

    Output columns: `identifier`, `names`. Only (value, name) pairs are grouped: a plain
    `collect_set` over every observation is an object aggregate, far slower at this size.
    """
    watched = [t for t, c in types.items() if c.max_names is not None]
    named = obs.where(F.col("id_type").isin(*watched) & F.col("name").isNotNull()) if watched else obs.limit(0)
    pairs = named.select("identifier", F.trim("name").alias("name")).distinct()
    return pairs.groupBy("identifier").agg(
        distinct_names(F.array_sort(F.collect_list("name"))).alias("names")  # sorted: order-free result
    )


def _holders(obs: DataFrame, types: Mapping[str, IdentifierTypeConfig]) -> DataFrame:
    """For values of types with `max_holders`: how many values of stronger types share their records.

    Output columns: `identifier`, `holders`.
    """
    watched = [t for t, c in types.items() if c.max_holders is not None]
    held = obs.where(F.col("id_type").isin(*watched)) if watched else obs.limit(0)
    held = held.select(*RECORD, F.col("id_type").alias("held_type"), "identifier")
    holders = obs.select(*RECORD, F.col("id_type").alias("holder_type"), F.col("identifier").alias("holder"))
    return (
        held.join(holders, on=RECORD, how="inner")
        .where(_stronger(types, "holder_type", "held_type"))
        .groupBy("identifier")
        .agg(F.count_distinct("holder").alias("holders"))
    )


def _stronger(types: Mapping[str, IdentifierTypeConfig], a: str, b: str) -> Column:
    """Whether the type in column `a` has a higher priority than the type in column `b`."""
    priority = constant_map({t: c.priority for t, c in types.items()})
    return priority[F.col(a)] > priority[F.col(b)]


def _capped(kept: DataFrame, support: DataFrame, types: Mapping[str, IdentifierTypeConfig]) -> DataFrame:
    """Observations dropped by per-holder caps: `source`, `record_id`, `id_type`, `identifier`, `rule`."""
    caps = {t: c.max_per_holder for t, c in types.items() if c.link and c.max_per_holder is not None}
    if not caps:
        return kept.limit(0).withColumn("rule", F.lit("cap"))
    held = (
        kept.where(F.col("id_type").isin(*caps))
        .join(support, on="identifier", how="inner")
        .select(*RECORD, F.col("id_type").alias("held_type"), F.col("identifier").alias("held"), "records")
    )
    holders = kept.select(*RECORD, F.col("id_type").alias("holder_type"), F.col("identifier").alias("holder"))
    on_records = held.join(holders, on=RECORD, how="inner").where(_stronger(types, "holder_type", "held_type"))
    pairs = on_records.select("holder", "held_type", "held", "records").distinct()
    rank = F.row_number().over(
        Window.partitionBy("holder", "held_type").orderBy(F.col("records").desc(), F.col("held"))
    )
    limit = constant_map(caps)[F.col("held_type")]
    dropped = pairs.withColumn("rank", rank).where(F.col("rank") > limit).select("holder", "held")
    return (
        on_records.join(dropped, on=["holder", "held"], how="inner")
        .select(
            *RECORD, F.col("held_type").alias("id_type"), F.col("held").alias("identifier"), F.lit("cap").alias("rule")
        )
        .distinct()
    )
