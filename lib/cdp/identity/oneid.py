"""Stable `one_id`s: this run's components take over the ids of the previous run.

1. Overlap: for every (component, previous one_id) pair, the number of records they share.
2. Matching, in rounds: a component and a previous id are matched when each is the other's best
   (most shared records; ties go to the smaller id). Matched pairs leave the pool and the next
   round matches what is left, until a round matches nothing. A component inherits the id it is
   matched with.
3. Other components are new: their id is their smallest node id, unless that id was ever given
   out before (it then becomes `xxhash64(component, run_id)`), so an id never names two persons.
4. Events: a component holding records of two or more previous ids is a `merge` (old ids -> the
   component's id); a previous id whose records now lie in two or more components is a `split`
   (one event per part).

Without a previous map every id is the component's smallest node id, so a run from scratch on the
same input gives the same ids, and a re-run over its own output inherits every id unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from cdp.schemas import RECORD

logger = logging.getLogger(__name__)

MAX_ROUNDS = 20
EVENTS_SCHEMA = StructType(
    [
        StructField("run_id", StringType()),
        StructField("event", StringType()),  # merge | split
        StructField("old_ids", ArrayType(LongType())),
        StructField("new_id", LongType()),
        StructField("records", LongType()),  # records of the new id that came from the old ids
    ]
)


@dataclass(frozen=True)
class Assignment:
    oneid_map: DataFrame  # source, record_id, one_id
    events: DataFrame  # EVENTS_SCHEMA


def assign(current: DataFrame, previous: DataFrame | None, *, issued: DataFrame | None, run_id: str) -> Assignment:
    """Give every component of this run a `one_id`.

    Args:
        current: `source`, `record_id`, `component` of every record, once.
        previous: the previous run's `source`, `record_id`, `one_id`, or None on the first run.
        issued: `one_id` of every id given out before (live or retired), or None.
        run_id: this run; salts the id of a new component whose natural id was used before.

    Returns:
        The map (`source`, `record_id`, `one_id`) and the merge/split events.
    """
    spark = current.sparkSession
    if previous is None:
        mapping = current.select(*RECORD, F.col("component").alias("one_id"))
        return Assignment(mapping, spark.createDataFrame([], EVENTS_SCHEMA))

    # 1. Overlap.
    overlap = (
        current.join(previous, on=RECORD, how="inner").groupBy("component", "one_id").agg(F.count("*").alias("n"))
    ).localCheckpoint()

    # 2. Matching in rounds.
    inherited = _match(overlap)

    # 3. New ids.
    taken = previous.select("one_id")
    if issued is not None:
        taken = taken.unionByName(issued.select("one_id"))
    taken = taken.distinct().select(F.col("one_id").alias("natural"), F.lit(True).alias("taken"))
    components = current.select("component").distinct()
    ids = (
        components.join(inherited, on="component", how="left")
        .join(taken, on=F.col("component") == F.col("natural"), how="left")
        .select(
            "component",
            F.coalesce(
                "one_id",
                F.when(F.col("taken").isNull(), F.col("component")),
                F.xxhash64(F.col("component"), F.lit(run_id)),
            ).alias("one_id"),
        )
    ).localCheckpoint()
    mapping = current.join(ids, on="component", how="inner").select(*RECORD, "one_id")

    # 4. Events.
    parts = overlap.join(ids.withColumnRenamed("one_id", "new_id"), on="component", how="inner")
    merges = (
        parts.groupBy("component", "new_id")
        .agg(F.sort_array(F.collect_list("one_id")).alias("old_ids"), F.sum("n").alias("records"))
        .where(F.size("old_ids") > 1)
        .select(F.lit("merge").alias("event"), "old_ids", "new_id", "records")
    )
    split_ids = parts.groupBy("one_id").agg(F.count("*").alias("parts")).where(F.col("parts") > 1)
    splits = parts.join(split_ids, on="one_id", how="left_semi").select(
        F.lit("split").alias("event"), F.array("one_id").alias("old_ids"), "new_id", F.col("n").alias("records")
    )
    events = merges.unionByName(splits).select(F.lit(run_id).alias("run_id"), "event", "old_ids", "new_id", "records")
    return Assignment(mapping, events)


def _match(overlap: DataFrame) -> DataFrame:
    """Mutual-best matching of components to previous ids. Output columns: `component`, `one_id`."""
    pool, matched = overlap, []
    for round_no in range(1, MAX_ROUNDS + 1):
        best_old = F.row_number().over(Window.partitionBy("component").orderBy(F.col("n").desc(), "one_id"))
        best_comp = F.row_number().over(Window.partitionBy("one_id").orderBy(F.col("n").desc(), "component"))
        ranked = pool.select("component", "one_id", best_old.alias("a"), best_comp.alias("b"))
        pairs = ranked.where((F.col("a") == 1) & (F.col("b") == 1)).select("component", "one_id").localCheckpoint()
        found = pairs.count()
        logger.info("one_id matching round %d: %d components inherit an id", round_no, found)
        if found == 0:
            break
        matched.append(pairs)
        pool = (
            pool.join(pairs.select("component"), on="component", how="left_anti")
            .join(pairs.select("one_id"), on="one_id", how="left_anti")
            .localCheckpoint()
        )
        if pool.isEmpty():
            break
    result = overlap.limit(0).select("component", "one_id")
    for pairs in matched:
        result = result.unionByName(pairs)
    return result
