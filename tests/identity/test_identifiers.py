"""Identifier observations of the declared sources: scopes keep namespaces apart."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdp.identity.identifiers import identifier_id, observations, person_sources

EVENTS = [
    # event_id, device_id, user_id, os
    ("e1", "6f1c-aa", None, "ios"),
    ("e2", "6f1c-aa", "M001", "ios"),
    ("e3", "6f1c-aa", None, "android"),  # the same string reported by an Android device
    ("e4", "9b2d-bb", None, None),  # no system reported
]


def test_device_ids_are_scoped_by_operating_system(spark: SparkSession) -> None:
    silver = spark.createDataFrame(EVENTS, "event_id string, device_id string, user_id string, os string")
    obs = observations(silver, person_sources(mall_appid="wx-mall")["app_events"])
    ids = {
        (r.record_id, r.id_type): r.identifier
        for r in obs.select(
            "record_id", "id_type", identifier_id(F.col("id_type"), F.col("scope"), F.col("value")).alias("identifier")
        ).collect()
    }
    assert set(ids) == {("e1", "device"), ("e2", "device"), ("e2", "member_id"), ("e3", "device"), ("e4", "device")}
    assert ids[("e1", "device")] == ids[("e2", "device")]  # one device, one system: one identifier
    assert ids[("e3", "device")] != ids[("e1", "device")]  # two systems: two devices
    assert len({ids[("e4", "device")], ids[("e1", "device")], ids[("e3", "device")]}) == 3
