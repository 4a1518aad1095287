"""Online sources as JSON lines: marketplace and own-mall orders, WeChat users, app events."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cdp.columns import constant_array
from cdp.generate import noise, vocab
from cdp.generate.catalogue import Catalogue
from cdp.generate.delivery import Delivery, epoch_millis, json_delivery, local_time, year_of
from cdp.generate.params import Noise, Params
from cdp.generate.population import DAY, epoch, member_id_of
from cdp.generate.purchases import shelf
from cdp.generate.rand import Rng, digits, permute

MINI_PROGRAM = "wx8f3c2a61d7e04b59"  # the brand's mini-program (and its mall)
OFFICIAL_ACCOUNT = "wx2b6e91c0a4d35f78"  # the brand's official account
MAX_EVENTS = 2000


def openid_of(rng: Rng, appid: str, person: Column) -> Column:
    return F.concat(F.lit("o"), rng.hex(27, f"openid:{appid}", person))


def ecom_orders(orders: DataFrame, params: Params) -> Delivery:
    """Marketplace orders mask the receiver's mobile (138****1234); own-mall orders carry the openid."""
    rng, n = Rng(params.seed), params.noise
    okey, pid = F.col("order_key"), F.col("person_id")
    ecom = orders.where(F.col("channel") == "ecom")
    damage = noise.RecordNoise(rng, n, okey)

    platform = F.col("platform")
    masked = platform.isin(*vocab.MASKED_PLATFORMS)
    mobile = F.col("mobile")
    receiver_mobile = F.when(
        masked, F.concat(F.substring(mobile, 1, 3), F.lit("****"), F.substring(mobile, 8, 4))
    ).otherwise(damage.phone(mobile))
    city = F.get(
        F.array(
            *[
                F.struct(F.lit(p).alias("province"), F.lit(c).alias("city"), F.lit(d).alias("district"))
                for p, c, d in vocab.CITIES
            ]
        ),
        F.col("city_idx"),
    )
    address = F.struct(
        city["province"].alias("province"),
        city["city"].alias("city"),
        city["district"].alias("district"),
        F.concat(
            rng.pick(vocab.STREETS, "street", pid),
            F.lit("路"),
            (rng.integer(1, 999, "number", pid)).cast("string"),
            F.lit("号"),
        ).alias("detail"),
    )
    created = damage.date_text(
        local_time(F.col("ts"), "yyyy-MM-dd'T'HH:mm:ss'+08:00'"),
        year_of(F.col("ts")),
        time=local_time(F.col("ts"), "'T'HH:mm:ss'+08:00'"),
    )
    order_id = _ecom_order_id(platform, okey)
    fields = [
        order_id.alias("order_id"),
        platform.alias("platform"),
        F.when(platform == "mall", openid_of(rng, MINI_PROGRAM, pid)).alias("buyer_openid"),
        F.when(
            platform != "mall",
            F.concat(rng.pick(vocab.NICK_WORDS, "nick", pid, platform), rng.hex(6, "nick", pid, platform)),
        ).alias("buyer_nick"),
        damage.name(F.col("name")).alias("receiver_name"),
        receiver_mobile.alias("receiver_mobile"),
        damage.missing(address, "address").alias("receiver_address"),
        created.alias("created_at"),
        local_time(F.col("ts") + rng.integer(5, 900, "pay-delay", okey), "yyyy-MM-dd'T'HH:mm:ss'+08:00'").alias(
            "pay_time"
        ),
        F.col("total").cast("string").alias("total_amount"),
        F.col("discount").cast("string").alias("discount_amount"),
        damage.amount(F.col("paid")).cast("string").alias("paid_amount"),
        F.lit("TRADE_FINISHED").alias("status"),
        F.transform("items", lambda i: _item(rng, n, okey, i)).alias("items"),
    ]
    truth = ecom.select(order_id.alias("record_id"), pid)
    return json_delivery("ecom_orders", ecom, fields, params, truth=truth)


def wechat_users(persons: DataFrame, params: Params) -> Delivery:
    """One row per (person, app): mini-program users and official-account followers."""
    rng, n = Rng(params.seed), params.noise
    pid = F.col("person_id")
    users = persons.where("wechat_user")
    in_mp = rng.chance(0.85, "in-mini-program", pid)
    in_oa = rng.chance(0.6, "in-official-account", pid) | ~in_mp
    apps = F.filter(
        F.array(F.when(in_mp, F.lit(MINI_PROGRAM)), F.when(in_oa, F.lit(OFFICIAL_ACCOUNT))), lambda a: a.isNotNull()
    )
    users = users.withColumn("appid", F.explode(apps))
    damage = noise.RecordNoise(rng, n, pid, F.col("appid"))
    u = damage.u

    openid = F.when(F.col("appid") == MINI_PROGRAM, openid_of(rng, MINI_PROGRAM, pid)).otherwise(
        openid_of(rng, OFFICIAL_ACCOUNT, pid)
    )
    # Mini-program users sometimes authorise their phone number (it arrives canonical, from WeChat).
    mobile = F.when((F.col("appid") == MINI_PROGRAM) & (u("authorised-phone") < 0.4), F.col("mobile"))
    subscribed = F.col("registered_at") - (u("subscribe") * 365 * DAY).cast("long")
    subscribed = F.least(subscribed, F.lit(epoch(params.end) - DAY))
    subscribe_time = damage.epoch((epoch_millis(subscribed) / 1000).cast("long"), per_second=1)
    nickname = F.concat(rng.pick(vocab.NICK_WORDS, "nickname", pid), rng.pick(vocab.NICK_TAILS, "nick-tail", pid))
    fields = [
        openid.alias("openid"),
        F.col("appid"),
        F.col("unionid"),
        nickname.alias("nickname"),
        F.coalesce(damage.missing(F.when(F.col("gender") == "M", 1).otherwise(2), "gender"), F.lit(0)).alias("sex"),
        F.get(constant_array([c for _, c, _ in vocab.CITIES]), F.col("city_idx")).alias("city"),
        mobile.alias("phone_number"),
        subscribe_time.cast("long").alias("subscribe_time"),
        (u("unsubscribed") >= 0.15).alias("subscribe"),
    ]
    truth = users.select(openid.alias("record_id"), pid)
    return json_delivery("wechat_users", users, fields, params, truth=truth)


def app_events(spark: SparkSession, persons: DataFrame, params: Params, catalogue: Catalogue) -> Delivery:
    """App behaviour: device ids, the user id when logged in, views, add-to-carts and purchases."""
    rng, n, mix = Rng(params.seed), params.noise, params.mix
    pid = F.col("person_id")
    start, end = epoch(params.start), epoch(params.end)
    users = _devices(persons.where("app_user"), rng, params)
    count = F.least(
        F.lit(MAX_EVENTS),
        (F.lit(mix.events_per_app_user) * -F.log(F.lit(1.0) - rng.uniform("events", pid))).cast("int") + 1,
    )
    events = users.withColumn("seq", F.explode(F.sequence(F.lit(1), count)))
    key = [pid, F.col("seq")]
    damage = noise.RecordNoise(rng, n, *key)
    u = damage.u

    # A recycled device's new owner uses it in the second half of the window only.
    from_ts = F.when(F.col("recycled"), F.lit((start + end) // 2)).otherwise(F.lit(start))
    events = events.withColumn("ts", from_ts + (u("event-time") * (F.lit(end) - from_ts)).cast("long"))
    events = events.withColumn("_shelf", shelf(rng, *key, ts=F.col("ts"))).withColumn("_u", u("event-sku"))
    events = catalogue.pick(spark, events, shelf="_shelf", u="_u")
    user_id = F.when(F.col("is_member"), member_id_of(pid, 0)).otherwise(
        F.concat(F.lit("U"), digits(permute(pid, multiplier=129_140_163, offset=161_803_398, modulus=10**9), 9))
    )
    logged_in = rng.chance(0.6, "has-login", pid) & (u("logged-in") < 0.7)
    millis = damage.epoch(epoch_millis(F.col("ts")) + rng.integer(0, 999, "millis", *key), per_second=1000)
    event_id = _uuid(rng.hex(32, "event-id", *key))
    fields = [
        event_id.alias("event_id"),
        F.col("device_id"),
        F.when(logged_in, user_id).alias("user_id"),
        rng.pick(vocab.APP_EVENTS, "event", *key, weights=vocab.APP_EVENT_WEIGHTS).alias("event"),
        damage.sku(F.col("sku")).alias("sku"),
        millis.cast("long").alias("ts"),
        F.col("os"),
        rng.pick(["5.2.0", "5.3.1", "5.4.0", "6.0.2"], "app-version", pid).alias("app_version"),
    ]
    truth = events.select(event_id.alias("record_id"), pid)
    return json_delivery("app_events", events, fields, params, truth=truth)


def _item(rng: Rng, rates: Noise, order_key: Column, item: Column) -> Column:
    """An order line as the platform reports it; some name a SKU the catalogue does not have."""
    damage = noise.RecordNoise(rng, rates, order_key, item["line_no"])
    return F.struct(
        item["line_no"].alias("line_no"),
        damage.sku(item["sku"]).alias("sku"),
        item["qty"].alias("qty"),
        item["price"].cast("string").alias("price"),
    )


def _devices(users: DataFrame, rng: Rng, params: Params) -> DataFrame:
    """Each app user's device; a recycled one was used before by the previous app user of the same block.

    Blocks of 1 000 person ids keep the window local to one partition (no global sort).
    """
    pid = F.col("person_id")
    own = _uuid(rng.hex(32, "device", pid))
    block = Window.partitionBy(F.floor(pid / 1000)).orderBy(pid)
    previous = F.lag(pid).over(block)
    users = users.withColumn("_previous", previous)
    recycled = F.col("_previous").isNotNull() & rng.chance(params.noise.recycled_device_rate, "recycled", pid)
    users = users.withColumn("recycled", recycled)
    return users.withColumn(
        "device_id", F.when(F.col("recycled"), _uuid(rng.hex(32, "device", F.col("_previous")))).otherwise(own)
    ).withColumn("os", rng.pick(["ios", "android"], "os", pid, weights=[45, 55]))


def _uuid(hex32: Column) -> Column:
    return F.concat_ws("-", *[F.substring(hex32, a, b) for a, b in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))])


def _ecom_order_id(platform: Column, order_key: Column) -> Column:
    number = digits(permute(order_key, multiplier=177_147, offset=2_718_281_828_459, modulus=10**13), 13)
    return (
        F.when(platform == "tmall", F.concat(F.lit("31"), number, F.lit("7")))
        .when(platform == "jd", F.concat(F.lit("28"), number))
        .when(platform == "douyin", F.concat(F.lit("69"), number, F.lit("0172")))
        .otherwise(F.concat(F.lit("MP"), number))
    )
