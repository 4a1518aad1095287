"""Connected components of a graph given as a DataFrame of edges, on any Spark.

`connected_components(edges)` returns one row per node with the smallest node id of its component.

Engine `builtin` (ours, DataFrame API only, so it runs over Spark Connect too) alternates the
large-star and small-star operations of Kiveris et al., "Connected Components in MapReduce and
Beyond" (SoCC 2014), until no edge changes:

1. Large-star: every node links each larger neighbour to the smallest node of its neighbourhood.
2. Small-star: every node links itself and each smaller neighbour to the smallest of them.
3. Both keep connectivity and every non-minimal node keeps an edge towards a smaller one; at the
   fixed point each component is a star around its smallest node.
4. Lineage is cut every iteration with a local checkpoint. Once the edges still in play number at
   most `driver_threshold`, they are collected and finished with scipy on the driver.

Engine `graphframes` calls GraphFrames' `connectedComponents` (needs its jar and classic Spark);
`auto` takes it when available, else `builtin`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from cdp.errors import IdentityResolutionError

logger = logging.getLogger(__name__)

MAX_ITERATIONS = 100


def connected_components(
    edges: DataFrame, *, engine: str = "auto", driver_threshold: int = 2_000_000, max_iterations: int = MAX_ITERATIONS
) -> DataFrame:
    """Connected components of the undirected graph `edges` (`src`, `dst`, long).

    Args:
        edges: one row per edge; self-loops make isolated nodes; duplicates are harmless.
        engine: `builtin`, `graphframes` or `auto`.
        driver_threshold: `builtin` finishes on the driver once at most this many edges still
            change (0 disables the driver finish).
        max_iterations: a safety bound for `builtin`.

    Returns:
        Output columns: `node` (long), `component` (long, the smallest node id of the component).
    """
    edges = edges.select(F.col("src").cast("long").alias("src"), F.col("dst").cast("long").alias("dst"))
    if engine == "auto":
        from cdp.spark import capabilities

        engine = "graphframes" if capabilities(edges.sparkSession).graphframes else "builtin"
    if engine == "graphframes":
        return _graphframes(edges)
    if engine != "builtin":
        raise IdentityResolutionError(f"connected components engine {engine!r}: use builtin, graphframes or auto")
    return _builtin(edges, driver_threshold=driver_threshold, max_iterations=max_iterations)


def _builtin(edges: DataFrame, *, driver_threshold: int, max_iterations: int) -> DataFrame:
    nodes = edges.select(F.col("src").alias("node")).union(edges.select(F.col("dst").alias("node"))).distinct()
    # Undirected edges as (larger, smaller), self-loops and duplicates gone.
    current = (
        edges.where(F.col("src") != F.col("dst"))
        .select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
        .distinct()
        .localCheckpoint()
    )
    count, signature = _state(current)
    for iteration in range(1, max_iterations + 1):
        if driver_threshold > 0 and count <= driver_threshold:
            logger.info("iteration %d: %d edges left, finishing on the driver", iteration, count)
            return _label(nodes, _on_driver(current))
        current = _small_star(_large_star(current)).localCheckpoint()
        new_count, new_signature = _state(current)
        logger.info(
            "iteration %d: %d edges (%s)", iteration, new_count, "stable" if new_signature == signature else "changing"
        )
        if new_signature == signature and new_count == count:
            return _label(nodes, current.select(F.col("src").alias("node"), F.col("dst").alias("component")))
        count, signature = new_count, new_signature
    raise IdentityResolutionError(f"connected components did not converge in {max_iterations} iterations")


def _state(edges: DataFrame) -> tuple[int, int]:
    """Edge count and an order-independent checksum of the edge set."""
    row = edges.select(F.count(F.lit(1)).alias("n"), F.bit_xor(F.xxhash64("src", "dst")).alias("h")).first()
    return int(row["n"]), int(row["h"] or 0)


def _large_star(edges: DataFrame) -> DataFrame:
    """Edges are (larger, smaller). Each node u links every larger neighbour v to min(N(u) and u)."""
    both = edges.select(F.col("src").alias("u"), F.col("dst").alias("v")).union(
        edges.select(F.col("dst").alias("u"), F.col("src").alias("v"))
    )
    smallest = both.groupBy("u").agg(F.least(F.min("v"), F.first("u")).alias("m"))
    out = both.where(F.col("v") > F.col("u")).join(smallest, on="u", how="inner")
    return _normalise(out.select(F.col("v").alias("a"), F.col("m").alias("b")))


def _small_star(edges: DataFrame) -> DataFrame:
    """Edges are (larger, smaller). Each node u links itself and its smaller neighbours to their minimum."""
    smallest = edges.groupBy("src").agg(F.min("dst").alias("m"))
    spokes = edges.join(smallest, on="src", how="inner").select(F.col("dst").alias("a"), F.col("m").alias("b"))
    hubs = smallest.select(F.col("src").alias("a"), F.col("m").alias("b"))
    return _normalise(spokes.union(hubs))


def _normalise(pairs: DataFrame) -> DataFrame:
    return (
        pairs.where(F.col("a") != F.col("b"))
        .select(F.greatest("a", "b").alias("src"), F.least("a", "b").alias("dst"))
        .distinct()
    )


def _on_driver(edges: DataFrame) -> DataFrame:
    """The remaining (small) graph's components with scipy, returned as (node, component).

    Edges travel to and from the driver as Arrow batches (`toPandas`, `createDataFrame` of a
    pandas frame), not as Python rows: a million rows each way then takes seconds, not tens.
    """
    spark = edges.sparkSession
    pdf = _with_arrow(spark, edges.toPandas)
    if pdf.empty:
        return spark.createDataFrame([], "node long, component long")
    nodes, components = in_memory(pdf["src"].to_numpy(), pdf["dst"].to_numpy())
    result = pd.DataFrame({"node": nodes, "component": components})
    return _with_arrow(spark, lambda: spark.createDataFrame(result, "node long, component long"))


def in_memory(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of an edge list held in memory, with scipy: (nodes, smallest node of each one's component)."""
    m = len(src)
    ids, index = np.unique(np.concatenate([src, dst]), return_inverse=True)
    graph = coo_matrix((np.ones(m, dtype=np.int8), (index[:m], index[m:])), shape=(len(ids), len(ids)))
    _, labels = scipy_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, labels, ids)
    return ids, smallest[labels]


def _with_arrow(spark, action):
    """Run `action` with Arrow transfers on (classic Spark; Spark Connect always uses Arrow)."""
    key = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(key, "false")
    spark.conf.set(key, "true")
    try:
        return action()
    finally:
        spark.conf.set(key, before)


def _label(nodes: DataFrame, labelled: DataFrame) -> DataFrame:
    """Every node with its component; a node absent from `labelled` is its own component."""
    out = nodes.join(labelled, on="node", how="left").select(
        "node", F.coalesce(F.col("component"), F.col("node")).alias("component")
    )
    return out.select("node", F.least("node", "component").alias("component"))


def _graphframes(edges: DataFrame) -> DataFrame:
    """GraphFrames' connected components, relabelled with each component's smallest node id."""
    from graphframes import GraphFrame
    from pyspark import StorageLevel

    vertices = edges.select(F.col("src").alias("id")).union(edges.select(F.col("dst").alias("id"))).distinct()
    # Every argument explicit: defaults have changed between GraphFrames releases. "two_phase" is the
    # algorithm "graphframes" aliases; -1 leaves skewed joins to AQE, as its documentation advises;
    # local checkpoints need no checkpoint directory.
    result = GraphFrame(vertices, edges).connectedComponents(
        algorithm="two_phase",
        checkpointInterval=2,
        broadcastThreshold=-1,
        useLabelsAsComponents=False,
        use_local_checkpoints=True,
        max_iter=MAX_ITERATIONS * 10,
        storage_level=StorageLevel.MEMORY_AND_DISK_DESER,
    )
    smallest = result.groupBy("component").agg(F.min("id").alias("smallest"))
    return result.join(smallest, on="component").select(F.col("id").alias("node"), F.col("smallest").alias("component"))
