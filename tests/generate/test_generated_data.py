"""Statistical properties of generated data that the cleansing, identity and tag work relies on.

Rates are checked against the configured value within four binomial standard deviations (plus a
small absolute slack), so a correct generator fails about once in 15 000 runs of a check, while a
rate that is off by a fraction of itself fails every time at these sample sizes.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import re

import pytest

from cdp.generate.params import Mix, Noise
from cdp.generate.vocab import PLACEHOLDER_CARD, PLACEHOLDER_EMAILS, PLACEHOLDER_MOBILES
from conftest import PERSONS, RATES, Generated

SOURCES_WITH_PEOPLE = ["crm_members", "pos_orders", "ecom_orders", "wechat_users", "app_events"]
ALL_SOURCES = [*SOURCES_WITH_PEOPLE, "pos_order_items", "products", "stores"]
CANONICAL_MOBILE = re.compile(r"^1\d{10}$")
JSON_ID = re.compile(r'^\{"[a-z_]+":"([^"]+)"')


def rate(name: str) -> float:
    key = name.replace("_", "-")
    if key in RATES:
        return RATES[key]
    return getattr(Noise(), name, None) or getattr(Mix(), name)


def assert_rate(hits: int, n: int, expected: float, what: str, slack: float = 0.003) -> None:
    assert n > 0, f"{what}: no rows to measure"
    sd = math.sqrt(expected * (1 - expected) / n)
    measured = hits / n
    assert abs(measured - expected) <= 4 * sd + slack, f"{what}: {hits}/{n} = {measured:.4f}, expected {expected}"


@pytest.fixture(scope="module")
def truth(generated: Generated):
    return generated.lake.read("truth.person_records").toPandas()


@pytest.fixture(scope="module")
def persons(generated: Generated):
    return generated.lake.read("truth.persons").toPandas().set_index("person_id")


@pytest.fixture(scope="module")
def crm(generated: Generated) -> list[list[str]]:
    header, rows = generated.csv_rows("crm_members", encoding="gbk")
    return [r for r in rows if len(r) == len(header)]


def test_every_source_is_delivered_complete(generated: Generated) -> None:
    for source in ALL_SOURCES:
        folder = generated.root / "landing" / source / generated.batch
        assert (folder / "_SUCCESS").is_file(), source
        assert generated.files(source), source


def test_crm_file_is_gbk_with_chinese_headers(generated: Generated) -> None:
    raw = generated.files("crm_members")[0].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    header, rows = generated.csv_rows("crm_members", encoding="gbk")
    assert header[:3] == ["会员编号", "会员卡号", "姓名"]
    assert "手机号" in header and "微信UnionID" in header
    assert any(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", r[2]) for r in rows[:50])


def test_truth_covers_every_record_exactly_once(generated: Generated, truth) -> None:
    assert not truth.duplicated(["source", "record_id"]).any()
    assert set(truth["source"]) == set(SOURCES_WITH_PEOPLE)
    for source in SOURCES_WITH_PEOPLE:
        if source in ("crm_members", "pos_orders"):
            lines = generated.text(source, "gbk" if source == "crm_members" else "utf-8")
            ids = {line.split(",")[0] for line in lines if line != lines[0]}
        else:
            ids = {JSON_ID.match(line).group(1) for line in generated.text(source)}
        assert ids == set(truth.loc[truth["source"] == source, "record_id"]), source


def test_channel_presence_matches_each_persons_flags(truth, persons) -> None:
    seen = truth.groupby("person_id")["source"].agg(set)
    assert set(seen.index) == set(persons.index) == set(range(PERSONS)), "every person appears somewhere"
    for flag, sources in (
        ("is_member", {"crm_members"}),
        ("wechat_user", {"wechat_users"}),
        ("app_user", {"app_events"}),
    ):
        present = seen.apply(lambda s, sources=sources: bool(s & sources))
        assert (present == persons[flag].reindex(present.index)).all(), flag
    buys = seen.apply(lambda s: bool(s & {"pos_orders", "ecom_orders"}))
    flagged = (persons["pos_buyer"] | persons["ecom_buyer"]).reindex(buys.index)
    assert (buys <= flagged).all(), "nobody buys who is not a buyer"
    assert buys[flagged].all(), "every buyer has an order"


def test_share_of_persons_in_two_or_more_channels(truth) -> None:
    m = Mix()
    rates = [
        m.member_rate,
        m.pos_buyer_rate + m.ecom_buyer_rate - m.pos_buyer_rate * m.ecom_buyer_rate,
        m.wechat_rate,
        m.app_rate,
    ]
    # P(at least two of four independent channels), buying counted as one channel.
    none = math.prod(1 - r for r in rates)
    one = sum(r * math.prod(1 - q for j, q in enumerate(rates) if j != i) for i, r in enumerate(rates))
    expected = 1 - none - one
    channel = truth["source"].replace({"pos_orders": "orders", "ecom_orders": "orders"})
    per_person = channel.groupby(truth["person_id"]).nunique()
    assert_rate(int((per_person >= 2).sum()), PERSONS, expected, "persons in 2+ channels", slack=0.01)


def test_members_who_never_buy_exist(persons) -> None:
    never = persons["is_member"] & ~persons["pos_buyer"] & ~persons["ecom_buyer"]
    m = Mix()
    assert_rate(
        int(never.sum()),
        PERSONS,
        m.member_rate * (1 - m.pos_buyer_rate) * (1 - m.ecom_buyer_rate),
        "never-buying members",
    )


def test_identifier_variants_placeholders_and_missing_fields(crm) -> None:
    mobiles = [r[5] for r in crm if r[5] and r[5] not in PLACEHOLDER_MOBILES]
    variants = sum(not CANONICAL_MOBILE.match(m) for m in mobiles)
    assert_rate(variants, len(mobiles), rate("variant_rate"), "mobile variants")
    assert any(m.startswith("+86 ") for m in mobiles) and any(m.startswith("0086-") for m in mobiles)
    assert any("１" in m or "３" in m for m in mobiles), "full-width digits"
    emails = [r[6] for r in crm if r[6] and r[6] not in PLACEHOLDER_EMAILS]
    assert_rate(sum(e != e.strip().lower() for e in emails), len(emails), rate("variant_rate"), "email variants")

    placeholder = sum(
        r[5] in PLACEHOLDER_MOBILES or r[6] in PLACEHOLDER_EMAILS or r[1] == PLACEHOLDER_CARD for r in crm
    )
    assert_rate(placeholder, len(crm), rate("placeholder_rate"), "placeholder records")
    assert_rate(sum(r[4] == "" for r in crm), len(crm), rate("missing_rate"), "missing birthdays")


def test_typos_and_double_registrations(crm, truth, persons) -> None:
    person_of = dict(zip(truth["record_id"], truth["person_id"], strict=True))
    records = {r[0]: r for r in crm}  # a record delivered twice counts once
    owners = {member: person_of[member] for member in records}
    typos = sum(r[2] != persons.at[owners[m], "name"] for m, r in records.items())
    assert_rate(typos, len(records), rate("typo_rate"), "names with a typo")
    members = collections.Counter(owners.values())
    assert_rate(
        sum(c == 2 for c in members.values()), len(members), rate("double_member_rate"), "members registered twice"
    )


def test_shared_family_phones_and_recycled_devices(generated: Generated, persons, truth) -> None:
    mobile = persons["mobile"]
    shared = sum(mobile[p - 1] == mobile[p] for p in persons.index if p % 2 == 1)
    assert_rate(shared, PERSONS, rate("family_phone_rate"), "persons using a family member's phone")
    assert mobile.value_counts().max() == 2, "a family phone is shared by two persons, never more"

    events, _ = generated.json_rows("app_events")
    person_of = dict(zip(truth["record_id"], truth["person_id"], strict=True))
    users_of = collections.defaultdict(set)
    for e in events:
        users_of[e["device_id"]].add(person_of[e["event_id"]])
    app_users = {p for users in users_of.values() for p in users}
    second_owners = sum(len(users) - 1 for users in users_of.values())
    # The first app user of each block of 1 000 ids has no predecessor to inherit from.
    assert_rate(second_owners, len(app_users), rate("recycled_device_rate"), "recycled devices", slack=0.01)


def test_store_phone_and_typed_mobiles_on_walk_in_orders(generated: Generated) -> None:
    _, stores = generated.csv_rows("stores")
    store_phone = {s[0]: s[4] for s in stores}
    header, rows = generated.csv_rows("pos_orders")
    rows = [r for r in rows if len(r) == len(header)]
    walk_in = [r for r in rows if r[2] == ""]
    on_store_phone = sum(r[3] == store_phone[r[1]] for r in walk_in)
    assert_rate(on_store_phone, len(walk_in), rate("store_phone_rate"), "store phone on walk-in orders")
    typed = sum(r[3] != "" and r[3] != store_phone[r[1]] for r in walk_in)
    assert_rate(typed, len(walk_in), rate("typed_mobile_rate"), "typed customer mobiles")
    busiest = collections.Counter(r[3] for r in walk_in if r[3]).most_common(1)[0]
    assert busiest[0] in store_phone.values() and busiest[1] > 20, "a store phone is the most frequent value"


def test_marketplaces_mask_the_receiver_mobile(generated: Generated) -> None:
    orders, _ = generated.json_rows("ecom_orders")
    for o in orders:
        masked = bool(re.fullmatch(r"1\d{2}\*{4}\d{4}", o["receiver_mobile"]))
        assert masked == (o["platform"] != "mall"), o["platform"]
        assert ("buyer_openid" in o) == (o["platform"] == "mall")


def test_invalid_rows_for_quarantine(generated: Generated) -> None:
    header, rows = generated.csv_rows("pos_orders")
    lines = generated.text("pos_orders")
    distinct = set(lines) - {",".join(header)}
    assert_rate(
        len(lines) - len(generated.files("pos_orders")) - len(distinct),
        len(distinct),
        rate("duplicate_rate"),
        "duplicate lines",
    )
    malformed = [r for r in rows if len(r) != len(header)]
    assert_rate(len(malformed), len(rows), rate("malformed_rate"), "malformed CSV lines")
    _, broken = generated.json_rows("ecom_orders")
    assert_rate(len(broken), len(generated.text("ecom_orders")), rate("malformed_rate"), "malformed JSON lines")

    good = [dict(zip(header, r, strict=True)) for r in rows if len(r) == len(header)]
    impossible = sum(_impossible(r["order_time"][:10]) for r in good)
    assert_rate(impossible, len(good), rate("bad_date_rate"), "impossible order dates")
    assert_rate(
        sum(float(r["paid_amount"]) < 0 for r in good), len(good), rate("negative_amount_rate"), "negative amounts"
    )

    _, products = generated.csv_rows("products")
    skus = {p[0] for p in products}
    item_header, items = generated.csv_rows("pos_order_items")
    items = [r for r in items if len(r) == len(item_header)]
    assert_rate(sum(r[2] not in skus for r in items), len(items), rate("unknown_sku_rate"), "unknown SKUs")


def _impossible(day: str) -> bool:
    try:
        return dt.date.fromisoformat(day).year > 2030
    except ValueError:
        return True


def test_seasonality_and_baby_stages(generated: Generated, truth, persons) -> None:
    header, rows = generated.csv_rows("pos_orders")
    orders, _ = generated.json_rows("ecom_orders")
    days = collections.Counter(r[4][:10] for r in rows if len(r) == len(header))
    days.update(o["created_at"][:10] for o in orders)
    ordinary = sorted(days.values())[len(days) // 2]
    for promo in ("2025-06-18", "2025-11-11"):
        assert days[promo] > 5 * ordinary, f"{promo}: {days[promo]} orders, median day {ordinary}"

    # Mothers buy for the stage their baby is in: formula for a newborn, then stage 2 and 3.
    _, products = generated.csv_rows("products")
    stage_of = {p[0]: p[6] for p in products if p[6]}
    person_of = dict(zip(truth["record_id"], truth["person_id"], strict=True))
    matched = total = 0
    for o in orders:
        p = person_of[o["order_id"]]
        if not persons.at[p, "is_mother"] or _impossible(o["created_at"][:10]):
            continue
        age = (dt.date.fromisoformat(o["created_at"][:10]) - persons.at[p, "baby_birth"]).days
        expected = _stage(age)
        for item in o["items"]:
            if item["sku"] in stage_of and expected:
                total += 1
                matched += stage_of[item["sku"]] == expected
    assert total > 50 and matched / total > 0.6, f"{matched}/{total} staged items fit the baby's age"


def _stage(age_days: int) -> str | None:
    for limit, stage in ((-280, None), (0, "pregnancy"), (183, "0-6m"), (365, "6-12m"), (3 * 365, "1-3y")):
        if age_days < limit:
            return stage
    return "3y+"
