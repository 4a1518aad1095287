"""Benchmark: writing through the lake layer against a plain `DataFrame.write.parquet`, same run.

Writes a generated table of N rows and 8 columns (default 10M) through `Lake.overwrite` (the engine
in use here: delta-rs without the Delta jar) and through Spark's plain Parquet writer, alternating
the two for several rounds after a warm-up, and prints each time and the median ratio.

    .venv/bin/python bench/lake_write.py [--rows 10000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp.config import load_config
from cdp.lake import Lake
from cdp.spark import get_spark


def table(spark: SparkSession, rows: int) -> DataFrame:
    return spark.range(rows).select(
        F.col("id"),
        (F.col("id") % 1000).cast("int").alias("store_id"),
        (F.rand(1) * 1000).alias("amount_double"),
        (F.rand(2) * 100000).cast("decimal(12,2)").alias("amount"),
        F.concat(F.lit("member-"), (F.col("id") * 7919 % 10_000_019).cast("string")).alias("member_id"),
        (F.lit(1_700_000_000) + F.col("id") % 63_072_000).cast("timestamp").alias("paid_at"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 730).cast("int")).alias("paid_date"),
        (F.col("id") % 3 == 0).alias("is_member"),
    )


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="cdp-bench-")
    cfg = load_config("local", lake_root=f"{work}/lake")
    spark = get_spark(cfg)
    lake = Lake.from_config(spark, cfg, job="bench", run_id="lake-write")
    df = table(spark, args.rows)
    engine = lake.engine.name

    def plain(i: int) -> None:
        df.write.mode("overwrite").parquet(f"{work}/plain-{i}")

    def through_lake(i: int) -> None:
        lake.overwrite(f"bench.write_{i + 1}", df)

    print(f"{args.rows:,} rows x {len(df.columns)} columns, {os.cpu_count()} cores, engine {engine}")
    timed(lambda: plain(-1))  # warm-up: JIT, first-job overhead
    timed(lambda: through_lake(-1))
    plain_times, lake_times = [], []
    for i in range(args.rounds):
        plain_times.append(timed(lambda i=i: plain(i)))
        lake_times.append(timed(lambda i=i: through_lake(i)))
        print(f"round {i + 1}: parquet {plain_times[-1]:6.2f}s   lake ({engine}) {lake_times[-1]:6.2f}s")
    ratio = statistics.median(lake_times) / statistics.median(plain_times)
    print(f"median: parquet {statistics.median(plain_times):.2f}s, lake {statistics.median(lake_times):.2f}s")
    print(f"ratio lake/parquet = {ratio:.3f} (target <= 1.25)")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
