"""Each standardisation rule on its own: inputs and expected outputs side by side, nulls and edge cases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from cdp.cleansing import standardise as std

AS_OF = dt.date(2026, 9, 30)


def apply(spark: SparkSession, rule: Callable[[Column], Column], cases: list[tuple], input_type: str = "string"):
    """Run `rule` over the inputs of `cases` in one DataFrame; return (input, expected, got) rows."""
    df = spark.createDataFrame([(i, c[0]) for i, c in enumerate(cases)], f"i int, v {input_type}")
    got = {r.i: r.out for r in df.select("i", rule(F.col("v")).alias("out")).collect()}
    return [(c[0], c[1], got[i]) for i, c in enumerate(cases)]


def check(spark: SparkSession, rule: Callable[[Column], Column], cases: list[tuple], input_type: str = "string"):
    wrong = [
        (given, expected, got) for given, expected, got in apply(spark, rule, cases, input_type) if got != expected
    ]
    assert not wrong, "input, expected, got: " + repr(wrong)


def test_mobile(spark: SparkSession) -> None:
    check(
        spark,
        std.mobile,
        [
            ("13800138000", "13800138000"),
            ("+86 138 0013 8000", "13800138000"),
            ("0086-13800138000", "13800138000"),
            ("+8613800138000", "13800138000"),
            ("8613800138000", "13800138000"),
            ("138-0013-8000", "13800138000"),
            ("１３８００１３８０００", "13800138000"),  # full-width digits
            (" 13800138000 ", "13800138000"),
            ("(138) 0013 8000", "13800138000"),
            ("138****8000", None),  # masked: never an identifier
            ("12800138000", None),  # second digit must be 3-9
            ("1380013800", None),  # 10 digits
            ("138001380001", None),  # 12 digits
            ("021-64381234", None),  # landline
            ("", None),
            (None, None),
        ],
    )


def test_mobile_issue(spark: SparkSession) -> None:
    check(
        spark,
        std.mobile_issue,
        [
            ("13800138000", None),
            ("+86 138 0013 8000", None),
            ("138****1234", "masked"),
            ("１３８＊＊＊＊１２３４", "masked"),
            ("12345", "invalid"),
            ("", None),
            (None, None),
        ],
    )


def test_email(spark: SparkSession) -> None:
    check(
        spark,
        std.email,
        [
            ("lily123@qq.com", "lily123@qq.com"),
            ("  LILY123@QQ.COM ", "lily123@qq.com"),
            ("Lily.Wang+cdp@Mail.Example.cn", "lily.wang+cdp@mail.example.cn"),
            ("ｌｉｌｙ＠ｑｑ．ｃｏｍ", "lily@qq.com"),  # full-width
            ("lily@qq", None),
            ("lily@@qq.com", None),
            ("@qq.com", None),
            ("lily qq.com", None),
            ("", None),
            (None, None),
        ],
    )


def test_name(spark: SparkSession) -> None:
    check(
        spark,
        std.name,
        [
            ("张三", "张三"),
            (" 张 三 ", "张三"),
            ("张\u3000三", "张三"),  # ideographic space
            ("Ｌｉｌｙ  Ｗａｎｇ", "Lily Wang"),
            ("  ", None),
            (None, None),
        ],
    )


def test_gender(spark: SparkSession) -> None:
    check(
        spark,
        std.gender,
        [
            ("男", "M"),
            ("女", "F"),
            ("M", "M"),
            ("f", "F"),
            ("Female", "F"),
            ("1", "M"),
            ("2", "F"),
            ("0", None),
            ("", None),
            (None, None),
        ],
    )


def test_birthday(spark: SparkSession) -> None:
    check(
        spark,
        lambda c: std.birthday(c, as_of=AS_OF),
        [
            ("1990-05-17", dt.date(1990, 5, 17)),
            ("1990/5/7", dt.date(1990, 5, 7)),
            ("19900517", dt.date(1990, 5, 17)),
            ("1990.5.17", dt.date(1990, 5, 17)),
            ("2025-02-30", None),  # no such day
            ("1990-13-01", None),
            ("2099-01-01", None),  # after as-of
            ("1899-12-31", None),
            ("00000000", None),
            ("", None),
            (None, None),
        ],
    )
    check(
        spark,
        lambda c: std.birthday_issue(c, as_of=AS_OF),
        [("1990-05-17", None), ("2025-02-30", "unparseable"), ("2099-01-01", "implausible"), ("", None), (None, None)],
    )


def test_money(spark: SparkSession) -> None:
    check(
        spark,
        std.money,
        [
            ("1299.00", Decimal("1299.00")),
            ("¥1,299.00", Decimal("1299.00")),
            ("￥ 12.5", Decimal("12.50")),
            ("RMB 88", Decimal("88.00")),
            ("-3.00", Decimal("-3.00")),
            ("12.5元", Decimal("12.50")),
            ("abc", None),
            ("1.2.3", None),
            ("", None),
            (None, None),
        ],
    )
    check(spark, std.money_from_fen, [(129900, Decimal("1299.00")), (5, Decimal("0.05")), (None, None)], "long")


def test_local_timestamp_is_shanghai_time_in_utc(spark: SparkSession) -> None:
    utc = dt.datetime
    check(
        spark,
        std.local_timestamp,
        [
            ("2025-03-04 12:33:10", utc(2025, 3, 4, 4, 33, 10)),
            ("2025/3/4 9:07", utc(2025, 3, 4, 1, 7)),
            ("2025-03-04T12:33:10+08:00", utc(2025, 3, 4, 4, 33, 10)),
            ("2025-03-04T04:33:10Z", utc(2025, 3, 4, 4, 33, 10)),
            ("2025-01-01 03:00:00", utc(2024, 12, 31, 19, 0)),  # crosses the year in UTC
            ("2025-02-30 12:00:00", None),
            ("2025-02-30T12:00:00+08:00", None),
            ("yesterday", None),
            (None, None),
        ],
    )


def test_epoch_timestamp(spark: SparkSession) -> None:
    check(
        spark,
        lambda c: std.epoch_timestamp(c, unit="seconds"),
        [("1741062790", dt.datetime(2025, 3, 4, 4, 33, 10)), ("x", None), (None, None)],
    )
    check(
        spark,
        lambda c: std.epoch_timestamp(c, unit="millis"),
        [("1741062790123", dt.datetime(2025, 3, 4, 4, 33, 10, 123000)), (None, None)],
    )


def test_plausible_time(spark: SparkSession) -> None:
    rule = lambda c: std.plausible_time(c, earliest=dt.date(2000, 1, 1), latest=AS_OF)  # noqa: E731
    check(
        spark,
        rule,
        [
            (dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 1)),
            (dt.datetime(2026, 9, 30, 23, 59), dt.datetime(2026, 9, 30, 23, 59)),
            (dt.datetime(2026, 10, 1), None),
            (dt.datetime(1970, 1, 1), None),
            (None, None),
        ],
        "timestamp",
    )


def test_identifier_and_placeholder(spark: SparkSession) -> None:
    check(spark, std.identifier, [(" m0001 ", "M0001"), ("ｓｋｕ１", "SKU1"), ("  ", None), (None, None)])
    check(
        spark,
        lambda c: std.placeholder(std.mobile(c), ["13800000000"]),
        [("138 0000 0000", True), ("13800138000", False), (None, None)],
    )


@pytest.mark.parametrize("rule", [std.mobile, std.email, std.name, std.gender, std.identifier])
def test_rules_are_idempotent(spark: SparkSession, rule) -> None:
    raw = ["+86 138 0013 8000", " LILY@QQ.COM", "张 三", "女", " m1 ", None, ""]
    df = spark.createDataFrame([(v,) for v in raw], "v string").select(rule(F.col("v")).alias("once"))
    twice = df.select("once", rule(F.col("once")).alias("twice")).collect()
    assert all(r.once == r.twice for r in twice)
