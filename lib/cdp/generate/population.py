"""The people and the stores: who exists, who they are, where they shop and how they behave.

A person's attributes are pure functions of (seed, person_id), so any channel can recompute the
identifiers of another person (a family member's phone) without a join.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp.columns import constant_map
from cdp.generate import vocab
from cdp.generate.params import Params
from cdp.generate.rand import Rng, digits, permute, pick

DAY = 86400
PERSONS_PER_PARTITION = 100_000


def epoch(day: dt.date) -> int:
    """Seconds of local midnight of `day`, counted as if local time were UTC (wall-clock seconds)."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def partitions(persons: int) -> int:
    return max(2, -(-persons // PERSONS_PER_PARTITION))


def mobile_of(rng: Rng, person: Column) -> Column:
    """The canonical 11-digit mobile of a person: unique, never a placeholder prefix."""
    prefix = rng.pick(vocab.MOBILE_PREFIXES, "mobile-prefix", person)
    return F.concat(prefix, digits(permute(person, multiplier=387_420_489, offset=12_345_678, modulus=10**8), 8))


def member_id_of(person: Column, registration: int) -> Column:
    """Member id of a person's first (0) or second (1) CRM registration."""
    key = person * F.lit(2) + F.lit(registration)
    return F.concat(F.lit("M"), digits(permute(key, multiplier=387_420_489, offset=1_000_000_007, modulus=10**10), 10))


def card_of(person: Column, registration: int) -> Column:
    key = person * F.lit(2) + F.lit(registration)
    return F.concat(F.lit("6"), digits(permute(key, multiplier=43_046_721, offset=20_240_930_117, modulus=10**11), 11))


def persons(spark: SparkSession, params: Params) -> DataFrame:
    """One row per person.

    Output columns: person_id, gender (F/M), birth_date, name, mobile, email (null for most),
    city_idx, home_store, is_member, double_member, pos_buyer, ecom_buyer, wechat_user, app_user,
    is_mother, baby_birth, pref_l2, pref_brand, cycle_days, registered_at, buys_from, churn_at,
    react_at, unionid, platform (preferred online platform), pos_share.
    """
    rng = Rng(params.seed)
    mix = params.mix
    pid = F.col("person_id")

    def u(purpose: str) -> Column:
        return rng.uniform(purpose, pid)

    def chance(p: float, purpose: str) -> Column:
        return rng.chance(p, purpose, pid)

    start, end = epoch(params.start), epoch(params.end)
    df = spark.range(0, params.persons, numPartitions=partitions(params.persons)).withColumnRenamed("id", "person_id")

    female = chance(0.62, "gender")
    age = F.greatest(F.lit(18.0), F.least(F.lit(70.0), F.lit(34.0) + F.lit(9.0) * rng.normal("age", pid)))
    df = df.select(
        pid,
        F.when(female, "F").otherwise("M").alias("gender"),
        F.date_sub(F.lit(params.end), (age * 365.25).cast("int")).alias("birth_date"),
        age.alias("_age"),
        F.concat(
            rng.pick(vocab.SURNAMES, "surname", pid),
            F.when(female, rng.pick(vocab.GIVEN_FEMALE, "given1", pid)).otherwise(
                rng.pick(vocab.GIVEN_MALE, "given1", pid)
            ),
            F.when(
                u("given-length") < 0.7,
                F.when(female, rng.pick(vocab.GIVEN_FEMALE, "given2", pid)).otherwise(
                    rng.pick(vocab.GIVEN_MALE, "given2", pid)
                ),
            ).otherwise(F.lit("")),
        ).alias("name"),
        # Family pairs are (0, 1), (2, 3), ...: the odd one may use the even one's phone, no chains.
        F.when(
            (pid % 2 == 1) & chance(min(1.0, 2 * params.noise.family_phone_rate), "family-phone"),
            mobile_of(rng, pid - 1),
        )
        .otherwise(mobile_of(rng, pid))
        .alias("mobile"),
        F.when(
            chance(0.45, "has-email"),
            F.concat(
                rng.pick(
                    ["lily", "happy", "sun", "mm", "baby", "king", "star", "cat", "momo", "leo"], "email-word", pid
                ),
                digits(permute(pid, multiplier=387_420_489, offset=271_828_182, modulus=10**9), 9),
                F.lit("@"),
                rng.pick(vocab.EMAIL_DOMAINS, "email-domain", pid, weights=vocab.EMAIL_DOMAIN_WEIGHTS),
            ),
        ).alias("email"),
        pick(list(range(len(vocab.CITIES))), u("city"), weights=vocab.CITY_WEIGHTS).alias("city_idx"),
        chance(mix.member_rate, "member").alias("is_member"),
        chance(mix.pos_buyer_rate, "pos").alias("pos_buyer"),
        chance(mix.ecom_buyer_rate, "ecom").alias("ecom_buyer"),
        chance(mix.wechat_rate, "wechat").alias("wechat_user"),
        chance(mix.app_rate, "app").alias("app_user"),
        female.alias("_female"),
    )
    df = _everyone_somewhere(df, rng, params)

    # Mothers: the baby is born between ten months before the window and a month before its end.
    mother = F.col("_female") & F.col("_age").between(20, 40) & chance(mix.mother_rate, "mother")
    baby_birth = F.date_add(
        F.lit(params.start - dt.timedelta(days=300)), (u("baby") * (365 * params.years + 270)).cast("int")
    )
    registered = F.lit(end) - (u("registered") * 5 * 365 * DAY).cast("long")
    churned = chance(mix.churn_rate, "churn")
    df = df.withColumns(
        {
            "double_member": F.col("is_member") & chance(params.noise.double_member_rate, "double-member"),
            "home_store": _home_store(F.col("city_idx"), u("store"), params.store_count),
            "is_mother": mother,
            "baby_birth": F.when(mother, baby_birth),
            "registered_at": registered,
            "buys_from": F.greatest(F.lit(start), F.when(F.col("is_member"), registered).otherwise(F.lit(start))),
            "churn_at": F.when(churned, F.lit(start) + (u("churn-at") * (end - start)).cast("long")),
            "react_at_": F.when(
                churned & chance(mix.reactivation_rate, "react"),
                ((F.lit(60.0) + u("react-gap") * 240) * DAY).cast("long"),
            ),
            "unionid": F.when(
                F.col("wechat_user") & chance(0.7, "unionid"), F.concat(F.lit("oU"), rng.hex(26, "unionid", pid))
            ),
            "platform": rng.pick(vocab.PLATFORMS, "platform", pid, weights=vocab.PLATFORM_WEIGHTS),
            "pos_share": F.when(~F.col("ecom_buyer"), 1.0)
            .when(~F.col("pos_buyer"), 0.0)
            .otherwise(F.lit(0.2) + u("pos-share") * 0.6),
        }
    )

    # Preferences: mothers shop the baby categories; everyone has one favourite brand there.
    # Rhythm: purchase cycle (log-normal, median 120 days; mothers buy consumables more often).
    l2s = [(l1, l2) for l1, sub in vocab.CATEGORIES.items() for l2 in sub]
    weights = [vocab.CATEGORY_WEIGHTS[l1] / len(vocab.CATEGORIES[l1]) for l1, _ in l2s]
    baby_l2s = [l2 for l2 in vocab.CATEGORIES["母婴"] if l2 != "童装"]
    cycle = F.exp(F.log(F.lit(120.0)) + F.lit(0.7) * rng.normal("cycle", pid))
    cycle = F.when(F.col("is_mother"), cycle * 0.6).otherwise(cycle)
    df = df.withColumns(
        {
            "pref_l2": F.when(F.col("is_mother"), rng.pick(baby_l2s, "pref-baby", pid)).otherwise(
                rng.pick([l2 for _, l2 in l2s], "pref-l2", pid, weights=weights)
            ),
            "cycle_days": F.greatest(F.lit(7.0), F.least(F.lit(365.0), cycle)),
            "react_at": F.col("churn_at") + F.col("react_at_"),
        }
    )
    brands = constant_map({l2: bs for sub in vocab.CATEGORIES.values() for l2, bs in sub.items()})
    shelf = F.element_at(brands, F.col("pref_l2"))
    df = df.withColumn("pref_brand", F.get(shelf, F.floor(u("pref-brand") * F.size(shelf)).cast("int")))
    return df.drop("_age", "_female", "react_at_")


def _everyone_somewhere(df: DataFrame, rng: Rng, params: Params) -> DataFrame:
    """A person in no channel is put in one, chosen by the channel rates: the truth has no ghosts."""
    mix = params.mix
    flags = ["is_member", "pos_buyer", "ecom_buyer", "wechat_user", "app_user"]
    rates = [mix.member_rate, mix.pos_buyer_rate, mix.ecom_buyer_rate, mix.wechat_rate, mix.app_rate]
    nowhere = ~F.greatest(*[F.col(f) for f in flags])
    forced = rng.pick(flags, "forced-channel", F.col("person_id"), weights=[max(r, 1e-9) for r in rates])
    return df.withColumns({flag: F.col(flag) | (nowhere & (forced == F.lit(flag))) for flag in flags})


def _home_store(city: Column, u: Column, stores: int) -> Column:
    """A store in the person's city (store k is in city k mod #cities), or any store if none is."""
    cities = len(vocab.CITIES)
    in_city = F.floor((F.lit(stores - 1) - city) / cities) + 1
    local = city + F.lit(cities) * F.floor(u * in_city)
    return F.when(city < F.lit(stores), local).otherwise(F.floor(u * stores)).cast("int")


def stores(spark: SparkSession, params: Params) -> DataFrame:
    """One row per store.

    Output columns: store_idx, store_id, store_name, city_idx, province, city, phone, opened.
    """
    rng = Rng(params.seed)
    sid = F.col("store_idx")
    cities = F.array(*[F.struct(F.lit(p).alias("province"), F.lit(c).alias("city")) for p, c, _ in vocab.CITIES])
    df = spark.range(0, params.store_count, numPartitions=1).select(F.col("id").cast("int").alias("store_idx"))
    city = F.get(cities, sid % len(vocab.CITIES))
    return df.select(
        sid,
        F.concat(F.lit("S"), digits(sid + 1, 4)).alias("store_id"),
        F.concat(city["city"], rng.pick(vocab.STORE_SITES, "store-site", sid), F.lit("店")).alias("store_name"),
        (sid % len(vocab.CITIES)).alias("city_idx"),
        city["province"].alias("province"),
        city["city"].alias("city"),
        # A store's phone is a mobile (prefixes no person has): the one cashiers type for walk-ins.
        F.concat(
            rng.pick(["134", "147", "173"], "store-phone", sid),
            digits(permute(sid, multiplier=7_654_321, offset=12_345_678, modulus=10**8), 8),
        ).alias("phone"),
        F.date_sub(F.lit(params.start), rng.integer(0, 3000, "store-opened", sid).cast("int")).alias("opened"),
    )
