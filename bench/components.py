"""Benchmark: connected components, builtin (distributed only), auto, and scipy in memory, same edges.

    .venv/bin/python bench/components.py --edges 2000000

Edges are synthetic for now: persons of 1-6 records each, records linked through shared
identifiers, node ids hashed over the 64-bit range, plus a few hub identifiers; the identity
graph of `cdp generate` data replaces them once the identity job writes `identity.edges`.
Prints each engine's time, the ratios to scipy (`in_memory`: scipy's csgraph on numpy arrays, the
reference), and checks that all three give one partition.
"""

from __future__ import annotations

import argparse
import os
import time

from pyspark.sql import functions as F

from cdp.config import load_config
from cdp.identity.components import connected_components, in_memory
from cdp.spark import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=2_000_000)
    args = parser.parse_args()
    spark = get_spark(load_config("local"))
    spark.sparkContext.setLogLevel("ERROR")

    # Record r belongs to person r // 4; it links to an identifier of its person or, rarely, a hub.
    n = args.edges
    edges = (
        spark.range(n)
        .select(
            F.xxhash64(F.lit("record"), F.col("id")).alias("src"),
            F.xxhash64(
                F.lit("identifier"),
                F.when(F.col("id") % 10_000 == 0, F.col("id") % 7).otherwise(
                    (F.col("id") / 4).cast("long") * 3 + F.col("id") % 3
                ),
            ).alias("dst"),
        )
        .localCheckpoint()
    )
    pdf = edges.toPandas()

    started = time.monotonic()
    nodes, components = in_memory(pdf.src.to_numpy(), pdf.dst.to_numpy())
    scipy_s = time.monotonic() - started
    expected = dict(zip(nodes.tolist(), components.tolist(), strict=True))

    def timed(**kw) -> tuple[float, dict]:
        t = time.monotonic()
        result = connected_components(edges, **kw).localCheckpoint()
        seconds = time.monotonic() - t
        return seconds, {r.node: r.component for r in result.collect()}

    builtin_s, builtin = timed(engine="builtin", driver_threshold=0)
    auto_s, auto = timed(engine="auto")
    assert builtin == expected and auto == expected, "the engines disagree with scipy"
    print(f"{n:,} edges, {len(nodes):,} nodes, {len(set(components.tolist())):,} components, {os.cpu_count()} cores")
    print(f"scipy (in memory)          {scipy_s:8.2f}s")
    print(f"builtin, no driver finish  {builtin_s:8.2f}s  ratio {builtin_s / scipy_s:6.1f}x (target <= 35x)")
    print(f"auto                       {auto_s:8.2f}s  ratio {auto_s / scipy_s:6.1f}x (target <= 8x)")


if __name__ == "__main__":
    main()
