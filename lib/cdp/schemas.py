"""Column names and table schemas, declared once.

Silver tables hold one source each, standardised: identifiers canonical or null, times in UTC,
money as decimal(18,2). Every silver row carries `batch` (the landing batch it came from) and
`issues` (flags such as `mobile:placeholder` raised while standardising; the value itself was nulled).
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

MONEY = DecimalType(18, 2)
ISSUES = StructField("issues", ArrayType(StringType()))
BATCH = StructField("batch", StringType())


def _schema(*fields: tuple[str, object]) -> StructType:
    return StructType([StructField(n, t) for n, t in fields] + [ISSUES, BATCH])  # type: ignore[arg-type]


SILVER: dict[str, StructType] = {
    "crm_members": _schema(
        ("member_id", StringType()),
        ("card_no", StringType()),
        ("name", StringType()),
        ("gender", StringType()),
        ("birthday", DateType()),
        ("mobile", StringType()),
        ("email", StringType()),
        ("store_id", StringType()),
        ("registered_at", TimestampType()),
        ("level", StringType()),
        ("points", LongType()),
        ("unionid", StringType()),
        ("updated_at", TimestampType()),
    ),
    "pos_orders": _schema(
        ("order_no", StringType()),
        ("store_id", StringType()),
        ("card_no", StringType()),
        ("mobile", StringType()),
        ("order_time", TimestampType()),
        ("total_amount", MONEY),
        ("discount_amount", MONEY),
        ("paid_amount", MONEY),
        ("payment_method", StringType()),
        ("cashier", StringType()),
    ),
    "pos_order_items": _schema(
        ("order_no", StringType()),
        ("line_no", IntegerType()),
        ("sku", StringType()),
        ("qty", IntegerType()),
        ("unit_price", MONEY),
        ("amount", MONEY),
    ),
    "ecom_orders": _schema(
        ("order_id", StringType()),
        ("platform", StringType()),
        ("buyer_openid", StringType()),
        ("buyer_nick", StringType()),
        ("receiver_name", StringType()),
        ("receiver_mobile", StringType()),  # null when masked: a masked number identifies nobody
        ("receiver_mobile_masked", StringType()),  # the masked form as delivered, e.g. 138****1234
        ("province", StringType()),
        ("city", StringType()),
        ("district", StringType()),
        ("address", StringType()),
        ("created_at", TimestampType()),
        ("paid_at", TimestampType()),
        ("total_amount", MONEY),
        ("discount_amount", MONEY),
        ("paid_amount", MONEY),
        ("status", StringType()),
        (
            "items",
            ArrayType(
                StructType(
                    [
                        StructField("line_no", IntegerType()),
                        StructField("sku", StringType()),
                        StructField("qty", IntegerType()),
                        StructField("price", MONEY),
                    ]
                )
            ),
        ),
    ),
    "wechat_users": _schema(
        ("openid", StringType()),
        ("appid", StringType()),
        ("unionid", StringType()),
        ("nickname", StringType()),
        ("gender", StringType()),
        ("city", StringType()),
        ("mobile", StringType()),
        ("subscribed_at", TimestampType()),
        ("subscribed", BooleanType()),
    ),
    "app_events": _schema(
        ("event_id", StringType()),
        ("device_id", StringType()),
        ("user_id", StringType()),
        ("event", StringType()),
        ("sku", StringType()),
        ("event_time", TimestampType()),
        ("os", StringType()),
        ("app_version", StringType()),
    ),
    "products": _schema(
        ("sku", StringType()),
        ("name", StringType()),
        ("category_l1", StringType()),
        ("category_l2", StringType()),
        ("brand", StringType()),
        ("price", MONEY),
        ("baby_stage", StringType()),
        ("launched", DateType()),
    ),
    "stores": _schema(
        ("store_id", StringType()),
        ("store_name", StringType()),
        ("province", StringType()),
        ("city", StringType()),
        ("phone", StringType()),
        ("opened", DateType()),
    ),
}

# How identity tables name a silver record: its source table and its record key as a string.
RECORD = ["source", "record_id"]

# The record key of each silver table: unique after deduplication.
RECORD_KEY: dict[str, list[str]] = {
    "crm_members": ["member_id"],
    "pos_orders": ["order_no"],
    "pos_order_items": ["order_no", "line_no"],
    "ecom_orders": ["order_id"],
    "wechat_users": ["openid"],
    "app_events": ["event_id"],
    "products": ["sku"],
    "stores": ["store_id"],
}

QUARANTINE = StructType(
    [
        StructField("source", StringType()),
        StructField("batch", StringType()),
        StructField("record_key", StringType()),
        StructField("rule", StringType()),
        StructField("reason", StringType()),
        StructField("raw", StringType()),
        StructField("file", StringType()),
        StructField("run_id", StringType()),
    ]
)
