"""The lake layer's contract, run against every engine this session can load."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp.errors import LakeError, SchemaMismatchError
from cdp.lake import Lake, Partition

ALL_TYPES = """
    id long, b boolean, i8 byte, i16 short, i32 int, f32 float, f64 double,
    small decimal(10,2), wide decimal(38,18), s string, bin binary, d date, ts timestamp,
    tags array<string>, attrs map<string,int>,
    addr struct<city: string, geo: struct<lat: double, lon: double>>,
    items array<struct<sku: string, qty: int>>, part string
"""


def all_types(spark: SparkSession) -> DataFrame:
    utc = dt.UTC
    rows = [
        (
            1,
            True,
            1,
            1,
            1,
            1.5,
            2.5,
            Decimal("1299.00"),
            Decimal("0.000000000000000001"),
            "上海 ¥",
            b"\x00\xff",
            dt.date(2024, 2, 29),
            dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=utc),
            ["a", None],
            {"k": 1, "n": None},
            ("杭州", (30.2, 120.1)),
            [("SKU-1", 2), None],
            "a b",
        ),
        (
            2,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ),
        (
            3,
            False,
            -128,
            -32768,
            -(2**31),
            float("nan"),
            float("-inf"),
            Decimal("-0.01"),
            Decimal("12345678901234567890.123456789012345678"),
            "",
            b"",
            dt.date(1900, 1, 1),
            dt.datetime(1970, 1, 1, tzinfo=utc),
            [],
            {},
            (None, None),
            [],
            "x:y%z/上海",
        ),
    ]
    return spark.createDataFrame(rows, ALL_TYPES)


def test_round_trip_of_every_column_type(lake: Lake, spark: SparkSession) -> None:
    df = all_types(spark)
    lake.overwrite("silver.types", df, partition_by=["part"])
    assertDataFrameEqual(lake.read("silver.types"), df)
    assert lake.read("silver.types").schema == df.schema


def test_delta_rs_reads_the_same_rows(lake: Lake, spark: SparkSession) -> None:
    df = all_types(spark)
    lake.overwrite("silver.types", df, partition_by=["part"])
    table = DeltaTable(lake.path("silver.types"))
    from_delta_rs = table.to_pyarrow_table().sort_by("id")
    from_spark = pa.table(df.toArrow()).sort_by("id")
    assert from_delta_rs.column_names == from_spark.column_names
    for name in from_spark.column_names:
        assert _nan_safe(from_delta_rs.column(name).to_pylist()) == _nan_safe(from_spark.column(name).to_pylist()), name
    assert len(table.history()) == 1


def _nan_safe(values: list) -> list:
    return ["NaN" if isinstance(v, float) and v != v else v for v in values]


def test_file_stats_let_readers_skip(lake: Lake, spark: SparkSession) -> None:
    df = spark.range(0, 1000, numPartitions=4).select(
        F.col("id"), F.concat(F.lit("n"), F.col("id").cast("string")).alias("name")
    )
    lake.overwrite("silver.numbers", df)
    actions = pa.table(DeltaTable(lake.path("silver.numbers")).get_add_actions(flatten=True)).to_pylist()
    assert sum(a["num_records"] for a in actions) == 1000
    assert sorted((a["min.id"], a["max.id"]) for a in actions) == [
        (0, 249),
        (250, 499),
        (500, 749),
        (750, 999),
    ]
    assert all(a["null_count.name"] == 0 for a in actions)
    pruned = DeltaTable(lake.path("silver.numbers")).to_pyarrow_table(filters=[("id", ">=", 990)])
    assert pruned.num_rows == 10


def test_idempotent_recommit_of_the_same_run(spark: SparkSession, engine, lake_root: str) -> None:
    first = Lake(spark, lake_root, engine=engine, job="cleanse", run_id="r1")
    first.append("silver.events", spark.range(3))
    first.append("silver.events", spark.range(3, 5))  # a second write of the same run: its own key
    assert first.info("silver.events").version == 1

    rerun = Lake(spark, lake_root, engine=engine, job="cleanse", run_id="r1")
    assert rerun.append("silver.events", spark.range(3)).skipped
    assert rerun.append("silver.events", spark.range(3, 5)).skipped
    assert rerun.info("silver.events").version == 1
    assert rerun.read("silver.events").count() == 5

    later = Lake(spark, lake_root, engine=engine, job="cleanse", run_id="r2")
    assert not later.append("silver.events", spark.range(1)).skipped
    assert later.read("silver.events").count() == 6


def test_time_travel_by_version_and_timestamp(lake: Lake, spark: SparkSession) -> None:
    lake.overwrite("gold.t", spark.range(1))
    time.sleep(1.1)
    between = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    lake.overwrite("gold.t", spark.range(5))
    assert lake.read("gold.t").count() == 5
    assert lake.read("gold.t", version=0).count() == 1
    assert lake.read("gold.t", timestamp=between).count() == 1
    with pytest.raises(LakeError, match="not both"):
        lake.read("gold.t", version=0, timestamp=between)


def test_schema_change_is_refused_unless_evolving(lake: Lake, spark: SparkSession) -> None:
    base = spark.createDataFrame([(1, "a")], "id long, name string")
    lake.overwrite("silver.people", base)
    wider = spark.createDataFrame([(2, "b", 30)], "id long, name string, age int")
    with pytest.raises(SchemaMismatchError, match=r"silver\.people: schema change refused \(new columns age\)"):
        lake.append("silver.people", wider)
    retyped = spark.createDataFrame([(3, 1)], "id long, name int")
    with pytest.raises(SchemaMismatchError, match=r"changed types name \(string -> int\)"):
        lake.overwrite("silver.people", retyped)
    assert lake.read("silver.people").count() == 1

    lake.append("silver.people", wider, evolve=True)
    assertDataFrameEqual(
        lake.read("silver.people"),
        spark.createDataFrame([(1, "a", None), (2, "b", 30)], "id long, name string, age int"),
    )
    with pytest.raises(SchemaMismatchError, match="column types cannot change"):
        lake.append("silver.people", retyped, evolve=True)
    lake.overwrite("silver.people", retyped, evolve=True)
    assertDataFrameEqual(lake.read("silver.people"), retyped)


def test_columns_are_matched_by_name_not_position(lake: Lake, spark: SparkSession) -> None:
    lake.overwrite("silver.p", spark.createDataFrame([(1, "a")], "id long, name string"))
    lake.append("silver.p", spark.createDataFrame([("b", 2)], "name string, id long"))
    assert sorted(tuple(r) for r in lake.read("silver.p").collect()) == [(1, "a"), (2, "b")]


def test_replace_partitions_dynamic_and_explicit(lake: Lake, spark: SparkSession) -> None:
    schema = "day string, n long"
    lake.overwrite(
        "silver.daily", spark.createDataFrame([("d1", 1), ("d2", 2), (None, 0)], schema), partition_by=["day"]
    )
    lake.replace_partitions(
        "silver.daily", spark.createDataFrame([("d2", 20), ("d2", 21)], schema), partition_by=["day"]
    )
    assertDataFrameEqual(
        lake.read("silver.daily"),
        spark.createDataFrame([("d1", 1), ("d2", 20), ("d2", 21), (None, 0)], schema),
    )
    # Explicit partitions: d1 is emptied although the new data has no row for it; null is a partition too.
    lake.replace_partitions(
        "silver.daily",
        spark.createDataFrame([("d3", 3)], schema),
        partition_by=["day"],
        partitions=[{"day": "d1"}, {"day": None}, {"day": "d3"}],
    )
    assertDataFrameEqual(lake.read("silver.daily"), spark.createDataFrame([("d2", 20), ("d2", 21), ("d3", 3)], schema))
    with pytest.raises(LakeError, match="outside those to replace"):
        lake.replace_partitions(
            "silver.daily",
            spark.createDataFrame([("d9", 9)], schema),
            partition_by=["day"],
            partitions=[{"day": "d2"}],
        )
    with pytest.raises(SchemaMismatchError, match=r"partitioned by \['day'\]"):
        lake.append("silver.daily", spark.createDataFrame([("d1", 1)], schema), partition_by=["n"])


def test_an_empty_string_partition_is_the_null_partition(lake: Lake, spark: SparkSession) -> None:
    # Spark writes a row whose partition value is "" into the null partition (it reads back as null):
    # an explicit spec naming "" replaces that partition too, as a `Partition` of "" does.
    schema = "day string, n long"
    lake.overwrite("silver.blank", spark.createDataFrame([("d1", 1), ("", 2)], schema), partition_by=["day"])
    lake.replace_partitions(
        "silver.blank", spark.createDataFrame([("", 3)], schema), partition_by=["day"], partitions=[{"day": ""}]
    )
    assertDataFrameEqual(lake.read("silver.blank"), spark.createDataFrame([("d1", 1), (None, 3)], schema))
    lake.replace_partitions(
        "silver.blank", [Partition({"day": ""}, spark.createDataFrame([(4,)], "n long"))], partition_by=["day"]
    )
    assertDataFrameEqual(lake.read("silver.blank"), spark.createDataFrame([("d1", 1), (None, 4)], schema))


def test_partitions_are_listed_and_dropped(lake: Lake, spark: SparkSession) -> None:
    schema = "family string, d date, v long"
    d1, d2 = dt.date(2026, 5, 1), dt.date(2026, 5, 2)
    rows = [("a", d1, 1), ("b", d1, 2), ("a", d2, 3), (None, d2, 4)]
    lake.overwrite("silver.listed", spark.createDataFrame(rows, schema), partition_by=["family", "d"])
    found = sorted(lake.partitions("silver.listed"), key=lambda p: (p["d"], p["family"] or ""))
    assert found == [
        {"family": "a", "d": "2026-05-01"},
        {"family": "b", "d": "2026-05-01"},
        {"family": None, "d": "2026-05-02"},
        {"family": "a", "d": "2026-05-02"},
    ]
    before = lake.info("silver.listed").version
    lake.drop_partitions("silver.listed", [{"d": d1}])  # every family of that date, in one version
    assert lake.info("silver.listed").version == before + 1
    assertDataFrameEqual(lake.read("silver.listed"), spark.createDataFrame([("a", d2, 3), (None, d2, 4)], schema))
    assert {p["d"] for p in lake.partitions("silver.listed")} == {"2026-05-02"}
    assertDataFrameEqual(lake.read("silver.listed", version=before), spark.createDataFrame(rows, schema))
    with pytest.raises(LakeError, match=r"silver\.listed: no partitions to drop"):
        lake.drop_partitions("silver.listed", [])


def test_replace_partitions_of_typed_partition_columns(lake: Lake, spark: SparkSession) -> None:
    schema = "d date, shard int, v string"
    day = dt.date(2024, 5, 1)
    lake.overwrite(
        "silver.typed",
        spark.createDataFrame([(day, 1, "old"), (day, 2, "keep")], schema),
        partition_by=["d", "shard"],
    )
    lake.replace_partitions(
        "silver.typed",
        spark.createDataFrame([(day, 1, "new")], schema),
        partition_by=["d", "shard"],
        partitions=[{"d": day, "shard": 1}],
    )
    assertDataFrameEqual(lake.read("silver.typed"), spark.createDataFrame([(day, 1, "new"), (day, 2, "keep")], schema))


def test_a_partition_spec_naming_some_columns_replaces_every_value_of_the_others(
    lake: Lake, spark: SparkSession
) -> None:
    schema = "family string, day string, v long"
    rows = [("a", "d1", 1), ("b", "d1", 2), ("a", "d2", 3), ("b", "d2", 4)]
    lake.overwrite("silver.by_day", spark.createDataFrame(rows, schema), partition_by=["family", "day"])
    # Family b is gone from the new data of d1: replacing day d1 drops it there, and keeps d2 whole.
    lake.replace_partitions(
        "silver.by_day",
        spark.createDataFrame([("a", "d1", 10)], schema),
        partition_by=["family", "day"],
        partitions=[{"day": "d1"}],
    )
    assertDataFrameEqual(
        lake.read("silver.by_day"), spark.createDataFrame([("a", "d1", 10), ("a", "d2", 3), ("b", "d2", 4)], schema)
    )
    with pytest.raises(LakeError, match="outside those to replace"):
        lake.replace_partitions(
            "silver.by_day",
            spark.createDataFrame([("a", "d3", 5)], schema),
            partition_by=["family", "day"],
            partitions=[{"day": "d1"}],
        )


def test_parts_of_one_write_are_one_version(lake: Lake, spark: SparkSession) -> None:
    schema = "n long, part string"
    lake.overwrite("silver.parts", spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], schema), partition_by=["part"])
    before = lake.info("silver.parts").version
    # Each part with its partition value as a literal, as the tag engine writes its long table.
    parts = [
        spark.range(10, 10 + k).select(F.col("id").alias("n"), F.lit(p).alias("part")) for p, k in (("a", 2), ("b", 3))
    ]
    result = lake.replace_partitions("silver.parts", parts, partition_by=["part"])
    assert result.version == before + 1 and result.rows == 5
    expected = [(10, "a"), (11, "a"), (10, "b"), (11, "b"), (12, "b"), (3, "c")]
    assertDataFrameEqual(lake.read("silver.parts"), spark.createDataFrame(expected, schema))
    wrong = [parts[0], parts[1].select(F.col("n").cast("string").alias("n"), "part")]
    with pytest.raises(SchemaMismatchError, match=r"silver.parts: the parts of one write differ"):
        lake.replace_partitions("silver.parts", wrong, partition_by=["part"])
    with pytest.raises(LakeError, match=r"silver.parts: nothing to write"):
        lake.replace_partitions("silver.parts", [], partition_by=["part"])
    assert lake.info("silver.parts").version == before + 1


def test_partition_parts_are_written_into_their_folders(lake: Lake, spark: SparkSession) -> None:
    schema = "n long, kind string, d date"
    day = dt.date(2024, 5, 1)
    lake.overwrite("silver.folders", spark.createDataFrame([(1, "keep", day), (2, "old", day)], schema),
                   partition_by=["kind", "d"])  # fmt: skip
    # Values Spark escapes in folder names, the null partition, and an empty string (null to Spark too).
    kinds = ["old", "a/b=c%d #?", None, ""]
    parts = [
        Partition({"kind": kind, "d": day}, spark.range(k, k + 2).select(F.col("id").alias("n")))
        for k, kind in zip((10, 20, 30, 40), kinds, strict=True)
    ]
    before = lake.info("silver.folders").version
    result = lake.replace_partitions(
        "silver.folders", parts, partition_by=["kind", "d"], partitions=[{"kind": k} for k in kinds[:3]]
    )
    assert result.version == before + 1 and result.rows == 8
    expected = [(1, "keep", day), (10, "old", day), (11, "old", day), (20, "a/b=c%d #?", day), (21, "a/b=c%d #?", day)]
    expected += [(n, None, day) for n in (30, 31, 40, 41)]
    assertDataFrameEqual(lake.read("silver.folders"), spark.createDataFrame(expected, schema))
    # The same partitions for every reader: delta-rs reads the values from the log.
    table = DeltaTable(lake.path("silver.folders")).to_pyarrow_table()
    assert sorted(zip(table["n"].to_pylist(), table["kind"].to_pylist(), strict=True), key=lambda r: r[0]) == [
        (n, kind) for n, kind, _ in sorted(expected)
    ]
    assert set(table["d"].to_pylist()) == {day}
    with pytest.raises(SchemaMismatchError, match=r"silver.folders: a Partition gives values of \['kind'\]"):
        lake.replace_partitions(
            "silver.folders",
            [Partition({"kind": "x"}, spark.range(1).select(F.col("id").alias("n")))],
            partition_by=["kind", "d"],
        )
    with pytest.raises(SchemaMismatchError, match=r"silver.folders: a Partition's rows hold the partition column kind"):
        rows = spark.createDataFrame([(1, "x")], "n long, kind string")
        lake.replace_partitions(
            "silver.folders", [Partition({"kind": "x", "d": day}, rows)], partition_by=["kind", "d"]
        )
    assert lake.info("silver.folders").version == before + 1
    # A table created by Partitions alone: the null partition's column is a string, as Spark's folders.
    lake.replace_partitions(
        "silver.fresh",
        [Partition({"kind": None}, spark.range(2).select(F.col("id").alias("n")))],
        partition_by=["kind"],
    )
    assertDataFrameEqual(
        lake.read("silver.fresh"), spark.createDataFrame([(0, None), (1, None)], "n long, kind string")
    )


def test_plain_encoded_columns_are_written_without_a_dictionary(lake: Lake, spark: SparkSession) -> None:
    # Few distinct values, which Parquet would encode with a dictionary: `code` is asked not to.
    df = spark.range(0, 600, numPartitions=2).select(
        "id",
        (F.col("id") % 3).cast("string").alias("code"),
        (F.col("id") % 5).cast("string").alias("kind"),
        F.lit("a").alias("part"),
    )
    lake.replace_partitions("silver.plain", df, partition_by=["part"], plain_encoded=["code"])
    assertDataFrameEqual(lake.read("silver.plain"), df)
    files = DeltaTable(lake.path("silver.plain")).file_uris()
    assert len(files) == 2
    for path in files:
        chunks = pq.ParquetFile(path.removeprefix("file://")).metadata.row_group(0)
        encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(chunks.num_columns)}
        assert not any("DICTIONARY" in e for e in encodings["code"]), encodings
        assert any("DICTIONARY" in e for e in encodings["kind"]), encodings  # the others keep theirs
    with pytest.raises(SchemaMismatchError, match=r"silver.plain: plain_encoded names nope, not a column"):
        lake.append("silver.plain", df, plain_encoded=["nope"])


def test_history_names_job_and_run(lake: Lake, spark: SparkSession) -> None:
    lake.overwrite("ops.h", spark.range(2))
    lake.append("ops.h", spark.range(2))
    history = lake.history("ops.h")
    assert [c.version for c in history] == [0, 1]
    assert [c.metadata["cdp.mode"] for c in history] == ["overwrite", "append"]
    assert {c.metadata["cdp.run_id"] for c in history} == {"run-1"}
    assert len(DeltaTable(lake.path("ops.h")).history()) == 2


def test_empty_frame_creates_a_readable_table(lake: Lake, spark: SparkSession) -> None:
    empty = spark.createDataFrame([], "id long, day string")
    lake.overwrite("silver.empty", empty, partition_by=["day"])
    assert lake.read("silver.empty").count() == 0
    assert lake.read("silver.empty").schema == empty.schema
    assert lake.info("silver.empty").rows == 0


def test_bad_names_and_missing_tables_are_clear(lake: Lake) -> None:
    with pytest.raises(LakeError, match=r"'Silver-x' is not of the form layer\.table"):
        lake.path("Silver-x")
    with pytest.raises(LakeError, match=r"no Delta table at .*/silver/absent"):
        lake.read("silver.absent")


def test_overwrite_is_atomic_for_a_concurrent_reader(lake: Lake, spark: SparkSession) -> None:
    """A reader polling during overwrites only ever sees one whole generation of the table."""
    rows = 20_000

    def generation(g: int) -> DataFrame:
        return spark.range(rows, numPartitions=4).select(F.lit(g).alias("gen"), F.col("id"))

    lake.overwrite("gold.atomic", generation(0))
    seen: list[tuple] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                stats = (
                    lake.read("gold.atomic")
                    .agg(F.count("*").alias("n"), F.min("gen").alias("lo"), F.max("gen").alias("hi"))
                    .first()
                )
                seen.append(tuple(stats))
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    for g in range(1, 5):
        lake.overwrite("gold.atomic", generation(g))
    done.set()
    thread.join()
    assert not errors, errors
    assert len(seen) >= 2
    assert all(n == rows and lo == hi for n, lo, hi in seen), seen
