"""Expectation suites: every file loads whole and fits its schema; validation gates on critical failures only."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from cdp.cleansing import standardise as std
from cdp.errors import DataQualityError
from cdp.quality.validation import (
    VALIDATION_RUNS_SCHEMA,
    Outcome,
    Report,
    default_expectations_dir,
    load_suite,
    mask,
    raise_on_critical,
    report_rows,
    validate,
)
from cdp.schemas import RECORD_KEY, SILVER

EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"
SUITE_FILES = sorted(EXPECTATIONS.glob("*.json"))
REGISTERED = dt.datetime(2024, 5, 1, 2, 30)


def columns_of(kwargs: dict[str, Any]) -> list[str]:
    return [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))


def members(spark: SparkSession, *rows: dict[str, Any]) -> DataFrame:
    """crm_members rows: unnamed columns are null, every row gets a batch."""
    schema = SILVER["crm_members"]
    full = [{"batch": "b-001", **row} for row in rows]
    return spark.createDataFrame([tuple(r.get(n) for n in schema.fieldNames()) for r in full], schema)


def clean_members(spark: SparkSession) -> DataFrame:
    return members(
        spark,
        {
            "member_id": "M0000000001",
            "name": "王芳",
            "gender": "F",
            "mobile": "13800138000",
            "registered_at": REGISTERED,
        },
        {"member_id": "M0000000002", "name": "Li Lei", "email": "li.lei@example.com", "registered_at": REGISTERED},
        {"member_id": "M0000000003", "name": "张伟", "gender": "M", "registered_at": REGISTERED},  # no contact: fine
    )


def test_every_silver_table_has_a_suite_file() -> None:
    assert [p.stem for p in SUITE_FILES] == sorted(f"silver.{t}" for t in SILVER)


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_suite_file_loads_whole_and_fits_its_schema(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    table = path.stem.removeprefix("silver.")
    suite = load_suite(path.stem, EXPECTATIONS)

    assert suite.name == raw["name"] == path.stem
    assert 4 <= len(raw["expectations"]) <= 10
    assert [e.expectation_type for e in suite.expectations] == [e["type"] for e in raw["expectations"]]
    assert [e["severity"] for e in raw["expectations"]] == [e.severity.value for e in suite.expectations]
    assert {e["severity"] for e in raw["expectations"]} <= {"critical", "warning"}
    named = {c for e in raw["expectations"] for c in columns_of(e["kwargs"])}
    assert named <= set(SILVER[table].fieldNames()), named - set(SILVER[table].fieldNames())


@pytest.mark.parametrize("table", sorted(SILVER))
def test_record_key_and_batch_are_critical(table: str) -> None:
    critical = {
        (e["type"], tuple(columns_of(e["kwargs"])))
        for e in json.loads((EXPECTATIONS / f"silver.{table}.json").read_text(encoding="utf-8"))["expectations"]
        if e["severity"] == "critical"
    }
    key = RECORD_KEY[table]
    unique = "expect_column_values_to_be_unique" if len(key) == 1 else "expect_compound_columns_to_be_unique"
    assert (unique, tuple(key)) in critical
    for column in [*key, "batch"]:
        assert ("expect_column_values_to_not_be_null", (column,)) in critical


def test_suite_regexes_are_the_cleansing_ones() -> None:
    regexes = {
        (path.stem, e["kwargs"]["column"]): e["kwargs"]["regex"]
        for path in SUITE_FILES
        for e in json.loads(path.read_text(encoding="utf-8"))["expectations"]
        if e["type"] == "expect_column_values_to_match_regex"
    }
    assert regexes == {
        ("silver.crm_members", "mobile"): std.MOBILE,
        ("silver.crm_members", "email"): std.EMAIL,
        ("silver.ecom_orders", "receiver_mobile"): std.MOBILE,
        ("silver.pos_orders", "mobile"): std.MOBILE,
        ("silver.wechat_users", "mobile"): std.MOBILE,
    }


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("{not json", "not readable JSON"),
        ('{"name": "silver.other", "expectations": []}', "not a GX suite named"),
        # GX's ExpectationSuite(**json) would log this one and silently drop it.
        ('{"name": "silver.t", "expectations": [{"type": "expect_no_such_thing", "kwargs": {}}]}', "expectation 0"),
        ('{"name": "silver.t", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {}}]}', "0"),
        (
            '{"name": "silver.t", "expectations": [{"type": "expect_column_values_to_not_be_null", '
            '"kwargs": {"column": "a"}, "severity": "info"}]}',
            "severity 'info'",
        ),
    ],
)
def test_a_bad_suite_file_is_an_error_naming_it(tmp_path: Path, content: str | None, problem: str) -> None:
    if content is not None:
        (tmp_path / "silver.t.json").write_text(content, encoding="utf-8")
    with pytest.raises(DataQualityError, match=problem) as caught:
        load_suite("silver.t", tmp_path)
    assert str(tmp_path / "silver.t.json") in str(caught.value)


def test_expectations_dir_defaults_to_the_repository_and_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CDP_EXPECTATIONS_DIR", raising=False)
    assert default_expectations_dir() == EXPECTATIONS
    monkeypatch.setenv("CDP_EXPECTATIONS_DIR", str(tmp_path))
    assert default_expectations_dir() == tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13800138000", "<mobile>"),
        ("Foo.Bar@Example.COM", "<email>"),
        ("021-55551234", "<phone>"),  # landline: logs keep it, samples do not
        ("0212345678", "<phone>"),
        ("612345678901", "<phone>"),  # 12-digit member card
        ("M0123456789", "M0123456789"),  # an id, not a phone
        ("202411230001234", "202411230001234"),  # 15-digit order number, as in the logs
        ("2024-11-23 10:00:00", "2024-11-23 10:00:00"),
        ("123456", "123456"),
        ("order_no=P1, line_no=1", "order_no=P1, line_no=1"),
    ],
)
def test_mask(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_clean_members_pass(spark: SparkSession) -> None:
    report = validate(clean_members(spark), "silver.crm_members", run_id="run-1")

    assert [o for o in report.outcomes if not o.success] == []
    assert report.success
    assert (report.suite, report.run_id) == ("silver.crm_members", "run-1")
    assert len(report.outcomes) == len(load_suite("silver.crm_members").expectations)
    assert all(o.success and o.unexpected_count == 0 for o in report.outcomes)
    raise_on_critical(report)


def test_duplicate_member_fails_critically_with_masked_sample_and_docs(spark: SparkSession, tmp_path: Path) -> None:
    # A CRM that used the mobile as member id: the duplicate key is personal data.
    df = clean_members(spark).unionByName(
        members(spark, {"member_id": "13912345678", "name": "甲"}, {"member_id": "13912345678", "name": "乙"})
    )
    docs = tmp_path / "docs"
    report = validate(df, "silver.crm_members", run_id="run-2", docs_dir=str(docs))

    assert not report.success
    assert report.critical_failures == [
        Outcome("expect_column_values_to_be_unique", "member_id", "critical", False, 2, ["<mobile>"])
    ]
    with pytest.raises(DataQualityError) as caught:
        raise_on_critical(report)
    message = str(caught.value)
    for part in ("silver.crm_members", "run-2", "expect_column_values_to_be_unique", "member_id", "2 unexpected"):
        assert part in message
    assert "<mobile>" in message
    assert "13912345678" not in message

    pages = list((docs / "silver.crm_members").rglob("*.html"))
    assert (docs / "silver.crm_members" / "index.html") in pages
    assert any("validations" in p.parts for p in pages)
    assert not [p for p in pages if "13912345678" in p.read_text(encoding="utf-8")]


def test_docs_of_two_tables_share_a_folder(spark: SparkSession, tmp_path: Path) -> None:
    validate(clean_members(spark), "silver.crm_members", run_id="run-6", docs_dir=str(tmp_path))
    stores = spark.createDataFrame([("S001", "徐汇店", "上海", "上海", None, None, None, "b-001")], SILVER["stores"])
    validate(stores, "silver.stores", run_id="run-6", docs_dir=str(tmp_path))

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/index.html")) == [
        "silver.crm_members/index.html",
        "silver.stores/index.html",
    ]
    assert len(list(tmp_path.glob("silver.crm_members/validations/**/*.html"))) == 1


def test_a_landline_in_the_mobile_column_is_masked(spark: SparkSession) -> None:
    df = members(spark, {"member_id": "M1", "name": "a", "mobile": "02155551234", "registered_at": REGISTERED})
    report = validate(df, "silver.crm_members", run_id="run-3")

    (failure,) = report.critical_failures
    assert (failure.expectation, failure.column, failure.sample) == (
        "expect_column_values_to_match_regex",
        "mobile",
        ["<phone>"],
    )
    with pytest.raises(DataQualityError, match="1 unexpected, sample \\['<phone>'\\]"):
        raise_on_critical(report)


def test_warning_only_failure_is_recorded_and_does_not_raise(spark: SparkSession) -> None:
    df = members(
        spark,
        {"member_id": "M1", "name": "a", "registered_at": REGISTERED},
        {"member_id": "M2", "name": None, "registered_at": REGISTERED},
        {"member_id": "M3", "name": None, "registered_at": REGISTERED},
    )
    report = validate(df, "silver.crm_members", run_id="run-4")

    assert not report.success
    assert report.critical_failures == []
    assert report.warnings == [Outcome("expect_column_values_to_not_be_null", "name", "warning", False, 2, ["null"])]
    raise_on_critical(report)


def test_report_rows_fit_the_validation_runs_table(spark: SparkSession) -> None:
    at = dt.datetime(2026, 9, 30, 1, 0, tzinfo=dt.UTC)
    report = Report(
        "silver.stores",
        "run-5",
        False,
        [
            Outcome("expect_column_values_to_be_unique", "store_id", "critical", False, 2, ["S1"]),
            Outcome("expect_column_values_to_not_be_null", "city", "warning", True, 0, []),
            Outcome("expect_column_values_to_not_be_null", "qty", "warning", False, None, []),  # could not run
        ],
        1.5,
        at,
    )
    got = spark.createDataFrame(report_rows(report, table="silver.stores"), VALIDATION_RUNS_SCHEMA)
    expected = spark.createDataFrame(
        [
            ("run-5", "silver.stores", "silver.stores", "expect_column_values_to_be_unique", "store_id", "critical",
             False, 2, '["S1"]', at),
            ("run-5", "silver.stores", "silver.stores", "expect_column_values_to_not_be_null", "city", "warning",
             True, 0, "[]", at),
            ("run-5", "silver.stores", "silver.stores", "expect_column_values_to_not_be_null", "qty", "warning",
             False, None, "[]", at),
        ],
        VALIDATION_RUNS_SCHEMA,
    )  # fmt: skip
    assertDataFrameEqual(got, expected)
