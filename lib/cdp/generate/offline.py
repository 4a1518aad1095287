"""Store-side sources: CRM members (GBK CSV, Chinese headers), POS orders and lines, stores, products."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp.generate import noise, vocab
from cdp.generate.catalogue import PRODUCT_COLUMNS
from cdp.generate.delivery import Delivery, csv_delivery, local_time, year_of
from cdp.generate.params import Params
from cdp.generate.population import card_of, epoch, member_id_of
from cdp.generate.rand import Rng, digits, permute


def crm_members(persons: DataFrame, stores: DataFrame, params: Params) -> Delivery:
    """One row per registration; members registered twice have two, with different cards and stores."""
    rng, n = Rng(params.seed), params.noise
    pid = F.col("person_id")
    members = persons.where("is_member").withColumn(
        "registration",
        F.explode(F.when(F.col("double_member"), F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0)))),
    )
    key = [pid, F.col("registration")]
    second = F.col("registration") == 1
    damage = noise.RecordNoise(rng, n, *key)
    u = damage.u

    member_id = F.when(second, member_id_of(pid, 1)).otherwise(member_id_of(pid, 0))
    card = F.when(second, card_of(pid, 1)).otherwise(card_of(pid, 0))
    registered = F.when(
        second,
        F.col("registered_at")
        + (u("second-registration") * (F.lit(_end(params)) - F.col("registered_at"))).cast("long"),
    ).otherwise(F.col("registered_at"))
    store = F.when(second, rng.integer(0, params.store_count - 1, "second-store", *key)).otherwise(F.col("home_store"))
    members = members.select(
        "*",
        member_id.alias("member_id"),
        card.alias("card_no"),
        registered.alias("reg_ts"),
        store.cast("int").alias("store_idx"),
    )
    members = members.join(F.broadcast(stores.select("store_idx", "store_id")), on="store_idx", how="left")

    # Placeholders: a clerk typing 13800000000, test@test.com or card 00000000 to get past the form.
    placeholder = u("placeholder") < n.placeholder_rate
    which = u("placeholder-kind")
    mobile = damage.phone(F.col("mobile"))
    mobile = F.when(second & (u("second-mobile") < 0.5), None).otherwise(mobile)  # re-registered without the phone
    mobile = F.when(
        placeholder & (which < 0.5), rng.pick(vocab.PLACEHOLDER_MOBILES, "placeholder-mobile", *key)
    ).otherwise(mobile)
    email = damage.missing(damage.email(F.col("email")), "email")
    email = F.when(
        placeholder & (which >= 0.5) & (which < 0.8), rng.pick(vocab.PLACEHOLDER_EMAILS, "placeholder-email", *key)
    ).otherwise(email)
    card = F.when(placeholder & (which >= 0.8), F.lit(vocab.PLACEHOLDER_CARD)).otherwise(F.col("card_no"))
    name = damage.name(F.col("name"))
    birthday = damage.date_text(F.date_format(F.col("birth_date"), "yyyy-MM-dd"), F.year("birth_date"))
    birthday = damage.missing(birthday, "birthday")
    gender = damage.missing(F.when(F.col("gender") == "F", "女").otherwise("男"), "gender")
    points = F.floor(F.pow(rng.uniform("points", *key), F.lit(3)) * 20000).cast("long")
    updated = F.col("reg_ts") + (u("updated") * (F.lit(_end(params)) - F.col("reg_ts"))).cast("long")

    columns = [
        ("会员编号", F.col("member_id")),
        ("会员卡号", card),
        ("姓名", name),
        ("性别", gender),
        ("生日", birthday),
        ("手机号", mobile),
        ("邮箱", email),
        ("注册门店", F.col("store_id")),
        ("注册时间", local_time(F.col("reg_ts"), "yyyy/M/d H:mm")),
        ("会员等级", rng.pick(vocab.MEMBER_LEVELS, "level", *key, weights=vocab.MEMBER_LEVEL_WEIGHTS)),
        ("积分", points),
        ("微信UnionID", F.when(u("crm-unionid") < 0.5, F.col("unionid"))),
        ("更新时间", local_time(updated, "yyyy-MM-dd HH:mm:ss")),
    ]
    truth = members.select(F.col("member_id").alias("record_id"), pid)
    return csv_delivery("crm_members", members, columns, params, encoding="GBK", truth=truth)


def pos_orders(orders: DataFrame, stores: DataFrame, params: Params) -> Delivery:
    """Store receipts: the member card when shown, else whatever the cashier typed, if anything."""
    rng, n = Rng(params.seed), params.noise
    okey = F.col("order_key")
    pos = orders.where(F.col("channel") == "pos").join(
        F.broadcast(stores.select("store_idx", "store_id", F.col("phone").alias("store_phone"))),
        on="store_idx",
        how="left",
    )

    damage = noise.RecordNoise(rng, n, okey)
    u = damage.u
    pid = F.col("person_id")
    shows_card = F.col("is_member") & (u("shows-card") < 0.8)
    card = F.when(F.col("double_member") & (u("which-card") < 0.3), card_of(pid, 1)).otherwise(card_of(pid, 0))
    typed = u("typed")
    mobile = (
        F.when(shows_card, None)
        .when(typed < n.typed_mobile_rate, damage.phone(F.col("mobile")))
        .when(typed < n.typed_mobile_rate + n.store_phone_rate, F.col("store_phone"))
    )
    when = damage.date_text(
        local_time(F.col("ts"), "yyyy-MM-dd HH:mm:ss"), year_of(F.col("ts")), time=local_time(F.col("ts"), " HH:mm:ss")
    )
    columns = [
        ("order_no", _pos_order_no(okey)),
        ("store_code", F.col("store_id")),
        ("member_card", F.when(shows_card, card)),
        ("mobile", mobile),
        ("order_time", when),
        ("total_amount", F.col("total")),
        ("discount_amount", F.col("discount")),
        ("paid_amount", damage.amount(F.col("paid"))),
        ("payment_method", rng.pick(vocab.PAYMENTS, "payment", okey, weights=vocab.PAYMENT_WEIGHTS)),
        (
            "cashier",
            F.concat(F.col("store_id"), F.lit("-"), F.lpad(rng.integer(1, 12, "cashier", okey).cast("string"), 2, "0")),
        ),
    ]
    truth = pos.select(_pos_order_no(okey).alias("record_id"), pid)
    return csv_delivery("pos_orders", pos, columns, params, truth=truth)


def pos_order_items(orders: DataFrame, lines: DataFrame, params: Params) -> Delivery:
    """Receipt lines; some name a SKU the catalogue does not have."""
    pos = lines.join(orders.where(F.col("channel") == "pos").select("order_key"), on="order_key", how="left_semi")
    damage = noise.RecordNoise(Rng(params.seed), params.noise, F.col("order_key"), F.col("line_no"))
    columns = [
        ("order_no", _pos_order_no(F.col("order_key"))),
        ("line_no", F.col("line_no")),
        ("sku", damage.sku(F.col("sku"))),
        ("qty", F.col("qty")),
        ("unit_price", F.col("unit_price")),
        ("amount", F.col("amount")),
    ]
    return csv_delivery("pos_order_items", pos, columns, params)


def stores_delivery(stores: DataFrame, params: Params) -> Delivery:
    columns = [(c, F.col(c)) for c in ("store_id", "store_name", "province", "city", "phone")]
    columns.append(("opened", F.date_format("opened", "yyyy-MM-dd")))
    return csv_delivery("stores", stores, columns, params, damaged=False)


def products_delivery(products: DataFrame, params: Params) -> Delivery:
    columns = [(c, F.col(c)) for c in PRODUCT_COLUMNS]
    return csv_delivery("products", products, columns, params, damaged=False)


def _pos_order_no(order_key: Column) -> Column:
    return F.concat(
        F.lit("P"), digits(permute(order_key, multiplier=531_441, offset=3_141_592_653_589, modulus=10**13), 13)
    )


def _end(params: Params) -> int:
    return epoch(params.end)
