"""What each landing source looks like and how its rows become silver rows: declared, one entry per source.

A `Source` names its format and encoding, the raw fields it must have, and three lists of
expressions over the raw (string) columns: the silver columns, the flags (value nulled, row kept)
and the rejections (row quarantined with the rule's name). One engine (`cleansing.engine`) applies
any `Source`; nothing here reads or writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp.cleansing import standardise as std
from cdp.config import CleansingConfig


@dataclass(frozen=True)
class Rules:
    """What the standardisation of one source needs to know about the run."""

    cfg: CleansingConfig
    today: dt.date

    def event_time(self, ts: Column) -> Column:
        return std.plausible_time(ts, earliest=self.cfg.earliest_event, latest=self.today)


@dataclass(frozen=True)
class Source:
    name: str
    format: str  # "csv" or "json"
    raw_fields: Sequence[str]  # CSV header names / JSON keys, in delivery order; the first is the record id
    required: Sequence[str]
    columns: Callable[[Rules], dict[str, Column]]  # silver column -> expression over raw columns
    flags: Callable[[Rules], list[tuple[str, Column]]] = lambda r: []  # (flag, condition)
    rejects: Callable[[Rules], list[tuple[str, Column]]] = lambda r: []  # (rule, condition)
    encoding: str = "UTF-8"
    json_schema: str | None = None  # DDL of the JSON record, strings for every scalar
    newest_first: Sequence[str] = ()  # silver columns ordering duplicate deliveries, newest first
    needs_products: bool = False  # rejects may use `_known_sku` (the SKU is in silver.products)
    extra: dict[str, str] = field(default_factory=dict)


def raw(name: str) -> Column:
    return F.col(f"`{name}`")


def _placeholder_flags(rules: Rules, mobile: Column | None, email: Column | None, ids: Sequence[Column]) -> list:
    c = rules.cfg
    out = []
    if mobile is not None:
        out.append(("mobile:placeholder", std.placeholder(std.mobile(mobile), c.placeholder_mobiles)))
        out.append(("mobile:invalid", std.mobile_issue(mobile) == "invalid"))
        out.append(("mobile:masked", std.mobile_issue(mobile) == "masked"))
    if email is not None:
        out.append(("email:placeholder", std.placeholder(std.email(email), c.placeholder_emails)))
        out.append(("email:invalid", std.email_issue(email).isNotNull()))
    out += [("id:placeholder", std.placeholder(std.identifier(i), c.placeholder_ids)) for i in ids]
    return out


def _clean_mobile(rules: Rules, c: Column) -> Column:
    value = std.mobile(c)
    return F.when(~std.placeholder(value, rules.cfg.placeholder_mobiles), value)


def _clean_email(rules: Rules, c: Column) -> Column:
    value = std.email(c)
    return F.when(~std.placeholder(value, rules.cfg.placeholder_emails), value)


def _clean_id(rules: Rules, c: Column) -> Column:
    value = std.identifier(c)
    return F.when(~std.placeholder(value, rules.cfg.placeholder_ids), value)


def _count(c: Column) -> Column:
    return F.trim(c).try_cast("int")


def _bad_time(rules: Rules, raw_value: Column, parsed: Column) -> Column:
    """Present in the file, but unparseable or outside the plausible window."""
    return std.blank_to_null(raw_value.cast("string")).isNotNull() & rules.event_time(parsed).isNull()


# -- CRM members: GBK CSV with Chinese headers ------------------------------------------------------
CRM_FIELDS = [
    "会员编号",
    "会员卡号",
    "姓名",
    "性别",
    "生日",
    "手机号",
    "邮箱",
    "注册门店",
    "注册时间",
    "会员等级",
    "积分",
    "微信UnionID",
    "更新时间",
]


def _crm_columns(r: Rules) -> dict[str, Column]:
    return {
        "member_id": std.identifier(raw("会员编号")),
        "card_no": _clean_id(r, raw("会员卡号")),
        "name": std.name(raw("姓名")),
        "gender": std.gender(raw("性别")),
        "birthday": std.birthday(raw("生日"), as_of=r.today),
        "mobile": _clean_mobile(r, raw("手机号")),
        "email": _clean_email(r, raw("邮箱")),
        "store_id": std.identifier(raw("注册门店")),
        "registered_at": std.local_timestamp(raw("注册时间")),
        "level": std.blank_to_null(raw("会员等级")),
        "points": F.trim(raw("积分")).try_cast("long"),
        "unionid": std.blank_to_null(raw("微信UnionID")),
        "updated_at": std.local_timestamp(raw("更新时间")),
    }


def _crm_flags(r: Rules) -> list[tuple[str, Column]]:
    birthday = std.birthday_issue(raw("生日"), as_of=r.today)
    return [
        *_placeholder_flags(r, raw("手机号"), raw("邮箱"), [raw("会员卡号")]),
        ("birthday:unparseable", birthday == "unparseable"),
        ("birthday:implausible", birthday == "implausible"),
    ]


CRM_MEMBERS = Source(
    name="crm_members",
    format="csv",
    encoding="GBK",
    raw_fields=CRM_FIELDS,
    required=["会员编号", "手机号", "注册时间"],
    columns=_crm_columns,
    flags=_crm_flags,
    rejects=lambda r: [("missing_key", std.identifier(raw("会员编号")).isNull())],
    newest_first=["updated_at"],
)


# -- POS orders and lines: UTF-8 CSV ----------------------------------------------------------------
def _pos_columns(r: Rules) -> dict[str, Column]:
    return {
        "order_no": std.identifier(raw("order_no")),
        "store_id": std.identifier(raw("store_code")),
        "card_no": _clean_id(r, raw("member_card")),
        "mobile": _clean_mobile(r, raw("mobile")),
        "order_time": r.event_time(std.local_timestamp(raw("order_time"))),
        "total_amount": std.money(raw("total_amount")),
        "discount_amount": std.money(raw("discount_amount")),
        "paid_amount": std.money(raw("paid_amount")),
        "payment_method": std.blank_to_null(raw("payment_method")),
        "cashier": std.identifier(raw("cashier")),
    }


POS_ORDERS = Source(
    name="pos_orders",
    format="csv",
    raw_fields=[
        "order_no",
        "store_code",
        "member_card",
        "mobile",
        "order_time",
        "total_amount",
        "discount_amount",
        "paid_amount",
        "payment_method",
        "cashier",
    ],
    required=["order_no", "store_code", "order_time", "paid_amount"],
    columns=_pos_columns,
    flags=lambda r: _placeholder_flags(r, raw("mobile"), None, [raw("member_card")]),
    rejects=lambda r: [
        ("missing_key", std.identifier(raw("order_no")).isNull()),
        ("bad_time", r.event_time(std.local_timestamp(raw("order_time"))).isNull()),
        ("bad_amount", std.money(raw("paid_amount")).isNull() | (std.money(raw("paid_amount")) < 0)),
    ],
)

POS_ORDER_ITEMS = Source(
    name="pos_order_items",
    format="csv",
    raw_fields=["order_no", "line_no", "sku", "qty", "unit_price", "amount"],
    required=["order_no", "line_no", "sku"],
    columns=lambda r: {
        "order_no": std.identifier(raw("order_no")),
        "line_no": _count(raw("line_no")),
        "sku": std.identifier(raw("sku")),
        "qty": _count(raw("qty")),
        "unit_price": std.money(raw("unit_price")),
        "amount": std.money(raw("amount")),
    },
    rejects=lambda r: [
        ("missing_key", std.identifier(raw("order_no")).isNull() | _count(raw("line_no")).isNull()),
        ("unknown_sku", ~F.col("_known_sku")),
        ("bad_amount", std.money(raw("amount")).isNull() | (std.money(raw("amount")) < 0)),
    ],
    needs_products=True,
)


# -- Online sources: JSON lines ---------------------------------------------------------------------
ECOM_SCHEMA = (
    "order_id string, platform string, buyer_openid string, buyer_nick string, receiver_name string, "
    "receiver_mobile string, receiver_address struct<province:string,city:string,district:string,detail:string>, "
    "created_at string, pay_time string, total_amount string, discount_amount string, paid_amount string, "
    "status string, items array<struct<line_no:string,sku:string,qty:string,price:string>>"
)


WECHAT_SCHEMA = (
    "openid string, appid string, unionid string, nickname string, sex string, city string, "
    "phone_number string, subscribe_time string, subscribe string"
)
APP_SCHEMA = (
    "event_id string, device_id string, user_id string, event string, sku string, ts string, "
    "os string, app_version string"
)


def _json_fields(ddl: str) -> list[str]:
    """Top-level field names of a record's DDL (`a string, b struct<c:string>` -> a, b), no session needed."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(ddl + ","):
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            names.append(ddl[start:i].split()[0])
            start = i + 1
    return names


def _ecom_columns(r: Rules) -> dict[str, Column]:
    item = F.struct
    return {
        "order_id": std.identifier(raw("order_id")),
        "platform": F.lower(std.blank_to_null(raw("platform"))),
        "buyer_openid": std.blank_to_null(raw("buyer_openid")),
        "buyer_nick": std.blank_to_null(raw("buyer_nick")),
        "receiver_name": std.name(raw("receiver_name")),
        "receiver_mobile": _clean_mobile(r, raw("receiver_mobile")),
        "receiver_mobile_masked": F.when(
            std.mobile_issue(raw("receiver_mobile")) == "masked", F.trim(raw("receiver_mobile"))
        ),
        "province": std.blank_to_null(F.col("receiver_address")["province"]),
        "city": std.blank_to_null(F.col("receiver_address")["city"]),
        "district": std.blank_to_null(F.col("receiver_address")["district"]),
        "address": std.blank_to_null(F.col("receiver_address")["detail"]),
        "created_at": r.event_time(std.local_timestamp(raw("created_at"))),
        "paid_at": r.event_time(std.local_timestamp(raw("pay_time"))),
        "total_amount": std.money(raw("total_amount")),
        "discount_amount": std.money(raw("discount_amount")),
        "paid_amount": std.money(raw("paid_amount")),
        "status": std.blank_to_null(raw("status")),
        "items": F.transform(
            raw("items"),
            lambda i: item(
                _count(i["line_no"]).alias("line_no"),
                std.identifier(i["sku"]).alias("sku"),
                _count(i["qty"]).alias("qty"),
                std.money(i["price"]).alias("price"),
            ),
        ),
    }


ECOM_ORDERS = Source(
    name="ecom_orders",
    format="json",
    json_schema=ECOM_SCHEMA,
    raw_fields=_json_fields(ECOM_SCHEMA),
    required=["order_id", "platform", "created_at", "paid_amount"],
    columns=_ecom_columns,
    flags=lambda r: [
        *_placeholder_flags(r, raw("receiver_mobile"), None, []),
        ("items:unknown_sku", F.col("_unknown_items") > 0),
    ],
    rejects=lambda r: [
        ("missing_key", std.identifier(raw("order_id")).isNull()),
        ("bad_time", r.event_time(std.local_timestamp(raw("created_at"))).isNull()),
        ("bad_amount", std.money(raw("paid_amount")).isNull() | (std.money(raw("paid_amount")) < 0)),
    ],
    needs_products=True,
)

WECHAT_USERS = Source(
    name="wechat_users",
    format="json",
    json_schema=WECHAT_SCHEMA,
    raw_fields=_json_fields(WECHAT_SCHEMA),
    required=["openid", "appid"],
    columns=lambda r: {
        "openid": std.blank_to_null(raw("openid")),
        "appid": std.blank_to_null(raw("appid")),
        "unionid": std.blank_to_null(raw("unionid")),
        "nickname": std.blank_to_null(raw("nickname")),
        "gender": std.gender(raw("sex")),
        "city": std.blank_to_null(raw("city")),
        "mobile": _clean_mobile(r, raw("phone_number")),
        "subscribed_at": r.event_time(std.epoch_timestamp(raw("subscribe_time"), unit="seconds")),
        "subscribed": F.lower(F.trim(raw("subscribe"))) == "true",
    },
    flags=lambda r: [
        *_placeholder_flags(r, raw("phone_number"), None, []),
        (
            "subscribe_time:implausible",
            _bad_time(r, raw("subscribe_time"), std.epoch_timestamp(raw("subscribe_time"), unit="seconds")),
        ),
    ],
    rejects=lambda r: [("missing_key", std.blank_to_null(raw("openid")).isNull())],
)

APP_EVENTS = Source(
    name="app_events",
    format="json",
    json_schema=APP_SCHEMA,
    raw_fields=_json_fields(APP_SCHEMA),
    required=["event_id", "device_id", "ts"],
    columns=lambda r: {
        "event_id": std.blank_to_null(F.lower(raw("event_id"))),
        "device_id": std.blank_to_null(F.lower(raw("device_id"))),
        "user_id": std.identifier(raw("user_id")),
        "event": F.lower(std.blank_to_null(raw("event"))),
        "sku": std.identifier(raw("sku")),
        "event_time": r.event_time(std.epoch_timestamp(raw("ts"), unit="millis")),
        "os": F.lower(std.blank_to_null(raw("os"))),
        "app_version": std.blank_to_null(raw("app_version")),
    },
    rejects=lambda r: [
        ("missing_key", std.blank_to_null(raw("event_id")).isNull()),
        ("bad_time", r.event_time(std.epoch_timestamp(raw("ts"), unit="millis")).isNull()),
        ("unknown_sku", ~F.col("_known_sku")),
    ],
    needs_products=True,
)

PRODUCTS = Source(
    name="products",
    format="csv",
    raw_fields=["sku", "name", "category_l1", "category_l2", "brand", "price", "baby_stage", "launched"],
    required=["sku", "category_l1", "price"],
    columns=lambda r: {
        "sku": std.identifier(raw("sku")),
        "name": std.blank_to_null(raw("name")),
        "category_l1": std.blank_to_null(raw("category_l1")),
        "category_l2": std.blank_to_null(raw("category_l2")),
        "brand": std.blank_to_null(raw("brand")),
        "price": std.money(raw("price")),
        "baby_stage": std.blank_to_null(raw("baby_stage")),
        "launched": std.date(raw("launched")),
    },
    rejects=lambda r: [("missing_key", std.identifier(raw("sku")).isNull())],
)

STORES = Source(
    name="stores",
    format="csv",
    raw_fields=["store_id", "store_name", "province", "city", "phone", "opened"],
    required=["store_id"],
    columns=lambda r: {
        "store_id": std.identifier(raw("store_id")),
        "store_name": std.blank_to_null(raw("store_name")),
        "province": std.blank_to_null(raw("province")),
        "city": std.blank_to_null(raw("city")),
        "phone": std.mobile(raw("phone")),
        "opened": std.date(raw("opened")),
    },
    rejects=lambda r: [("missing_key", std.identifier(raw("store_id")).isNull())],
)

# In processing order: products first, so that SKUs can be checked against them.
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (PRODUCTS, STORES, CRM_MEMBERS, POS_ORDERS, POS_ORDER_ITEMS, ECOM_ORDERS, WECHAT_USERS, APP_EVENTS)
}
