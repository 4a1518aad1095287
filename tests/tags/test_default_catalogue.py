"""The default catalogue (conf/tags) on six hand-made persons: every family against values worked out by hand.

As of 2026-06-01 (D). Orders are at 12:00 UTC (20:00 in Beijing).

1. member since D-400 (金卡会员, 3 000 points, born 1990-06-15, store S1); orders D-10 (store S1,
   100, discount 10, a 0-6m formula), D-40 (tmall, 200, clothes), D-100 (store S1, 50, a pregnancy
   product), D-200 (jd, 150, cosmetics); app views at D-2 and D-3 and a cart at D-2.
2. no membership; one order D-5 (jd, 300).
3. member since D-30, no order.
4. nobody: app views at D-1 only.
5. orders D-500 and D-400 (store S2, 50 each).
6. orders D-300, D-250, D-200 (tmall, 80 each).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cdp.tags import engine
from cdp.tags.catalogue import load_catalogue
from cdp.tags.facts import FACTS

D = dt.date(2026, 6, 1)
CATALOGUE = Path(__file__).resolve().parents[2] / "conf" / "tags"


def ago(days: int) -> dt.datetime:
    return dt.datetime.combine(D - dt.timedelta(days=days), dt.time(12), tzinfo=dt.UTC)


ORDERS = [
    # one_id, order_id, channel, store_id, days ago, amount, discount, category, brand, baby stage
    (1, "a1", "store", "S1", 10, 100.0, 10.0, "母婴", "飞鹤", "0-6m"),
    (1, "a2", "tmall", None, 40, 200.0, 0.0, "服饰", "优衣", None),
    (1, "a3", "store", "S1", 100, 50.0, 0.0, "母婴", "孕味", "pregnancy"),
    (1, "a4", "jd", None, 200, 150.0, 0.0, "美妆", "兰蔻", None),
    (2, "b1", "jd", None, 5, 300.0, 0.0, "食品", "三只", None),
    (5, "e1", "store", "S2", 500, 50.0, 0.0, "家居", "宜家", None),
    (5, "e2", "store", "S2", 400, 50.0, 0.0, "家居", "宜家", None),
    (6, "f1", "tmall", None, 300, 80.0, 0.0, "食品", "三只", None),
    (6, "f2", "tmall", None, 250, 80.0, 0.0, "食品", "三只", None),
    (6, "f3", "tmall", None, 200, 80.0, 0.0, "食品", "三只", None),
]
EVENTS = [(1, "v1", 2, "view"), (1, "v2", 3, "view"), (1, "c1", 2, "add_to_cart"), (4, "v3", 1, "view")]
MEMBERS = [
    (1, "M1", ago(400), "S1", "F", dt.date(1990, 6, 15), "金卡会员", 3000),
    (3, "M3", ago(30), "S2", None, None, "普通会员", 0),
]


@pytest.fixture(scope="module")
def tags(spark: SparkSession) -> dict[int, dict]:
    orders = spark.createDataFrame(
        [
            (p, o, ch, s, ago(d), amt + disc, disc, amt, False, "现金" if ch == "store" else None)
            for p, o, ch, s, d, amt, disc, *_ in ORDERS
        ],
        "one_id long, order_id string, channel string, store_id string, ts timestamp, total_amount double, "
        "discount_amount double, amount double, returned boolean, payment_method string",
    )
    lines = spark.createDataFrame(
        [(p, o, ago(d), ch, f"sku-{o}", 1, amt, amt, c, c, b, st, amt) for p, o, ch, _, d, amt, _, c, b, st in ORDERS],
        "one_id long, order_id string, ts timestamp, channel string, sku string, qty int, unit_price double, "
        "amount double, category_l1 string, category_l2 string, brand string, baby_stage string, price double",
    )
    events = spark.createDataFrame(
        [(p, e, ago(d), kind, None, "ios") for p, e, d, kind in EVENTS],
        "one_id long, event_id string, ts timestamp, event string, sku string, os string",
    )
    members = spark.createDataFrame(
        MEMBERS,
        "one_id long, member_id string, ts timestamp, store_id string, gender string, birthday date, "
        "level string, points long",
    )
    persons = spark.createDataFrame([(p,) for p in range(1, 7)], "one_id long")
    catalogue = load_catalogue(CATALOGUE, list(FACTS))
    facts = {"orders": orders, "order_lines": lines, "app_events": events, "members": members}
    with engine.business_days(spark, "Asia/Shanghai"):  # `tags.timezone` in conf/base.yaml, as the job sets it
        result = engine.compute(catalogue, facts, persons, as_of=D)
        # Every metric of a fact in one pass, its preferences in another; the value models add one over
        # the orders only when they can be fitted (here they cannot: too few repeat buyers).
        assert result.passes == {"orders": 2, "order_lines": 2, "app_events": 1, "members": 1}
        return {r.one_id: r.asDict() for r in result.profile.collect()}


def column(tags: dict[int, dict], key: str) -> list:
    return [tags[p][key] for p in range(1, 7)]


def test_behaviour(tags: dict[int, dict]) -> None:
    assert column(tags, "orders_total") == [4, 1, 0, 0, 2, 3]
    assert column(tags, "orders_30d") == [1, 1, 0, 0, 0, 0]
    assert column(tags, "orders_90d") == [2, 1, 0, 0, 0, 0]
    assert column(tags, "orders_365d") == [4, 1, 0, 0, 0, 3]
    assert column(tags, "spend_total") == [500.0, 300.0, 0, 0, 100.0, 240.0]
    assert column(tags, "days_since_last_purchase") == [10, 5, None, None, 400, 200]
    assert column(tags, "avg_interval_days") == pytest.approx([190 / 3, None, None, None, 100.0, 50.0], nan_ok=True)
    assert column(tags, "avg_order_value") == [125.0, 300.0, None, None, 50.0, 80.0]
    assert tags[1]["discount_sensitivity"] == 0.25 and tags[1]["discount_sensitivity_band"] == "medium"
    assert tags[2]["discount_sensitivity_band"] == "low"
    assert (tags[1]["max_order_value"], tags[1]["items_per_order"], tags[1]["return_rate"]) == (200.0, 1.0, 0.0)


def test_rfm(tags: dict[int, dict]) -> None:
    # Buyers' days since last purchase 5, 10, 200, 400: quintile cut points 5, 10, 200, 400.
    assert column(tags, "r_score") == [4, 5, None, None, 2, 3]
    # Orders 1, 2, 3, 4: cut points 1, 2, 3, 4. Spend 100, 240, 300, 500: cut points are those values.
    assert column(tags, "f_score") == [4, 1, None, None, 2, 3]
    assert column(tags, "m_score") == [4, 3, None, None, 1, 2]
    assert column(tags, "rfm_code") == ["444", "513", None, None, "221", "332"]
    assert column(tags, "rfm_segment") == ["重要价值客户", "重要发展客户", None, None, "一般挽留客户", "一般价值客户"]


def test_lifecycle(tags: dict[int, dict]) -> None:
    # 5: 400 days against the default cycle of 90 (two orders only): over 4 cycles. 6: 200 days
    # against its own cycle of 50: over 2 cycles, not over 4.
    assert column(tags, "lifecycle_stage") == [
        "loyal", "new", "registered_not_purchased", "prospect", "churned", "sleeping",
    ]  # fmt: skip
    assert column(tags, "purchase_cycle_days") == pytest.approx([190 / 3, 90.0, None, None, 90.0, 50.0], nan_ok=True)
    assert column(tags, "cycle_known") == [True, False, False, False, False, True]
    assert tags[6]["next_purchase_due"] == (ago(200) + dt.timedelta(days=50)).date()
    assert column(tags, "purchase_overdue") == [False, False, None, None, True, True]


def test_preferences(tags: dict[int, dict]) -> None:
    assert column(tags, "top_category") == ["服饰", "食品", None, None, None, "食品"]  # 5's orders are over a year old
    assert tags[1]["preferred_channel"] == "store"  # 2 of 4 orders
    assert column(tags, "preferred_store") == ["S1", None, None, None, None, None]
    assert tags[5]["preferred_payment"] == "现金"
    assert tags[1]["preferred_time_of_day"] == "evening"  # 20:00 in Beijing
    beijing = [ago(d) + dt.timedelta(hours=8) for p, _, _, _, d, *_ in ORDERS if p == 1]
    weekends = sum(t.weekday() >= 5 for t in beijing)  # a tie goes to the smaller value, "weekday"
    assert tags[1]["preferred_day_type"] == ("weekend" if weekends > 2 else "weekday")
    assert (tags[1]["category_breadth"], tags[1]["brand_breadth"]) == (3, 4)
    assert (tags[1]["online_share"], tags[1]["omnichannel"], tags[6]["omnichannel"]) == (0.5, True, False)
    assert tags[1]["preferred_price_band"] == "mid"  # one unit each at 100, 50, 150 (mid) and 200 (premium)


def test_mother_and_baby(tags: dict[int, dict]) -> None:
    assert tags[1]["last_stage_bought"] == "0-6m"  # the pregnancy product is older
    assert tags[1]["baby_age_months"] == 3 and tags[1]["baby_stage_now"] == "0-6m"
    assert column(tags, "mb_customer") == [True, False, False, False, False, False]
    assert tags[1]["mb_spend_365d"] == 150.0


def test_membership(tags: dict[int, dict]) -> None:
    assert column(tags, "is_member") == [True, False, True, False, False, False]
    assert column(tags, "member_level") == ["金卡会员", None, "普通会员", None, None, None]
    assert (tags[1]["points_band"], tags[3]["points_band"]) == ("1k-5k", "<1k")
    assert (tags[1]["tenure_days"], tags[1]["tenure_band"], tags[3]["tenure_band"]) == (400, "1y-3y", "<3m")
    assert (tags[1]["age"], tags[1]["birthday_this_month"], tags[3]["birthday_this_month"]) == (35, True, False)
    assert tags[1]["home_store"] == "S1"


def test_engagement(tags: dict[int, dict]) -> None:
    assert column(tags, "app_views_30d") == [2, 0, 0, 1, 0, 0]
    assert column(tags, "app_active_days_30d") == [2, 0, 0, 1, 0, 0]
    assert column(tags, "browse_without_buy") == [False, False, False, True, False, False]
    assert column(tags, "cart_abandoner") == [False, False, False, False, False, False]
    assert (tags[1]["app_engagement"], tags[2]["app_engagement"]) == ("light", "dormant")
    assert tags[4]["days_since_app_visit"] == 1


def test_value_tags_are_unknown_when_the_models_cannot_be_fitted(tags: dict[int, dict]) -> None:
    assert column(tags, "p_alive") == [None] * 6 and column(tags, "value_tier") == [None] * 6
    assert column(tags, "high_value") == [False] * 6
