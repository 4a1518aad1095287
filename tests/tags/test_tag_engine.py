"""The tag engine on small fact tables, against values computed by hand."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import textwrap
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdp.errors import ConfigError
from cdp.tags import engine
from cdp.tags import facts as tag_facts
from cdp.tags.catalogue import Catalogue, load_catalogue

AS_OF = dt.date(2026, 6, 1)
FACTS = ["orders", "order_lines", "app_events", "members"]


def ago(days: int, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(AS_OF - dt.timedelta(days=days), dt.time(hour), tzinfo=dt.UTC)


ORDERS = [
    # one_id, order_id, channel, ts, amount, discount_amount, returned
    (1, "o1", "store", ago(10), 100.0, 10.0, False),
    (1, "o2", "tmall", ago(40), 50.0, 0.0, False),
    (1, "o3", "tmall", ago(400), 30.0, 0.0, True),
    (2, "o4", "jd", ago(5), 200.0, 0.0, False),
    (4, "o5", "store", ago(100), 20.0, 5.0, False),
    (4, "o6", "store", ago(200), 20.0, 0.0, False),
    (5, "o7", "jd", ago(1), 500.0, 0.0, False),
]
ORDERS_SCHEMA = (
    "one_id long, order_id string, channel string, ts timestamp, amount double, discount_amount double, "
    "returned boolean"
)
PERSONS = [1, 2, 3, 4, 5]

CATALOGUE = """
family: behaviour
tags:
  - key: orders_total
    name: {zh: 订单数, en: Orders}
    description: every order
    kind: metric
    fact: orders
    agg: count
    fill: 0
  - key: orders_30d
    name: {zh: 近30天订单数, en: Orders 30d}
    description: orders in 30 days
    kind: metric
    fact: orders
    agg: count
    window_days: 30
    fill: 0
  - key: spend
    name: {zh: 消费, en: Spend}
    description: paid, returns excluded
    kind: metric
    fact: orders
    agg: sum
    column: amount
    where: NOT returned
    fill: 0
  - key: discounted
    name: {zh: 优惠单, en: Discounted}
    description: orders with a discount
    kind: metric
    fact: orders
    agg: count
    where: discount_amount > 0
  - key: channels
    name: {zh: 渠道数, en: Channels}
    description: distinct channels
    kind: metric
    fact: orders
    agg: count_distinct
    column: channel
  - key: last_channel
    name: {zh: 最近渠道, en: Last channel}
    description: channel of the latest order
    kind: metric
    fact: orders
    agg: latest
    column: channel
  - key: last_at
    name: {zh: 最近购买, en: Last purchase}
    description: latest order time
    kind: metric
    fact: orders
    agg: max
    column: ts
  - key: top_channel
    name: {zh: 偏好渠道, en: Top channel}
    description: channel with the most spend in 365 days
    kind: top
    fact: orders
    by: channel
    measure: amount
    window_days: 365
  - key: days_since
    name: {zh: 距上次购买, en: Days since}
    description: days since the latest order
    kind: expr
    expr: datediff(as_of, to_date(last_at))
  - key: recency_band
    name: {zh: 近度, en: Recency band}
    description: bands of days since
    kind: bands
    of: days_since
    bands:
      - {below: 7, value: hot}
      - {below: 60, value: warm}
    otherwise: cold
  - key: r_score
    name: {zh: R, en: R}
    description: quartiles of days since, recent best
    kind: score
    of: days_since
    quantiles: 4
    higher_is_better: false
    where: orders_total > 0
  - key: m_score
    name: {zh: M, en: M}
    description: halves of spend
    kind: score
    of: spend
    quantiles: 2
    where: orders_total > 0
  - key: segment
    name: {zh: 分群, en: Segment}
    description: first matching case
    kind: cases
    cases:
      - {when: "orders_total = 0", value: none}
      - {when: "r_score >= 3 AND m_score = 2", value: star}
    otherwise: other
"""


@pytest.fixture(scope="module")
def catalogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tags")
    (folder / "behaviour.yaml").write_text(CATALOGUE, encoding="utf-8")
    return folder


def computed(spark: SparkSession, catalogue: Catalogue, persons: Sequence[int] = PERSONS) -> engine.TagResult:
    """`catalogue` computed over the facts of ORDERS for `persons`."""
    facts = {"orders": spark.createDataFrame(ORDERS, ORDERS_SCHEMA)}
    people = spark.createDataFrame([(p,) for p in persons], "one_id long")
    return engine.compute(catalogue, facts, people, as_of=AS_OF)


@pytest.fixture(scope="module")
def profile(spark: SparkSession, catalogue_dir: Path) -> dict[int, dict]:
    result = computed(spark, load_catalogue(catalogue_dir, FACTS))
    assert result.passes == {"orders": 2}  # every metric in one pass, every preference in another
    return {r.one_id: r.asDict() for r in result.profile.collect()}


def test_metrics_windows_filters_and_fill(profile: dict[int, dict]) -> None:
    assert [profile[p]["orders_total"] for p in PERSONS] == [3, 1, 0, 2, 1]
    assert [profile[p]["orders_30d"] for p in PERSONS] == [1, 1, 0, 0, 1]
    assert [profile[p]["spend"] for p in PERSONS] == [150.0, 200.0, 0, 40.0, 500.0]
    assert [profile[p]["discounted"] for p in PERSONS] == [1, 0, None, 1, 0]  # no fill: unknown for 3
    assert [profile[p]["channels"] for p in PERSONS] == [2, 1, None, 1, 1]
    assert [profile[p]["last_channel"] for p in PERSONS] == ["store", "jd", None, "store", "jd"]


def test_counts_are_longs_as_in_profiles_already_written(spark: SparkSession, catalogue_dir: Path) -> None:
    # A type change of a profile column is refused when the next date is written to an existing lake.
    schema = computed(spark, load_catalogue(catalogue_dir, FACTS)).profile.schema
    types = {k: schema[k].dataType.simpleString() for k in ("orders_total", "channels", "top_channel", "spend")}
    assert types == {"orders_total": "bigint", "channels": "bigint", "top_channel": "string", "spend": "double"}


def test_top_is_the_value_with_the_largest_measure_in_the_window(profile: dict[int, dict]) -> None:
    # Person 1: store 100 against tmall 50 (the returned tmall order of 400 days ago is outside the window).
    assert [profile[p]["top_channel"] for p in PERSONS] == ["store", "jd", None, "store", "jd"]


def test_derived_tags(profile: dict[int, dict]) -> None:
    assert [profile[p]["days_since"] for p in PERSONS] == [10, 5, None, 100, 1]
    assert [profile[p]["recency_band"] for p in PERSONS] == ["warm", "hot", None, "cold", "hot"]
    # Quartile cut points of days since among buyers (1, 5, 10, 100): 1, 5, 10; the most recent quarter scores 4.
    assert [profile[p]["r_score"] for p in PERSONS] == [2, 3, None, 1, 4]
    # Median spend among buyers (40, 150, 200, 500): 150; above it scores 2.
    assert [profile[p]["m_score"] for p in PERSONS] == [1, 2, None, 1, 2]
    assert [profile[p]["segment"] for p in PERSONS] == ["other", "star", "none", "other", "star"]


def test_values_do_not_depend_on_the_order_rows_are_added_in(spark: SparkSession, catalogue_dir: Path) -> None:
    # Money as the facts carry it (decimal). As doubles, 0.1 + 0.2 + 0.3 is 0.6000000000000001: tmall
    # would beat jd's single 0.60 and the spend would not be 1.2, depending on the order of the rows.
    catalogue = load_catalogue(catalogue_dir, FACTS)
    orders = [
        (7, f"t{i}", channel, ago(i + 1), Decimal(amount), Decimal("0"), False)
        for i, (channel, amount) in enumerate([("tmall", "0.10"), ("tmall", "0.20"), ("tmall", "0.30"), ("jd", "0.60")])
    ]
    schema = ORDERS_SCHEMA.replace(" double", " decimal(18,2)")
    persons = spark.createDataFrame([(7,)], "one_id long")
    profiles = []
    for rows, partitions in ((orders, 1), (orders[::-1], 3)):
        facts = {"orders": spark.createDataFrame(rows, schema).repartition(partitions)}
        profiles.append(engine.compute(catalogue, facts, persons, as_of=AS_OF).profile.first().asDict())
    assert profiles[0]["top_channel"] == "jd"  # a tie at 0.60: the smaller value
    assert profiles[0]["spend"] == 1.2
    assert profiles[0] == profiles[1]


def test_the_profile_has_one_row_per_person_whatever_the_facts_hold(
    spark: SparkSession, catalogue_dir: Path, profile: dict[int, dict]
) -> None:
    # One_id 5 has orders but is not among the persons (resolved after they were read), 6 is a
    # person with no fact: as in a left join of the persons to each pass.
    result = computed(spark, load_catalogue(catalogue_dir, FACTS), persons=(1, 2, 3, 4, 6))
    rows = {r.one_id: r.asDict() for r in result.profile.collect()}
    assert sorted(rows) == [1, 2, 3, 4, 6]
    own = ["orders_total", "spend", "discounted", "channels", "last_channel", "last_at", "top_channel", "days_since"]
    for p in (1, 2, 4):
        assert {k: rows[p][k] for k in own} == {k: profile[p][k] for k in own}
    for p in (3, 6):  # no orders: the fill values, and nothing else known
        assert rows[p]["orders_total"] == 0 and rows[p]["spend"] == 0
        assert rows[p]["top_channel"] is None and rows[p]["last_at"] is None and rows[p]["segment"] == "none"


def test_passes_are_gathered_by_one_id_without_another_shuffle(spark: SparkSession, plan_of) -> None:
    # Persons and passes partitioned by one_id alike (as the facts are): putting the passes' columns
    # side by side keeps that partitioning, and gives what left joins of the persons to each give.
    def by_person(df):
        return df.repartition(3, "one_id").sortWithinPartitions("one_id")

    persons = by_person(spark.createDataFrame([(1, "a"), (2, "b"), (3, None)], "one_id long, base string"))
    fact = by_person(spark.createDataFrame([(1, 2.0), (1, 3.0), (3, None), (9, 1.0)], "one_id long, x double"))
    parts = [
        fact.groupBy("one_id").agg(F.sum("x").alias("total"), F.count("x").alias("n")),
        fact.groupBy("one_id").agg(F.max("x").alias("top")),
    ]
    with engine.planned_partitioning(spark):
        gathered = engine._joined(persons, parts)
        plan = plan_of(gathered)
        rows = sorted(tuple(r) for r in gathered.collect())
    shuffles = [op for op in plan if op.startswith(("Exchange", "ReusedExchange"))]
    assert len(shuffles) == 3, plan  # the persons' and the fact's own repartitions (one reused)
    assert gathered.columns == ["one_id", "base", "total", "n", "top"]
    expected = persons
    for part in parts:
        expected = expected.join(part, "one_id", "left")
    assert rows == sorted(tuple(r) for r in expected.collect())
    assert rows == [(1, "a", 5.0, 2, 3.0), (2, "b", None, None, None), (3, None, None, 0, None)]


def test_long_table_has_one_row_per_known_value_in_one_part_per_family(
    spark: SparkSession, catalogue_dir: Path, tmp_path: Path
) -> None:
    shutil.copy(catalogue_dir / "behaviour.yaml", tmp_path / "behaviour.yaml")
    write(tmp_path, LOYALTY, "loyalty.yaml")
    catalogue = load_catalogue(tmp_path, FACTS)
    result = computed(spark, catalogue)
    parts = engine.long_tags(catalogue, result.profile, AS_OF)
    assert [part.values for part in parts] == [
        {"family": "behaviour", "as_of": AS_OF},
        {"family": "loyalty", "as_of": AS_OF},
    ]
    assert all(part.rows.columns == ["one_id", "tag", "value"] for part in parts)
    rows = {(r.one_id, r.tag): r.value for part in parts for r in part.rows.collect()}
    assert rows[(3, "orders_total")] == "0" and (3, "last_channel") not in rows
    assert rows[(2, "spend")] == "200.0" and rows[(2, "segment")] == "star"
    assert rows[(1, "repeat_buyer")] == "true" and rows[(2, "repeat_buyer")] == "false"
    keys = {t.key for t in catalogue}
    known = sum(v is not None for r in result.profile.collect() for k, v in r.asDict().items() if k in keys)
    assert len(rows) == known


LOYALTY = """
family: loyalty
tags:
  - key: repeat_buyer
    name: {zh: 复购, en: Repeat buyer}
    description: more than one order
    kind: expr
    expr: orders_total > 1
"""


def write(folder: Path, text: str, name: str = "f.yaml") -> Path:
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder / name


TAG = """
  - key: {key}
    name: {{zh: 甲, en: A}}
    description: d
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (TAG.format(key="a") + "    kind: metric\n    fact: visits\n    agg: count\n", "tag a: unknown fact 'visits'"),
        (TAG.format(key="a") + "    kind: metric\n    fact: orders\n    agg: sum\n", "tag a: .*needs a column"),
        (TAG.format(key="a") + "    kind: metric\n    fact: orders\n    agg: count\n    colour: red\n", "colour"),
        (TAG.format(key="a") + "    kind: bands\n    of: nothing\n    bands: [{below: 1, value: x}]\n", "unknown tag"),
        (
            TAG.format(key="a")
            + "    kind: expr\n    expr: b + 1\n"
            + TAG.format(key="b")
            + "    kind: expr\n    expr: a\n",
            "tags a, b depend on each other in a cycle",
        ),
    ],
)
def test_catalogue_errors_name_the_file_and_the_tag(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "family: f\ntags:" + body)
    with pytest.raises(ConfigError, match=message) as caught:
        load_catalogue(tmp_path, FACTS)
    assert str(path) in str(caught.value)


def test_a_key_declared_twice_names_both_files(tmp_path: Path) -> None:
    body = TAG.format(key="a") + "    kind: expr\n    expr: '1'\n"
    write(tmp_path, "family: f\ntags:" + body, "one.yaml")
    write(tmp_path, "family: g\ntags:" + body, "two.yaml")
    with pytest.raises(ConfigError, match=r"two\.yaml: tag a is already declared in .*one\.yaml"):
        load_catalogue(tmp_path, FACTS)


def test_an_expression_the_fact_cannot_answer_is_refused_before_any_work(spark: SparkSession, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "family: f\ntags:" + TAG.format(key="a") + "    kind: metric\n    fact: orders\n    agg: sum\n"
        "    column: amount_paid\n",
    )
    catalogue = load_catalogue(tmp_path, FACTS)
    with pytest.raises(ConfigError, match=r"tag a: column 'amount_paid' is not valid over fact orders") as caught:
        computed(spark, catalogue, persons=(1,))
    assert str(path) in str(caught.value)


def test_facts_keep_the_columns_the_catalogue_names(tmp_path: Path) -> None:
    body = (
        "family: f\ntags:\n"
        + TAG.format(key="a")
        + "    kind: metric\n    fact: order_lines\n    agg: sum\n    column: '`Unit_Price` * qty'\n"
        + "    where: 'brand = ''sku'' AND category_l1 <> \"price\"'\n"
        + TAG.format(key="b")
        + "    kind: top\n    fact: app_events\n    by: os\n    measure: '1'\n"
        + TAG.format(key="c")
        + "    kind: metric\n    fact: members\n    agg: count\n    where: struct(*) IS NOT NULL\n"
    )
    write(tmp_path, body)
    needed = tag_facts.needed(load_catalogue(tmp_path, FACTS))
    # Names inside string literals ('sku', "price") are not columns; a `*` keeps every column.
    assert needed["order_lines"] & {"unit_price", "qty", "brand", "category_l1", "sku", "price"} == {
        "unit_price",
        "qty",
        "brand",
        "category_l1",
    }
    assert "event_id" not in needed["app_events"] and "os" in needed["app_events"]
    assert needed["members"] is None
    assert needed["orders"] == {"amount", "returned"}  # the value models' columns, with no orders tag


def test_session_settings_hold_for_their_block_only(spark: SparkSession, caplog: pytest.LogCaptureFixture) -> None:
    limit, adaptive = "spark.sql.codegen.hugeMethodLimit", "spark.sql.adaptive.enabled"
    unset_limit, unset_adaptive = spark.conf.get(limit), spark.conf.get(adaptive)
    spark.conf.set(limit, "60000")
    try:
        with engine.split_codegen(spark):
            assert spark.conf.get(limit) == "8000"
            with engine.planned_partitioning(spark) as partitions:
                assert spark.conf.get(adaptive) == "false" and spark.conf.get(limit) == "8000"
                assert spark.conf.get("spark.sql.inMemoryColumnarStorage.compressed") == "false"
                assert partitions == int(spark.conf.get("spark.sql.shuffle.partitions"))
            assert spark.conf.get(adaptive) == unset_adaptive
        assert spark.conf.get(limit) == "60000"  # what was set before, not Spark's default
    finally:
        spark.conf.unset(limit)
    with engine.split_codegen(spark):
        pass
    assert spark.conf.get(limit) == unset_limit
    # A setting the session refuses is named with its cost, and the block runs without it.
    refused = {"spark.sql.warehouse.dir": ("/elsewhere", "the tags go elsewhere")}  # a static setting
    with caplog.at_level(logging.WARNING, logger="cdp.tags.engine"), engine._settings(spark, refused):
        ran = True
    assert ran and spark.conf.get("spark.sql.warehouse.dir") != "/elsewhere"
    assert [r.getMessage() for r in caplog.records if "cannot set spark.sql.warehouse.dir" in r.getMessage()]
    assert "the tags go elsewhere" in caplog.text


def test_release_drops_the_caches_the_profile_reads(spark: SparkSession, catalogue_dir: Path, tmp_path: Path) -> None:
    shutil.copy(catalogue_dir / "behaviour.yaml", tmp_path / "behaviour.yaml")
    result = computed(spark, load_catalogue(tmp_path, FACTS))
    before = sorted(result.profile.collect())
    assert result.kept and all(frame.storageLevel.useMemory for frame in result.kept)
    result.release()
    assert not any(frame.storageLevel.useMemory or frame.storageLevel.useDisk for frame in result.kept)
    assert sorted(result.profile.collect()) == before  # computed again from the facts


def test_a_failure_after_the_profile_is_cached_drops_its_cache(
    spark: SparkSession, catalogue_dir: Path, tmp_path: Path
) -> None:
    shutil.copy(catalogue_dir / "behaviour.yaml", tmp_path / "behaviour.yaml")
    broken = TAG.format(key="broken") + "    kind: expr\n    expr: no_such_function(spend)\n"
    write(tmp_path, "family: f\ntags:" + broken)
    catalogue = load_catalogue(tmp_path, FACTS)
    held = spark.sparkContext._jsc.getPersistentRDDs().size()  # classic Spark: the cached blocks
    with pytest.raises(AnalysisException, match="no_such_function"):
        computed(spark, catalogue)
    assert spark.sparkContext._jsc.getPersistentRDDs().size() == held


def test_a_derived_tag_naming_no_other_tag_is_computed(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path, "family: f\ntags:" + TAG.format(key="launch") + "    kind: expr\n    expr: \"'2026 spring'\"\n")
    catalogue = load_catalogue(tmp_path, FACTS)
    persons = spark.createDataFrame([(p,) for p in PERSONS], "one_id long")
    result = engine.compute(catalogue, {}, persons, as_of=AS_OF)
    assert {r.one_id: r.launch for r in result.profile.collect()} == dict.fromkeys(PERSONS, "2026 spring")
    result.release()


ZONED = """
family: behaviour
tags:
  - {key: orders_total, name: {zh: 订单数, en: Orders}, description: d, kind: metric, fact: orders, agg: count}
  - key: spend_30d
    name: {zh: 近30天消费, en: Spend 30d}
    description: d
    kind: metric
    fact: orders
    agg: sum
    column: amount
    window_days: 30
  - {key: first_at, name: {zh: 首购, en: First}, description: d, kind: metric, fact: orders, agg: min, column: ts}
  - {key: last_at, name: {zh: 最近, en: Last}, description: d, kind: metric, fact: orders, agg: max, column: ts}
  - {key: first_day, name: {zh: 首购日, en: First day}, description: d, kind: expr, expr: to_date(first_at)}
  - key: top_hour
    name: {zh: 偏好时, en: Top hour}
    description: d
    kind: top
    fact: orders
    by: hour(ts)
    measure: amount
"""


def test_days_begin_at_the_midnights_of_the_business_time_zone(spark: SparkSession, tmp_path: Path) -> None:
    utc = dt.UTC
    # The facts are cut before the as-of date already (`facts.build`; see the job's tests).
    orders = [  # amounts 2, 4, 8: a sum says which orders it holds
        (1, "b", "store", dt.datetime(2026, 5, 31, 15, tzinfo=utc), 2.0, 0.0, False),  # Shanghai: May 31, 23:00
        (1, "c", "store", dt.datetime(2026, 5, 1, 17, tzinfo=utc), 4.0, 0.0, False),  # Shanghai: May 2, 01:00
        (1, "d", "store", dt.datetime(2026, 4, 30, 20, tzinfo=utc), 8.0, 0.0, False),  # Shanghai: May 1, 04:00
    ]
    write(tmp_path, ZONED)
    catalogue = load_catalogue(tmp_path, FACTS)

    def tags(zone: str) -> tuple[dict, dict]:
        with engine.business_days(spark, zone):
            facts = {"orders": spark.createDataFrame(orders, ORDERS_SCHEMA)}
            result = engine.compute(catalogue, facts, spark.createDataFrame([(1,)], "one_id long"), as_of=AS_OF)
            profile = result.profile.first().asDict()
            long = {
                r.tag: r.value
                for part in engine.long_tags(catalogue, result.profile, AS_OF)
                for r in part.rows.collect()
            }
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"  # restored
        return profile, long

    # As of June 1 in Shanghai: 30 days from 2026-05-01 16:00 UTC; dates and hours on Shanghai's clocks.
    shanghai, text = tags("Asia/Shanghai")
    assert (shanghai["orders_total"], shanghai["spend_30d"]) == (3, 2.0 + 4.0)
    assert shanghai["first_day"] == dt.date(2026, 5, 1) and shanghai["top_hour"] == "4"
    assert text["last_at"] == "2026-05-31 15:00:00" and text["first_day"] == "2026-05-01"  # times in UTC
    # As of June 1 in UTC: 30 days from 2026-05-02 00:00 UTC.
    in_utc, text = tags("UTC")
    assert (in_utc["orders_total"], in_utc["spend_30d"]) == (3, 2.0)
    assert in_utc["first_day"] == dt.date(2026, 4, 30) and in_utc["top_hour"] == "20"
    assert text["last_at"] == "2026-05-31 15:00:00"
    # Where clocks change, a day is 23 hours: 30 days before 2026-03-15 in New York begin at
    # 2026-02-13 05:00 UTC (EST), and the as-of date at 2026-03-15 04:00 UTC (EDT).
    cut = tag_facts.Cut(dt.date(2026, 3, 15), ZoneInfo("America/New_York"))
    assert cut.instant == dt.datetime(2026, 3, 15, 4, tzinfo=utc)
    assert cut.start(30) == dt.datetime(2026, 2, 13, 5, tzinfo=utc)
