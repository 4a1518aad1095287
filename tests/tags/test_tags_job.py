"""`cdp run tags` with the default catalogue: the as-of cut, change events, and generated data."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp.cli import main as cli_main
from cdp.lake import Lake
from cdp.lake.delta_rs import DeltaRsEngine
from cdp.schemas import SILVER
from cdp.spark import SESSION_TIME_ZONE
from cdp.tags import engine
from cdp.tags import facts as tag_facts
from cdp.tags.catalogue import load_catalogue
from cdp.tags.facts import FACTS
from cdp.tags.job import CUSTOMER_TAGS, EVENTS, PROFILE, computed
from cdp.tags.job import main as tags_main

D = dt.date(2026, 6, 1)
CATALOGUE = Path(__file__).resolve().parents[2] / "conf" / "tags"


def at(days: float) -> dt.datetime:
    """`days` after D's midnight in UTC; the cut is D's midnight in Shanghai (`tags.timezone`), at(-8 / 24)."""
    return dt.datetime.combine(D, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=days)


def silver(spark: SparkSession, table: str, rows: list[dict]):
    schema = SILVER[table]
    full = [tuple(r.get(f.name, [] if f.name == "issues" else None) for f in schema.fields) for r in rows]
    return spark.createDataFrame(full, schema)


POS = [
    # order_no, one_id, time: P3 and P4 after the cut must not count as of D, nor P6 at the cut.
    ("P1", 101, at(-10)),
    ("P2", 101, at(-100)),
    ("P3", 101, at(0)),
    ("P4", 101, at(5)),
    ("P5", 102, at(-1)),
    ("P6", 103, at(-8 / 24)),  # D, 00:00 in Shanghai
    ("P7", 103, at(-9 / 24)),  # the day before, 23:00 in Shanghai
]


@pytest.fixture(scope="module")
def small_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("tags") / "lake")
    lake = Lake(spark, root, engine=DeltaRsEngine(spark), job="setup", run_id="s1")
    money = Decimal(100)
    orders = [
        {"order_no": o, "store_id": "S1", "order_time": t, "total_amount": money, "paid_amount": money,
         "discount_amount": Decimal(0), "payment_method": "现金"}
        for o, _, t in POS
    ]  # fmt: skip
    lake.overwrite("silver.pos_orders", silver(spark, "pos_orders", orders))
    items = [
        {"order_no": o, "line_no": 1, "sku": "100001", "qty": 1, "unit_price": money, "amount": money} for o, *_ in POS
    ]
    lake.overwrite("silver.pos_order_items", silver(spark, "pos_order_items", items))
    products = [{"sku": "100001", "category_l1": "母婴", "brand": "飞鹤", "price": money, "baby_stage": "0-6m"}]
    lake.overwrite("silver.products", silver(spark, "products", products))
    member = {"member_id": "M1", "registered_at": at(-200), "updated_at": at(3), "level": "金卡会员", "points": 900}
    lake.overwrite("silver.crm_members", silver(spark, "crm_members", [member]))
    mapping = [("pos_orders", o, one_id) for o, one_id, _ in POS] + [("crm_members", "M1", 101)]
    lake.overwrite("identity.oneid_map", spark.createDataFrame(mapping, "source string, record_id string, one_id long"))
    return root


def profile_of(spark: SparkSession, root: str, as_of: dt.date) -> dict[int, dict]:
    rows = Lake(spark, root).read(PROFILE).where(F.col("as_of") == F.lit(as_of)).collect()
    return {r.one_id: r.asDict() for r in rows}


def test_as_of_sees_only_facts_before_the_date(spark: SparkSession, small_lake: str, monkeypatch) -> None:
    monkeypatch.chdir(Path(small_lake).parent)
    assert tags_main(["--lake", small_lake, "--as-of", D.isoformat(), "--run-id", "t1"]) == 0
    before = profile_of(spark, small_lake, D)
    assert (before[101]["orders_total"], before[102]["orders_total"], before[103]["orders_total"]) == (2, 1, 1)
    assert before[103]["days_since_last_purchase"] == 1  # the Shanghai day before D, not D itself (in UTC)
    assert before[101]["days_since_last_purchase"] == 10
    assert before[101]["is_member"] is True
    assert before[101]["member_level"] is None  # the member record was updated after D: its level is later news
    assert before[101]["lifecycle_stage"] == "active" and before[102]["lifecycle_stage"] == "new"
    assert before[101]["baby_stage_now"] == "0-6m"  # a 0-6m product 10 days ago: about 3 months old

    later = D + dt.timedelta(days=30)
    assert tags_main(["--lake", small_lake, "--as-of", later.isoformat(), "--run-id", "t2"]) == 0
    after = profile_of(spark, small_lake, later)
    assert after[101]["orders_total"] == 4 and after[103]["orders_total"] == 2
    assert after[101]["member_level"] == "金卡会员"
    assert after[101]["lifecycle_stage"] == "loyal"
    # The profile of D is still there, unchanged: each date has its own partitions.
    assert profile_of(spark, small_lake, D)[101]["orders_total"] == 2


def assert_pass_needs_no_shuffle(spark: SparkSession, plan_of, fact, persons, name: str) -> None:
    """A pass over a cached fact, joined to the persons, neither shuffles nor sorts them again."""
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")  # a sort-merge join, as at scale
    try:
        with engine.planned_partitioning(spark):
            plan = plan_of(fact.groupBy("one_id").count().join(persons, "one_id"), outside_caches=True)
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    assert any(op.startswith("SortMergeJoin") for op in plan), (name, plan)
    assert sum(op.startswith("InMemoryTableScan") for op in plan) == 2, (name, plan)
    assert not [op for op in plan if op.startswith(("Exchange", "Sort "))], (name, plan)


def test_computed_gives_the_tags_for_a_block(spark: SparkSession, small_lake: str) -> None:
    """What a notebook gets from `computed`: the job's tags as of D in the business's days, inside the block only."""
    lake = Lake(spark, small_lake)
    was = spark.conf.get(SESSION_TIME_ZONE)
    assert was != "Asia/Shanghai"
    with computed(lake, load_catalogue(CATALOGUE, FACTS), D, "Asia/Shanghai") as result:
        assert spark.conf.get(SESSION_TIME_ZONE) == "Asia/Shanghai"
        rows = {r.one_id: r.asDict() for r in result.profile.collect()}
        kept = result.kept
        assert kept and all(f.storageLevel.useMemory for f in kept)
    assert spark.conf.get(SESSION_TIME_ZONE) == was
    assert not any(f.storageLevel.useMemory or f.storageLevel.useDisk for f in kept)
    # As the job writes them (test_as_of_sees_only_facts_before_the_date): P6, at D's midnight in
    # Shanghai, is not seen; P7, at 23:00 the day before there, is one day ago.
    assert [rows[p]["orders_total"] for p in (101, 102, 103)] == [2, 1, 1]
    assert rows[103]["days_since_last_purchase"] == 1 and rows[101]["days_since_last_purchase"] == 10
    assert rows[101]["lifecycle_stage"] == "active" and rows[102]["lifecycle_stage"] == "new"


def test_facts_are_cached_until_released(spark: SparkSession, small_lake: str, plan_of, caplog) -> None:
    lake = Lake(spark, small_lake)
    with caplog.at_level(logging.WARNING, logger="cdp.tags.facts"):
        built = tag_facts.build(lake, D, tag_facts.needed(load_catalogue(CATALOGUE, FACTS)), partitions=3)
    # Each missing table named once, though two facts read silver.ecom_orders.
    assert [r.getMessage() for r in caplog.records] == [
        "tags: not created yet, so the facts read no rows of them: silver.app_events, silver.ecom_orders"
    ]
    people = tag_facts.persons(lake, partitions=3)
    frames = [*built.values(), people]
    assert sorted(built) == ["app_events", "members", "order_lines", "orders"]
    assert built["app_events"].count() == 0  # no silver.app_events in this lake: none of its rows
    assert all(f.storageLevel.useMemory for f in frames)
    for name, fact in built.items():
        assert_pass_needs_no_shuffle(spark, plan_of, fact, people, name)
    # In this session's time zone (UTC) the cut is D's midnight in UTC: P3, P4 at or after it.
    assert sorted(r.one_id for r in built["orders"].collect()) == [101, 101, 102, 103, 103]
    tag_facts.release(frames)
    assert not any(f.storageLevel.useMemory or f.storageLevel.useDisk for f in frames)


def test_order_facts_share_the_orders_joined_to_their_one_id(spark: SparkSession, resolved_lake: Path, plan_of) -> None:
    lake = Lake(spark, str(resolved_lake))
    as_of = dt.date(2026, 6, 1)
    both = tag_facts.build(lake, as_of, {"orders": None, "order_lines": None}, partitions=3)
    # Till and online orders both present: the facts' parts, partitioned apart, keep one partitioning.
    people = tag_facts.persons(lake, partitions=3)
    for name, fact in both.items():
        assert fact.where(F.col("channel") != "store").count() > 0, name
        assert_pass_needs_no_shuffle(spark, plan_of, fact, people, name)
    tag_facts.release([people])
    # Each fact alone joins the orders itself: the same rows either way.
    for name in both:
        alone = tag_facts.build(lake, as_of, {name: None}, partitions=3)
        assert both[name].count() > 1000
        assertDataFrameEqual(both[name], alone[name])
        tag_facts.release(alone.values())
    tag_facts.release(both.values())
    sources = tag_facts.Sources(lake, tag_facts.Cut(as_of).instant, shared=True)
    pos, ecom = sources.pos_orders(), sources.ecom_orders()
    assert sources.pos_orders() is pos and sources.ecom_orders() is ecom  # one join each, cached
    assert pos.storageLevel.useMemory and ecom.storageLevel.useMemory
    assert pos.columns == list(tag_facts.POS_ORDER_COLUMNS) and ecom.columns == list(tag_facts.ECOM_ORDER_COLUMNS)
    sources.release()
    assert not (pos.storageLevel.useMemory or ecom.storageLevel.useMemory)
    unshared = tag_facts.Sources(lake, tag_facts.Cut(as_of).instant)
    assert unshared.pos_orders() is not unshared.pos_orders()


def test_events_list_the_changes_since_the_previous_date(spark: SparkSession, small_lake: str, monkeypatch) -> None:
    monkeypatch.chdir(Path(small_lake).parent)
    later = D + dt.timedelta(days=30)
    for run_id, as_of in (("e1", D), ("e2", later)):
        assert tags_main(["--lake", small_lake, "--as-of", as_of.isoformat(), "--run-id", run_id]) == 0
    events = Lake(spark, small_lake).read(EVENTS).where(F.col("as_of") == F.lit(later))
    lifecycle = {(r.one_id, r.from_value, r.to_value, r.previous_as_of) for r in events.where("tag = 'lifecycle_stage'")
                 .collect()}  # fmt: skip
    assert lifecycle == {(101, "active", "loyal", D)}
    # Re-running the date under another run id replaces its events: one copy.
    n = events.count()
    assert tags_main(["--lake", small_lake, "--as-of", later.isoformat(), "--run-id", "e3"]) == 0
    assert Lake(spark, small_lake).read(EVENTS).where(F.col("as_of") == F.lit(later)).count() == n


BUYER_KIND = """
  - key: buyer_kind
    name: {zh: 买家类型, en: Buyer kind}
    description: Repeat buyers and the others.
    kind: cases
    events: true
    cases:
      - {when: "orders_total >= 2", value: repeat}
    otherwise: single
"""


def own_copy(small_lake: str, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A copy of the small lake without tags and of the project's configuration, in `tmp_path` (the
    working folder), for a test that changes them: (lake, configuration folder)."""
    root, conf = tmp_path / "lake", tmp_path / "conf"
    shutil.copytree(small_lake, root)
    shutil.rmtree(root / "tags", ignore_errors=True)  # whatever other tests wrote
    shutil.copytree(CATALOGUE.parent, conf)
    monkeypatch.chdir(tmp_path)
    return root, conf


def test_an_edited_catalogue_evolves_the_outputs(
    spark: SparkSession, small_lake: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A tag added, a family removed, a tag's type changed: what an operator editing conf/tags gets."""
    root, conf = own_copy(small_lake, tmp_path, monkeypatch)
    first, second = D + dt.timedelta(days=60), D + dt.timedelta(days=90)

    def run(as_of: dt.date, run_id: str) -> int:
        args = ["--lake", str(root), "--conf-dir", str(conf), "--as-of", as_of.isoformat(), "--run-id", run_id]
        return tags_main(args)

    def families(as_of: dt.date) -> set[str]:
        rows = Lake(spark, str(root)).read(CUSTOMER_TAGS).where(F.col("as_of") == F.lit(as_of))
        return {r.family for r in rows.select("family").distinct().collect()}

    assert run(first, "c1") == 0
    assert "mother_baby" in families(first)
    with (conf / "tags" / "behaviour.yaml").open("a", encoding="utf-8") as f:
        f.write(BUYER_KIND)
    (conf / "tags" / "mother_baby.yaml").unlink()
    assert run(second, "c2") == 0
    profiles = {d: profile_of(spark, str(root), d) for d in (first, second)}
    assert {p["buyer_kind"] for p in profiles[first].values()} == {None}  # not computed then
    assert {k: p["buyer_kind"] for k, p in profiles[second].items()} == {101: "repeat", 102: "single", 103: "repeat"}
    assert {p["baby_stage_now"] for p in profiles[second].values()} == {None}  # its family is gone
    assert any(p["baby_stage_now"] for p in profiles[first].values())  # earlier dates keep it
    assert "mother_baby" not in families(second) and "mother_baby" in families(first)

    def events(as_of: dt.date, tag: str) -> int:
        rows = Lake(spark, str(root)).read(EVENTS).where(F.col("as_of") == F.lit(as_of))
        return rows.where(F.col("tag") == tag).count()

    assert events(second, "buyer_kind") == 0  # no value on the previous date: no transition
    # Re-running the date: the profile has the column now, all null on the previous date: none either.
    assert run(second, "c2b") == 0
    assert events(second, "buyer_kind") == 0
    # Re-running a date with the edited catalogue replaces all of it: the removed family too.
    assert run(first, "c3") == 0
    assert "mother_baby" not in families(first)
    kinds = {k: p["buyer_kind"] for k, p in profile_of(spark, str(root), first).items()}
    assert kinds == {101: "repeat", 102: "single", 103: "repeat"}

    # A channel onboarded later: its tags had no rows (fill values, of their types), now they have.
    setup = Lake(spark, str(root), engine=DeltaRsEngine(spark), job="setup", run_id="s2")
    event = {"event_id": "E1", "event": "view", "sku": "100001", "event_time": at(70), "os": "iOS"}
    setup.overwrite("silver.app_events", silver(spark, "app_events", [event]))
    mapping = [tuple(r) for r in setup.read("identity.oneid_map").select("source", "record_id", "one_id").collect()]
    mapping.append(("app_events", "E1", 101))
    mapping_schema = "source string, record_id string, one_id long"
    setup.overwrite("identity.oneid_map", spark.createDataFrame(mapping, mapping_schema))
    third = D + dt.timedelta(days=100)
    assert run(third, "c5") == 0
    visits = {k: p["last_app_visit_at"] for k, p in profile_of(spark, str(root), third).items()}
    assert visits == {101: at(70).replace(tzinfo=None), 102: None, 103: None}
    assert {p["app_events_30d"] for p in profile_of(spark, str(root), second).values()} == {0}

    # A tag whose values change type: one clear line, and nothing written.
    lifecycle = conf / "tags" / "lifecycle.yaml"
    text = lifecycle.read_text(encoding="utf-8")
    old = "expr: days_since_last_purchase > purchase_cycle_days"
    lifecycle.write_text(text.replace(old, 'expr: "CAST(days_since_last_purchase > purchase_cycle_days AS string)"'))
    versions = {t: len(Lake(spark, str(root)).history(t)) for t in (CUSTOMER_TAGS, PROFILE, EVENTS)}
    capsys.readouterr()
    assert run(second, "c4") == 2
    err = capsys.readouterr().err
    assert "lifecycle.yaml: tag purchase_overdue now gives string values" in err and "boolean" in err, err
    assert {t: len(Lake(spark, str(root)).history(t)) for t in versions} == versions


def test_default_catalogue_on_generated_data(spark: SparkSession, resolved_lake: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(resolved_lake)
    as_of = dt.date(2026, 10, 1)  # the day after the generated history ends
    assert tags_main(["--lake", str(resolved_lake), "--as-of", as_of.isoformat(), "--run-id", "g1"]) == 0
    lake = Lake(spark, str(resolved_lake))
    catalogue = load_catalogue(CATALOGUE, list(FACTS))
    assert len(catalogue) >= 60 and len(catalogue.families) >= 8
    profile = lake.read(PROFILE).where(F.col("as_of") == F.lit(as_of))
    one_ids = lake.read("identity.oneid_map").select("one_id").distinct()
    assert profile.count() == one_ids.count() == profile.select("one_id").distinct().count()
    # The long table holds exactly the known values of the profile.
    known = profile.select(*[F.count(t.key).alias(t.key) for t in catalogue]).first()
    long = lake.read(CUSTOMER_TAGS).where(F.col("as_of") == F.lit(as_of))
    assert long.count() == sum(known)
    assert {r.family for r in long.select("family").distinct().collect()} == set(catalogue.families)
    for key in ("lifecycle_stage", "rfm_segment", "baby_stage_now", "member_level", "preferred_time_of_day"):
        values = {r[0] for r in profile.select(key).distinct().collect()} - {None}
        assert values and values <= set(catalogue[key].spec.values), (key, values)
    buyers = profile.where("orders_total > 0")
    assert buyers.count() > 0
    assert buyers.where("r_score IS NULL OR rfm_segment IS NULL OR lifecycle_stage IS NULL").count() == 0
    assert (
        profile.where("orders_total = 0 AND lifecycle_stage NOT IN ('prospect', 'registered_not_purchased')").count()
        == 0
    )
    clv = buyers.agg(F.min("p_alive"), F.max("p_alive"), F.min("clv_365d")).first()
    assert 0 <= clv[0] <= clv[1] <= 1 and clv[2] >= 0
    # Mostly distinct columns are written without a Parquet dictionary (engine.plain_encoded).
    for table, plain, kept in (
        (CUSTOMER_TAGS, {"one_id", "value"}, "tag"),
        (PROFILE, {"one_id", "spend_total", "last_purchase_at"}, "lifecycle_stage"),
    ):
        chunks = pq.ParquetFile(DeltaTable(lake.path(table)).file_uris()[0].removeprefix("file://")).metadata.row_group(
            0
        )
        dictionary = {
            chunks.column(i).path_in_schema
            for i in range(chunks.num_columns)
            if any("DICTIONARY" in e for e in chunks.column(i).encodings)
        }
        assert kept in dictionary and not dictionary & plain, (table, dictionary)

    # The summary `make demo` ends with: the same figures, as text.
    assert cli_main(["summary", "tags", "--lake", str(resolved_lake)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"tags as of {as_of}: {profile.count():,} one_ids, {len(catalogue)} tags in 8 families")
    stages = {r.lifecycle_stage or "(none)": r["count"] for r in profile.groupBy("lifecycle_stage").count().collect()}
    shown = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out if line.startswith("  ")}
    assert {k: shown[k] for k in stages} == stages


def test_the_default_date_is_today_in_the_business_time_zone(
    spark: SparkSession, small_lake: str, tmp_path: Path, monkeypatch
) -> None:
    """Without --as-of the job computes today's tags, today being the date in `tags.timezone`."""
    root, conf = own_copy(small_lake, tmp_path, monkeypatch)
    # Of UTC+14 and UTC-12, one has a date other than UTC's at any hour: the test fails on UTC's date.
    utc = dt.datetime.now(dt.UTC).date()
    zone = next(z for z in ("Pacific/Kiritimati", "Etc/GMT+12") if dt.datetime.now(ZoneInfo(z)).date() != utc)
    (conf / "far.yaml").write_text((conf / "local.yaml").read_text() + f"tags:\n  timezone: {zone}\n")
    before = dt.datetime.now(ZoneInfo(zone)).date()
    assert tags_main(["--lake", str(root), "--conf-dir", str(conf), "--env", "far", "--run-id", "z1"]) == 0
    today = {before, dt.datetime.now(ZoneInfo(zone)).date()}  # either, should the run cross a midnight there
    dates = {r.as_of for r in Lake(spark, str(root)).read(PROFILE).select("as_of").distinct().collect()}
    assert len(dates) == 1 and dates <= today, (zone, dates, today)


def test_over_spark_connect_the_job_writes_the_same_profile(
    spark: SparkSession, resolved_lake: Path, tmp_path: Path, monkeypatch
) -> None:
    """`cdp run tags` over a local Spark Connect server gives the profile the classic session gives.

    The Connect run is its own process (this one holds the classic session the other tests use).
    """
    as_of = "2026-09-01"
    lakes = {}
    for name in ("classic", "connect"):
        lakes[name] = tmp_path / name
        shutil.copytree(resolved_lake, lakes[name], ignore=shutil.ignore_patterns("tags", "logs"))
    command = [str(Path(sys.executable).parent / "cdp"), "run", "tags", "--lake", str(lakes["connect"])]
    env = {**os.environ, "SPARK_REMOTE": "local[2]"}
    done = subprocess.run(
        [*command, "--as-of", as_of], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    assert tags_main(["--lake", str(lakes["classic"]), "--as-of", as_of, "--run-id", "k1"]) == 0
    classic, connect = (Lake(spark, str(lakes[n])).read(PROFILE) for n in ("classic", "connect"))
    assert classic.count() > 0
    assert classic.exceptAll(connect).count() == 0 and connect.exceptAll(classic).count() == 0
