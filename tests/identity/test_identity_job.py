"""`cdp run identity` on generated, cleansed data: coverage, accuracy against the truth, stable re-runs, gates."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp.identity.evaluate import evaluate, recall_ceiling
from cdp.identity.identifiers import person_sources
from cdp.identity.job import EVENTS, HYGIENE_REPORT, METRICS, ONEID_MAP
from cdp.identity.job import main as identity_main
from cdp.lake import Lake


@pytest.fixture(scope="module")
def resolved(resolved_lake: Path) -> Path:
    return resolved_lake


def _silver_records(lake: Lake) -> DataFrame:
    parts = [
        lake.read(f"silver.{s.name}").select(F.lit(s.name).alias("source"), F.col(s.record_id).alias("record_id"))
        for s in person_sources("").values()
    ]
    return functools.reduce(DataFrame.unionByName, parts)


def test_every_silver_record_has_exactly_one_one_id(spark: SparkSession, resolved: Path) -> None:
    lake = Lake(spark, str(resolved))
    mapping = lake.read(ONEID_MAP)
    assert mapping.where(F.col("one_id").isNull()).count() == 0
    assertDataFrameEqual(mapping.select("source", "record_id"), _silver_records(lake))


def test_precision_and_recall_against_the_truth(spark: SparkSession, resolved: Path) -> None:
    lake = Lake(spark, str(resolved))
    truth = lake.read("truth.person_records")
    result = evaluate(lake.read(ONEID_MAP), truth)
    ceiling = recall_ceiling(lake.read(ONEID_MAP), lake.read("identity.edges"), truth)
    assert result.only_in_map == 0
    assert result.precision >= 0.97
    # Records that share no identifier with the rest of their person cannot be linked by anyone:
    # the resolver must reach what the identifiers reveal, less what hygiene has to give up. (It
    # may pass the ceiling a little: a wrong merge can also join two parts of one person.)
    assert result.recall >= ceiling - 0.01


def test_store_phones_are_blocked_with_their_would_be_effect(spark: SparkSession, resolved: Path) -> None:
    lake = Lake(spark, str(resolved))
    store_phones = {r.phone for r in lake.read("silver.stores").collect()}
    report = lake.read(HYGIENE_REPORT).collect()
    blocked = [r for r in report if r.rule == "blocklist:table"]
    typed = lake.read("silver.pos_orders").where(F.col("mobile").isin(*store_phones))
    assert {r.value_masked for r in blocked} == {
        f"{p[:3]}****{p[-4:]}" for p in {r.mobile for r in typed.select("mobile").distinct().collect()}
    }
    assert sum(r.records for r in blocked) == typed.count()
    # Walk-in customers of different persons: each store phone would have merged many of them.
    assert all(r.would_join > 1 for r in blocked)
    assert all(r.value_masked.count("*") == 4 for r in report if r.id_type == "mobile")


def test_a_rerun_keeps_every_id_and_records_no_event(spark: SparkSession, resolved: Path) -> None:
    lake = Lake(spark, str(resolved))
    before = lake.read(ONEID_MAP).localCheckpoint()
    assert identity_main(["--lake", str(resolved), "--run-id", "i2"]) == 0
    assertDataFrameEqual(lake.read(ONEID_MAP), before)
    assert lake.read(EVENTS).where(F.col("run_id") == "i2").count() == 0
    # The same run again (as after a crash) commits nothing new.
    version = lake.info(ONEID_MAP).version
    assert identity_main(["--lake", str(resolved), "--run-id", "i2"]) == 0
    assert lake.info(ONEID_MAP).version == version


def test_a_gate_stops_the_job_before_the_map_is_replaced(
    spark: SparkSession, resolved: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    base = Path(__file__).resolve().parents[2] / "conf"
    (conf / "base.yaml").write_text((base / "base.yaml").read_text())
    (conf / "gated.yaml").write_text(
        (base / "local.yaml").read_text() + "identity:\n  gates:\n    max_component_records: 5\n"
    )
    lake = Lake(spark, str(resolved))
    version = lake.info(ONEID_MAP).version
    code = identity_main(["--lake", str(resolved), "--run-id", "gated", "--conf-dir", str(conf), "--env", "gated"])
    assert code == 2
    assert "identity.oneid_map was not replaced" in caplog.text
    assert HYGIENE_REPORT in caplog.text
    assert lake.info(ONEID_MAP).version == version
    metrics = lake.read(METRICS).where(F.col("run_id") == "gated").first()
    assert metrics is not None and metrics.largest_component > 5
    assert metrics.engine in {"builtin", "graphframes"}  # the engine that ran, never `auto`
