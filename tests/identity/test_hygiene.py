"""Identifier hygiene: blocklists, hubs, non-linking types and per-holder caps, against hand-computed frames.

Identifier ids are small hand-picked numbers (in the job they are hashes); the hygiene rules only
need them to be distinct per value.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from cdp.config import IdentifierTypeConfig as T
from cdp.identity.hygiene import apply

OBS = "source string, record_id string, id_type string, identifier long, value string, name string"
LINKS = "source string, record_id string, id_type string, identifier long"
REMOVED = "identifier long, id_type string, rule string, records long, names long"
CAPPED = "source string, record_id string, id_type string, identifier long, rule string"


def observations(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, OBS)


def links_of(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """The expected links: the observation rows given, without `value` and `name`."""
    return spark.createDataFrame([r[:4] for r in rows], LINKS)


def test_blocklist_values_and_whole_value_patterns(spark: SparkSession) -> None:
    types = {
        # The first pattern has a capture group of its own: the second one's `\1` must still be its own group.
        "mobile": T(priority=50, blocklist=("13912345678",), block_patterns=(r"(1\d\d)0{8}", r"1(\d)\1{9}")),
        "email": T(priority=40, blocklist=("none@none.com",)),
        "buyer_nick": T(priority=30),
    }
    blocked_value = [("crm_members", "c1", "mobile", 11, "13912345678", "Li Lei")]
    blocked_pattern = [
        ("crm_members", "c2", "mobile", 12, "13800000000", None),  # first pattern
        ("pos_orders", "p1", "mobile", 13, "13333333333", None),  # second pattern, with a back-reference
        ("pos_orders", "p2", "mobile", 13, "13333333333", None),
        ("crm_members", "c3", "email", 21, "none@none.com", "Han Meimei"),
    ]
    kept = [
        ("crm_members", "c1", "email", 22, "lilei@qq.com", "Li Lei"),
        ("pos_orders", "p3", "mobile", 14, "813333333333", None),  # the pattern only as a substring
        ("pos_orders", "p4", "mobile", 15, "133333333334", None),
        ("pos_orders", "p5", "mobile", 16, "1391234567", None),  # a prefix of a listed value
        ("ecom_orders", "e1", "buyer_nick", 31, "13333333333", "Lucy"),  # the patterns are for mobiles only
        ("ecom_orders", "e2", "buyer_nick", 32, "none@none.com", None),  # the email blocklist is for emails only
    ]
    result = apply(observations(spark, blocked_value + blocked_pattern + kept), types)

    assertDataFrameEqual(result.links, links_of(spark, kept))
    expected_removed = [
        # No type here has `max_names`: names are not counted (null).
        (11, "mobile", "blocklist:value", 1, None),
        (12, "mobile", "blocklist:pattern", 1, None),
        (13, "mobile", "blocklist:pattern", 2, None),
        (21, "email", "blocklist:value", 1, None),
    ]
    assertDataFrameEqual(result.removed, spark.createDataFrame(expected_removed, REMOVED))
    assertDataFrameEqual(result.capped, spark.createDataFrame([], CAPPED))


def test_hubs_by_records_and_by_names_are_strict(spark: SparkSession) -> None:
    types = {
        "mobile": T(priority=50, max_records=3, max_names=1, blocklist=("13000000000",)),
        "device": T(priority=10, max_records=5),
    }
    rows = [
        # 11: four records, one name -> more than 3 records.
        *[("pos_orders", f"a{i}", "mobile", 11, "13811111111", n) for i, n in enumerate(["Li", "Li", None, None])],
        # 12: exactly 3 records and exactly 1 name: trimmed, and within one edit of each other (a typo).
        *[
            ("crm_members", f"b{i}", "mobile", 12, "13822222222", n)
            for i, n in enumerate(["Wang Fang", " Wang Fang ", "Wang Fan"])
        ],
        # 13: two records, two names -> more than 1 name.
        ("crm_members", "c0", "mobile", 13, "13833333333", "Wang Fang"),
        ("ecom_orders", "c1", "mobile", 13, "13833333333", "Li Na"),
        # 14: too many records and too many names: the records rule is tried first.
        *[
            ("ecom_orders", f"d{i}", "mobile", 14, "13844444444", n)
            for i, n in enumerate(["Zhang Wei", "Li Na", "Wang Fang", "Liu Yang"])
        ],
        # 15: listed and a hub: the blocklist is tried first.
        *[("pos_orders", f"f{i}", "mobile", 15, "13000000000", None) for i in range(5)],
        # 31: five records is a hub for mobiles, but devices are allowed 5.
        *[("app_events", f"g{i}", "device", 31, "dev-31", None) for i in range(5)],
        # 32: six devices records -> more than 5.
        *[("app_events", f"h{i}", "device", 32, "dev-32", None) for i in range(6)],
    ]
    result = apply(observations(spark, rows), types)

    expected_removed = [
        (11, "mobile", "hub:records", 4, 1),
        (13, "mobile", "hub:names", 2, 2),
        (14, "mobile", "hub:records", 4, 4),
        (15, "mobile", "blocklist:value", 5, 0),
        (32, "device", "hub:records", 6, None),  # devices: names not counted
    ]
    assertDataFrameEqual(result.removed, spark.createDataFrame(expected_removed, REMOVED))
    assertDataFrameEqual(result.links, links_of(spark, [r for r in rows if r[3] in (12, 31)]))
    assertDataFrameEqual(result.capped, spark.createDataFrame([], CAPPED))


def test_non_linking_and_unconfigured_types_do_not_link(spark: SparkSession) -> None:
    rows = [
        ("crm_members", "c1", "member_id", 1, "M001", "Li"),
        ("crm_members", "c1", "email", 21, "li@qq.com", "Li"),  # link: false
        ("crm_members", "c2", "email", 21, "li@qq.com", "Wang"),  # would be a name hub, but emails never link
        ("app_events", "a1", "device", 31, "dev-31", None),  # not configured at all
        ("app_events", "a1", "member_id", 1, "M001", None),
    ]
    types = {"member_id": T(priority=90), "email": T(priority=40, link=False, max_names=1)}
    result = apply(observations(spark, rows), types)

    assertDataFrameEqual(result.links, links_of(spark, [rows[0], rows[4]]))
    assertDataFrameEqual(result.removed, spark.createDataFrame([], REMOVED))
    assertDataFrameEqual(result.capped, spark.createDataFrame([], CAPPED))

    nothing_links = apply(observations(spark, rows), {"email": T(link=False)})
    assertDataFrameEqual(nothing_links.links, spark.createDataFrame([], LINKS))
    assertDataFrameEqual(nothing_links.removed, spark.createDataFrame([], REMOVED))


def test_cap_keeps_the_best_supported_values_per_holder(spark: SparkSession) -> None:
    types = {
        "member_id": T(priority=90),
        "device": T(priority=10, max_per_holder=3),
    }

    def event(record: str, *ids: int) -> list[tuple]:
        return [("app_events", record, "member_id" if i < 100 else "device", i, f"v{i}", None) for i in ids]

    m, n = 1, 2  # members; devices are 101..105
    rows = [
        *event("e1", m, 101),
        *event("e2", m, 102),
        *event("e3", m, 103),
        *event("e4", m, 104),
        *event("e5", m, 105),
        *event("e6", 101),
        *event("e7", n, 101),
        *event("e8", 102),
        *event("e9", 103),
        *event("e10", n, 104),  # member 2 holds only two devices: 104 stays on this record
    ]
    # Support (records per device): 101: 3, 102: 2, 103: 2, 104: 2, 105: 1. Member 1 keeps 101 and,
    # of the three devices with 2 records, the two smallest ids (102, 103); 104 and 105 are dropped
    # from member 1's records only.
    result = apply(observations(spark, rows), types)

    dropped = [("app_events", "e4", "device", 104, "cap"), ("app_events", "e5", "device", 105, "cap")]
    assertDataFrameEqual(result.capped, spark.createDataFrame(dropped, CAPPED))
    linked = [r for r in rows if (r[1], r[3]) not in {("e4", 104), ("e5", 105)}]
    assertDataFrameEqual(result.links, links_of(spark, linked))
    assertDataFrameEqual(result.removed, spark.createDataFrame([], REMOVED))
