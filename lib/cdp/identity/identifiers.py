"""Which silver columns identify a person: declared, one entry per source.

Every record of a person-bearing silver table contributes one observation per non-null identifier:
(source, record_id, id_type, scope, value), plus the record's name when the source has one (used
by hub detection to tell a shared value from a personal one). Whether a type links records into
one person, or is kept as an attribute only, is configuration (`identity.types`), not code.

Identifiers are hashed to 64-bit ids: `xxhash64(id_type, scope, value)`. The scope keeps apart
values that are only unique within a namespace (an openid within its WeChat app, a buyer nick
within its marketplace, a device id within its operating system).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp import schemas


@dataclass(frozen=True)
class Identifier:
    id_type: str
    value: str | Callable[[], Column]  # a silver column, or an expression over the silver columns
    scope: Callable[[], Column] = lambda: F.lit("")  # namespace of the value

    def column(self) -> Column:
        return F.col(self.value) if isinstance(self.value, str) else self.value()


def mobile_name(mobile: Column, name: Column) -> Column:
    """A mobile as marketplaces mask it, with the person's name: `138****1234|王芳`.

    Marketplaces deliver the receiver's mobile masked; with the receiver's name the masked form
    still points to one person among a brand's customers, and it matches the same person's full
    mobile (masked the same way) in the CRM or the own mall. Null unless both parts are known.
    """
    masked_form = F.when(
        mobile.rlike(r"^\d{11}$"), F.concat(F.substring(mobile, 1, 3), F.lit("****"), F.substring(mobile, -4, 4))
    ).otherwise(F.regexp_replace(mobile, r"\*+", "****"))
    return F.when(mobile.isNotNull() & name.isNotNull(), F.concat_ws("|", masked_form, name))


@dataclass(frozen=True)
class PersonSource:
    name: str
    identifiers: Sequence[Identifier]
    person_name: str | None = None  # silver column holding the person's name, if any

    @property
    def record_id(self) -> str:
        (key,) = schemas.RECORD_KEY[self.name]
        return key


def person_sources(mall_appid: str) -> dict[str, PersonSource]:
    """The declared person-bearing sources; `mall_appid` (the own mall's WeChat app) scopes its orders' openids."""
    return {
        s.name: s
        for s in (
            PersonSource(
                "crm_members",
                [
                    Identifier("member_id", "member_id"),
                    Identifier("member_card", "card_no"),
                    Identifier("mobile", "mobile"),
                    Identifier("email", "email"),
                    Identifier("unionid", "unionid"),
                    Identifier("mobile_name", lambda: mobile_name(F.col("mobile"), F.col("name"))),
                ],
                person_name="name",
            ),
            PersonSource("pos_orders", [Identifier("member_card", "card_no"), Identifier("mobile", "mobile")]),
            PersonSource(
                "ecom_orders",
                [
                    # Own-mall orders carry the buyer's openid in the mall's mini-program.
                    Identifier("openid", "buyer_openid", scope=lambda: F.lit(mall_appid)),
                    Identifier("buyer_nick", "buyer_nick", scope=lambda: F.col("platform")),
                    Identifier("mobile", "receiver_mobile"),
                    Identifier(
                        "mobile_name",
                        lambda: mobile_name(
                            F.coalesce("receiver_mobile", "receiver_mobile_masked"), F.col("receiver_name")
                        ),
                    ),
                ],
                person_name="receiver_name",
            ),
            PersonSource(
                "wechat_users",
                [
                    Identifier("openid", "openid", scope=lambda: F.col("appid")),
                    Identifier("unionid", "unionid"),
                    Identifier("mobile", "mobile"),
                ],
            ),
            PersonSource(
                "app_events",
                # The app's login is the CRM member id for members (an app-only id otherwise). Device ids
                # live in their operating system's namespace (IDFA/IDFV on iOS, Android ID/GAID on
                # Android): one string reported under two systems is two devices, not one.
                [Identifier("device", "device_id", scope=lambda: F.col("os")), Identifier("member_id", "user_id")],
            ),
        )
    }


def identifier_id(id_type: Column, scope: Column, value: Column) -> Column:
    """The 64-bit id of an identifier value."""
    return F.xxhash64(id_type, scope, value)


def record_node(source: Column, record_id: Column) -> Column:
    """The 64-bit id standing for a record that carries no linking identifier."""
    return F.xxhash64(F.lit("record"), source, record_id)


def observations(silver: DataFrame, source: PersonSource) -> DataFrame:
    """Every (record, identifier) of one silver table.

    Output columns: `source`, `record_id`, `id_type`, `scope`, `value`, `name` (the record's
    person name or null). Records without any identifier are absent here (see `records`).
    """
    name = F.col(source.person_name) if source.person_name else F.lit(None).cast("string")
    pairs = F.array(
        *[
            F.struct(F.lit(i.id_type).alias("id_type"), i.scope().alias("scope"), i.column().alias("value"))
            for i in source.identifiers
        ]
    )
    return (
        silver.select(F.col(source.record_id).alias("record_id"), name.alias("name"), F.explode(pairs).alias("i"))
        .where(F.col("i.value").isNotNull())
        .select(
            F.lit(source.name).alias("source"),
            "record_id",
            F.col("i.id_type").alias("id_type"),
            F.coalesce(F.col("i.scope"), F.lit("")).alias("scope"),
            F.col("i.value").alias("value"),
            "name",
        )
    )


def records(silver: DataFrame, source: PersonSource) -> DataFrame:
    """Every record of one silver table. Output columns: `source`, `record_id`."""
    return silver.select(F.lit(source.name).alias("source"), F.col(source.record_id).alias("record_id"))


def masked(id_type: Column, value: Column) -> Column:
    """A value as it may be shown to people: `138****8000`, `z***@qq.com`, `oX***Yz` for the rest."""
    length = F.length(value)
    return (
        F.when(value.isNull(), F.lit(None))
        .when(id_type == "mobile", F.concat(F.substring(value, 1, 3), F.lit("****"), F.substring(value, -4, 4)))
        .when(
            id_type == "email",
            F.concat(F.substring(value, 1, 1), F.lit("***@"), F.substring_index(value, "@", -1)),
        )
        .when(id_type == "mobile_name", F.concat(F.substring(value, 1, 3), F.lit("****|*")))
        .when(length <= 4, F.lit("***"))
        .otherwise(F.concat(F.substring(value, 1, 2), F.lit("***"), F.substring(value, -2, 2)))
    )
