"""Damage as channels do it, as `Column -> Column` functions, plus line-level damage of a delivery.

Each function applies its damage to the rows whose draw falls under the rate; the others pass
through unchanged, so measured rates in the output match the configured ones.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp.generate import vocab
from cdp.generate.params import Noise
from cdp.generate.rand import Rng, pick

FULL_WIDTH = "０１２３４５６７８９"


class RecordNoise:
    """The damage one record takes: every draw keyed by the record, every rate from `Noise`."""

    def __init__(self, rng: Rng, rates: Noise, *key: Column) -> None:
        self.rng, self.rates, self.key = rng, rates, key

    def u(self, purpose: str) -> Column:
        return self.rng.uniform(purpose, *self.key)

    def phone(self, mobile: Column) -> Column:
        """Sometimes written a non-canonical way."""
        return maybe(
            self.u("mobile-variant") < self.rates.variant_rate, phone_variant(mobile, self.u("mobile-form")), mobile
        )

    def email(self, email: Column) -> Column:
        return maybe(
            self.u("email-variant") < self.rates.variant_rate, email_variant(email, self.u("email-form")), email
        )

    def name(self, name: Column) -> Column:
        """Sometimes typed with one wrong character."""
        return maybe(self.u("typo") < self.rates.typo_rate, typo(name, self.u("typo-pos"), self.u("typo-char")), name)

    def missing(self, value: Column, field: str) -> Column:
        """Sometimes left empty."""
        return F.when(self.u(f"{field}-missing") < self.rates.missing_rate, None).otherwise(value)

    def date_text(self, text: Column, year: Column, *, time: Column | None = None) -> Column:
        """A date string, sometimes impossible (`time` is appended to the impossible date as it is)."""
        bad = impossible_date(year, self.u("bad-date-form"))
        return self._bad_date(text, bad if time is None else F.concat(bad, time))

    def epoch(self, value: Column, *, per_second: int) -> Column:
        """An epoch time, sometimes impossible: 0 (1970) or 2100-01-01."""
        bad = F.when(self.u("bad-date-form") < 0.5, F.lit(0)).otherwise(F.lit(4_102_444_800 * per_second))
        return self._bad_date(value, bad)

    def amount(self, amount: Column) -> Column:
        """Sometimes negative."""
        return F.when(self.u("negative") < self.rates.negative_amount_rate, -amount).otherwise(amount)

    def sku(self, sku: Column) -> Column:
        """Sometimes a SKU the catalogue does not have."""
        unknown = F.concat(
            F.lit("X"), F.lpad(self.rng.integer(0, 99999, "unknown-sku-id", *self.key).cast("string"), 5, "0")
        )
        return F.when(self.u("unknown-sku") < self.rates.unknown_sku_rate, unknown).otherwise(sku)

    def _bad_date(self, value: Column, bad: Column) -> Column:
        return F.when(self.u("bad-date") < self.rates.bad_date_rate, bad).otherwise(value)


def phone_variant(mobile: Column, u: Column) -> Column:
    """A canonical 11-digit mobile written one of the ways people and systems write it."""
    a, b, c = F.substring(mobile, 1, 3), F.substring(mobile, 4, 4), F.substring(mobile, 8, 4)
    forms = [
        F.concat(F.lit("+86 "), a, F.lit(" "), b, F.lit(" "), c),  # +86 138 0013 8000
        F.concat(F.lit("0086-"), mobile),  # 0086-13800138000
        F.concat(F.lit("+86"), mobile),
        F.concat(a, F.lit("-"), b, F.lit("-"), c),
        F.concat(a, F.lit(" "), b, F.lit(" "), c),
        F.translate(mobile, "0123456789", FULL_WIDTH),  # full-width digits from a Chinese IME
        F.concat(F.lit(" "), mobile, F.lit(" ")),
    ]
    return _one_of(forms, u)


def email_variant(email: Column, u: Column) -> Column:
    """An email written with upper case or stray spaces."""
    forms = [
        F.upper(email),
        F.concat(F.lit(" "), email, F.lit(" ")),
        F.concat(F.upper(F.substring(email, 1, 1)), F.substring(email, 2, 1000)),
        F.concat(F.upper(email), F.lit(" ")),
    ]
    return _one_of(forms, u)


def typo(name: Column, u_position: Column, u_char: Column) -> Column:
    """`name` with one character replaced by a look-alike or another common character."""
    length = F.greatest(F.char_length(name), F.lit(1))
    pos = (F.floor(u_position * length) + 1).cast("int")
    original = F.substring(name, pos, 1)
    look_alike = F.translate(original, vocab.TYPO_FROM, vocab.TYPO_TO)
    other = pick(vocab.GIVEN_FEMALE + vocab.GIVEN_MALE, u_char)
    fallback = F.when(other == original, F.lit("一")).otherwise(other)
    replacement = F.when(look_alike != original, look_alike).otherwise(fallback)
    return F.concat(F.substring(name, 1, pos - 1), replacement, F.substring(name, pos + 1, 1000))


def maybe(apply: Column, damaged: Column, value: Column) -> Column:
    """`damaged` where `apply` is true, else `value` (nulls stay null)."""
    return F.when(value.isNotNull() & apply, damaged).otherwise(value)


def impossible_date(year: Column, u: Column) -> Column:
    """A date string no calendar has: 30 February, month 13, or a year far in the future."""
    return _one_of(
        [
            F.concat(year.cast("string"), F.lit("-02-30")),
            F.concat(year.cast("string"), F.lit("-13-01")),
            F.lit("2099-01-01"),
        ],
        u,
    )


def damage(
    lines: DataFrame, rng: Rng, *, source: str, duplicate_rate: float, malformed_rate: float, json: bool
) -> DataFrame:
    """Deliver some lines twice and break some in transfer. `lines` has one column, `line`.

    A broken CSV line loses its last fields or gains a stray delimiter; a broken JSON line is cut
    short. The record id (the first field) survives either way, so every line stays traceable.
    """
    line, u = F.col("line"), F.col("_u")
    lines = lines.withColumn("_u", rng.uniform(f"malformed:{source}", line))
    if json:
        broken = F.substring(line, 1, (F.char_length(line) * 0.6).cast("int"))
    else:
        fields = F.split(line, ",")
        truncated = F.array_join(F.slice(fields, F.lit(1), F.greatest(F.lit(1), (F.size(fields) / 2).cast("int"))), ",")
        stray = F.regexp_replace(line, "^([^,]*,[^,]*),", "$1,,")
        broken = F.when(u < malformed_rate / 2, truncated).otherwise(stray)
    # One pass: a duplicated line is exploded into two copies (a union would compute the source twice).
    copies = F.when(rng.chance(duplicate_rate, f"duplicate:{source}", line), F.array(F.lit(1), F.lit(2))).otherwise(
        F.array(F.lit(1))
    )
    damaged = lines.select(F.when(u < malformed_rate, broken).otherwise(line).alias("line"), copies.alias("_copies"))
    return damaged.select("line", F.explode("_copies").alias("_copy")).select("line")


def csv_line(*columns: Column) -> Column:
    """One CSV line (RFC 4180 quoting where needed); nulls become empty fields."""
    fields = []
    for c in columns:
        text = F.coalesce(c.cast("string"), F.lit(""))
        needs_quotes = text.rlike('[,"\\r\\n]')
        fields.append(
            F.when(needs_quotes, F.concat(F.lit('"'), F.replace(text, F.lit('"'), F.lit('""')), F.lit('"'))).otherwise(
                text
            )
        )
    return F.concat_ws(",", *fields)


def _one_of(forms: list[Column], u: Column) -> Column:
    index = F.least(F.floor(u * len(forms)), F.lit(len(forms) - 1))
    out: Column = forms[-1]
    for i in reversed(range(len(forms) - 1)):
        out = F.when(index == i, forms[i]).otherwise(out)
    return out
