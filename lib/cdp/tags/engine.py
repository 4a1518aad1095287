"""Compile a tag catalogue into a few aggregation passes over the facts, and run it.

Per fact, whatever the number of tags:

1. one `groupBy(one_id)` computing every `metric` tag of the fact at once (windows and filters
   become conditional aggregates: `sum(CASE WHEN ts >= as_of - 90 days AND ... THEN amount END)`);
2. one pass for every `top` tag of the fact: each fact row is exploded into (tag, candidate value,
   measure), summed per (one_id, tag, value), and the best value per (one_id, tag) kept;
3. for `orders`, one more pass when the catalogue has `clv` tags: the BG/NBD and Gamma-Gamma
   sufficient statistics (`cdp.tags.clv`).

The per-person results are joined to every one_id once and cached; tags computed from
other tags (`expr`, `cases`, `bands`, `score`) are then column expressions over that one row per
person, level by level; the exact quantiles of all `score` tags of a level come from two
aggregations and a filter over the persons, not over the facts. The facts and the persons come hash-partitioned by
`one_id` (`cdp.tags.facts`), and under `planned_partitioning` none of these steps shuffles them.

The result is the wide profile (`one_id`, `as_of`, one typed column per tag); `long_tags` turns it
into rows (`one_id`, `tag`, `value`), one partition (`family`, `as_of`) of the long table per family.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import math
import operator
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DecimalType, DoubleType, FloatType, TimestampType

from cdp.errors import CdpError, ConfigError
from cdp.lake import Partition
from cdp.spark import SESSION_TIME_ZONE, session_zone
from cdp.tags import clv
from cdp.tags.catalogue import Bands, Cases, Catalogue, Clv, Expr, Metric, Score, Tag, Top
from cdp.tags.facts import Cut, release

logger = logging.getLogger(__name__)

QUANTILE_ACCURACY = 10_000  # percentile_approx brackets the exact cut points: rank error 1/10 000 of those ranked
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
DEFAULT_PARTITIONS = 200  # when the session's shuffle partitions are not a number (Databricks: `auto`)
# Set while the tags are computed (see `planned_partitioning`), with what each costs if refused.
PLANNED = {
    "spark.sql.adaptive.enabled": ("false", "every pass shuffles its fact again"),
    # An aggregation whose input is sorted by its keys runs as one sort-based step (Spark's
    # ReplaceHashWithSortAgg rule), not as a partial and a final hash aggregation.
    "spark.sql.execution.replaceHashWithSortAgg": ("true", "the passes are hash aggregations"),
    # A union of parts hash-partitioned alike is partitioned as they are (Spark's default): the
    # facts' parts (`cdp.tags.facts.Sources.by_person`) and the passes gathered by `_joined`.
    "spark.sql.unionOutputPartitioning": ("true", "the facts and the gathered passes are shuffled once more"),
    # The facts' caches are read by a pass or two each, and dropped once the tags are computed:
    # compressing their columns costs more than it saves. At 1M persons (two alternating runs each,
    # one session): facts built in 43.0-47.3 s uncompressed (1.23 GB of memory), 51.8-65.4 s compressed (0.59 GB).
    "spark.sql.inMemoryColumnarStorage.compressed": ("false", "the facts' caches are compressed (slower to build)"),
}


# Set while the profile and the long table are written (see `split_codegen`), with what each costs if refused.
WRITING = {
    "spark.sql.codegen.hugeMethodLimit": ("8000", "a write may spend a core for 20 s in a failed JIT compilation"),
}


@contextlib.contextmanager
def planned_partitioning(spark: SparkSession) -> Iterator[int]:
    """Adaptive query execution off while the tags are computed; yields the number of partitions to use.

    The facts and the persons are hash-partitioned by `one_id` once and cached (`cdp.tags.facts`),
    so that every aggregation and join by `one_id` after them needs no shuffle. The partitioning
    of a plan is known to the plans reading it (a cache of it, the passes joined to the
    profile) only when that plan was not adaptive: an adaptive plan reports its partitioning as
    unknown, and Spark would then shuffle the passes and the profile again for each join.
    Aggregations over input sorted by their keys are sort-based, and the facts' caches are not
    compressed (`PLANNED`). Where the session refuses a setting (some managed runtimes), the tags
    are computed without it: the same values, more work.
    """
    text = spark.conf.get(SHUFFLE_PARTITIONS) or ""
    with _settings(spark, PLANNED):
        yield int(text) if text.isdigit() else DEFAULT_PARTITIONS


@contextlib.contextmanager
def business_days(spark: SparkSession, zone: str) -> Iterator[None]:
    """The session's time zone set to `zone` (`tags.timezone`) for the block, then restored.

    The as-of cut and the windows begin at the zone's midnights (`cdp.tags.facts.Cut`), the value
    models count purchases by its days, and the catalogue's `to_date(ts)`, `hour(ts)` and
    `dayofweek(ts)` read its dates and hours. Not one of the `PLANNED` settings a session may
    refuse: tags computed on other days would be wrong, so the job fails instead.
    """
    was = spark.conf.get(SESSION_TIME_ZONE)
    spark.conf.set(SESSION_TIME_ZONE, zone)
    try:
        yield
    finally:
        spark.conf.set(SESSION_TIME_ZONE, was)


@contextlib.contextmanager
def split_codegen(spark: SparkSession) -> Iterator[None]:
    """Whole-stage code generation off for stages whose generated method is larger than 8000 bytes,
    while the outputs of `compute` are written.

    A row of the profile has a column per tag, and its derived levels are projections over the
    cached profile: Spark generates the projections and the write of all those columns as one method,
    which the JIT compiler (allowed huge methods, `cdp.spark.JIT_HUGE_METHODS`) may try to compile
    and give up on ("out of nodes") after 20 s of a core. At 1M persons, six writes of the profile in
    one session, alternating: 11.2, 15.6 and 21.4 s (the last with a failed 19.8 s compilation, seen
    with Java Flight Recorder) as generated; 12.5-13.7 s with the limit, its stage run as split
    projections, and no such compilation. The long table took the same either way (41.3-42.3 s).
    """
    with _settings(spark, WRITING):
        yield


@contextlib.contextmanager
def _settings(spark: SparkSession, settings: Mapping[str, tuple[str, str]]) -> Iterator[None]:
    """The session's `settings` (key: (value, what refusing it costs)) for the block, then restored;
    a setting the session refuses (some managed runtimes) is logged with its cost and skipped."""
    before = {}
    try:
        for key, (value, otherwise) in settings.items():
            was = spark.conf.get(key, None)
            try:
                spark.conf.set(key, value)
            except PySparkException as e:
                logger.warning("tags: cannot set %s (%s); %s", key, e, otherwise)
                continue
            before[key] = was
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


@dataclass(frozen=True)
class TagResult:
    """The profile computed, the value models fitted, and the passes made; `release` once written."""

    profile: DataFrame  # one_id, as_of, one column per tag
    models: Mapping[str, object] = field(default_factory=dict)  # fitted value models, by name
    passes: Mapping[str, int] = field(default_factory=dict)  # aggregation passes per fact
    kept: Sequence[DataFrame] = field(default=(), repr=False)  # the caches the profile reads

    def release(self) -> None:
        """Drop the caches the profile reads (it is computed again from the facts if read after)."""
        release(self.kept)


def _kept(df: DataFrame, kept: list[DataFrame]) -> DataFrame:
    """`df` cached and computed now, added to `kept` (`TagResult.release` drops it).

    Cached, not checkpointed: a local checkpoint's blocks stay in the driver's storage memory
    until the JVM happens to collect its plan, which no API asks for. In a notebook or a
    benchmark computing the tags again in the same session, the earlier runs' profiles then
    crowded the facts' caches out to disk. A cache keeps its plan's partitioning by `one_id`.
    """
    cached = df.persist()
    cached.count()
    kept.append(cached)
    return cached


def compute(catalogue: Catalogue, facts: Mapping[str, DataFrame], persons: DataFrame, *, as_of: dt.date) -> TagResult:
    """Every tag of `catalogue` for every one_id of `persons`, as of `as_of`.

    Args:
        catalogue: the tags.
        facts: the facts by name (`cdp.tags.facts.build`), already cut before `as_of`; a fact
            missing here leaves its tags at their `fill` value (null without one).
        persons: `one_id`, each once.
        as_of: the date the tags describe.

    The result holds its profile's caches until `TagResult.release`; if computing fails, they are
    dropped before the error is raised.
    """
    kept: list[DataFrame] = []
    try:
        return _compute(catalogue, facts, persons, as_of, kept)
    except BaseException:
        release(kept)
        raise


def _compute(
    catalogue: Catalogue, facts: Mapping[str, DataFrame], persons: DataFrame, as_of: dt.date, kept: list[DataFrame]
) -> TagResult:
    check(catalogue, facts)
    cut = Cut(as_of, session_zone(persons.sparkSession))
    profile = persons.select("one_id").withColumn("as_of", F.lit(as_of))
    passes: dict[str, int] = defaultdict(int)
    parts: list[DataFrame] = []  # one_id (each at most once) and some of the tags: one per pass
    by_fact: dict[str, list[Tag]] = defaultdict(list)
    for tag in catalogue.of_kind(Metric) + catalogue.of_kind(Top):
        by_fact[tag.spec.fact].append(tag)
    for fact_name, tags in sorted(by_fact.items()):
        fact = facts.get(fact_name)
        metrics = [t for t in tags if isinstance(t.spec, Metric)]
        tops = [t for t in tags if isinstance(t.spec, Top)]
        if fact is None:
            profile = profile.select("*", *[_missing(t).alias(t.key) for t in tags])
            continue
        if metrics:
            passes[fact_name] += 1
            parts.append(fact.groupBy("one_id").agg(*[_aggregate(t.spec, cut).alias(t.key) for t in metrics]))
        if tops:
            passes[fact_name] += 1
            parts.append(_tops(fact, tops, cut))
    models: dict[str, object] = {}
    clv_tags = catalogue.of_kind(Clv)
    if clv_tags:
        values, models = _clv(facts.get("orders"), clv_tags, cut, kept)
        if values is not None:
            passes["orders"] += 1
            parts.append(values)
        else:
            profile = profile.select("*", *[F.lit(None).cast("double").alias(t.key) for t in clv_tags])
    profile = _joined(profile, parts)
    fills = [t for t in catalogue.of_kind(Metric) if t.spec.fill is not None]
    profile = _doubles(_with(profile, {t.key: F.coalesce(F.col(t.key), F.lit(t.spec.fill)) for t in fills}))
    profile = _kept(profile, kept)
    # Derived levels are column expressions over that cache: a level's quantiles read it with
    # the levels before as projections, and so does each write of the profile (cheaper than
    # materialising the 2.6M rows of 1M persons again: 19-27 s, measured as a second checkpoint).
    for level in catalogue.levels():
        cuts = _quantiles(profile, [t for t in level if isinstance(t.spec, Score)])
        profile = _doubles(_with(profile, {t.key: _derived(t, cuts) for t in level}))
    # `as_of` as a literal: a write partitioned by it needs not sort the rows (see `long_tags`).
    columns = [F.col("one_id"), F.lit(as_of).alias("as_of"), *(F.col(t.key) for t in catalogue)]
    return TagResult(profile=profile.select(*columns), models=models, passes=dict(passes), kept=tuple(kept))


_PERSON = "_person"  # marks the rows of the persons in `_joined`


def _joined(persons: DataFrame, parts: Sequence[DataFrame]) -> DataFrame:
    """`persons` left-joined by `one_id` to each of `parts`, with every column of both.

    One aggregation instead of a join per part: the rows of `persons` and of every part are stacked
    (a union, which keeps their common partitioning by one_id), each row carrying its columns as one
    struct in its own slot and nulls in the others, and grouped by one_id, every slot taking its one
    non-null struct. The persons' slot holds a marker, so that a one_id found in a part but not in
    `persons` has no row, as in a left join. Joined one part after another, every join wrote the
    row so far again (the earlier parts' tags copied once per later join, even packed as structs).
    At 1M persons (7 parts, 47 tags, noop writes alternating in one JVM): 35.4-40.6 s joined,
    27.5-33.2 s stacked; the same rows (xor of row hashes).
    """
    base = [c for c in persons.columns if c != "one_id"]
    packed = [persons.select("one_id", F.struct(F.lit(True).alias(_PERSON), *base).alias("_part0"))]
    for i, part in enumerate(parts, start=1):
        tags = [c for c in part.columns if c != "one_id"]
        packed.append(part.select("one_id", F.struct(*tags).alias(f"_part{i}")))
    # `_part<i>` and `_PERSON` cannot be a tag's key (keys start with a letter). Each frame's
    # missing slots are filled with nulls of their types by the union.
    rows = functools.reduce(lambda stacked, frame: stacked.unionByName(frame, allowMissingColumns=True), packed)
    slots = [f"_part{i}" for i in range(len(packed))]
    merged = rows.groupBy("one_id").agg(*[F.first(n, ignorenulls=True).alias(n) for n in slots])
    return merged.where(F.col("_part0").isNotNull()).select(
        "one_id", *[F.col(f"_part0.{c}") for c in base], *[F.col(f"{n}.*") for n in slots[1:]]
    )


def long_tags(catalogue: Catalogue, profile: DataFrame, as_of: dt.date) -> list[Partition]:
    """The profile as one row per (one_id, tag) with a value: one `Partition` per family.

    Each holds the rows (`one_id`, `tag`, `value` as a string) of the partition (`family`,
    `as_of`) of `tags.customer_tags`: written straight into its folder (`Lake.replace_partitions`),
    Spark neither sorts the rows by partition (at 1M persons, 150M rows: the sort spilled 7 GB and
    the write took twice as long) nor carries the family and the date on every row (see
    `Partition`). Unknown values (null) have no row. Each profile row becomes its tags' rows by
    one `stack` (2.5 times faster than exploding an array of structs).
    """
    types = {f.name: f.dataType for f in profile.schema.fields}
    parts = []
    for family in catalogue.families:
        tags = [t for t in catalogue if t.family == family]
        pairs = [c for t in tags for c in (F.lit(t.key), _text(F.col(t.key), types[t.key]))]
        rows = profile.select("one_id", F.stack(F.lit(len(tags)), *pairs).alias("tag", "value")).where(
            F.col("value").isNotNull()
        )
        parts.append(Partition({"family": family, "as_of": as_of}, rows))
    return parts


def plain_encoded(output: DataFrame) -> list[str]:
    """The columns of a tag output (the profile, a part of the long table) to write without a Parquet
    dictionary (`Lake.replace_partitions`): `one_id`, the long table's `value`, and the profile's
    doubles and timestamps (amounts, rates, model outputs, times of day: mostly distinct).

    Each of their files' dictionaries overflows and the writer falls back to plain encoding, having
    hashed every value until then for nothing. At 1M persons (two alternating runs each, one JVM):
    the long table 46.5-47.3 s -> 39.0-40.8 s (files 528 -> 553 MB), the profile 14.6-15.4 s ->
    12.5-12.7 s (195 -> 219 MB).
    """
    return [
        f.name
        for f in output.schema
        if f.name in ("one_id", "value") or isinstance(f.dataType, DoubleType | TimestampType)
    ]


def check(catalogue: Catalogue, facts: Mapping[str, DataFrame]) -> None:
    """Analyse every SQL expression of the catalogue against the facts' columns, before any work.

    Raises:
        ConfigError: naming the tag's file, key and expression at fault.
    """
    for tag in catalogue.of_kind(Metric) + catalogue.of_kind(Top):
        fact = facts.get(tag.spec.fact)
        if fact is None:
            continue
        expressions = {"where": tag.spec.where}
        if isinstance(tag.spec, Metric):
            expressions["column"] = tag.spec.column
        else:
            expressions |= {"by": tag.spec.by, "measure": tag.spec.measure}
        for name, sql in expressions.items():
            if sql is None:
                continue
            try:
                fact.limit(0).select(F.expr(sql)).schema  # noqa: B018 - analysis only
            except AnalysisException as e:
                first = str(e).strip().splitlines()[0]
                raise ConfigError(
                    f"{tag.file}: tag {tag.key}: {name} {sql!r} is not valid over fact {tag.spec.fact} "
                    f"(columns: {', '.join(fact.columns)}): {first}"
                ) from e


def _window(spec: Metric | Top, cut: Cut) -> Column:
    condition = F.lit(True)
    if spec.window_days is not None:
        condition = F.col("ts") >= F.lit(cut.start(spec.window_days))
    if spec.where is not None:
        condition = condition & F.coalesce(F.expr(spec.where), F.lit(False))
    return condition


def _count_distinct(value: Column) -> Column:
    # The size of the set of values, not `count(DISTINCT ...)`: Spark plans distinct counts as
    # aggregations by (one_id, value), which cannot use the facts' order by one_id, and copies
    # every row once per distinct column when there are two or more (then shuffles the copies
    # twice). A set per one_id is one more aggregate of the sort-based pass over the fact: at 1M
    # persons the order lines' pass spent 53 s of task time in four hash aggregations (two
    # shuffles of 1.7 GB more with two distinct counts), 4 s sorted. Nulls are left out of both;
    # no value counts 0.
    return F.size(F.collect_set(value)).cast("long")  # long, as count(DISTINCT ...) is


_PLAIN = {"count": F.count, "count_distinct": _count_distinct, "sum": F.sum, "avg": F.avg, "min": F.min, "max": F.max}


def _aggregate(spec: Metric, cut: Cut) -> Column:
    keep = _window(spec, cut)
    value = F.expr(spec.column) if spec.column is not None else F.lit(1)
    if spec.agg in _PLAIN:
        return _PLAIN[spec.agg](F.when(keep, value))
    # latest / earliest: the value at the newest / oldest kept fact that has one.
    at = F.when(keep & value.isNotNull(), F.col("ts"))
    return F.max_by(value, at) if spec.agg == "latest" else F.min_by(value, at)


def _tops(fact: DataFrame, tags: Sequence[Tag], cut: Cut) -> DataFrame:
    """`one_id` and one column per `top` tag: the value with the largest total measure (ties: the smaller value).

    Each fact row becomes one (tag, value, measure) row per tag; the rows are sorted by (one_id,
    tag, value) within the fact's partitions and summed in one sort-based step (under
    `planned_partitioning`; for the 17.8M order-line rows of 1M persons: 7 s of task time, against
    46 s in a partial and a final hash aggregation); the best value of every tag is then one
    aggregation by one_id over rows already in its order, with no window and no pivot.
    """
    candidates = [
        c
        for i, t in enumerate(tags)  # the tag by its position: a cheaper grouping key than its name
        for c in (
            F.lit(i),
            F.expr(t.spec.by).cast("string"),
            F.when(_window(t.spec, cut), F.expr(t.spec.measure)).cast("double"),
        )
    ]
    totals = (
        fact.select("one_id", F.stack(F.lit(len(tags)), *candidates).alias("tag", "value", "measure"))
        .where(F.col("value").isNotNull() & F.col("measure").isNotNull())
        .sortWithinPartitions("one_id", "tag", "value")
        .groupBy("one_id", "tag", "value")
        # Rounded to 1e-6, so that equal totals tie whatever order the rows were added in.
        .agg((F.rint(F.sum("measure") * 1_000_000)).alias("measure"))
    )
    # The smallest (-total, value): the largest total, and of equal totals the smaller value.
    ranked = F.struct((-F.col("measure")).alias("rank"), F.col("value").alias("value"))
    return totals.groupBy("one_id").agg(
        *[F.min(F.when(F.col("tag") == i, ranked))["value"].alias(t.key) for i, t in enumerate(tags)]
    )


def _clv(
    orders: DataFrame | None, tags: Sequence[Tag], cut: Cut, kept: list[DataFrame]
) -> tuple[DataFrame | None, dict]:
    """The `clv` tags per one_id from the orders, and the fitted models; (None, {}) when they cannot
    be fitted. The customers' statistics are cached (into `kept`): the fits read them, then the predictions."""
    if orders is None:
        logger.warning("tags: no orders; the value (clv) tags are null")
        return None, {}
    purchases = orders.where(~F.col("returned") & (F.col("amount") > 0)).select("one_id", "ts", "amount")
    stats = _kept(clv.summary(purchases, as_of=cut.instant), kept)
    try:
        bg = clv.fit_bgnbd(stats)
        gg = clv.fit_gamma_gamma(stats)
    except CdpError as e:
        logger.warning("tags: the value models cannot be fitted (%s); the clv tags are null", e)
        return None, {}
    logger.info("tags: BG/NBD %s, Gamma-Gamma %s", bg, gg)
    # Each horizon's predictions are columns added to the same rows (no join between horizons).
    out = stats
    for horizon in sorted({t.spec.horizon_days for t in tags}):
        predicted = clv.predict(out, bg, gg, horizon=horizon / clv.UNIT_DAYS)
        wanted = [t for t in tags if t.spec.horizon_days == horizon]
        out = predicted.select(*out.columns, *[F.col(t.spec.output).alias(f"_clv_{t.key}") for t in wanted])
    return out.select("one_id", *[F.col(f"_clv_{t.key}").alias(t.key) for t in tags]), {"bgnbd": bg, "gamma_gamma": gg}


def _doubles(profile: DataFrame) -> DataFrame:
    """Decimal columns as doubles: sums of money are exact decimals; SQL reads `86400.0` as a decimal
    literal. Tag values are doubles, whatever the fact's type or the author typed."""
    decimals = [f.name for f in profile.schema.fields if isinstance(f.dataType, DecimalType)]
    return _with(profile, {c: F.col(c).cast("double") for c in decimals})


def _with(df: DataFrame, columns: Mapping[str, Column]) -> DataFrame:
    """`df.withColumns(columns)`; nothing to add is no change (Spark Connect refuses an empty mapping)."""
    return df.withColumns(dict(columns)) if columns else df


def _quantiles(profile: DataFrame, scores: Sequence[Tag]) -> dict[str, list[float]]:
    """The exact cut points of every `score` tag of a level: for i = 1 .. q-1, the smallest value
    that ceil(i * n / q) of the n values ranked reach (SQL's `percentile_disc(i / q)`).

    Exact, so that a score does not depend on the number of partitions or the order of the rows:
    approximate cut points move with them, and a few persons' scores and segments would flip (and
    fire change events) when a cluster is resized. An exact percentile keeps every distinct value in
    one buffer, which does not fit at tens of millions of persons; here `percentile_approx` (rank
    error n / QUANTILE_ACCURACY) brackets each cut point in one aggregation, a second one counts
    the values below each bracket, and a filter collects the few inside it (about 4 n / QUANTILE_ACCURACY).
    """
    if not scores:
        return {}
    # The values ranked, cached for the aggregations and the filter (a few doubles per person), so that the
    # profile's rows are read once.
    ranked = profile.select(*[F.when(_ranked(t.spec), F.col(t.spec.of).cast("double")).alias(t.key) for t in scores])
    ranked = ranked.persist()
    try:
        return _cut_points(ranked, scores)
    finally:
        ranked.unpersist()


def _cut_points(ranked: DataFrame, scores: Sequence[Tag]) -> dict[str, list[float]]:
    step = 2 / QUANTILE_ACCURACY  # twice the rank error of the approximate quantiles

    def edges(q: int) -> list[float]:
        return [min(max(i / q + side * step, 0.0), 1.0) for i in range(1, q) for side in (-1, 1)]

    row = ranked.agg(
        *[F.count(t.key).alias(f"n_{t.key}") for t in scores],
        *[F.percentile_approx(t.key, edges(t.spec.quantiles), QUANTILE_ACCURACY).alias(t.key) for t in scores],
    ).first()
    brackets: dict[str, list[Bracket]] = {}
    for tag in scores:
        n, q, found = row[f"n_{tag.key}"], tag.spec.quantiles, row[tag.key]
        if not n:
            logger.warning("tags: %s: no ranked person has a value of %s; the score is null", tag.key, tag.spec.of)
            continue
        brackets[tag.key] = [Bracket(-(-i * n // q), found[2 * i - 2], found[2 * i - 1]) for i in range(1, q)]
    return {t.key: [] for t in scores} | _ranked_values(ranked, brackets)


@dataclass(frozen=True)
class Bracket:
    rank: int  # 1-based, in ascending order of the values
    low: float  # the value of that rank is at least this
    high: float  # and at most this


def _ranked_values(ranked: DataFrame, brackets: Mapping[str, Sequence[Bracket]]) -> dict[str, list[float]]:
    """The value of each bracket's rank among the values of column `key` of `ranked`.

    Per bracket: the values below `low`, at `low` and up to `high` are counted by one aggregation,
    and those strictly between are collected by one filter (a few per bracket). The counts alone
    are generated code: with the values collected by the same aggregation (`collect_list`), it
    ran row by row. At 1M persons the cut points of the four default scores took 4.9-6.3 s that
    way, 3.5-3.7 s this way (three runs each, alternating, same cut points).
    When a bracket does not hold its rank (the approximate quantiles broke their bound), every
    bracket of that column is widened to all its values, and computed again.
    """
    if not brackets:
        return {}
    counts, between = [], []
    for key, wanted in brackets.items():
        value = F.col(key)
        for j, b in enumerate(wanted):
            low, high = F.lit(b.low), F.lit(b.high)
            counts += [
                F.count_if(value < low).alias(f"{key}/{j}/below"),
                F.count_if(value == low).alias(f"{key}/{j}/at"),
                F.count_if(value <= high).alias(f"{key}/{j}/upto"),
            ]
            between.append((value > low) & (value < high))
    row = ranked.agg(*counts).first()
    keys = list(brackets)
    inside = ranked.where(functools.reduce(operator.or_, between)).select(*keys).collect()
    cuts: dict[str, list[float]] = {}
    missed: dict[str, list[Bracket]] = {}
    for key, wanted in brackets.items():
        cuts[key] = []
        for j, b in enumerate(wanted):
            below, at, upto = (row[f"{key}/{j}/{name}"] for name in ("below", "at", "upto"))
            if not below < b.rank <= upto:
                missed[key] = [Bracket(w.rank, -math.inf, math.inf) for w in wanted]
                break
            values = sorted(v for r in inside if (v := r[key]) is not None and b.low < v < b.high)
            after = b.rank - below - at  # how far past `low` the rank is
            cuts[key].append(b.low if after <= 0 else values[after - 1] if after <= len(values) else b.high)
    if missed:
        logger.warning("tags: %s: a cut point is outside its bracket; ranking every value", ", ".join(missed))
        cuts |= _ranked_values(ranked, missed)
    return cuts


def _derived(tag: Tag, cuts: Mapping[str, list[float]]) -> Column:
    spec = tag.spec
    if isinstance(spec, Expr):
        return F.expr(spec.expr)
    if isinstance(spec, Cases):
        value = F.lit(spec.otherwise)
        for case in reversed(spec.cases):
            value = F.when(F.coalesce(F.expr(case.when), F.lit(False)), F.lit(case.value)).otherwise(value)
        return value
    if isinstance(spec, Bands):
        of = F.col(spec.of)
        value = F.lit(spec.otherwise)
        for band in reversed(spec.bands):
            value = F.when(of < F.lit(band.below), F.lit(band.value)).otherwise(value)
        return F.when(of.isNotNull(), value)
    if isinstance(spec, Score):
        of, points = F.col(spec.of).cast("double"), cuts[tag.key]
        if not points:
            return F.lit(None).cast("int")
        # The quantile group, 1 (lowest values) to q; a value equal to a cut point is in the lower group.
        group = sum((F.when(of > F.lit(p), 1).otherwise(0) for p in points), F.lit(1))
        score = group if spec.higher_is_better else F.lit(spec.quantiles + 1) - group
        return F.when(of.isNotNull() & _ranked(spec), score.cast("int"))
    raise ConfigError(f"{tag.file}: tag {tag.key}: kind {type(spec).__name__} is not computed from other tags")


def _ranked(spec: Score) -> Column:
    return F.coalesce(F.expr(spec.where), F.lit(False)) if spec.where else F.lit(True)


def _missing(tag: Tag) -> Column:
    spec = tag.spec
    fill = getattr(spec, "fill", None)
    if fill is None:
        return F.lit(None).cast("string")
    return F.lit(fill)


def _text(value: Column, data_type: DataType) -> Column:
    """A tag value as text; fractional numbers rounded to 4 decimals (half to even); times in UTC
    (`2026-09-30 12:00:00`), whatever the session's time zone."""
    if isinstance(data_type, FloatType | DoubleType | DecimalType):
        # Double arithmetic, not `round` (which goes through BigDecimal: twice the time of the whole
        # cast); `+ 0.0` turns -0.0 into 0.0. The text is the shortest that reads back as the double.
        return (F.rint(value.cast("double") * 10_000) / 10_000 + 0.0).cast("string")
    if isinstance(data_type, TimestampType):  # the instant as UTC's wall time, exact at any change of clocks
        epoch = F.expr("TIMESTAMP_NTZ'1970-01-01 00:00:00'")
        return F.timestamp_add("MICROSECOND", F.unix_micros(value), epoch).cast("string")
    return value.cast("string")
