"""From links to the identifier graph and from components back to records, against hand-computed frames."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp.identity.graph import anchors, edges, record_components

LINKS = [
    ("crm_members", "a", "member_id", 5),
    ("crm_members", "a", "mobile", 3),
    ("crm_members", "a", "email", 9),
    ("pos_orders", "b", "mobile", 7),  # alone: a self-loop only
    ("pos_orders", "c", "mobile", 3),  # the same star edges as "a"'s: counted once
    ("pos_orders", "c", "email", 9),
    ("app_events", "d", "device", 4),
    ("app_events", "d", "member_id", -2),  # negative ids are the smallest
]


def test_edges_are_a_star_from_each_records_smallest_identifier(spark: SparkSession) -> None:
    links = spark.createDataFrame(LINKS, "source string, record_id string, id_type string, identifier long")
    expected = [(3, 3), (3, 5), (3, 9), (7, 7), (-2, -2), (-2, 4)]
    assertDataFrameEqual(edges(links), spark.createDataFrame(expected, "src long, dst long"))


def test_record_components_place_every_record(spark: SparkSession) -> None:
    links = spark.createDataFrame(LINKS, "source string, record_id string, id_type string, identifier long")
    anchored = anchors(links)
    expected_anchors = [
        ("crm_members", "a", 3),
        ("pos_orders", "b", 7),
        ("pos_orders", "c", 3),
        ("app_events", "d", -2),
    ]
    assertDataFrameEqual(
        anchored, spark.createDataFrame(expected_anchors, "source string, record_id string, anchor long")
    )

    components = spark.createDataFrame([(3, 3), (5, 3), (9, 3), (7, 7), (-2, -2), (4, -2)], "node long, component long")
    records = spark.createDataFrame(
        [("crm_members", "a"), ("pos_orders", "b"), ("pos_orders", "c"), ("app_events", "d"), ("pos_orders", "e")],
        "source string, record_id string",
    )
    # "e" has no linking identifier: it is its own component, named by the hash of its record.
    e = spark.range(1).select(F.xxhash64(F.lit("record"), F.lit("pos_orders"), F.lit("e"))).first()[0]
    expected = [
        ("crm_members", "a", 3),
        ("pos_orders", "b", 7),
        ("pos_orders", "c", 3),
        ("app_events", "d", -2),
        ("pos_orders", "e", e),
    ]
    assertDataFrameEqual(
        record_components(records, anchored, components),
        spark.createDataFrame(expected, "source string, record_id string, component long"),
    )
