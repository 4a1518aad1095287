"""Standardisation rules as pure `Column -> Column` functions on native Spark functions (no UDFs).

Each function returns the canonical value, or null when the input cannot be made canonical; the
companion `*_issue` functions say why a non-null input came out null, for flags and quarantine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

# Full-width ASCII (U+FF01-U+FF5E) and the ideographic space, as typed with a Chinese IME.
_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "

MOBILE = r"^1[3-9][0-9]{9}$"
MASKED_MOBILE = r"^1[0-9]{2}\*{3,5}[0-9]{3,4}$"
EMAIL = r"^[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
DATE_FORMATS = ("yyyy-MM-dd", "yyyy/M/d", "yyyyMMdd", "yyyy.M.d", "yyyy-M-d")
TIMESTAMP_FORMATS = (
    "yyyy-MM-dd HH:mm:ss",
    "yyyy/M/d H:mm",
    "yyyy/M/d H:mm:ss",
    "yyyy-MM-dd'T'HH:mm:ss",
    "yyyy-MM-dd HH:mm",
)
ZONED_FORMATS = ("yyyy-MM-dd'T'HH:mm:ssXXX", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "yyyy-MM-dd HH:mm:ssXXX")
EARLIEST_BIRTHDAY = dt.date(1900, 1, 1)


def half_width(c: Column) -> Column:
    """Full-width letters, digits, signs and the ideographic space as their ASCII forms."""
    return F.translate(c, _FULL, _HALF)


def blank_to_null(c: Column) -> Column:
    trimmed = F.trim(c)
    return F.when(trimmed == "", None).otherwise(trimmed)


def _mobile_digits(c: Column) -> Column:
    """Separators and the +86 / 0086 / 86 country prefix removed."""
    compact = F.regexp_replace(half_width(c), r"[\s\-().]", "")
    return F.regexp_replace(compact, r"^(\+86|0086|86)(?=1[0-9]{10}$)", "")


def mobile(c: Column) -> Column:
    """A Chinese mobile as 11 digits (`1[3-9]` + 9 digits), or null (masked numbers included)."""
    digits = _mobile_digits(c)
    return F.when(digits.rlike(MOBILE), digits)


def mobile_issue(c: Column) -> Column:
    """`masked` (138****1234), `invalid`, or null when the mobile is valid or absent."""
    digits = _mobile_digits(c)
    return (
        F.when(blank_to_null(c).isNull(), None)
        .when(digits.rlike(MASKED_MOBILE), "masked")
        .when(~digits.rlike(MOBILE), "invalid")
    )


def email(c: Column) -> Column:
    """Trimmed, lower-cased e-mail address, or null when its syntax is wrong."""
    value = F.lower(F.regexp_replace(half_width(c), r"\s", ""))
    return F.when(value.rlike(EMAIL), value)


def email_issue(c: Column) -> Column:
    return F.when(blank_to_null(c).isNotNull() & email(c).isNull(), "invalid")


def name(c: Column) -> Column:
    """Half-width, single-spaced, trimmed; spaces inside Chinese names removed; blank is null."""
    value = F.regexp_replace(half_width(c), r"\s+", " ")
    value = F.regexp_replace(value, r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "")
    return blank_to_null(value)


def gender(c: Column) -> Column:
    """`F`, `M` or null from 男/女, M/F, male/female, 1/2 (the WeChat and most CRM codes)."""
    value = F.upper(F.trim(half_width(c.cast("string"))))
    return F.when(value.isin("男", "M", "MALE", "1"), "M").when(value.isin("女", "F", "FEMALE", "2"), "F")


def _first(parsers: Sequence[Column]) -> Column:
    return F.coalesce(*parsers)


def date(c: Column, formats: Sequence[str] = DATE_FORMATS) -> Column:
    """The first format that parses (impossible dates such as 2025-02-30 parse with none)."""
    value = F.trim(half_width(c))
    return _first([F.try_to_date(value, fmt) for fmt in formats])


def birthday(c: Column, *, as_of: dt.date) -> Column:
    """A date of birth between 1900-01-01 and `as_of`, or null."""
    parsed = date(c)
    return F.when(parsed.between(F.lit(EARLIEST_BIRTHDAY), F.lit(as_of)), parsed)


def birthday_issue(c: Column, *, as_of: dt.date) -> Column:
    """`unparseable`, `implausible` (before 1900 or after `as_of`), or null."""
    parsed = date(c)
    return (
        F.when(blank_to_null(c).isNull(), None)
        .when(parsed.isNull(), "unparseable")
        .when(~parsed.between(F.lit(EARLIEST_BIRTHDAY), F.lit(as_of)), "implausible")
    )


def money(c: Column) -> Column:
    """`¥1,299.00`, `RMB 12.5`, `-3.00` as decimal(18,2); null when it is not a number."""
    value = F.regexp_replace(half_width(c.cast("string")), r"[¥￥,\s]|RMB|CNY|元", "")
    return F.when(value.rlike(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"), value.try_cast("decimal(18,2)"))


def money_from_fen(c: Column) -> Column:
    """An integer amount in fen (hundredths of a yuan) as decimal(18,2)."""
    return (c.cast("decimal(20,0)") / 100).cast("decimal(18,2)")


def local_timestamp(c: Column, *, zone: str = "Asia/Shanghai") -> Column:
    """A timestamp string to a UTC timestamp: with an offset it is exact; without, it is local time in `zone`."""
    value = F.trim(half_width(c))
    zoned = _first([F.try_to_timestamp(value, F.lit(fmt)) for fmt in ZONED_FORMATS])
    naive = _first([F.try_to_timestamp(value, F.lit(fmt)) for fmt in TIMESTAMP_FORMATS])
    return F.coalesce(zoned, F.to_utc_timestamp(naive, zone))


def epoch_timestamp(c: Column, *, unit: str) -> Column:
    """Epoch `seconds` or `millis` (numbers or numeric strings) as a UTC timestamp."""
    number = F.trim(c.cast("string")).try_cast("long")
    return F.timestamp_seconds(number) if unit == "seconds" else F.timestamp_millis(number)


def plausible_time(ts: Column, *, earliest: dt.date, latest: dt.date) -> Column:
    """`ts` when it lies in [earliest, latest + 1 day), else null."""
    return F.when((ts >= F.lit(earliest)) & (ts < F.lit(latest + dt.timedelta(days=1))), ts)


def identifier(c: Column) -> Column:
    """IDs (member ids, cards, SKUs, order numbers) trimmed, half-width and upper-cased; blank is null."""
    return blank_to_null(F.upper(half_width(c.cast("string"))))


def placeholder(c: Column, values: Sequence[str]) -> Column:
    """True where the (already standardised) value is on the blocklist."""
    return c.isin(*values) if values else F.lit(False)
