"""Job `generate`: synthetic multi-channel customer data with the truth about who is who.

Writes landing files for every source under `<lake>/landing/<source>/<batch>/` and the ground
truth `truth.person_records (batch, source, record_id, person_id)` plus `truth.persons`. No
other job reads the truth tables; they are there to measure identity resolution and profiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp.generate import catalogue as catalogue_mod
from cdp.generate import offline, online, population, purchases
from cdp.generate.delivery import Delivery
from cdp.generate.params import DEFAULT_END, Mix, Noise, Params, knobs
from cdp.lake.landing import landing_path, write_lines
from cdp.runtime import Job, JobContext, job_main, stage

logger = logging.getLogger(__name__)

TRUTH_RECORDS = "truth.person_records"
TRUTH_PERSONS = "truth.persons"
PERSON_COLUMNS = [
    "person_id", "name", "gender", "birth_date", "mobile", "email", "city_idx", "home_store", "is_member",
    "double_member", "pos_buyer", "ecom_buyer", "wechat_user", "app_user", "is_mother", "baby_birth",
    "pref_l2", "pref_brand", "cycle_days", "churn_at", "react_at", "unionid",
]  # fmt: skip


def run(ctx: JobContext) -> None:
    params = params_from_args(ctx.args)
    spark, lake = ctx.spark, ctx.lake
    batch = params.batch_id
    logger.info(
        "generating %d persons, seed %d, %s to %s, batch %s",
        params.persons,
        params.seed,
        params.start,
        params.end,
        batch,
    )
    with stage("population"):
        catalogue = catalogue_mod.build(params.skus, params.seed, end=params.end)
        persons = population.persons(spark, params).localCheckpoint()
        stores = population.stores(spark, params).localCheckpoint()
    with stage("purchases"):
        orders = purchases.orders(persons, params).localCheckpoint()
        lines = purchases.lines(spark, orders, params, catalogue).localCheckpoint()
        orders = purchases.totals(orders, lines, params).localCheckpoint()
        logger.info("%d orders, %d order lines", orders.count(), lines.count())

    deliveries = [
        offline.products_delivery(catalogue.products_df(spark), params),
        offline.stores_delivery(stores, params),
        offline.crm_members(persons, stores, params),
        offline.pos_orders(orders, stores, params),
        offline.pos_order_items(orders, lines, params),
        online.ecom_orders(orders, params),
        online.wechat_users(persons, params),
        online.app_events(spark, persons, params, catalogue),
    ]
    truths: list[DataFrame] = []
    for delivery in deliveries:
        with stage(f"landing {delivery.source}"):
            written = write_delivery(ctx, delivery, batch)
            logger.info(
                "landing/%s/%s: %d lines (%s, %s)", delivery.source, batch, written, delivery.format, delivery.encoding
            )
        if delivery.truth is not None:
            truths.append(delivery.truth.select(F.lit(delivery.source).alias("source"), "record_id", "person_id"))

    with stage("truth"):
        records = truths[0]
        for t in truths[1:]:
            records = records.unionByName(t)
        records = records.select(F.lit(batch).alias("batch"), "source", "record_id", "person_id")
        lake.replace_partitions(TRUTH_RECORDS, records, partition_by=["batch"])
        people = persons.select(F.lit(batch).alias("batch"), *PERSON_COLUMNS)
        lake.replace_partitions(TRUTH_PERSONS, people, partition_by=["batch"])


def write_delivery(ctx: JobContext, delivery: Delivery, batch: str) -> int:
    path = landing_path(ctx.lake.root, delivery.source, batch)
    return write_lines(ctx.spark, delivery.lines, path, header=delivery.header, encoding=delivery.encoding)


def params_from_args(args: argparse.Namespace) -> Params:
    def group(cls: type) -> object:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    return Params(
        persons=args.persons,
        seed=args.seed,
        end=args.end,
        years=args.years,
        stores=args.stores,
        skus=args.skus,
        batch=args.batch,
        mix=group(Mix),  # type: ignore[arg-type]
        noise=group(Noise),  # type: ignore[arg-type]
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persons", type=int, default=20000, help="number of persons (default: 20000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed: same seed, same data (default: 7)")
    parser.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=DEFAULT_END,
        help=f"last day of the history, YYYY-MM-DD (default: {DEFAULT_END})",
    )
    parser.add_argument("--years", type=int, default=2, help="years of history (default: 2)")
    parser.add_argument("--stores", type=int, help="number of stores (default: persons / 5000, between 5 and 300)")
    parser.add_argument("--skus", type=int, default=2000, help="catalogue size (default: 2000)")
    parser.add_argument("--batch", help="landing batch folder name (default: the end date, yyyymmdd)")
    for title, cls in (("channel mix", Mix), ("noise", Noise)):
        options = parser.add_argument_group(title)
        for name, default, help_text in [(k[1], k[2], k[3]) for k in knobs() if k[0] == cls.__name__.lower()]:
            options.add_argument(
                "--" + name.replace("_", "-"),
                type=float,
                default=default,
                metavar="RATE",
                help=f"{help_text} (default: {default:g})",
            )


JOB = Job(name="generate", description=__doc__.splitlines()[0], run=run, add_arguments=add_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, argv)


if __name__ == "__main__":
    sys.exit(main())
