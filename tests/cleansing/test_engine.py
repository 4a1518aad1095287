"""The cleansing engine on hand-made landing batches, hostile ones included: nothing is ever lost."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cdp.cleansing import engine
from cdp.cleansing.sources import SOURCES, Rules
from cdp.config import load_config
from cdp.errors import DataQualityError
from cdp.lake.landing import charset_allowed

RULES = Rules(cfg=load_config("local").cleansing, today=dt.date(2026, 11, 23))
POS_HEADER = (
    "order_no,store_code,member_card,mobile,order_time,total_amount,discount_amount,paid_amount,payment_method,cashier"
)
CRM_HEADER = "会员编号,会员卡号,姓名,性别,生日,手机号,邮箱,注册门店,注册时间,会员等级,积分,微信UnionID,更新时间"


def batch(tmp_path: Path, files: dict[str, bytes]) -> str:
    folder = tmp_path / "landing" / "src" / "b1"
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return str(folder)


def run(spark: SparkSession, source_name: str, path: str, skus=("100001",)):
    source = SOURCES[source_name]
    with charset_allowed(spark, source.encoding):
        parsed = engine.read_batch(spark, source, path)
        catalogue = spark.createDataFrame([(s,) for s in skus], "sku string")
        result = engine.split(parsed, source, RULES, batch="b1", run_id="r1", known_skus=catalogue)
        silver = result.silver.collect()
        quarantine = result.quarantine.collect()
    # Nothing lost: every data line is in silver, in quarantine, or a removed duplicate.
    assert parsed.lines == len(silver) + len(quarantine) + result.duplicates
    return parsed, silver, quarantine, result


def test_pos_orders_standardised_quarantined_and_deduplicated(spark: SparkSession, tmp_path: Path) -> None:
    lines = [
        POS_HEADER,
        "P1,S0001,,+86 138 0013 8000,2025-03-04 12:33:10,¥1299.00,0.00,1299.00,微信支付,S0001-01",
        "P1,S0001,,+86 138 0013 8000,2025-03-04 12:33:10,¥1299.00,0.00,1299.00,微信支付,S0001-01",  # delivered twice
        "P2,S0001,00000000,13800000000,2025-03-05 10:00:00,10.00,0.00,10.00,现金,S0001-02",  # placeholders
        "P3,S0002,,,2025-02-30 10:00:00,10.00,0.00,10.00,现金,S0002-01",  # impossible date
        "P4,S0002,,,2025-03-05 10:00:00,10.00,0.00,-10.00,现金,S0002-01",  # negative amount
        "P5,S0002,,,2025-03-05",  # truncated in transfer
    ]
    parsed, silver, quarantine, result = run(
        spark, "pos_orders", batch(tmp_path, {"part-0.csv": "\n".join(lines).encode()})
    )
    assert parsed.lines == 6 and result.duplicates == 1
    by_id = {r.order_no: r for r in silver}
    assert set(by_id) == {"P1", "P2"}
    assert by_id["P1"].mobile == "13800138000" and str(by_id["P1"].paid_amount) == "1299.00"
    assert by_id["P1"].order_time == dt.datetime(2025, 3, 4, 4, 33, 10)  # Shanghai 12:33 is 04:33 UTC
    assert by_id["P2"].mobile is None and by_id["P2"].card_no is None
    assert {"mobile:placeholder", "id:placeholder"} <= set(by_id["P2"].issues)
    rules = {q.record_key: q.rule for q in quarantine}
    assert rules == {"P3": "bad_time", "P4": "bad_amount", "P5": "malformed"}
    assert all(q.reason and q.raw and q.file.endswith("part-0.csv") for q in quarantine)


def test_gbk_crm_file_with_chinese_headers_and_a_truncated_tail(spark: SparkSession, tmp_path: Path) -> None:
    good = (
        "M1,6001,张三,女,1990-05-17,１３８００１３８０００,LILY@QQ.COM,S0001,2024/3/5 9:07,普通会员,10,,"
        "2024-03-05 09:07:00"
    )
    body = "\n".join([CRM_HEADER, good, "M2,6002,李四,男,1990-13-01,13900139000,,S0001,2024/3/5 9:07,普通会员,5,,"])
    data = body.encode("gbk")
    truncated = data + "\nM3,6003,王".encode("gbk")[:-1]  # the last character cut in half
    _, silver, quarantine, _ = run(spark, "crm_members", batch(tmp_path, {"part-0.csv": truncated}))
    members = {r.member_id: r for r in silver}
    assert members["M1"].name == "张三" and members["M1"].gender == "F"
    assert members["M1"].mobile == "13800138000" and members["M1"].email == "lily@qq.com"
    assert members["M1"].registered_at == dt.datetime(2024, 3, 5, 1, 7)
    assert members["M2"].birthday is None and "birthday:unparseable" in members["M2"].issues
    assert [q.rule for q in quarantine] == ["malformed"]


def test_json_lines_with_broken_lines_and_unknown_skus(spark: SparkSession, tmp_path: Path) -> None:
    good = {"event_id": "E1", "device_id": "D1", "event": "view", "sku": "100001", "ts": "1741062790123"}
    lines = [
        json.dumps(good),
        json.dumps({**good, "event_id": "E2", "sku": "X0001"}),
        json.dumps({**good, "event_id": "E3"})[:30],  # cut short
        json.dumps({**good, "event_id": "E4", "ts": "0"}),  # 1970: implausible
        "",  # a blank line carries nothing
    ]
    _, silver, quarantine, _ = run(spark, "app_events", batch(tmp_path, {"part-0.json": "\n".join(lines).encode()}))
    assert [r.event_id for r in silver] == ["e1"]
    assert {q.record_key: q.rule for q in quarantine} == {"e2": "unknown_sku", "E3": "malformed", "e4": "bad_time"}


def test_an_empty_file_is_no_rows_and_no_error(spark: SparkSession, tmp_path: Path) -> None:
    ok = "\n".join([POS_HEADER, "P1,S0001,,,2025-03-04 12:33:10,1.00,0.00,1.00,现金,S1"]).encode()
    parsed, silver, quarantine, _ = run(spark, "pos_orders", batch(tmp_path, {"part-0.csv": ok, "part-1.csv": b""}))
    assert parsed.lines == 1 and len(silver) == 1 and not quarantine


def test_a_missing_required_column_names_file_and_column(spark: SparkSession, tmp_path: Path) -> None:
    header = POS_HEADER.replace("paid_amount,", "")
    path = batch(tmp_path, {"part-7.csv": f"{header}\nP1,S1,,,2025-03-04 12:33:10,1,0,现金,S1".encode()})
    with pytest.raises(DataQualityError, match=r"part-7\.csv: required column paid_amount missing"):
        run(spark, "pos_orders", path)


def test_ten_times_the_columns_is_reported_drift_and_parsed_by_name(spark: SparkSession, tmp_path: Path) -> None:
    extra = [f"extra_{i}" for i in range(90)]
    header = ",".join(extra[:45] + POS_HEADER.split(",") + extra[45:])
    row = ",".join(
        ["x"] * 45
        + ["P1", "S0001", "", "13800138000", "2025-03-04 12:33:10", "1.00", "0.00", "1.00", "现金", "S1"]
        + ["y"] * 45
    )
    parsed, silver, _, _ = run(spark, "pos_orders", batch(tmp_path, {"part-0.csv": f"{header}\n{row}".encode()}))
    assert parsed.drift == sorted(extra)
    assert silver[0].order_no == "P1" and silver[0].mobile == "13800138000"


def test_binary_garbage_is_one_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    ok = "\n".join([POS_HEADER, "P1,S0001,,,2025-03-04 12:33:10,1.00,0.00,1.00,现金,S1"]).encode()
    garbage = bytes(range(256)) * 40
    path = batch(tmp_path, {"part-0.csv": ok, "part-9.csv": garbage})
    with pytest.raises(DataQualityError, match=r"part-9\.csv: required column"):
        run(spark, "pos_orders", path)


def test_binary_garbage_lines_in_json_are_quarantined(spark: SparkSession, tmp_path: Path) -> None:
    good = json.dumps({"event_id": "E1", "device_id": "D1", "event": "view", "sku": "100001", "ts": "1741062790123"})
    garbage = bytes(b for b in range(256) if b != 10) + b"\n" + bytes(range(11, 200))
    parsed, silver, quarantine, _ = run(
        spark, "app_events", batch(tmp_path, {"part-0.json": good.encode() + b"\n" + garbage})
    )
    # \r inside the garbage splits it into more lines; each one is quarantined, none lost.
    assert len(silver) == 1 and {q.rule for q in quarantine} == {"malformed"} and parsed.lines == 1 + len(quarantine)


def test_json_without_a_required_field_names_the_file_and_field(spark: SparkSession, tmp_path: Path) -> None:
    lines = [
        json.dumps({"event_id": f"E{i}", "event": "view", "sku": "100001", "ts": "1741062790123"}) for i in range(3)
    ]
    path = batch(tmp_path, {"part-3.json": "\n".join(lines).encode()})
    with pytest.raises(DataQualityError, match=r"part-3\.json: required field device_id missing from every record"):
        run(spark, "app_events", path)
