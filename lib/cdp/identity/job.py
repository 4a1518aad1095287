"""Job `identity`: silver records -> identifier graph -> components -> stable one_id per record.

1. Observations: every identifier of every person-bearing silver record, hashed to 64-bit ids
   (`identity.edges`); the values behind the ids go to `identity.id_dictionary` only.
2. Hygiene (`cdp.identity.hygiene`): blocklists, hubs and caps decide which values may link.
3. Components of the identifier graph (`cdp.identity.components`), mapped back to records.
4. Report and metrics: every removed value with its would-be effect (`identity.hygiene_report`),
   graph figures per run (`identity.graph_metrics`).
5. Quality gates: a giant person or too many records in large persons stop the job here, before
   `identity.oneid_map` is replaced.
6. Stable ids (`cdp.identity.oneid`) against the previous run's map; merges and splits go to
   `identity.id_events`, and `identity.oneid_map` is replaced last. The previous map is the last
   version written by another run, so re-running a crashed run gives the same ids and events.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType, TimestampType

from cdp.config import IdentityConfig
from cdp.errors import IdentityResolutionError
from cdp.identity import graph, hygiene, oneid
from cdp.identity.components import connected_components, resolve_engine
from cdp.identity.identifiers import identifier_id, masked, observations, person_sources, records
from cdp.lake import Lake
from cdp.runtime import Job, JobContext, job_main, stage
from cdp.schemas import RECORD

logger = logging.getLogger(__name__)

EDGES = "identity.edges"
DICTIONARY = "identity.id_dictionary"
HYGIENE_REPORT = "identity.hygiene_report"
METRICS = "identity.graph_metrics"
EVENTS = "identity.id_events"
ONEID_MAP = "identity.oneid_map"
SIZE_BUCKETS = [(1, "1"), (2, "2"), (5, "3-5"), (10, "6-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000")]
METRICS_SCHEMA = StructType(
    [
        StructField("run_id", StringType()),
        StructField("computed_at", TimestampType()),
        StructField("engine", StringType()),
        StructField("records", LongType()),
        StructField("identifiers", LongType()),
        StructField("edges", LongType()),
        StructField("components", LongType()),
        StructField("largest_component", LongType()),  # records
        StructField("size_histogram", MapType(StringType(), LongType())),  # records per person -> persons
        StructField("large_component_records", LongType()),  # the gate's size of a large person
        StructField("records_in_large", LongType()),  # records in persons larger than that
        StructField("removed_values", MapType(StringType(), LongType())),  # hygiene rule -> values
        StructField("capped_links", LongType()),
        StructField("hash_collisions", LongType()),
    ]
)


def run(ctx: JobContext) -> None:
    cfg, lake = ctx.cfg.identity, ctx.lake
    with stage("identity observations"):
        found = observe(lake, cfg)
        if found is None:
            return
        obs, all_records = found
        dictionary = obs.select("identifier", "id_type", "scope", "value").distinct().localCheckpoint()
        lake.overwrite(DICTIONARY, dictionary)
    with stage("identity hygiene"):
        verdict = hygiene.assess(obs, cfg.types, reference=reference(lake, cfg)).localCheckpoint()
        clean = hygiene.split(obs, verdict, cfg.types)
        # Each part is used several times below: computed once.
        clean = hygiene.Hygiene(
            links=clean.links.localCheckpoint(),
            removed=clean.removed.localCheckpoint(),
            capped=clean.capped.localCheckpoint(),
        )
        links = clean.links
        # `links` was added after the first release: an older lake's table gains the column.
        lake.overwrite(EDGES, _edge_rows(obs, clean, cfg), evolve=True)
    with stage("identity components"):
        edges = graph.edges(links).localCheckpoint()
        components = connected_components(edges, engine=cfg.engine, driver_threshold=cfg.driver_threshold)
        current = graph.record_components(all_records, graph.anchors(links), components).localCheckpoint()
    with stage("identity report"):
        report = _hygiene_report(obs, clean, current, ctx.run_id)
        lake.overwrite(HYGIENE_REPORT, report)
        metrics = _metrics(ctx, cfg, current, dictionary, edges, clean)
        lake.append(METRICS, metrics)
    _gate(cfg, metrics.first())
    with stage("identity one_id"):
        previous, issued = _previous(ctx)
        assignment = oneid.assign(current, previous, issued=issued, run_id=ctx.run_id)
        mapping = assignment.oneid_map.localCheckpoint()
        lake.append(EVENTS, assignment.events)
        lake.overwrite(ONEID_MAP, mapping)


def observe(lake: Lake, cfg: IdentityConfig) -> tuple[DataFrame, DataFrame] | None:
    """(identifier observations with `identifier`, every record once) over the silver tables present.

    None when there is no silver table yet: the identity tables are left as they are.
    """
    sources = person_sources(cfg.mall_appid)
    present = [s for s in sources.values() if lake.exists(f"silver.{s.name}")]
    if not present:
        logger.warning(
            "identity: none of %s exists under %s yet (run `cdp run cleanse`); nothing to resolve",
            ", ".join("silver." + s for s in sources), lake.root,
        )  # fmt: skip
        return None
    silver = {s.name: lake.read(f"silver.{s.name}") for s in present}
    obs = functools.reduce(DataFrame.unionByName, [observations(silver[s.name], s) for s in present])
    obs = obs.withColumn("identifier", identifier_id(F.col("id_type"), F.col("scope"), F.col("value")))
    recs = functools.reduce(DataFrame.unionByName, [records(silver[s.name], s) for s in present])
    return obs.localCheckpoint(), recs.localCheckpoint()


def reference(lake: Lake, cfg: IdentityConfig) -> DataFrame | None:
    """(`id_type`, `value`) of the reference columns named by the types' `block_from`; missing tables are skipped."""
    parts = []
    for id_type, type_cfg in cfg.types.items():
        for entry in type_cfg.block_from:
            table, column = entry.split(":", 1)
            if not lake.exists(table):
                logger.warning("identity.types.%s.block_from: table %s does not exist yet; not used", id_type, table)
                continue
            values = lake.read(table).select(F.lit(id_type).alias("id_type"), F.col(column).alias("value"))
            parts.append(values.where(F.col("value").isNotNull()))
    return functools.reduce(DataFrame.unionByName, parts) if parts else None


def _edge_rows(obs: DataFrame, clean: hygiene.Hygiene, cfg: IdentityConfig) -> DataFrame:
    """Every observation with whether it joined records (`links`): its type links, hygiene kept the
    value, and no cap dropped it on that record. Removed values and capped links are few: broadcast."""
    linking = [t for t, c in cfg.types.items() if c.link]
    removed = clean.removed.select("identifier", F.lit(True).alias("_removed"))
    capped = clean.capped.select(*RECORD, "identifier", F.lit(True).alias("_capped"))
    joined = obs.join(F.broadcast(removed), on="identifier", how="left").join(
        F.broadcast(capped), on=[*RECORD, "identifier"], how="left"
    )
    links = F.col("id_type").isin(*linking) & F.col("_removed").isNull() & F.col("_capped").isNull()
    return joined.select(*RECORD, "id_type", "identifier", links.alias("links"))


def _hygiene_report(obs: DataFrame, clean: hygiene.Hygiene, current: DataFrame, run_id: str) -> DataFrame:
    """Every removed value and capped link with its would-be effect.

    Output columns: `run_id`, `rule`, `id_type`, `identifier`, `value_masked`, `records` (records
    carrying the value), `names` (different persons' names on them), `dropped_on` (records where the
    value was dropped), `would_join` (persons its records belong to now: how many it would have merged).
    """
    capped = clean.capped.groupBy("identifier", "id_type", "rule").agg(F.count("*").alias("dropped_on"))
    removed = clean.removed.select("identifier", "id_type", "rule", F.col("records").alias("dropped_on"))
    flagged = removed.unionByName(capped)
    carriers = obs.join(flagged.select("identifier").distinct(), on="identifier", how="left_semi")
    effect = (
        carriers.join(current, on=RECORD, how="inner")
        .groupBy("identifier")
        .agg(
            F.first("value").alias("value"),
            F.count("*").alias("records"),
            # Counted as the `max_names` rule counts them: names one typo apart are one person.
            hygiene.distinct_names(F.array_sort(F.collect_set(F.trim("name")))).alias("names"),
            F.count_distinct("component").alias("would_join"),
        )
    )
    return flagged.join(effect, on="identifier", how="inner").select(
        F.lit(run_id).alias("run_id"),
        "rule",
        "id_type",
        "identifier",
        masked(F.col("id_type"), F.col("value")).alias("value_masked"),
        "records",
        "names",
        "dropped_on",
        "would_join",
    )


def _metrics(
    ctx: JobContext,
    cfg: IdentityConfig,
    current: DataFrame,
    dictionary: DataFrame,
    edges: DataFrame,
    clean: hygiene.Hygiene,
) -> DataFrame:
    sizes = current.groupBy("component").agg(F.count("*").alias("size")).localCheckpoint()
    bucket = F.lit(f">{SIZE_BUCKETS[-1][0]}")
    for upper, label in reversed(SIZE_BUCKETS):
        bucket = F.when(F.col("size") <= upper, F.lit(label)).otherwise(bucket)
    histogram = {r["bucket"]: r["persons"] for r in sizes.groupBy(bucket.alias("bucket")).agg(
        F.count("*").alias("persons")).collect()}  # fmt: skip
    large = cfg.gates.large_component_records
    t = sizes.agg(
        F.count("*").alias("components"),
        F.sum("size").alias("records"),
        F.max("size").alias("max"),
        F.sum(F.when(F.col("size") > large, F.col("size")).otherwise(0)).alias("in_large"),
    ).first()
    removed = {r["rule"]: r["n"] for r in clean.removed.groupBy("rule").agg(F.count("*").alias("n")).collect()}
    identifiers = dictionary.count()
    collisions = identifiers - dictionary.select("identifier").distinct().count()
    if collisions:
        logger.warning("identity: %d identifier values share a 64-bit id with another value", collisions)
    engine = resolve_engine(ctx.spark, cfg.engine)  # the one that ran, not `auto`
    row = (
        ctx.run_id, dt.datetime.now(dt.UTC), engine, t["records"] or 0, identifiers, edges.count(),
        t["components"] or 0, t["max"] or 0, histogram, large, t["in_large"] or 0, removed, clean.capped.count(),
        collisions,
    )  # fmt: skip
    logger.info(
        "identity: %d records in %d persons (largest %d records), %d identifiers, %d edges, removed %s",
        row[3], row[6], row[7], identifiers, row[5], removed or "nothing",
    )  # fmt: skip
    return ctx.spark.createDataFrame([row], METRICS_SCHEMA)


def _gate(cfg: IdentityConfig, m) -> None:
    """Stop before `identity.oneid_map` is replaced when the graph looks merged by a junk value."""
    gates, problems = cfg.gates, []
    if m["largest_component"] > gates.max_component_records:
        problems.append(
            f"the largest person holds {m['largest_component']:,} records "
            f"(identity.gates.max_component_records = {gates.max_component_records:,})"
        )
    share = m["records_in_large"] / m["records"] if m["records"] else 0.0
    if share > gates.max_share_in_large:
        problems.append(
            f"{share:.1%} of the records are in persons of more than {gates.large_component_records} records "
            f"(identity.gates.max_share_in_large = {gates.max_share_in_large:.1%})"
        )
    if problems:
        raise IdentityResolutionError(
            f"identity run {m['run_id']}: {'; '.join(problems)}. identity.oneid_map was not replaced. "
            f"See {HYGIENE_REPORT} (values removed and the persons they would join) and {METRICS}; "
            "an identifier shared by many people probably needs a blocklist entry or a lower hub threshold."
        )


def _previous(ctx: JobContext) -> tuple[DataFrame | None, DataFrame | None]:
    """(the map as another run last wrote it, every one_id given out by other runs), None when absent."""
    lake = ctx.lake
    previous = None
    if lake.exists(ONEID_MAP):
        versions = [c.version for c in lake.history(ONEID_MAP) if c.metadata.get("cdp.run_id") != ctx.run_id]
        if versions:
            previous = lake.read(ONEID_MAP, version=max(versions))
    issued = None
    if lake.exists(EVENTS):
        events = lake.read(EVENTS).where(F.col("run_id") != ctx.run_id)
        issued = events.select(F.explode("old_ids").alias("one_id")).unionByName(
            events.select(F.col("new_id").alias("one_id"))
        )
    return previous, issued


JOB = Job(name="identity", description=__doc__.splitlines()[0], run=run)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, argv)


if __name__ == "__main__":
    sys.exit(main())
