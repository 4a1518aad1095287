"""How people buy: orders over two years and the lines in them, before any channel formats them.

1. Regular orders every `cycle_days` (with jitter) from the first purchase, skipping the gap
   between churn and reactivation (a churned buyer who never comes back stops at churn).
2. Promotion orders: each active buyer buys on 618 and Double 11 with `promo_rate`.
3. Each order goes to a store (`pos_share`) or online (the person's platform, sometimes another).
4. Lines pick products: mothers pick the baby stage their child is in (or pregnancy products),
   others their favourite category and brand, and anything now and then.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp.generate import vocab
from cdp.generate.catalogue import Catalogue
from cdp.generate.params import Params
from cdp.generate.population import DAY, epoch
from cdp.generate.rand import Rng

MAX_REGULAR = 200  # orders per person over the window; a 7-day cycle over two years makes 105
PROMO_BASE = 1000  # order sequence numbers of promotion orders start here
ORDER_KEY_SPACE = 2048  # order_key = person_id * ORDER_KEY_SPACE + sequence
# Person columns the channels need on each order (who to write on it, what to pick).
CARRIED = [
    "name",
    "mobile",
    "email",
    "city_idx",
    "is_member",
    "double_member",
    "unionid",
    "is_mother",
    "baby_birth",
    "pref_l2",
    "pref_brand",
]


def promo_days(params: Params) -> list[dt.date]:
    days = []
    for year in range(params.start.year, params.end.year + 1):
        days += [d for d in (dt.date(year, 6, 18), dt.date(year, 11, 11)) if params.start <= d < params.end]
    return days


def orders(persons: DataFrame, params: Params) -> DataFrame:
    """One row per order.

    Output columns: order_key, person_id, seq, channel (pos/ecom), platform, store_idx, ts
    (wall-clock seconds), promo, and the person's CARRIED columns.
    """
    rng = Rng(params.seed)
    start, end = epoch(params.start), epoch(params.end)
    buyers = persons.where(F.col("pos_buyer") | F.col("ecom_buyer"))
    pid = F.col("person_id")

    # 1. Regular orders.
    span = F.greatest(F.lit(1), F.lit(end) - F.col("buys_from") - F.lit(1))
    first = F.col("buys_from") + (rng.uniform("first", pid) * F.least(F.col("cycle_days") * DAY, span)).cast("long")
    count = F.least(F.lit(MAX_REGULAR), F.ceil(F.lit((end - start) / DAY) / F.col("cycle_days")).cast("int") + 1)
    regular = buyers.withColumn("seq", F.explode(F.sequence(F.lit(0), count - 1))).withColumn(
        "ts",
        first
        + (
            # The first order is not jittered: it stays before the end, so every buyer buys once.
            (
                F.col("seq")
                + F.when(F.col("seq") > 0, F.lit(0.3) * (rng.uniform("jitter", pid, F.col("seq")) - 0.5)).otherwise(0.0)
            )
            * F.col("cycle_days")
            * DAY
        ).cast("long"),
    )
    regular = regular.where((F.col("seq") == 0) | _active(F.col("ts")))

    # 2. Promotion orders.
    days = promo_days(params)
    promo = buyers.withColumn(
        "seq", F.explode(F.array(*[F.lit(PROMO_BASE + i) for i in range(len(days))] or [F.lit(None).cast("int")]))
    ).where(F.col("seq").isNotNull())
    day_ts = F.get(F.array(*[F.lit(epoch(d)) for d in days] or [F.lit(0)]), F.col("seq") - PROMO_BASE)
    promo = promo.withColumn("ts", day_ts.cast("long")).where(
        rng.chance(params.mix.promo_rate, "promo", pid, F.col("seq"))
        & (F.col("ts") >= F.col("buys_from"))
        & _active(F.col("ts"))
    )

    both = regular.unionByName(promo).where(F.col("ts") < F.lit(end))
    key = [pid, F.col("seq")]
    # Time of day: stores 10:00-22:00, online all day with an evening peak.
    in_store = rng.uniform("channel", *key) < F.col("pos_share")
    hour = F.when(in_store, rng.integer(10, 21, "hour", *key)).otherwise(
        rng.pick(
            list(range(24)),
            "hour-online",
            *key,
            weights=[1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 6, 5, 5, 5, 6, 6, 8, 10, 11, 9, 5],
        )
    )
    ts = (F.floor(F.col("ts") / DAY) * DAY + hour * 3600 + rng.integer(0, 3599, "second", *key)).cast("long")
    home = rng.chance(0.9, "home-store", *key)
    store = F.when(home, F.col("home_store")).otherwise(
        rng.integer(0, params.store_count - 1, "store", *key).cast("int")
    )
    platform = F.when(rng.chance(0.8, "own-platform", *key), F.col("platform")).otherwise(
        rng.pick(vocab.PLATFORMS, "platform", *key, weights=vocab.PLATFORM_WEIGHTS)
    )
    return both.select(
        (pid * F.lit(ORDER_KEY_SPACE) + F.col("seq")).alias("order_key"),
        pid,
        "seq",
        F.when(in_store, "pos").otherwise("ecom").alias("channel"),
        F.when(~in_store, platform).alias("platform"),
        F.when(in_store, store).alias("store_idx"),
        ts.alias("ts"),
        (F.col("seq") >= PROMO_BASE).alias("promo"),
        *CARRIED,
    )


def _active(ts: Column) -> Column:
    """Not in the churn gap: before churn, or after reactivation."""
    churn, react = F.col("churn_at"), F.col("react_at")
    return churn.isNull() | (ts < churn) | (react.isNotNull() & (ts >= react))


def stage_at(baby_birth: Column, ts: Column) -> Column:
    """The baby stage at `ts` (wall-clock seconds): pregnancy in the 280 days before birth."""
    days = (ts - F.unix_timestamp(F.to_timestamp(baby_birth))) / DAY
    return (
        F.when(days < -280, None)
        .when(days < 0, "pregnancy")
        .when(days < 183, "0-6m")
        .when(days < 365, "6-12m")
        .when(days < 3 * 365, "1-3y")
        .otherwise("3y+")
    )


def shelf(rng: Rng, *key: Column, ts: Column) -> Column:
    """Which catalogue shelf a line (or an app event) picks from."""
    stage = stage_at(F.col("baby_birth"), ts)
    staged = F.col("is_mother") & stage.isNotNull() & rng.chance(0.6, "stage-pick", *key)
    favourite = rng.uniform("favourite", *key)
    return (
        F.when(staged, F.concat(F.lit("s:"), stage))
        .when(favourite < 0.3, F.concat(F.lit("b:"), F.col("pref_l2"), F.lit(":"), F.col("pref_brand")))
        .when(favourite < 0.6, F.concat(F.lit("c:"), F.col("pref_l2")))
        .otherwise(F.lit("all"))
    )


def lines(spark: SparkSession, orders: DataFrame, params: Params, catalogue: Catalogue) -> DataFrame:
    """One row per order line.

    Output columns: order_key, line_no, sku, qty, unit_price (decimal), amount (decimal).
    """
    rng = Rng(params.seed)
    okey = F.col("order_key")
    n = rng.pick([1, 2, 3, 4], "lines", okey, weights=[55, 25, 12, 8])
    df = orders.withColumn("line_no", F.explode(F.sequence(F.lit(1), n)))
    key = [okey, F.col("line_no")]
    df = df.withColumn("_shelf", shelf(rng, *key, ts=F.col("ts"))).withColumn("_u", rng.uniform("sku", *key))
    df = catalogue.pick(spark, df, shelf="_shelf", u="_u")
    discount = F.when(F.col("promo"), F.lit(0.7) + rng.uniform("promo-discount", *key) * 0.2).otherwise(
        F.lit(0.85) + rng.uniform("discount", *key) * 0.15
    )
    unit = F.round(F.col("price") * discount, 1).cast("decimal(10,2)")
    qty = rng.pick([1, 2, 3], "qty", *key, weights=[80, 15, 5])
    return df.select(
        okey,
        "line_no",
        "sku",
        qty.alias("qty"),
        unit.alias("unit_price"),
        (unit * qty).cast("decimal(12,2)").alias("amount"),
    )


def totals(orders: DataFrame, lines: DataFrame, params: Params) -> DataFrame:
    """`orders` with their lines and money: a coupon discount on some, and what was paid.

    Output columns: the columns of `orders`, items (array of line_no, sku, qty, price), item_count,
    total, discount, paid (decimals).
    """
    rng = Rng(params.seed)
    item = F.struct("line_no", "sku", "qty", F.col("unit_price").alias("price"))
    sums = lines.groupBy("order_key").agg(
        F.sort_array(F.collect_list(item)).alias("items"),
        F.sum("qty").alias("item_count"),
        F.sum("amount").alias("total"),
    )
    df = orders.join(sums, on="order_key", how="inner")
    okey = F.col("order_key")
    coupon = F.when(
        rng.chance(0.2, "coupon", okey), F.least(F.col("total"), rng.pick([10, 20, 30, 50], "coupon-value", okey))
    )
    discount = F.coalesce(coupon, F.lit(0)).cast("decimal(12,2)")
    return df.withColumn("discount", discount).withColumn("paid", (F.col("total") - discount).cast("decimal(12,2)"))
