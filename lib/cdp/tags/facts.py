"""The facts tags are computed from: silver tables joined to `identity.oneid_map`, cut at the as-of time.

Every fact has `one_id` and `ts` (an instant), and holds only rows with `ts` before the as-of
date's first instant in the session's time zone (`Cut`), so a tag computed "as of" a past date
never sees anything at or after it. Records whose one_id is unknown (not yet resolved) are left
out. A silver table that does not exist yet (a channel not onboarded) gives no rows: its tags are
their fill values, of the types they keep once it exists.
Each fact is built once per run and cached: every silver table is read once per fact that uses
it, whatever the number of tags, and the orders once for both order facts (`Sources`). Facts
and persons are hash-partitioned by `one_id` into the same number of partitions (and sorted by
it), so every aggregation and join of the engine after them runs without another shuffle (see
`cdp.tags.engine.planned_partitioning`). Each fact is partitioned as early as it can be: the online
orders right after their join to their one_id, before they are split into order lines, so that
the lines (and the orders fact's online part) need no shuffle of their own. `release` drops them
once the tags are computed.

- `orders`: one row per order, at the till or online (silver.pos_orders, silver.ecom_orders);
- `order_lines`: one row per order line with its product (silver.pos_order_items with their
  orders, the items of silver.ecom_orders, silver.products);
- `app_events`: one row per app event (silver.app_events);
- `members`: one row per CRM member record (silver.crm_members; level and points only when the
  record was last updated before the as-of time, since they are the current state otherwise).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp.lake import Lake
from cdp.schemas import SILVER
from cdp.spark import session_zone
from cdp.tags.catalogue import Catalogue

logger = logging.getLogger(__name__)

ONEID_MAP = "identity.oneid_map"
# Orders an operator would not count as a sale: refunded or closed before completion.
NOT_SOLD = ("TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO", "REFUNDED", "CANCELLED")
# Money stays decimal, as in silver: its sums are exact, so a tag over them (and a quantile cut
# point, a segment, a fitted value model) does not depend on the order Spark added the rows in.
MONEY = "decimal(18,2)"


@dataclass(frozen=True)
class Cut:
    """The as-of date, in the time zone where its days begin (the job's: `tags.timezone`, set as
    the session's time zone while the tags are computed; `cdp.spark.session_zone`)."""

    as_of: dt.date
    zone: dt.tzinfo = dt.UTC

    @property
    def instant(self) -> dt.datetime:
        """The first instant of the as-of date: facts strictly before it are seen."""
        return self.start(0)

    def start(self, days: int) -> dt.datetime:
        """The first instant of the day `days` days before the as-of date: a window of that many
        days begins there (a local midnight, so a day is 23 or 25 hours where clocks change)."""
        return dt.datetime.combine(self.as_of - dt.timedelta(days=days), dt.time(), tzinfo=self.zone)


def _silver(lake: Lake, table: str) -> DataFrame:
    """`silver.<table>`, or none of its rows while it does not exist (a channel not onboarded yet):
    the tags over it are then their fill values, of the types they have once it exists, so that a
    later run's profile keeps the columns' types (`cdp.tags.job.check_profile_types`). `build`
    says which tables are missing."""
    name = f"silver.{table}"
    return lake.read(name) if lake.exists(name) else lake.spark.createDataFrame([], SILVER[table])


def _with_one_id(lake: Lake, df: DataFrame, source: str, record_id: str) -> DataFrame:
    mapping = lake.read(ONEID_MAP).where(F.col("source") == source).select("record_id", "one_id")
    return df.join(mapping, df[record_id] == mapping["record_id"], "inner").drop(mapping["record_id"])


# The columns of the orders joined to their one_id that the `orders` and `order_lines` facts read.
POS_ORDER_COLUMNS = (
    "one_id", "order_no", "store_id", "order_time", "total_amount", "discount_amount", "paid_amount", "payment_method",
)  # fmt: skip
ECOM_ORDER_COLUMNS = (
    "one_id", "order_id", "platform", "ts", "total_amount", "discount_amount", "paid_amount", "status", "items",
)  # fmt: skip


@dataclass
class Sources:
    """What the facts are built from: the lake, the cut, and the orders joined to their one_id.

    The `orders` and `order_lines` facts both start from the till and online orders joined to
    `identity.oneid_map`. With `shared`, each join is made once and cached (its columns
    `POS_ORDER_COLUMNS`, `ECOM_ORDER_COLUMNS`) until `release`: silver.pos_orders and
    silver.ecom_orders are then read once per run, and the till order lines' join to their orders
    needs no shuffle of the orders (their cache keeps the join's partitioning by order number).
    At 1M persons, the four facts in one session, alternating: 34.8-36.1 s shared against
    38.5-38.8 s joined for each fact (warm; the same rows).

    With `partitions`, the facts' rows are hash-partitioned by `one_id` into that many partitions
    (`by_person`), the online orders as soon as they have their one_id: an order's lines are then
    made where the order already is, instead of every line being shuffled by one_id after. At 1M
    persons (the orders and order lines facts, one session, alternating, the same rows): 35.3-42.7 s
    partitioned after, 23.9-25.0 s partitioned before (warm). Without `partitions` (the bench's
    query-per-tag baseline) the rows stay where the joins leave them.
    """

    lake: Lake
    cut: dt.datetime
    shared: bool = False
    partitions: int | None = None
    _joined: dict[str, DataFrame] = field(default_factory=dict, init=False, repr=False)

    def by_person(self, df: DataFrame) -> DataFrame:
        """`df` hash-partitioned by `one_id` into `partitions`; as it is without `partitions`."""
        return df if self.partitions is None else df.repartition(self.partitions, "one_id")

    def pos_orders(self) -> DataFrame:
        """silver.pos_orders before the cut, with `one_id`."""

        def join() -> DataFrame:
            pos = _silver(self.lake, "pos_orders").where(F.col("order_time") < F.lit(self.cut))
            return _with_one_id(self.lake, pos, "pos_orders", "order_no")

        return self._once("pos_orders", join, POS_ORDER_COLUMNS)

    def ecom_orders(self) -> DataFrame:
        """silver.ecom_orders paid (else created) before the cut, with `one_id` and that time as `ts`,
        partitioned by person (`by_person`)."""

        def join() -> DataFrame:
            ecom = _silver(self.lake, "ecom_orders").withColumn("ts", F.coalesce("paid_at", "created_at"))
            joined = _with_one_id(self.lake, ecom.where(F.col("ts") < F.lit(self.cut)), "ecom_orders", "order_id")
            return self.by_person(joined)

        return self._once("ecom_orders", join, ECOM_ORDER_COLUMNS)

    def release(self) -> None:
        """Drop the cached joins (the facts built from them are cached themselves)."""
        release(self._joined.values())
        self._joined.clear()

    def _once(self, name: str, join: Callable[[], DataFrame], columns: Sequence[str]) -> DataFrame:
        """`join()`, or with `shared` its cached columns, joined (and its tables' logs read) once."""
        if not self.shared:
            return join()
        if name not in self._joined:
            self._joined[name] = join().select(*columns).persist()
        return self._joined[name]


def _orders(sources: Sources) -> DataFrame:
    pos, ecom = sources.pos_orders(), sources.ecom_orders()
    till = pos.select(
        "one_id",
        F.col("order_no").alias("order_id"),
        F.lit("store").alias("channel"),
        "store_id",
        F.col("order_time").alias("ts"),
        F.col("total_amount").cast(MONEY).alias("total_amount"),
        F.col("discount_amount").cast(MONEY).alias("discount_amount"),
        F.col("paid_amount").cast(MONEY).alias("amount"),
        F.lit(False).alias("returned"),
        F.col("payment_method"),
    )
    # The online orders come partitioned by person; a union of parts partitioned alike keeps it.
    return sources.by_person(till).unionByName(
        ecom.select(
            "one_id",
            "order_id",
            F.col("platform").alias("channel"),
            F.lit(None).cast("string").alias("store_id"),
            "ts",
            F.col("total_amount").cast(MONEY).alias("total_amount"),
            F.col("discount_amount").cast(MONEY).alias("discount_amount"),
            F.col("paid_amount").cast(MONEY).alias("amount"),
            F.col("status").isin(*NOT_SOLD).alias("returned"),
            F.lit(None).cast("string").alias("payment_method"),
        )
    )


def _order_lines(sources: Sources) -> DataFrame:
    lake = sources.lake
    orders = sources.pos_orders().select("one_id", "order_no", F.col("order_time").alias("ts"), "store_id")
    items = _silver(lake, "pos_order_items").select(
        "order_no", "sku", "qty", F.col("unit_price").cast(MONEY).alias("unit_price"), "amount"
    )
    pos = items.join(orders, on="order_no", how="inner").select(
        "one_id",
        F.col("order_no").alias("order_id"),
        "ts",
        F.lit("store").alias("channel"),
        "sku",
        "qty",
        "unit_price",
        F.col("amount").cast(MONEY).alias("amount"),
    )
    item = F.col("item")
    ecom = (
        sources.ecom_orders()
        .select("one_id", "order_id", "ts", "platform", F.explode("items").alias("item"))
        .select(
            "one_id",
            "order_id",
            "ts",
            F.col("platform").alias("channel"),
            item["sku"].alias("sku"),
            item["qty"].alias("qty"),
            item["price"].cast(MONEY).alias("unit_price"),
            (item["price"] * item["qty"]).cast(MONEY).alias("amount"),
        )
    )
    products = _silver(lake, "products").select(
        "sku",
        "category_l1",
        "category_l2",
        "brand",
        "baby_stage",
        F.col("price").cast(MONEY).alias("price"),  # the list price
    )
    # The online lines are made where their orders are (partitioned by person); a union of parts
    # partitioned alike keeps it, and so does a broadcast join.
    return sources.by_person(pos).unionByName(ecom).join(F.broadcast(products), on="sku", how="left")


def _app_events(sources: Sources) -> DataFrame:
    lake = sources.lake
    events = _silver(lake, "app_events").where(F.col("event_time") < F.lit(sources.cut))
    joined = _with_one_id(lake, events, "app_events", "event_id")
    return sources.by_person(joined.select("one_id", "event_id", F.col("event_time").alias("ts"), "event", "sku", "os"))


def _members(sources: Sources) -> DataFrame:
    lake, cut = sources.lake, sources.cut
    members = _silver(lake, "crm_members").where(F.col("registered_at") < F.lit(cut))
    known = F.col("updated_at").isNull() | (F.col("updated_at") < F.lit(cut))  # else: a later state
    joined = _with_one_id(lake, members, "crm_members", "member_id").select(
        "one_id",
        "member_id",
        F.col("registered_at").alias("ts"),
        "store_id",
        "gender",
        "birthday",
        F.when(known, F.col("level")).alias("level"),
        F.when(known, F.col("points")).alias("points"),
    )
    return sources.by_person(joined)


FACTS: Mapping[str, Callable[[Sources], DataFrame]] = {
    "orders": _orders,
    "order_lines": _order_lines,
    "app_events": _app_events,
    "members": _members,
}
# The silver tables each fact reads.
SOURCES: Mapping[str, tuple[str, ...]] = {
    "orders": ("silver.pos_orders", "silver.ecom_orders"),
    "order_lines": ("silver.pos_orders", "silver.pos_order_items", "silver.ecom_orders", "silver.products"),
    "app_events": ("silver.app_events",),
    "members": ("silver.crm_members",),
}


# What the value models read from the orders (`cdp.tags.engine`), whatever the catalogue.
CLV_COLUMNS = ("amount", "returned")
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NAME = re.compile(r"`([^`]+)`|([A-Za-z_][A-Za-z0-9_]*)")
_STAR = re.compile(r"(?:^|[(,.])\s*\*")


def needed(catalogue: Catalogue) -> dict[str, frozenset[str] | None]:
    """The facts a catalogue reads (those its tags name, and `orders`: the value models fit on
    them), each with the columns its tags' expressions name besides `one_id` and `ts`.

    A fact is built with these columns only: an order line's order id, product code and list
    price, an app event's id are carried by no default tag, and are the widest columns of their
    facts. A name counts wherever it appears outside a string literal, so a word that is also a
    column keeps the column (never the reverse); an expression with `*` keeps every column
    (None). `engine.check` then analyses every expression against the pruned fact.
    """
    columns: dict[str, set[str] | None] = {"orders": set(CLV_COLUMNS)}
    for tag in catalogue:
        spec = tag.spec
        if not hasattr(spec, "fact"):
            continue
        texts = [getattr(spec, a, None) for a in ("column", "where", "by", "measure")]
        names = columns.setdefault(spec.fact, set())
        for text in filter(None, texts):
            bare = _LITERAL.sub("''", text)
            if names is None or _STAR.search(bare):
                columns[spec.fact] = None
                break
            names.update((quoted or plain).lower() for quoted, plain in _NAME.findall(bare))
    return {name: None if names is None else frozenset(names) for name, names in columns.items()}


def build(
    lake: Lake, as_of: dt.date, needed: Mapping[str, Collection[str] | None], *, partitions: int
) -> dict[str, DataFrame]:
    """The facts named in `needed`, cut before `as_of` and cached (a fact whose silver tables do not
    exist yet has none of their rows).

    Each keeps `one_id`, `ts` and the columns `needed` names for it (every column for None), is
    hash-partitioned by `one_id` into `partitions` (`Sources.by_person`) and sorted by it within
    them, and is cached until `release`.
    """
    cut = Cut(as_of, session_zone(lake.spark)).instant
    missing = sorted({t for name in needed for t in SOURCES[name] if not lake.exists(t)})
    if missing:
        logger.warning("tags: not created yet, so the facts read no rows of them: %s", ", ".join(missing))
    built = {}
    sources = Sources(lake, cut, shared={"orders", "order_lines"} <= set(needed), partitions=partitions)
    try:
        for name in sorted(needed):
            fact = FACTS[name](sources)
            wanted = needed[name]
            if wanted is not None:
                keep = {"one_id", "ts", *wanted}
                fact = fact.select(*[c for c in fact.columns if c.lower() in keep])
            built[name] = _sorted_cache(fact)
    finally:
        sources.release()
    return built


def persons(lake: Lake, *, partitions: int) -> DataFrame:
    """Every one_id once, partitioned as the facts are: the rows of the profile."""
    return _sorted_cache(lake.read(ONEID_MAP).select("one_id").distinct().repartition(partitions, "one_id"))


def release(frames: Iterable[DataFrame]) -> None:
    """Drop the caches of `frames` no longer read: facts and persons (`build`, `persons`), the
    profile's (`cdp.tags.engine.TagResult.release`)."""
    for frame in frames:
        frame.unpersist()


def _sorted_cache(df: DataFrame) -> DataFrame:
    """`df` (partitioned by `one_id`) sorted by it within its partitions, cached and built now."""
    # Cached, not checkpointed: a cache is columnar (not compressed under the engine's
    # `planned_partitioning`: 1.2 GB at 1M persons), and can be dropped once the
    # profile is computed, leaving the memory to it for the writes. At 1M persons the facts took
    # 3.4 GB of the driver's 4.6 GB of storage memory as checkpoint blocks (rows), which no API
    # frees: the profile (then checkpointed too) pushed them to disk, and was pushed there in part
    # itself (facts + tags 222 s -> 196 s cached). A cached plan keeps its partitioning and order.
    cached = df.sortWithinPartitions("one_id").persist()
    cached.count()  # built now, once, from silver: the passes read the cache
    return cached
