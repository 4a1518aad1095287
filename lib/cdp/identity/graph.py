"""From record links to a graph of identifiers, and from components back to records.

Nodes are identifiers. A record that carries several linking identifiers joins them: it adds an
edge from its smallest identifier to each other one (a star, so k identifiers cost k - 1 edges,
not k²). Each record's smallest identifier also gets a self-loop, so that a value seen alone is a
node of its own. Records without any linking identifier are their own component, named by the
hash of (source, record_id).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdp.identity.identifiers import record_node
from cdp.schemas import RECORD


def anchors(links: DataFrame) -> DataFrame:
    """Each linked record's smallest identifier. Output columns: `source`, `record_id`, `anchor`."""
    return links.groupBy(*RECORD).agg(F.min("identifier").alias("anchor"))


def edges(links: DataFrame) -> DataFrame:
    """The identifier graph. Output columns: `src`, `dst` (long), distinct; `src` is a record's anchor."""
    smallest = F.min("identifier").over(Window.partitionBy(*RECORD))
    return links.select(smallest.alias("src"), F.col("identifier").alias("dst")).distinct()


def record_components(records: DataFrame, anchored: DataFrame, components: DataFrame) -> DataFrame:
    """The component of every record.

    Args:
        records: `source`, `record_id` of every record, once.
        anchored: `anchors(links)`.
        components: `node`, `component` of the identifier graph.

    Output columns: `source`, `record_id`, `component` (long).
    """
    placed = anchored.join(components, on=F.col("anchor") == F.col("node"), how="inner").select(*RECORD, "component")
    return records.join(placed, on=RECORD, how="left").select(
        *RECORD, F.coalesce("component", record_node(F.col("source"), F.col("record_id"))).alias("component")
    )
