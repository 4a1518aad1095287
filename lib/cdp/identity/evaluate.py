"""How well `identity.oneid_map` matches the truth: pairwise precision, recall and F1.

A pair is two records. It is predicted when both records have the same `one_id`, true when both
belong to the same person. With n(o, p) the records of one_id o and person p:

    true positives  = sum over (o, p) of C(n(o, p), 2)
    predicted pairs = sum over o of C(n(o), 2)
    true pairs      = sum over p of C(n(p), 2)

Precision = TP / predicted, recall = TP / true. A person is over-merged when a one_id holding
their records also holds someone else's, and split when their records carry two or more one_ids.
Only records present in both tables are compared; the others are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp.schemas import RECORD


@dataclass(frozen=True)
class Evaluation:
    records: int  # compared: in the map and in the truth
    only_in_map: int
    only_in_truth: int  # e.g. quarantined records
    true_pairs: int
    predicted_pairs: int
    true_positives: int
    persons: int
    over_merged_persons: int
    split_persons: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: str) -> F.Column:
    return F.col(n) * (F.col(n) - 1) / 2


def evaluate(oneid_map: DataFrame, truth: DataFrame) -> Evaluation:
    """Compare a map (`source`, `record_id`, `one_id`) with the truth (`source`, `record_id`, `person_id`)."""
    predicted = oneid_map.select(*RECORD, "one_id")
    actual = truth.select(*RECORD, "person_id")
    joined = predicted.join(actual, on=RECORD, how="full").localCheckpoint()
    both = joined.where(F.col("one_id").isNotNull() & F.col("person_id").isNotNull())
    counts = joined.agg(
        F.count_if(F.col("one_id").isNotNull() & F.col("person_id").isNotNull()).alias("both"),
        F.count_if(F.col("person_id").isNull()).alias("only_map"),
        F.count_if(F.col("one_id").isNull()).alias("only_truth"),
    ).first()

    cells = both.groupBy("one_id", "person_id").agg(F.count("*").alias("n")).localCheckpoint()
    per_id = cells.groupBy("one_id").agg(F.sum("n").alias("n"), F.count("*").alias("persons"))
    per_person = cells.groupBy("person_id").agg(F.sum("n").alias("n"), F.count("*").alias("ids"))
    tp = cells.agg(F.sum(_pairs("n"))).first()[0] or 0
    pp = per_id.agg(F.sum(_pairs("n"))).first()[0] or 0
    person_stats = per_person.agg(
        F.count("*").alias("persons"),
        F.sum(_pairs("n")).alias("pairs"),
        F.count_if(F.col("ids") > 1).alias("split"),
    ).first()
    shared = per_id.where(F.col("persons") > 1).select("one_id")
    over = cells.join(shared, on="one_id", how="left_semi").select("person_id").distinct().count()
    return Evaluation(
        records=counts["both"],
        only_in_map=counts["only_map"],
        only_in_truth=counts["only_truth"],
        true_pairs=int(person_stats["pairs"] or 0),
        predicted_pairs=int(pp),
        true_positives=int(tp),
        persons=person_stats["persons"],
        over_merged_persons=over,
        split_persons=person_stats["split"],
    )


def recall_ceiling(oneid_map: DataFrame, edges: DataFrame, truth: DataFrame) -> float:
    """The recall of a resolver that links each person's records through every identifier they
    share, and never across persons: how much of the truth the identifiers can reveal at all.

    Args:
        oneid_map: the records resolved (`source`, `record_id`): the ceiling covers the same
            records as `evaluate`.
        edges: `identity.edges` (`source`, `record_id`, `id_type`, `identifier`).
        truth: `source`, `record_id`, `person_id`.
    """
    from cdp.identity import graph
    from cdp.identity.components import connected_components

    own = edges.join(truth.select(*RECORD, "person_id"), on=RECORD, how="inner").select(
        *RECORD, F.xxhash64("person_id", "identifier").alias("identifier")
    )
    components = connected_components(graph.edges(own), engine="builtin")
    placed = graph.record_components(oneid_map.select(*RECORD), graph.anchors(own), components)
    return evaluate(placed.withColumnRenamed("component", "one_id"), truth).recall
