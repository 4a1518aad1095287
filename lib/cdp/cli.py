"""The `cdp` command.

cdp run <job> [--env local] [--lake PATH] [--run-id ID]   run one job
cdp run pipeline [...]                                    run every job in order
cdp generate --persons N --seed S [noise options]         synthetic channel data with ground truth
cdp tables [--lake PATH]                                  tables with version, rows, files
cdp explain --record SOURCE:ID [--record SOURCE:ID]       a record's person, and the path joining two records
cdp explain --one-id N                                    a person's records and their (masked) identifiers
cdp eval identity [--lake PATH]                           identity.oneid_map against the generator's truth
cdp summary tags [--as-of DATE]                           one_ids, tag values, lifecycle stages and RFM segments
cdp doctor                                                what this machine and session can do
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import version

from pyspark.sql import DataFrame

from cdp import pipeline
from cdp.config import Config, load_config
from cdp.errors import CdpError
from cdp.lake.delta_rs import DeltaRsEngine
from cdp.lake.lake import Lake
from cdp.runtime import add_standard_arguments, execute

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp", description="cdp-lakehouse: Customer Data Platform jobs on Delta Lake")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a job, or the whole pipeline")
    jobs = run.add_subparsers(dest="job", required=True, metavar="JOB")
    everything = jobs.add_parser("pipeline", help="every job in order: " + ", ".join(pipeline.JOBS))
    add_standard_arguments(everything)
    for name in pipeline.JOBS:
        job = pipeline.job(name)
        sub = jobs.add_parser(name, help=job.description)
        add_standard_arguments(sub)
        job.add_arguments(sub)
    for job in pipeline.pipeline():
        # `cdp run pipeline` accepts every job's options, with their defaults.
        job.add_arguments(everything)

    from cdp.generate.job import JOB as GENERATE

    generate = commands.add_parser(
        "generate",
        help="write synthetic landing files for every channel, and the truth about who is who",
        description=GENERATE.description,
    )
    add_standard_arguments(generate)
    GENERATE.add_arguments(generate)

    tables = commands.add_parser("tables", help="list the lake's tables with version, rows and files")
    add_standard_arguments(tables)
    doctor = commands.add_parser("doctor", help="report Python, Java, Spark, the Delta engine and GraphFrames")
    add_standard_arguments(doctor)

    explain = commands.add_parser(
        "explain",
        help="why records are one person: their one_id, records, identifiers (masked) and the path joining two",
    )
    add_standard_arguments(explain)
    explain.add_argument(
        "--record", action="append", default=[], metavar="SOURCE:ID", help="a record, e.g. crm_members:M001; twice"
    )
    explain.add_argument("--one-id", type=int, metavar="N", help="a person by one_id, instead of --record")
    explain.add_argument("--max-records", type=int, default=20, metavar="N", help="records shown per person (20)")

    evaluate = commands.add_parser("eval", help="measure a result against the generator's truth")
    targets = evaluate.add_subparsers(dest="target", required=True, metavar="TARGET")
    identity = targets.add_parser(
        "identity", help="pairwise precision, recall and F1 of identity.oneid_map against truth.person_records"
    )
    add_standard_arguments(identity)

    summary = commands.add_parser("summary", help="a short account of a layer's results")
    layers = summary.add_subparsers(dest="layer", required=True, metavar="LAYER")
    tags = layers.add_parser("tags", help="one_ids, tag values, lifecycle stages and RFM segments of one as-of date")
    add_standard_arguments(tags)
    tags.add_argument("--as-of", type=_date, metavar="DATE", help="the as-of date (default: the latest computed)")

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            if args.job == "pipeline":
                return execute(pipeline.pipeline(), args, label="pipeline")
            return execute([pipeline.job(args.job)], args)
        if args.command == "generate":
            return execute([GENERATE], args)
        if args.command == "tables":
            return _tables(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "eval":
            return _eval_identity(args)
        if args.command == "summary":
            return _summary_tags(args)
        return _doctor(args)
    except CdpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _tables(args: argparse.Namespace) -> int:
    """Table metadata from the Delta logs alone: no Spark session needed."""
    cfg = load_config(args.env, conf_dir=args.conf_dir, lake_root=args.lake)
    lake = Lake(None, cfg.lake.root, engine=DeltaRsEngine(None))  # type: ignore[arg-type]
    names = lake.tables()
    print(f"lake {cfg.lake.root}: {len(names)} tables")
    if names:
        print(f"{'table':<32} {'version':>7} {'rows':>14} {'files':>7} {'MiB':>9}  partitioned by")
    for name in names:
        info = lake.info(name)
        rows = "?" if info.rows is None else f"{info.rows:,}"
        parts = ", ".join(info.partition_by) or "-"
        print(f"{name:<32} {info.version:>7} {rows:>14} {info.files:>7} {info.bytes / 2**20:>9.2f}  {parts}")
    return 0


def _reading_lake(args: argparse.Namespace) -> tuple[Config, Lake]:
    from cdp.spark import get_spark

    cfg = load_config(args.env, conf_dir=args.conf_dir, lake_root=args.lake)
    return cfg, Lake.from_config(get_spark(cfg), cfg, job=args.command, run_id="read-only")


_MADE_BY = {"identity": "cdp run identity", "truth": "cdp generate"}  # layer -> the command that writes it


def _read(lake: Lake, name: str) -> DataFrame:
    """A table the command needs; missing, a one-line error naming it and what writes it."""
    if not lake.exists(name):
        layer = name.split(".")[0]
        raise CdpError(f"table {name} does not exist under {lake.root}: run `{_MADE_BY[layer]}` first")
    return lake.read(name)


def _explain(args: argparse.Namespace) -> int:
    from cdp.identity import explain
    from cdp.identity.job import DICTIONARY, EDGES, HYGIENE_REPORT, ONEID_MAP

    records = [explain.parse_record(r) for r in args.record]
    cfg, lake = _reading_lake(args)
    result = explain.explain(
        oneid_map=_read(lake, ONEID_MAP),
        edges=_read(lake, EDGES),
        dictionary=_read(lake, DICTIONARY),
        report=_read(lake, HYGIENE_REPORT),
        linking_types=[t for t, c in cfg.identity.types.items() if c.link],
        records=records,
        one_id=args.one_id,
        table=ONEID_MAP,
    )
    print(explain.render(result, max_records=args.max_records))
    return 0


def _eval_identity(args: argparse.Namespace) -> int:
    from cdp.generate.job import TRUTH_RECORDS
    from cdp.identity.evaluate import evaluate, recall_ceiling
    from cdp.identity.job import EDGES, ONEID_MAP

    _, lake = _reading_lake(args)
    mapping, truth = _read(lake, ONEID_MAP), _read(lake, TRUTH_RECORDS)
    e = evaluate(mapping, truth)
    # What the identifiers can reveal at all: records that share no identifier with the rest of
    # their person (an anonymous walk-in receipt) cannot be linked by any resolver.
    ceiling = recall_ceiling(mapping, lake.read(EDGES), truth) if lake.exists(EDGES) else None
    print(f"{ONEID_MAP} against {TRUTH_RECORDS} (lake {lake.root})")
    for label, value in [
        ("records compared", f"{e.records:,}"),
        ("only in map", f"{e.only_in_map:,}"),
        ("only in truth", f"{e.only_in_truth:,}"),
        ("true pairs", f"{e.true_pairs:,}"),
        ("predicted pairs", f"{e.predicted_pairs:,}"),
        ("true positives", f"{e.true_positives:,}"),
        ("precision", f"{e.precision:.4f}"),
        ("recall", f"{e.recall:.4f}"),
        ("F1", f"{e.f1:.4f}"),
        ("recall ceiling", "-" if ceiling is None else f"{ceiling:.4f}"),
        ("persons", f"{e.persons:,}"),
        ("over-merged persons", f"{e.over_merged_persons:,}"),
        ("split persons", f"{e.split_persons:,}"),
    ]:
        print(f"  {label:<20} {value:>14}")
    return 0


def _summary_tags(args: argparse.Namespace) -> int:
    from cdp.tags import facts
    from cdp.tags.catalogue import load_catalogue
    from cdp.tags.summary import summary

    cfg, lake = _reading_lake(args)
    catalogue = load_catalogue(cfg.tags.catalogue, facts=list(facts.FACTS))
    print("\n".join(summary(lake, catalogue, args.as_of)))
    return 0


def _date(text: str):
    from cdp.tags.job import parse_date

    return parse_date(text)


def _doctor(args: argparse.Namespace) -> int:
    from cdp.spark import capabilities, get_spark, java_version

    cfg = load_config(args.env, conf_dir=args.conf_dir, lake_root=args.lake)
    print(f"python        {platform.python_version()}")
    java = java_version()
    print(f"java          {java or 'missing: install a Java 17 runtime (apt-get install openjdk-17-jre-headless)'}")
    for package in ("pyspark", "delta-spark", "deltalake", "graphframes-py", "great-expectations", "mlflow"):
        print(f"{package:<13} {version(package)}")
    print(f"lake root     {cfg.lake.root} (env {cfg.env})")
    if java is None and not (cfg.spark.remote):
        return 2
    spark = get_spark(cfg)
    caps = capabilities(spark)
    engine = caps.lake_engine if cfg.lake.engine == "auto" else cfg.lake.engine
    print(f"spark         {caps.spark_version} {'over Spark Connect' if caps.connect else 'classic'}")
    print(f"delta engine  {engine} (Delta extension {'active' if caps.delta_extension else 'absent'})")
    print(f"graphframes   {'available' if caps.graphframes else 'absent: connected components use the builtin engine'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
