"""Benchmark: connected components, builtin (distributed only), auto, and scipy in memory, same edges.

    .venv/bin/python bench/components.py --lake /tmp/lake1m     # the identity graph of a cleansed lake
    .venv/bin/python bench/components.py --edges 1000000        # a synthetic graph of that shape

With `--lake`, the edges are the identity job's graph (silver identifiers after hygiene, see
`cdp.identity.job.observe`) of a lake where `cdp generate` and `cdp run cleanse` ran. Otherwise
they are synthetic, shaped like that identity graph: node ids are random signed 64-bit longs, as
xxhash64 identifiers are; each person has 2-30 identifiers (heavy-tailed) joined by a spanning
tree and repeated co-occurrences (duplicates included); a few persons share an identifier with
others of their household (household sizes heavy-tailed); a few hub identifiers (a shared
device) tie random persons into the largest components. About 6 edges per person.
Prints the graph's shape, each engine's time, the ratios to scipy (`in_memory`: scipy's csgraph
on numpy arrays, the reference), and checks that all three give one partition.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import pandas as pd

from cdp.config import Config, load_config
from cdp.identity import graph, hygiene
from cdp.identity.components import connected_components, in_memory
from cdp.identity.job import observe, reference
from cdp.lake import Lake
from cdp.spark import get_spark


def identity_graph(n_edges: int, *, seed: int = 7) -> pd.DataFrame:
    """About `n_edges` edges (`src`, `dst`) of a synthetic identity graph, in random order."""
    rng = np.random.default_rng(seed)

    def pick(first: np.ndarray, count: np.ndarray) -> np.ndarray:
        """One of `first`, ..., `first + count - 1`, uniformly, per element."""
        return first + (rng.random(first.size) * count).astype(np.int64)

    # Persons: 2-30 identifiers each, numbered consecutively from start[p].
    persons = max(n_edges // 6, 1)
    k = np.minimum(rng.zipf(2.0, persons) + 1, 30)
    start = np.concatenate([[0], np.cumsum(k)[:-1]])
    owner = np.repeat(np.arange(persons), k)
    position = np.arange(owner.size) - start[owner]
    # 1. A spanning tree per person: each identifier after the first co-occurs with an earlier one.
    child = np.flatnonzero(position > 0)
    tree = (child, pick(start[owner[child]], position[child]))
    # 2. Households (mostly of one person): each later member shares an identifier with an earlier one.
    sizes = np.minimum(rng.zipf(3.0, persons), 1_000)
    household = np.repeat(np.arange(sizes.size), sizes)[:persons]
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])[household]
    rank = np.arange(persons) - first
    joiner = np.flatnonzero(rank > 0)
    earlier = pick(first[joiner], rank[joiner])
    households = (pick(start[joiner], k[joiner]), pick(start[earlier], k[earlier]))
    # 3. Hub identifiers, each seen with a few random identifiers.
    hubs, spokes = 4, max(n_edges // 20_000, 1)
    hub_edges = (np.repeat(owner.size + np.arange(hubs), spokes), rng.integers(0, owner.size, hubs * spokes))
    # 4. More co-occurrences inside persons of 3+ identifiers (repeats and self-pairs included), up to n_edges.
    left = max(n_edges - child.size - joiner.size - hubs * spokes, 0)
    who = owner[rng.integers(0, owner.size, 2 * left)]
    who = who[k[who] > 2][:left]
    repeats = (pick(start[who], k[who]), pick(start[who], k[who]))

    src = np.concatenate([tree[0], households[0], hub_edges[0], repeats[0]])
    dst = np.concatenate([tree[1], households[1], hub_edges[1], repeats[1]])
    int64 = np.iinfo(np.int64)
    ids = rng.integers(int64.min, int64.max, owner.size + hubs, dtype=np.int64, endpoint=True)
    order = rng.permutation(src.size)
    return pd.DataFrame({"src": ids[src[order]], "dst": ids[dst[order]]})


def lake_graph(spark, cfg: Config):
    """The identity job's graph (`src`, `dst`) of a cleansed lake: observations, hygiene, star edges."""
    lake = Lake.from_config(spark, cfg, job="bench", run_id="bench")
    found = observe(lake, cfg.identity)
    if found is None:
        raise SystemExit(f"{cfg.lake.root}: no silver tables; run `cdp generate` and `cdp run cleanse` first")
    links = hygiene.apply(found[0], cfg.identity.types, reference=reference(lake, cfg.identity)).links
    return graph.edges(links)


ENGINES = {"builtin": {"engine": "builtin", "driver_threshold": 0}, "auto": {"engine": "auto"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--lake", help="take the identity graph of this cleansed lake instead of a synthetic one")
    parser.add_argument("--verbose", action="store_true", help="log each iteration")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_config("local", lake_root=args.lake)
    spark = get_spark(cfg)
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")

    if args.lake:
        started = time.monotonic()
        edges = lake_graph(spark, cfg).localCheckpoint()
        pdf = edges.toPandas()
        print(f"identity graph of {args.lake} built in {time.monotonic() - started:.1f}s")
    else:
        pdf = identity_graph(args.edges)
        edges = spark.createDataFrame(pdf, "src long, dst long").localCheckpoint()

    started = time.monotonic()
    nodes, components = in_memory(pdf.src.to_numpy(), pdf.dst.to_numpy())
    scipy_s = time.monotonic() - started
    expected = pd.DataFrame({"node": nodes, "component": components})
    _, sizes = np.unique(components, return_counts=True)

    def timed(**kw) -> float:
        t = time.monotonic()
        result = connected_components(edges, **kw).localCheckpoint()
        seconds = time.monotonic() - t
        got = result.toPandas().sort_values("node", ignore_index=True)
        assert got.equals(expected), f"engine {kw} disagrees with scipy"
        return seconds

    builtin_s = timed(**ENGINES["builtin"])
    auto_s = timed(**ENGINES["auto"])
    print(f"{len(pdf):,} edges, {len(nodes):,} nodes, {os.cpu_count()} cores")
    print(
        f"{len(sizes):,} components: median {np.median(sizes):.0f} nodes, 99th percentile "
        f"{np.percentile(sizes, 99):.0f}, largest {sizes.max():,}"
    )
    print(f"scipy (in memory)          {scipy_s:8.2f}s")
    print(f"builtin, no driver finish  {builtin_s:8.2f}s  ratio {builtin_s / scipy_s:6.1f}x (target <= 35x)")
    print(f"auto                       {auto_s:8.2f}s  ratio {auto_s / scipy_s:6.1f}x (target <= 8x)")


if __name__ == "__main__":
    main()
