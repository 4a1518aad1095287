"""Retention of the tag tables' as-of dates (`cdp.tags.job.expire`, run by `maintain`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdp.config import load_config
from cdp.errors import ConfigError
from cdp.lake import Lake, Partition
from cdp.ops.maintain import main as maintain_main
from cdp.tags.job import CUSTOMER_TAGS, EVENTS, PROFILE, expire

DATES = [dt.date(2026, m, d) for m, d in ((3, 1), (3, 15), (4, 1), (4, 20), (4, 28), (5, 1), (5, 3))]


def tag_tables(spark: SparkSession, root: Path, dates: list[dt.date]) -> Lake:
    """A profile, a long table (two families) and change events for each of `dates`, as the tags job writes them."""
    lake = Lake(spark, str(root), job="setup", run_id="s1")
    for d in dates:
        profile = spark.createDataFrame([(1, 2.0), (2, None)], "one_id long, spend double")
        lake.replace_partitions(PROFILE, [Partition({"as_of": d}, profile)], partition_by=["as_of"], evolve=True)
        rows = spark.createDataFrame([(1, "spend", "2.0")], "one_id long, tag string, value string")
        parts = [Partition({"family": f, "as_of": d}, rows) for f in ("behaviour", "rfm")]
        lake.replace_partitions(CUSTOMER_TAGS, parts, partition_by=["family", "as_of"], partitions=[{"as_of": d}])
        events = spark.createDataFrame([(1, "spend", d)], "one_id long, tag string, as_of date")
        lake.replace_partitions(EVENTS, events, partition_by=["as_of"], partitions=[{"as_of": d}])
    return lake


def conf_dir(folder: Path, **overlays: str) -> Path:
    """A copy of the project's base and local configuration in `folder`, with an overlay
    `<env>.yaml` (the local one plus the given YAML text) for each keyword."""
    folder.mkdir()
    project = Path(__file__).resolve().parents[2] / "conf"
    local = (project / "local.yaml").read_text()
    (folder / "base.yaml").write_text((project / "base.yaml").read_text())
    (folder / "local.yaml").write_text(local)
    for env, extra in overlays.items():
        (folder / f"{env}.yaml").write_text(local + extra)
    return folder


def dates_of(lake: Lake, name: str) -> list[dt.date]:
    return sorted(r.as_of for r in lake.read(name).select("as_of").distinct().collect())


def test_dates_older_than_kept_days_are_dropped_but_month_starts_stay(spark: SparkSession, tmp_path: Path) -> None:
    lake = tag_tables(spark, tmp_path / "lake", DATES)
    # The newest date is 2026-05-03: seven days before it is 2026-04-26.
    assert expire(lake, keep_days=7) == [dt.date(2026, 3, 15), dt.date(2026, 4, 20)]
    kept = [d for d in DATES if d not in (dt.date(2026, 3, 15), dt.date(2026, 4, 20))]
    assert dates_of(lake, PROFILE) == kept
    assert dates_of(lake, CUSTOMER_TAGS) == kept
    assert lake.read(CUSTOMER_TAGS).groupBy("as_of").agg(F.count("*").alias("n")).where("n != 2").count() == 0
    assert dates_of(lake, EVENTS) == DATES  # the change events keep every date
    version = lake.info(PROFILE).version
    assert expire(lake, keep_days=7) == []  # dropping again drops nothing, and writes no version
    assert lake.info(PROFILE).version == version
    # Without the month starts, only the last week stays.
    assert expire(lake, keep_days=7, keep_month_starts=False) == [dt.date(2026, 3, 1), dt.date(2026, 4, 1)]
    assert dates_of(lake, PROFILE) == [dt.date(2026, 4, 28), dt.date(2026, 5, 1), dt.date(2026, 5, 3)]


def test_expire_on_a_lake_without_tags_does_nothing(spark: SparkSession, tmp_path: Path) -> None:
    assert expire(Lake(spark, str(tmp_path / "lake")), keep_days=0) == []


def test_maintain_drops_expired_dates_when_configured(spark: SparkSession, tmp_path: Path) -> None:
    lake = tag_tables(spark, tmp_path / "lake", DATES[-3:])
    conf = conf_dir(tmp_path / "conf", kept="tags:\n  keep_days: 2\n")
    # Not configured (the default): every date stays.
    assert maintain_main(["--lake", lake.root, "--run-id", "m1", "--conf-dir", str(conf)]) == 0
    assert dates_of(lake, PROFILE) == DATES[-3:]
    assert maintain_main(["--lake", lake.root, "--run-id", "m2", "--conf-dir", str(conf), "--env", "kept"]) == 0
    # 2026-04-28 is older than 2026-05-01; 2026-05-01 is a month start (and recent anyway).
    assert dates_of(lake, PROFILE) == [dt.date(2026, 5, 1), dt.date(2026, 5, 3)]
    assert dates_of(lake, CUSTOMER_TAGS) == [dt.date(2026, 5, 1), dt.date(2026, 5, 3)]


def test_keep_days_must_not_be_negative(tmp_path: Path) -> None:
    conf = conf_dir(tmp_path / "conf", negative="tags:\n  keep_days: -1\n")
    with pytest.raises(ConfigError, match="keep_days"):
        load_config("negative", conf_dir=conf, environ={})
