"""`cdp run cleanse` on generated data: silver, quarantine, reconciliation, incremental and crash-safe re-runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cdp.cleansing import engine
from cdp.cleansing.job import main as cleanse_main
from cdp.cleansing.sources import SOURCES
from cdp.config import load_config
from cdp.generate.job import main as generate_main
from cdp.lake import Lake

NOISE = [
    *("--malformed-rate", "0.01", "--bad-date-rate", "0.01"),
    *("--negative-amount-rate", "0.01", "--placeholder-rate", "0.05"),
]


@pytest.fixture(scope="module")
def cleansed(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cleanse")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert generate_main(["--lake", str(root / "a"), "--persons", "1500", "--seed", "3", *NOISE]) == 0
        shutil.copytree(root / "a" / "landing", root / "b" / "landing")
        assert cleanse_main(["--lake", str(root / "a"), "--run-id", "c1"]) == 0
    return root


def test_every_source_has_silver_and_every_batch_reconciles(spark: SparkSession, cleansed: Path) -> None:
    lake = Lake(spark, str(cleansed / "a"))
    batches = {r.source: r for r in lake.read("quality.batches").collect()}
    assert set(batches) == set(SOURCES)
    for name, b in batches.items():
        assert b.lines == b.silver_rows + b.quarantined + b.duplicates, name
        assert lake.read(f"silver.{name}").count() == b.silver_rows, name
    quarantine = lake.read("quality.quarantine")
    rules = {r.rule for r in quarantine.select("rule").distinct().collect()}
    assert {"malformed", "bad_time", "bad_amount", "unknown_sku"} <= rules
    assert lake.read("quality.validation_runs").select("suite").distinct().count() == len(SOURCES)


def test_every_placeholder_and_masked_phone_is_caught(spark: SparkSession, cleansed: Path) -> None:
    lake = Lake(spark, str(cleansed / "a"))
    cfg = load_config("local").cleansing
    crm = lake.read("silver.crm_members")
    assert crm.where(crm.mobile.isin(*cfg.placeholder_mobiles)).count() == 0
    assert crm.where(crm.email.isin(*cfg.placeholder_emails)).count() == 0
    assert crm.where(crm.card_no.isin(*cfg.placeholder_ids)).count() == 0
    assert crm.where("array_contains(issues, 'mobile:placeholder')").count() > 0
    ecom = lake.read("silver.ecom_orders")
    marketplace = ecom.where(ecom.platform.isin("tmall", "jd", "douyin"))
    assert marketplace.count() > 0
    assert marketplace.where("receiver_mobile IS NOT NULL").count() == 0, "a masked phone links no one"
    assert marketplace.where("receiver_mobile_masked IS NULL").count() == 0
    mobiles = [r.mobile for r in crm.select("mobile").where("mobile IS NOT NULL").collect()]
    assert all(len(m) == 11 and m.isdigit() for m in mobiles)


def test_every_generated_record_is_in_silver_or_quarantine(spark: SparkSession, cleansed: Path) -> None:
    lake = Lake(spark, str(cleansed / "a"))
    truth = lake.read("truth.person_records").where("source = 'crm_members'").select("record_id")
    silver = lake.read("silver.crm_members").selectExpr("member_id AS record_id")
    quarantined = lake.read("quality.quarantine").where("source = 'crm_members'").selectExpr("record_key AS record_id")
    assert truth.exceptAll(silver.union(quarantined).distinct()).count() == 0


def test_rerun_changes_nothing_and_a_new_run_finds_no_new_batch(
    spark: SparkSession, cleansed: Path, monkeypatch
) -> None:
    monkeypatch.chdir(cleansed)
    lake = Lake(spark, str(cleansed / "a"))
    versions = {name: lake.info(name).version for name in lake.tables()}
    assert cleanse_main(["--lake", str(cleansed / "a"), "--run-id", "c1"]) == 0
    assert cleanse_main(["--lake", str(cleansed / "a"), "--run-id", "c2"]) == 0
    after = {name: lake.info(name).version for name in lake.tables()}
    assert {k: v for k, v in after.items() if not k.startswith("ops.")} == {
        k: v for k, v in versions.items() if not k.startswith("ops.")
    }


def test_a_crash_then_a_rerun_gives_the_tables_of_a_clean_run(spark: SparkSession, cleansed: Path, monkeypatch) -> None:
    monkeypatch.chdir(cleansed)
    reconcile = engine.reconcile

    def crash_on_pos_orders(source, batch, **counts):
        if source.name == "pos_orders":
            raise RuntimeError("simulated crash after the silver write")
        reconcile(source, batch, **counts)

    monkeypatch.setattr(engine, "reconcile", crash_on_pos_orders)
    assert cleanse_main(["--lake", str(cleansed / "b"), "--run-id", "crashy"]) == 1
    monkeypatch.setattr(engine, "reconcile", reconcile)
    assert cleanse_main(["--lake", str(cleansed / "b"), "--run-id", "crashy"]) == 0
    clean, crashed = Lake(spark, str(cleansed / "a")), Lake(spark, str(cleansed / "b"))
    for name in [f"silver.{s}" for s in SOURCES]:
        assertDataFrameEqual(crashed.read(name), clean.read(name))
    # The file column names each lake's own copy of the landing files; everything else is equal.
    same = ["source", "batch", "record_key", "rule", "reason", "raw"]
    assertDataFrameEqual(crashed.read("quality.quarantine").select(same), clean.read("quality.quarantine").select(same))


CRM_HEADER = "会员编号,会员卡号,姓名,性别,生日,手机号,邮箱,注册门店,注册时间,会员等级,积分,微信UnionID,更新时间"


def _crm_batch(root: Path, batch: str, rows: list[str]) -> None:
    folder = root / "landing" / "crm_members" / batch
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_bytes("\n".join([CRM_HEADER, *rows]).encode("gbk"))


def test_a_record_delivered_again_in_a_later_batch_keeps_only_the_latest(
    spark: SparkSession, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    row = "{id},600{n},张三,女,1990-05-17,1380013800{n},,S0001,2024/3/5 9:07,{level},{points},,2024-03-0{n} 09:07:00"
    _crm_batch(
        tmp_path,
        "b1",
        [row.format(id="M1", n=1, level="普通会员", points=1), row.format(id="M2", n=2, level="普通会员", points=2)],
    )
    assert cleanse_main(["--lake", str(tmp_path), "--run-id", "r1"]) == 0
    _crm_batch(
        tmp_path,
        "b2",
        [row.format(id="M1", n=3, level="金卡会员", points=99), row.format(id="M3", n=4, level="普通会员", points=4)],
    )
    assert cleanse_main(["--lake", str(tmp_path), "--run-id", "r2"]) == 0
    lake = Lake(spark, str(tmp_path))
    members = {r.member_id: (r.batch, r.level, r.points) for r in lake.read("silver.crm_members").collect()}
    assert members == {"M1": ("b2", "金卡会员", 99), "M2": ("b1", "普通会员", 2), "M3": ("b2", "普通会员", 4)}
    batches = {r.batch: r for r in lake.read("quality.batches").where("source = 'crm_members'").collect()}
    assert batches["b2"].superseded == 1 and batches["b1"].superseded == 0
    # Across batches, every line is current silver, quarantined, a duplicate, or superseded later.
    total = {
        f: sum(getattr(b, f) for b in batches.values()) for f in ("lines", "quarantined", "duplicates", "superseded")
    }
    assert total["lines"] == len(members) + total["quarantined"] + total["duplicates"] + total["superseded"]
    versions = {name: lake.info(name).version for name in lake.tables() if not name.startswith("ops.")}
    assert cleanse_main(["--lake", str(tmp_path), "--run-id", "r2"]) == 0
    assert {name: lake.info(name).version for name in lake.tables() if not name.startswith("ops.")} == versions
