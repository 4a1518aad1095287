"""Benchmark: the tag engine against one Spark SQL query per tag, and how often each silver table is scanned.

    .venv/bin/python bench/tags.py --lake /tmp/fresh5/lakehouse                  # everything, as of 2026-10-01
    .venv/bin/python bench/tags.py --lake PATH --as-of 2026-10-01 --variants 150 --skip-baseline
    .venv/bin/python bench/tags.py --lake PATH --variants 150 --variants-baseline  # both catalogues measured

The lake must have been cleansed and resolved (`cdp run cleanse`, `cdp run identity`). In one run:

1. engine: `facts.build` + `engine.compute` + writing the profile and the long table as parquet
   (a temporary folder), partitioned as the job partitions them, with the default catalogue
   (`conf/tags`). `tag values/s` counts rows of
   the long table (known values only); `tags x persons/s` counts catalogue tags times one_ids
   (the rows of the profile: every one_id of `identity.oneid_map`).
2. scans: how many times each table of the lake was read from its files, from the physical plans
   Spark executed during the timed section (the final plans after AQE: a reused exchange or a
   read of a checkpoint scans no file; a read of a cache scans the files only in the execution
   whose metrics show the cached plan's scans ran, the one that built it). Target: every silver
   table of a fact at most 3 times. Checked first on queries whose scans are known (a self-union:
   2; a self-join AQE reuses: 1; a checkpoint or a cache read twice: 1).
3. baseline: the usual way of tag platforms, one Spark SQL query per tag, compiled from the same
   catalogue, each written as parquet: the facts are temporary views over silver (not
   checkpointed, so each query reads silver and joins `identity.oneid_map` again); tags over
   other tags join the written outputs of their inputs; `clv` tags each summarise the orders
   (cached while the tag is computed, as the engine's summary is), fit and predict alone. Its
   values must equal the engine's for every person and tag (doubles within 1e-4, as the long
   table rounds them to 4 decimals). Target: baseline / engine >= 5.
4. variants: the engine on a catalogue of `--variants` tags, the default one plus generated
   variants (other windows, filters, preferences, bands), to show that the scans do not grow
   with the number of tags; the baseline's time for it is estimated from its mean time per query
   of each kind, or measured with `--variants-baseline` (its 150 queries: about 17 minutes more
   at 1M persons), with the same ratio and value checks as for the default catalogue.

The engine runs once untimed first, so that it finds warm file caches and a warm JVM, as the
baseline after it does. It then runs `--repeat` times (3 by default) on each catalogue: on
these machines the same code has taken 139 to 162 s in two runs an hour apart (and 210 to 236 s
for the 150 tags), while the baseline's 84 queries average their own noise out; each ratio uses
the median run of its catalogue, and the ratio to every run is printed with it (how many of them
reach the target). The scans come from the
Spark UI's REST API of the session (the bench turns the UI on), so this needs classic Spark, not
Spark Connect. `--keep DIR` keeps the outputs (profiles, long tables, the baseline's per-tag
outputs, the generated catalogue).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import json
import logging
import os
import re
import shutil
import string
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp.config import Config, load_config
from cdp.generate.vocab import CATEGORY_WEIGHTS, PLATFORMS
from cdp.lake import Lake, Partition
from cdp.lake.delta_rs import partition_path
from cdp.lake.engine import dictionary_off
from cdp.spark import SESSION_TIME_ZONE, get_spark, session_zone
from cdp.tags import clv, engine, facts
from cdp.tags.catalogue import Bands, Cases, Catalogue, Clv, Expr, Metric, Score, Tag, Top, load_catalogue

MAX_SCANS = 3  # the target: each silver table of a fact read at most this many times by the engine
TOLERANCE = 1e-4  # doubles are compared as the long table writes them, rounded to 4 decimals

logger = logging.getLogger("bench.tags")


# -- session and scans ----------------------------------------------------------------------------


def bench_config(lake_root: str) -> Config:
    """The local configuration with the Spark UI on (conf/local.yaml turns it off): its REST API lists the plans."""
    cfg = load_config("local", lake_root=lake_root)
    conf = {
        **cfg.spark.conf,
        "spark.ui.enabled": "true",
        "spark.sql.ui.retainedExecutions": "100000",
        "spark.sql.ui.explainMode": "formatted",  # the plan text `scanned` reads (Spark's default)
    }
    return cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"conf": conf})})


class Executions:
    """The SQL executions of this session, with their executed plans, from the Spark UI REST API.

    The UI learns of executions from the listener bus, after the action returned: `fence` runs a
    labelled query and waits until the UI lists it as completed, so every execution before it is
    complete in the UI too (the bus delivers events in order).
    """

    def __init__(self, spark: SparkSession) -> None:
        sc = spark.sparkContext
        if not sc.uiWebUrl:
            raise SystemExit("the Spark UI is off: the scans are read from its REST API")
        self.spark = spark
        self.url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/sql"
        self.fences = 0

    def fetch(self, *, details: bool) -> list[dict]:
        flag = str(details).lower()
        with urllib.request.urlopen(f"{self.url}?details={flag}&planDescription={flag}&length=1000000") as answer:
            return json.load(answer)

    def fence(self) -> int:
        """The id of a new execution after which the UI has seen every earlier one complete."""
        self.fences += 1
        label = f"bench fence {self.fences}"
        sc = self.spark.sparkContext
        sc.setJobDescription(label)
        self.spark.range(1).collect()
        sc.setJobDescription(None)  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [
                e["id"] for e in self.fetch(details=False) if e["description"] == label and e["status"] == "COMPLETED"
            ]
            if done:
                return done[0]
            time.sleep(0.2)
        raise SystemExit(f"the Spark UI did not list {label!r} within 2 minutes")

    def between(self, first: int, last: int) -> list[dict]:
        return [e for e in self.fetch(details=True) if first < e["id"] < last]


_NODE = re.compile(r"^(?P<prefix>[ :|+\-*]*)(?P<name>[A-Za-z][^\[\]]*?)\s+\((?P<id>\d+)\)(?:,.*)?$")
_DETAIL = re.compile(r"^\((\d+)\) (?:File)?Scan parquet.*?^Location: [^\[\n]*\[([^\],\n]*)", re.M | re.S)


def scanned(plan: str, root: str, *, cache_built: bool = True) -> Counter[str]:
    """Tables of the lake under `root` read from their files in one executed plan (formatted explain).

    Counts the `Scan parquet` operators of the plan that ran: under an adaptive plan, those of the
    final plan only (its `Initial Plan` lists scans that a reused exchange replaced). A plan reading
    a cache prints the cached plan under its `InMemoryRelation`: its scans count only if
    `cache_built` (see `cache_built`).
    """
    locations = {int(m[1]): m[2] for m in _DETAIL.finditer(plan)}
    ran: set[int] = set()
    initial: list[int] = []  # columns of the `== Initial Plan ==` markers the current line may be under
    caches: list[int] = []  # columns of the `InMemoryRelation` nodes the current line may be under
    for line in plan.splitlines():
        if not line.strip():
            initial, caches = [], []  # a tree ends at a blank line
            continue
        marker = line.find("== Initial Plan ==")
        column = marker if marker >= 0 else None
        node = _NODE.match(line)
        if column is None and node is None:
            continue
        column = column if column is not None else len(node["prefix"])
        initial = [c for c in initial if c <= column]
        caches = [c for c in caches if c < column]
        if marker >= 0:
            initial.append(marker)
        elif node["name"] == "InMemoryRelation":
            caches.append(column)
        elif (
            not initial
            and (cache_built or not caches)
            and node["name"].startswith(("Scan parquet", "FileScan parquet"))
        ):
            ran.add(int(node["id"]))
    tables: Counter[str] = Counter()
    prefix = re.compile(re.escape(root.rstrip("/")) + r"/([a-z][a-z0-9_]*)/([a-z][a-z0-9_]*)")
    for scan in ran:
        found = prefix.search(locations.get(scan, ""))
        tables[f"{found[1]}.{found[2]}" if found else "(files outside the lake)"] += 1
    return tables


def cache_built(execution: dict) -> bool:
    """Whether a file scan inside a cached plan ran in this execution, building (or rebuilding) the cache.

    The plan text cannot tell: a query reading a cache prints the cached plan, scans included,
    whether it read the cache or computed it. The execution's metrics can: the scan nodes under an
    `InMemoryTableScan` have files read (no value, or 0 without AQE) only in an execution that ran them. When one did,
    every scan under a cache in that plan counts (an over-count if it also read another, built one).
    """
    nodes = {node["nodeId"]: node for node in execution["nodes"]}
    parents: defaultdict[int, list[int]] = defaultdict(list)
    for edge in execution["edges"]:  # from a child to its parent
        parents[edge["fromId"]].append(edge["toId"])
    for node in nodes.values():
        if not node["nodeName"].startswith("Scan parquet"):
            continue
        files = [m["value"] for m in node["metrics"] if m["name"] == "number of files read"]
        if not any(value.replace(",", "") != "0" for value in files):  # 0 when it did not run, without AQE
            continue
        above, seen = list(parents[node["nodeId"]]), set()
        while above:
            up = above.pop()
            if up in seen:
                continue
            seen.add(up)
            if nodes[up]["nodeName"] == "InMemoryTableScan":
                return True
            above.extend(parents[up])
    return False


def scans(executions: Sequence[dict], root: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for execution in executions:
        total += scanned(execution["planDescription"], root, cache_built=cache_built(execution))
    return total


def check_counting(lake: Lake, sql: Executions) -> None:
    """Count the scans of queries whose scans are known, and stop if the counting disagrees."""
    products = lake.read("silver.products")
    per_brand = products.groupBy("brand").count()

    def noop(df: DataFrame) -> None:
        df.write.format("noop").mode("overwrite").save()

    def checkpoint_read_twice() -> None:
        kept = products.localCheckpoint()
        noop(kept)
        noop(kept.distinct())

    def cache_read_twice() -> None:
        kept = products.repartition(4, "sku").persist()
        try:
            kept.count()  # built here: the one scan
            noop(kept.groupBy("brand").count())
            noop(kept.distinct())
        finally:
            kept.unpersist()

    def without_aqe(run: Callable[[], None]) -> Callable[[], None]:
        def wrapped() -> None:  # as the engine runs (cdp.tags.engine.planned_partitioning)
            before = lake.spark.conf.get("spark.sql.adaptive.enabled")
            lake.spark.conf.set("spark.sql.adaptive.enabled", "false")
            try:
                run()
            finally:
                lake.spark.conf.set("spark.sql.adaptive.enabled", before)

        return wrapped

    def cache_built_by_its_first_reader() -> None:
        kept = products.where(F.col("price") > 0).persist()  # a plan of its own: per_brand does not read it
        try:
            noop(kept.join(per_brand, "brand"))  # builds the cache, and reads products for per_brand
            noop(kept.distinct())
        finally:
            kept.unpersist()

    queries = {
        "self-union": (lambda: noop(products.unionByName(products)), 2),
        "self-join of an aggregate (AQE reuses the exchange)": (lambda: noop(per_brand.join(per_brand, "brand")), 1),
        "a checkpoint read twice": (checkpoint_read_twice, 1),
        "a cache read twice": (cache_read_twice, 1),
        "the same without AQE": (without_aqe(cache_read_twice), 1),
        "a cache built by its first reader, which scans the table again": (cache_built_by_its_first_reader, 2),
    }
    found = []
    for name, (run, expected) in queries.items():
        first = sql.fence()
        run()
        got = scans(sql.between(first, sql.fence()), lake.root)["silver.products"]
        found.append(f"{name} {got} (expected {expected})")
        if got != expected:
            raise SystemExit(f"scan counting is wrong: {'; '.join(found)}")
    print(f"scan counting check, silver.products: {'; '.join(found)}: ok")


# -- engine ---------------------------------------------------------------------------------------


def one_ids(lake: Lake) -> DataFrame:
    """Every one_id of `identity.oneid_map` once, read as it is (the engine's `facts.persons` partitions it)."""
    return lake.read(facts.ONEID_MAP).select("one_id").distinct()


@dataclass(frozen=True)
class EngineRun:
    seconds: float
    phases: dict[str, float]
    passes: dict[str, int]
    scans: Counter[str]
    executions: int
    long_path: Path


def run_engine(
    spark: SparkSession, lake: Lake, catalogue: Catalogue, as_of: dt.date, out: Path, sql: Executions
) -> EngineRun:
    """Build the facts, compute every tag and write the profile and the long table, as `cdp run tags` does."""
    first = sql.fence()
    marks = [time.monotonic()]
    with engine.planned_partitioning(spark) as partitions:
        built = facts.build(lake, as_of, facts.needed(catalogue), partitions=partitions)
        marks.append(time.monotonic())
        persons = facts.persons(lake, partitions=partitions)
        result = engine.compute(catalogue, built, persons, as_of=as_of)
        facts.release([*built.values(), persons])
        marks.append(time.monotonic())
    # Partitioned, encoded and generated as `cdp run tags` writes them (tags.customer_profile, tags.customer_tags).
    # Each into its partition's folder (`Partition`), as the job's lake writes them.
    for folder in ("profile", "long"):
        shutil.rmtree(out / folder, ignore_errors=True)
    with engine.split_codegen(spark):
        write_partition(Partition({"as_of": as_of}, result.profile.drop("as_of")), out / "profile")
        marks.append(time.monotonic())
        for part in engine.long_tags(catalogue, result.profile, as_of):  # one write per family, as the job
            write_partition(part, out / "long")
        marks.append(time.monotonic())
    result.release()
    phases = dict(
        zip(("facts", "compute", "profile", "long table"), (b - a for a, b in itertools.pairwise(marks)), strict=True)
    )
    executions = sql.between(first, sql.fence())
    found = scans(executions, lake.root)
    return EngineRun(marks[-1] - marks[0], phases, dict(result.passes), found, len(executions), out / "long")


def timed_runs(
    spark: SparkSession, lake: Lake, catalogue: Catalogue, as_of: dt.date, folder: Path, sql: Executions, repeat: int
) -> list[EngineRun]:
    """`repeat` runs of the engine on `catalogue`, into `<folder>_<i>`, each printed as it ends."""
    runs = []
    for i in range(repeat):
        runs.append(run_engine(spark, lake, catalogue, as_of, folder.with_name(f"{folder.name}_{i}"), sql))
        print(f"engine run {i + 1} of {repeat}, {len(catalogue)} tags: {runs[-1].seconds:.1f}s, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    return runs


def write_partition(part: Partition, table: Path) -> None:
    """`part`'s rows as Parquet in its partition's folder under `table`, with the columns the job
    writes without a dictionary (`engine.plain_encoded`)."""
    writer = part.rows.write.mode("error").options(**dictionary_off(engine.plain_encoded(part.rows)))
    writer.parquet(str(table / partition_path(part.spec(), list(part.values))))


def report_engine(title: str, catalogue: Catalogue, run: EngineRun, spark: SparkSession, persons: int) -> None:
    values = spark.read.parquet(str(run.long_path)).count()
    cells = len(catalogue) * persons
    phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in run.phases.items())
    print(f"\nengine, {title}: {len(catalogue)} tags in {len(catalogue.families)} families, {persons:,} one_ids")
    print(f"  facts + compute + write profile and long table  {run.seconds:8.1f}s  ({run.executions} SQL executions)")
    print(f"    ({phases})")
    print(f"  tag values (rows of the long table)  {values:>11,}  {values / run.seconds:>10,.0f} tag values/s")
    print(f"  catalogue tags x persons             {cells:>11,}  {cells / run.seconds:>10,.0f} tags x persons/s")
    print(f"  aggregation passes per fact: {dict(sorted(run.passes.items()))}")


# -- baseline: one Spark SQL query per tag --------------------------------------------------------


def _literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, float):
        return f"{value!r}D"
    return repr(value)


def _kept(spec: Metric | Top, cut: facts.Cut) -> str:
    """The facts a metric or top tag looks at, as a WHERE condition."""
    kept = ["TRUE"]
    if spec.window_days is not None:
        kept.append(f"ts >= TIMESTAMP'{cut.start(spec.window_days).isoformat()}'")
    if spec.where is not None:
        kept.append(f"({spec.where})")
    return " AND ".join(kept)


def _inputs(keys: Sequence[str], as_of: dt.date) -> str:
    """Every person with `as_of` and the written values of the tags `keys`, one column each."""
    columns = "".join(f", t{i}.value AS `{key}`" for i, key in enumerate(keys))
    joins = "".join(f" LEFT JOIN `tag_{key}` t{i} ON t{i}.one_id = p.one_id" for i, key in enumerate(keys))
    return f"SELECT p.one_id, DATE'{as_of.isoformat()}' AS as_of{columns} FROM persons p{joins}"


def tag_query(tag: Tag, catalogue: Catalogue, cut: facts.Cut) -> str:
    """The one Spark SQL query computing `tag` alone as of `cut`: `one_id`, `value` (not for `clv` tags)."""
    spec = tag.spec
    if isinstance(spec, Metric):
        column, kept = spec.column or "1", _kept(spec, cut)
        if spec.agg in ("latest", "earliest"):
            function = "max_by" if spec.agg == "latest" else "min_by"
            value, kept = f"{function}({column}, ts)", f"{kept} AND ({column}) IS NOT NULL"
        elif spec.agg == "count_distinct":
            value = f"count(DISTINCT {column})"
        else:
            value = f"{spec.agg}({column})"
        query = f"SELECT one_id, {value} AS value FROM fact_{spec.fact} WHERE {kept} GROUP BY one_id"
        if spec.fill is None:
            return query
        return (
            f"SELECT p.one_id, coalesce(a.value, {_literal(spec.fill)}) AS value "
            f"FROM persons p LEFT JOIN ({query}) a ON a.one_id = p.one_id"
        )
    if isinstance(spec, Top):
        by, measure = f"CAST(({spec.by}) AS string)", f"CAST(({spec.measure}) AS double)"
        totals = (
            f"SELECT one_id, {by} AS value, rint(sum({measure}) * 1000000D) AS measure FROM fact_{spec.fact} "
            f"WHERE {_kept(spec, cut)} AND {by} IS NOT NULL AND {measure} IS NOT NULL GROUP BY one_id, {by}"
        )
        ranked = (
            f"SELECT *, row_number() OVER (PARTITION BY one_id ORDER BY measure DESC, value) AS rank FROM ({totals})"
        )
        return f"SELECT one_id, value FROM ({ranked}) WHERE rank = 1"
    inputs = _inputs(sorted(catalogue.inputs(tag)), cut.as_of)
    if isinstance(spec, Expr):
        return f"SELECT one_id, ({spec.expr}) AS value FROM ({inputs})"
    if isinstance(spec, Cases):
        whens = " ".join(f"WHEN coalesce(({c.when}), false) THEN {_literal(c.value)}" for c in spec.cases)
        otherwise = _literal(spec.otherwise) if spec.otherwise is not None else "NULL"
        return f"SELECT one_id, CASE {whens} ELSE {otherwise} END AS value FROM ({inputs})"
    if isinstance(spec, Bands):
        whens = " ".join(f"WHEN `{spec.of}` < {_literal(float(b.below))} THEN {_literal(b.value)}" for b in spec.bands)
        otherwise = _literal(spec.otherwise) if spec.otherwise is not None else "NULL"
        value = f"CASE WHEN `{spec.of}` IS NULL THEN NULL {whens} ELSE {otherwise} END"
        return f"SELECT one_id, {value} AS value FROM ({inputs})"
    if isinstance(spec, Score):
        of, ranked = f"CAST(`{spec.of}` AS double)", f"coalesce(({spec.where}), false)" if spec.where else "TRUE"
        # Exact cut points, as the engine's (`engine._quantiles`).
        points = ", ".join(
            f"percentile_disc({i} / {spec.quantiles}) WITHIN GROUP (ORDER BY CASE WHEN {ranked} THEN {of} END)"
            for i in range(1, spec.quantiles)
        )
        group = "1" + "".join(f" + CASE WHEN {of} > c[{i}] THEN 1 ELSE 0 END" for i in range(spec.quantiles - 1))
        score = f"({group})" if spec.higher_is_better else f"{spec.quantiles + 1} - ({group})"
        cuts = f"SELECT array({points}) AS c FROM i"
        return (
            f"WITH i AS ({inputs}), cuts AS ({cuts}) "
            f"SELECT one_id, CASE WHEN {of} IS NOT NULL AND {ranked} THEN CAST({score} AS int) END AS value "
            "FROM i CROSS JOIN cuts"
        )
    raise AssertionError(f"{tag.key}: no query for kind {type(spec).__name__}")


def clv_tag(spark: SparkSession, tag: Tag, cut: facts.Cut) -> tuple[DataFrame, DataFrame]:
    """A `clv` tag alone: summarise the orders, fit the models it needs, predict.

    Returns the query and the customers' statistics it reads, cached (to unpersist once the query
    is written): the fits and the prediction each read them, and the engine caches its own too, so
    the summary is computed once per tag, however many times `cdp.tags.clv` reads it.
    """
    spec = tag.spec
    purchases = spark.sql("SELECT one_id, ts, amount FROM fact_orders WHERE NOT returned AND amount > 0")
    stats = clv.summary(purchases, as_of=cut.instant).persist()
    bg = clv.fit_bgnbd(stats)
    gg = clv.fit_gamma_gamma(stats) if spec.output in ("expected_value", "clv") else None
    predicted = clv.predict(stats, bg, gg, horizon=spec.horizon_days / clv.UNIT_DAYS)
    return predicted.select("one_id", F.col(spec.output).alias("value")), stats


@dataclass(frozen=True)
class BaselineRun:
    seconds: float
    per_kind: dict[str, list[float]]
    scans: Counter[str]
    folder: Path
    done: tuple[Tag, ...]  # the tags computed: all, unless the time limit stopped it

    def estimate(self, tags: Sequence[Tag]) -> float:
        """Seconds for `tags` at the mean time per query of each kind (of all queries for a kind not run)."""
        times = [s for v in self.per_kind.values() for s in v]
        means = {kind: sum(v) / len(v) for kind, v in self.per_kind.items()}
        return sum(means.get(t.spec.kind, sum(times) / len(times)) for t in tags)


def run_baseline(
    spark: SparkSession,
    lake: Lake,
    catalogue: Catalogue,
    as_of: dt.date,
    out: Path,
    sql: Executions,
    *,
    limit: float | None = None,
) -> BaselineRun:
    """Every tag by its own query, written to `out/<key>`: facts first, then tags over tags level by level.

    Stops starting queries after `limit` seconds, if given.
    """
    first = sql.fence()
    started = time.monotonic()
    cut = facts.Cut(as_of, session_zone(spark))
    for name in sorted(facts.needed(catalogue)):
        # Not cached, and no join shared between facts: each query reads silver.
        facts.FACTS[name](facts.Sources(lake, cut.instant)).createOrReplaceTempView(f"fact_{name}")
    one_ids(lake).createOrReplaceTempView("persons")  # not checkpointed either
    derived = [t for level in catalogue.levels() for t in level]
    order = [t for t in catalogue if t not in derived] + derived
    per_kind: dict[str, list[float]] = defaultdict(list)
    done: list[Tag] = []
    for tag in order:
        if limit is not None and done and time.monotonic() - started > limit:
            break
        t = time.monotonic()
        kept = None
        if isinstance(tag.spec, Clv):
            query, kept = clv_tag(spark, tag, cut)
        else:
            text = tag_query(tag, catalogue, cut)
            logger.info("baseline %s: %s", tag.key, text)
            query = spark.sql(text)
        query.write.mode("overwrite").parquet(str(out / tag.key))
        if kept is not None:
            kept.unpersist()
        spark.read.parquet(str(out / tag.key)).createOrReplaceTempView(f"tag_{tag.key}")
        per_kind[tag.spec.kind].append(time.monotonic() - t)
        done.append(tag)
    seconds = time.monotonic() - started
    found = scans(sql.between(first, sql.fence()), lake.root)
    return BaselineRun(seconds, dict(per_kind), found, out, tuple(done))


def baseline_long(spark: SparkSession, catalogue: Catalogue, as_of: dt.date, folder: Path) -> DataFrame:
    """The baseline's outputs as one long table, like the engine's: a union, no join (a join of 84
    per-tag outputs ran the driver out of memory at 1M persons)."""
    parts = []
    for tag in catalogue:
        value = spark.read.parquet(str(folder / tag.key)).select("one_id", F.col("value").alias(tag.key))
        parts.extend(part.rows for part in engine.long_tags(Catalogue((tag,)), value, as_of))
    return functools.reduce(DataFrame.unionByName, parts)


def differences(engine_long: DataFrame, baseline_long: DataFrame) -> list:
    """Per tag with differences: the tag, how many persons differ, and one example."""
    a = engine_long.select("one_id", "tag", F.col("value").alias("engine"))
    b = baseline_long.select("one_id", "tag", F.col("value").alias("baseline"))
    x, y = F.expr("try_cast(engine AS double)"), F.expr("try_cast(baseline AS double)")
    same = F.col("engine").eqNullSafe(F.col("baseline")) | (F.abs(x - y) <= F.lit(TOLERANCE) + 1e-9 * F.abs(x))
    return (
        a.join(b, on=["one_id", "tag"], how="full")
        .where(~F.coalesce(same, F.lit(False)))
        .groupBy("tag")
        .agg(F.count("*").alias("n"), F.min_by(F.struct("one_id", "engine", "baseline"), "one_id").alias("e"))
        .orderBy("tag")
        .collect()
    )


# -- a larger catalogue ---------------------------------------------------------------------------

WINDOWS = (7, 14, 60, 180, 730)
# Generated tags over a window of $w days (the key gets `_<w>d`, metrics and tops `window_days: <w>`),
# most useful first; each reads only tags before it.
VARIANTS = """
- {key: v_orders, kind: metric, fact: orders, agg: count, fill: 0}
- {key: v_spend, kind: metric, fact: orders, agg: sum, column: amount, where: NOT returned, fill: 0}
- {key: v_top_category, kind: top, fact: order_lines, by: category_l1, measure: amount}
- key: v_order_band
  kind: bands
  of: v_orders_${w}d
  bands: [{below: 1, value: none}, {below: 2, value: one}, {below: 4, value: few}]
  otherwise: many
- {key: v_app_views, kind: metric, fact: app_events, agg: count, where: "event = 'view'", fill: 0}
- {key: v_top_brand, kind: top, fact: order_lines, by: brand, measure: amount}
- {key: v_avg_order, kind: metric, fact: orders, agg: avg, column: amount, where: NOT returned}
- {key: v_store_orders, kind: metric, fact: orders, agg: count, where: "channel = 'store'", fill: 0}
- {key: v_skus, kind: metric, fact: order_lines, agg: count_distinct, column: sku, fill: 0}
- {key: v_top_channel, kind: top, fact: orders, by: channel}
- {key: v_spend_per_order, kind: expr, expr: "CASE WHEN v_orders_${w}d > 0 THEN v_spend_${w}d / v_orders_${w}d END"}
- {key: v_carts, kind: metric, fact: app_events, agg: count, where: "event = 'add_to_cart'", fill: 0}
- {key: v_last_channel, kind: metric, fact: orders, agg: latest, column: channel}
- key: v_spend_band
  kind: bands
  of: v_spend_${w}d
  bands: [{below: 100, value: none}, {below: 500, value: low}, {below: 2000, value: mid}]
  otherwise: high
- {key: v_max_order, kind: metric, fact: orders, agg: max, column: amount}
- {key: v_top_subcategory, kind: top, fact: order_lines, by: category_l2, measure: amount}
- {key: v_units, kind: metric, fact: order_lines, agg: sum, column: qty, fill: 0}
- {key: v_discounted, kind: metric, fact: orders, agg: count, where: discount_amount > 0, fill: 0}
- {key: v_first_order, kind: metric, fact: orders, agg: earliest, column: amount}
- {key: v_active_days, kind: metric, fact: app_events, agg: count_distinct, column: to_date(ts), fill: 0}
"""


def _variants(w: int) -> list[dict]:
    """The generated tags over a window of `w` days: VARIANTS, then spend per category and orders per channel."""
    found = yaml.safe_load(string.Template(VARIANTS).substitute(w=w))
    found += [
        {"key": f"v_cat{i}_spend", "kind": "metric", "fact": "order_lines", "agg": "sum", "column": "amount",
         "where": f"category_l1 = '{category}'", "fill": 0}
        for i, category in enumerate(CATEGORY_WEIGHTS)
    ]  # fmt: skip
    found += [
        {"key": f"v_{platform}_orders", "kind": "metric", "fact": "orders", "agg": "count",
         "where": f"channel = '{platform}'", "fill": 0}
        for platform in PLATFORMS
    ]  # fmt: skip
    described = {"name": {"zh": "生成的标签", "en": "Generated tag"}, "description": "A generated variant."}
    window = {"window_days": w}
    return [
        {**t, "key": f"{t['key']}_{w}d", **described, **(window if t["kind"] in ("metric", "top") else {})}
        for t in found
    ]


def variant_catalogue(default: Path, folder: Path, n: int) -> Catalogue:
    """The catalogue in `default` plus generated variants, `n` tags in all, written to `folder` and loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in default.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    wanted = n - len(load_catalogue(folder, facts=list(facts.FACTS)))
    candidates = {w: _variants(w) for w in WINDOWS}
    if wanted > sum(len(c) for c in candidates.values()):
        raise SystemExit(f"--variants {n}: at most {n - wanted + sum(len(c) for c in candidates.values())} tags")
    chosen: dict[int, list[dict]] = defaultdict(list)
    rank = 0
    while wanted > 0:  # round robin over the windows, so every window gets the first kinds of its list
        for w in WINDOWS:
            if wanted > 0 and rank < len(candidates[w]):
                chosen[w].append(candidates[w][rank])
                wanted -= 1
        rank += 1
    for w, tags in chosen.items():
        text = yaml.safe_dump({"family": f"variants_{w}d", "tags": tags}, allow_unicode=True, sort_keys=False)
        (folder / f"variants_{w}d.yaml").write_text(text, encoding="utf-8")
    return load_catalogue(folder, facts=list(facts.FACTS))


# -- report ---------------------------------------------------------------------------------------


def print_scans(columns: dict[str, Counter[str]]) -> None:
    tables = sorted({t for c in columns.values() for t in c})
    print(f"\n{'table scanned':<28}" + "".join(f"{name:>16}" for name in columns))
    for table in tables:
        print(f"{table:<28}" + "".join(f"{c[table]:>16}" for c in columns.values()))


def check_scans(name: str, found: Counter[str], needed: set[str]) -> bool:
    ok = True
    parts = []
    for fact in sorted(needed):
        most = max(found[t] for t in facts.SOURCES[fact])
        ok &= most <= MAX_SCANS
        parts.append(f"{fact} {most}")
    verdict = "ok" if ok else "NOT MET"
    print(f"{name}: most scans of a silver table per fact: {', '.join(parts)} (target <= {MAX_SCANS}): {verdict}")
    return ok


def median(runs: Sequence[EngineRun]) -> EngineRun:
    """The run of median time (of an even number, the slower of the two in the middle)."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def report_runs(runs: Sequence[EngineRun]) -> None:
    """Every timed run of the engine, and whether their scans agree (the same plans should read the same tables)."""
    if len(runs) < 2:
        return
    times = ", ".join(f"{r.seconds:.1f}s" for r in runs)
    print(f"  {len(runs)} timed runs: {times}; median {median(runs).seconds:.1f}s (the figures above)")
    if any(r.scans != runs[0].scans for r in runs):
        print(f"  scans differ between runs: {'; '.join(str(dict(sorted(r.scans.items()))) for r in runs)}")


def report_baseline(
    spark: SparkSession, catalogue: Catalogue, as_of: dt.date, base: BaselineRun, runs: Sequence[EngineRun]
) -> None:
    """The baseline's time, its ratio to the engine's median run (and to each run), and the tags whose
    values differ from the engine's."""
    run = median(runs)
    queries = len(base.done)
    print(f"\nbaseline, one Spark SQL query per tag: {queries} queries in {base.seconds:.1f}s")
    print(f"  mean per query {base.seconds / queries:.2f}s ({', '.join(_per_kind(base.per_kind))})")
    seconds = base.seconds
    if queries < len(catalogue):
        rest = [t for t in catalogue if t not in base.done]
        seconds += base.estimate(rest)
        print(f"  stopped by --baseline-minutes, {len(rest)} not run: all {len(catalogue)} estimated {seconds:.0f}s")
    done = Catalogue(base.done)
    computed = spark.read.parquet(str(run.long_path)).where(F.col("tag").isin([t.key for t in done]))
    diffs = differences(computed, baseline_long(spark, done, as_of, base.folder))
    equal = len(done) - len(diffs)
    print(f"  values: {equal} of {len(done)} tags equal the engine's for every one_id (doubles within 1e-4)")
    for d in diffs:
        e = d["e"]
        print(f"    {d['tag']}: {d['n']:,} one_ids differ, e.g. {e['one_id']}: "
              f"engine {e['engine']!r}, baseline {e['baseline']!r}")  # fmt: skip
    ratio = seconds / run.seconds
    print(f"  ratio baseline / engine (median run): {ratio:.2f}x (target >= 5x): {'ok' if ratio >= 5 else 'NOT MET'}")
    if len(runs) > 1:
        ratios = [seconds / r.seconds for r in runs]
        met = sum(r >= 5 for r in ratios)
        each = ", ".join(f"{r:.2f}x" for r in ratios)
        print(f"  ratio to each run: {each}; target reached in {met} of {len(runs)} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="a cleansed and resolved lake")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 10, 1))
    parser.add_argument("--variants", type=int, default=150, help="tags of the larger catalogue (0: skip)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the one-query-per-tag baseline")
    parser.add_argument(
        "--variants-baseline",
        action="store_true",
        help="run the baseline on the larger catalogue too (one query per tag; else its time is estimated)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed engine runs on each catalogue (the ratios use their median)"
    )
    parser.add_argument(
        "--baseline-minutes",
        type=float,
        help="stop the baseline after this long and estimate the rest from its queries",
    )
    parser.add_argument("--keep", help="write the outputs here and keep them (default: a temporary folder)")
    parser.add_argument("--verbose", action="store_true", help="log the engine's progress and the baseline's SQL")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = bench_config(args.lake)
    spark = get_spark(cfg)
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set(SESSION_TIME_ZONE, cfg.tags.timezone)  # the business's days, as in `cdp run tags`
    lake = Lake.from_config(spark, cfg, job="bench", run_id="bench")
    sql = Executions(spark)
    out = Path(args.keep or tempfile.mkdtemp(prefix="bench_tags_"))
    catalogue = load_catalogue(cfg.tags.catalogue, facts=list(facts.FACTS))
    persons = one_ids(lake).count()
    print(
        f"lake {args.lake}, as of {args.as_of} ({cfg.tags.timezone}), {persons:,} one_ids (profile rows), "
        f"Spark {spark.version}"
    )
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (compare timings on a quiet machine only)")
    check_counting(lake, sql)

    warm = run_engine(spark, lake, catalogue, args.as_of, out / "warm_up", sql)  # file cache, JIT
    print(f"warm-up run of the engine (untimed): {warm.seconds:.1f}s")
    runs = timed_runs(spark, lake, catalogue, args.as_of, out / "engine", sql, args.repeat)
    run = median(runs)
    report_engine("default catalogue", catalogue, run, spark, persons)
    report_runs(runs)
    columns = {"engine": run.scans}
    check_scans("engine, default catalogue", run.scans, facts.needed(catalogue))

    base = None
    limit = args.baseline_minutes * 60 if args.baseline_minutes else None  # for each baseline run
    if not args.skip_baseline:
        base = run_baseline(spark, lake, catalogue, args.as_of, out / "baseline", sql, limit=limit)
        report_baseline(spark, catalogue, args.as_of, base, runs)
        columns["baseline" if len(base.done) == len(catalogue) else "baseline, part"] = base.scans

    if args.variants:
        larger = variant_catalogue(Path(cfg.tags.catalogue), out / "catalogue", args.variants)
        bigs = timed_runs(spark, lake, larger, args.as_of, out / "engine_variants", sql, args.repeat)
        big = median(bigs)
        report_engine("generated catalogue", larger, big, spark, persons)
        report_runs(bigs)
        columns[f"{len(larger)} tags"] = big.scans
        check_scans(f"engine, {len(larger)} tags", big.scans, facts.needed(larger))
        grew = {t for t in big.scans if big.scans[t] > run.scans[t]}
        print(f"scans grew with the number of tags: {', '.join(sorted(grew)) or 'none'}")
        if base is not None:
            estimate = base.estimate(larger.tags)
            print(f"  baseline estimate for {len(larger)} tags (its mean per query by kind): {estimate:.0f}s, "
                  f"ratio {estimate / big.seconds:.1f}x")  # fmt: skip
        if args.variants_baseline and not args.skip_baseline:
            wide = run_baseline(spark, lake, larger, args.as_of, out / "baseline_variants", sql, limit=limit)
            report_baseline(spark, larger, args.as_of, wide, bigs)
            columns[f"baseline, {len(larger)}"] = wide.scans

    print_scans(columns)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


def _per_kind(per_kind: dict[str, list[float]]) -> list[str]:
    return [f"{kind} {sum(v) / len(v):.2f}s x {len(v)}" for kind, v in sorted(per_kind.items())]


if __name__ == "__main__":
    main()
