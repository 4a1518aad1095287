"""Connected components against networkx: random, skewed (one giant hub) and long-chain graphs, fixed seeds."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest
from pyspark.sql import SparkSession

from cdp.errors import IdentityResolutionError
from cdp.identity.components import connected_components


def oracle(edges: list[tuple[int, int]]) -> dict[int, int]:
    g = nx.Graph()
    g.add_edges_from(edges)
    return {node: min(part) for part in nx.connected_components(g) for node in part}


def spark_components(spark: SparkSession, edges: list[tuple[int, int]], **kw) -> dict[int, int]:
    df = spark.createDataFrame(edges, "src long, dst long")
    return {r.node: r.component for r in connected_components(df, engine="builtin", **kw).collect()}


def relabel(edges: list[tuple[int, int]], rng: random.Random) -> list[tuple[int, int]]:
    """Node ids scattered over the signed 64-bit range, as hashed identifiers are."""
    ids = {n: rng.randrange(-(2**63), 2**63) for e in edges for n in e}
    return [(ids[a], ids[b]) for a, b in edges]


def random_graph(seed: int) -> list[tuple[int, int]]:
    g = nx.gnm_random_graph(400, 300, seed=seed)
    return relabel(list(g.edges()), random.Random(seed))


def skewed_graph(seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    hub = [(0, leaf) for leaf in range(1, 1500)]  # one giant component around a hub
    rest = [(rng.randrange(2000, 2600), rng.randrange(2000, 2600)) for _ in range(300)]
    return relabel(hub + rest, rng)


def chain(seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    order = list(range(600))
    rng.shuffle(order)  # a path whose ids are in random order: the hardest case for label propagation
    return relabel(list(itertools.pairwise(order)), rng)


GRAPHS = {
    "random-1": lambda: random_graph(1),
    "random-2": lambda: random_graph(2),
    "skewed": lambda: skewed_graph(3),
    "chain": lambda: chain(4),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
# 0: distributed only; 100: rounds, then the driver; 10**6: the whole graph straight to the driver.
@pytest.mark.parametrize("driver_threshold", [0, 100, 10**6])
def test_builtin_matches_networkx(spark: SparkSession, name: str, driver_threshold: int) -> None:
    edges = GRAPHS[name]()
    assert spark_components(spark, edges, driver_threshold=driver_threshold) == oracle(edges)


@pytest.mark.parametrize("driver_threshold", [0, 10])
def test_self_loops_duplicates_isolated_nodes_and_nulls(spark: SparkSession, driver_threshold: int) -> None:
    edges = [(5, 5), (1, 2), (2, 1), (1, 2), (9, 9), (3, 2), (7, 8), (4, None), (None, None)]
    expected = {5: 5, 9: 9, 1: 1, 2: 1, 3: 1, 7: 7, 8: 7}
    assert spark_components(spark, edges, driver_threshold=driver_threshold) == expected


def test_empty_graph(spark: SparkSession) -> None:
    assert spark_components(spark, [], driver_threshold=0) == {}
    assert spark_components(spark, [], driver_threshold=10) == {}


def test_too_few_iterations_is_a_clear_error(spark: SparkSession) -> None:
    with pytest.raises(IdentityResolutionError, match="did not converge in 1 iterations"):
        spark_components(spark, chain(4), driver_threshold=0, max_iterations=1)


def test_unknown_engine_is_a_clear_error(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, 2)], "src long, dst long")
    with pytest.raises(IdentityResolutionError, match="engine 'networkx'"):
        connected_components(df, engine="networkx")
