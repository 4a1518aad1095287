"""Connected components of a graph given as a DataFrame of edges, on any Spark.

`connected_components(edges)` returns one row per node with the smallest node id of its component.

Engine `builtin` (ours, DataFrame API only, so it runs over Spark Connect too) contracts the
graph round by round, as in the min-label hooking with pointer jumping of Shiloach-Vishkin style
algorithms (see also the alternating algorithm of Kiveris et al., "Connected Components in
MapReduce and Beyond", SoCC 2014, which it replaces here: it needs half as many rounds and its
work shrinks with the graph instead of staying at one edge per node):

0. A graph of at most `driver_threshold` edges is collected whole and solved with scipy.
1. Hook: every node points to the smallest node of its closed neighbourhood.
2. Jump: every node points to its pointer's pointer (still in its component, never larger).
3. Contract: each edge is replaced by the edge between its ends' pointers; edges inside one
   group vanish, so a finished component leaves the graph; duplicates are dropped. The smallest
   node of a component points to itself, so it is the smallest node of the contracted component.
4. Repeat 1-3 until no edge is left, or until at most `driver_threshold` edges remain and scipy
   finishes them on the driver. Graph and pointers are cut from their lineage by local
   checkpoints every round; pointer tables and labels small enough are broadcast to the joins.
5. Unwind: a node's component is its pointer's component in the next round's graph (itself when
   it left the graph), from the last round back to the first.

Engine `graphframes` calls GraphFrames' `connectedComponents` (needs its jar and classic Spark);
`auto` takes it when available, else `builtin`.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from cdp.errors import IdentityResolutionError

logger = logging.getLogger(__name__)

MAX_ITERATIONS = 100
# A table of (node, node) pairs this small (32 MB) is sent whole to every join task rather than shuffled.
BROADCAST_ROWS = 2_000_000


def connected_components(
    edges: DataFrame, *, engine: str = "auto", driver_threshold: int = 2_000_000, max_iterations: int = MAX_ITERATIONS
) -> DataFrame:
    """Connected components of the undirected graph `edges` (`src`, `dst`, long).

    Args:
        edges: one row per edge; self-loops make isolated nodes; duplicates are harmless; a row
            with a null end is ignored.
        engine: `builtin`, `graphframes` or `auto`.
        driver_threshold: `builtin` finishes on the driver once at most this many edges still
            change (0 disables the driver finish).
        max_iterations: a safety bound for `builtin`.

    Returns:
        Output columns: `node` (long), `component` (long, the smallest node id of the component).
    """
    edges = edges.select(F.col("src").cast("long").alias("src"), F.col("dst").cast("long").alias("dst")).where(
        F.col("src").isNotNull() & F.col("dst").isNotNull()
    )
    engine = resolve_engine(edges.sparkSession, engine)
    if engine == "graphframes":
        return _graphframes(edges)
    if engine != "builtin":
        raise IdentityResolutionError(f"connected components engine {engine!r}: use builtin, graphframes or auto")
    return _builtin(edges, driver_threshold=driver_threshold, max_iterations=max_iterations)


def resolve_engine(spark: SparkSession, engine: str) -> str:
    """The engine `connected_components` runs for `engine` on this session: `auto` becomes
    `graphframes` when its classes are loaded, else `builtin`; others are returned as given."""
    if engine != "auto":
        return engine
    from cdp.spark import capabilities

    return "graphframes" if capabilities(spark).graphframes else "builtin"


def _builtin(edges: DataFrame, *, driver_threshold: int, max_iterations: int) -> DataFrame:
    # 0. A graph that fits under the threshold goes to the driver whole: no iteration at all.
    if driver_threshold > 0:
        count = edges.count()
        if count <= driver_threshold:
            logger.info("%d edges, finishing on the driver", count)
            return _on_driver(edges)
    current = edges  # round 0 keeps self-loops and duplicates: isolated nodes get a pointer too
    pointers: list[tuple[DataFrame, int]] = []
    labels: DataFrame | None = None  # of the last graph's nodes, `size` at most
    size = 0
    for iteration in range(1, max_iterations + 1):
        # 1-2. Hook every node to the smallest of its neighbourhood, then jump one pointer.
        pointer = _jump(_hook(current)).localCheckpoint()
        nodes = pointer.count()
        pointers.append((pointer, nodes))
        # 3. Contract: edges between the new representatives; edges inside one vanish.
        current = _contract(current, _small(pointer, nodes)).localCheckpoint()
        count = current.count()
        logger.info("iteration %d: %d nodes, %d edges still changing", iteration, nodes, count)
        if count == 0:
            break
        # 4. A small enough remainder is finished on the driver.
        if 0 < count <= driver_threshold:
            logger.info("iteration %d: finishing %d edges on the driver", iteration, count)
            labels, size = _on_driver(current), 2 * count
            break
    else:
        raise IdentityResolutionError(f"connected components did not converge in {max_iterations} iterations")
    # 5. Unwind: a node's component is its representative's, last round first.
    for pointer, nodes in reversed(pointers):
        labels = pointer if labels is None else _follow(pointer, _small(labels, size))
        size = nodes
    return labels


def _small(df: DataFrame, rows: int) -> DataFrame:
    """`df` marked for broadcast when it has at most BROADCAST_ROWS rows: the other side of the join is not shuffled."""
    return F.broadcast(df) if rows <= BROADCAST_ROWS else df


def _hook(edges: DataFrame) -> DataFrame:
    """(node, parent): each node's smallest neighbour, or itself when it is smaller."""
    both = edges.select(F.col("src").alias("node"), F.col("dst").alias("n")).union(
        edges.select(F.col("dst").alias("node"), F.col("src").alias("n"))
    )
    return both.groupBy("node").agg(F.least(F.min("n"), F.col("node")).alias("parent"))


def _jump(parents: DataFrame) -> DataFrame:
    """(node, component): each node's parent's parent, an ancestor in the same component."""
    grand = parents.select(F.col("node").alias("parent"), F.col("parent").alias("component"))
    return parents.join(grand, on="parent", how="inner").select("node", "component")


def _contract(edges: DataFrame, pointer: DataFrame) -> DataFrame:
    """Edges between representatives, as (larger, smaller), without self-loops or duplicates."""
    src = pointer.select(F.col("node").alias("src"), F.col("component").alias("a"))
    dst = pointer.select(F.col("node").alias("dst"), F.col("component").alias("b"))
    pairs = edges.join(src, on="src", how="inner").join(dst, on="dst", how="inner")
    return (
        pairs.where(F.col("a") != F.col("b"))
        .select(F.greatest("a", "b").alias("src"), F.least("a", "b").alias("dst"))
        .distinct()
    )


def _follow(pointer: DataFrame, labels: DataFrame) -> DataFrame:
    """(node, component) through `pointer` then `labels`; a representative absent from `labels` is final."""
    resolved = labels.select(F.col("node").alias("component"), F.col("component").alias("resolved"))
    return pointer.join(resolved, on="component", how="left").select(
        "node", F.coalesce("resolved", "component").alias("component")
    )


def _on_driver(edges: DataFrame) -> DataFrame:
    """The (small) graph's components with scipy, returned as (node, component).

    Edges travel to and from the driver as Arrow tables (`toArrow`, `createDataFrame` of a
    pyarrow table), not as Python rows: a million rows each way then takes a second, not tens.
    """
    spark = edges.sparkSession
    table = edges.toArrow()
    if table.num_rows == 0:
        return spark.createDataFrame([], "node long, component long")
    nodes, components = in_memory(table.column("src").to_numpy(), table.column("dst").to_numpy())
    return spark.createDataFrame(pa.table({"node": nodes, "component": components}))


def in_memory(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of an edge list held in memory, with scipy: (nodes, smallest node of each one's component)."""
    m = len(src)
    ids, index = np.unique(np.concatenate([src, dst]), return_inverse=True)
    graph = coo_matrix((np.ones(m, dtype=np.int8), (index[:m], index[m:])), shape=(len(ids), len(ids)))
    _, labels = scipy_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, labels, ids)
    return ids, smallest[labels]


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
