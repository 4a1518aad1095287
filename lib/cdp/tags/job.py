"""Tags: every tag of the catalogue for every one_id, as of a date, with the changes since the previous date.

Reads the silver facts and `identity.oneid_map`; writes, for the as-of date, the partitions of:

- `tags.customer_tags (one_id, tag, value, as_of, family)`: one row per known tag value,
  partitioned by family and as-of date;
- `tags.customer_profile`: one wide row per one_id (a typed column per tag), partitioned by as-of date;
- `tags.tag_events (one_id, tag, from_value, to_value, direction, as_of, previous_as_of, run_id)`:
  for tags declared with `events: true`, every person whose value differs from the previous as-of
  date present (none on the first date); `direction` is `up` or `down` when the tag's `values`
  are ranked (`ranked: true`, best first), else null.

Each date's partitions are replaced as a whole, so re-running a date (after a crash, or with a
new catalogue) leaves one copy. `--as-of` (default: today) computes the tags as they were on
that date from facts before it only, for point-in-time training sets. Dates are the business's
(`tags.timezone`, Asia/Shanghai by default): the date begins at its midnight there, a window of N
days begins N midnights earlier, and the catalogue's `to_date(ts)` and `hour(ts)` read its clocks.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Iterator, Sequence
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp.errors import ConfigError
from cdp.lake import Lake, Partition
from cdp.runtime import Job, JobContext, job_main, stage
from cdp.tags import engine, facts
from cdp.tags.catalogue import Catalogue, load_catalogue

logger = logging.getLogger(__name__)

CUSTOMER_TAGS = "tags.customer_tags"
PROFILE = "tags.customer_profile"
EVENTS = "tags.tag_events"


def run(ctx: JobContext) -> None:
    lake = ctx.lake
    zone = ctx.cfg.tags.timezone  # validated when the configuration loaded
    as_of = getattr(ctx.args, "as_of", None) or dt.datetime.now(ZoneInfo(zone)).date()  # today there
    catalogue = load_catalogue(ctx.cfg.tags.catalogue, facts=list(facts.FACTS))
    if not lake.exists(facts.ONEID_MAP):
        logger.warning("tags: %s does not exist under %s yet (run `cdp run identity`); nothing to tag",
                       facts.ONEID_MAP, lake.root)  # fmt: skip
        return
    logger.info("tags: %d tags in %d families, as of %s (%s)", len(catalogue), len(catalogue.families), as_of,
                zone)  # fmt: skip
    with computed(lake, catalogue, as_of, zone) as result:  # the writes too are on the business's days
        _publish(catalogue, result.profile, lake, as_of, ctx.run_id)


@contextlib.contextmanager
def computed(lake: Lake, catalogue: Catalogue, as_of: dt.date, zone: str) -> Iterator[engine.TagResult]:
    """Every tag of `catalogue` for every one_id of `lake` as of `as_of` (days of `zone`), for the block.

    What the job writes, computed the same way, for a notebook to look at or try a new tag on
    without writing anything. Inside the block the session's time zone is `zone` (`engine.business_days`:
    the profile's derived columns are computed when read, and `to_date(ts)` reads its dates) and the
    profile is cached; when the block ends, both are undone.
    """
    spark = lake.spark
    with engine.business_days(spark, zone):
        with engine.planned_partitioning(spark) as partitions:
            with stage("tags facts"):
                built = facts.build(lake, as_of, facts.needed(catalogue), partitions=partitions)
            with stage("tags compute"):
                persons = facts.persons(lake, partitions=partitions)
                try:
                    result = engine.compute(catalogue, built, persons, as_of=as_of)
                finally:
                    facts.release([*built.values(), persons])  # the profile is cached
                logger.info("tags: aggregation passes per fact: %s", dict(sorted(result.passes.items())))
        try:
            yield result
        finally:
            result.release()  # the profile's cache


def _publish(catalogue: Catalogue, profile: DataFrame, lake: Lake, as_of: dt.date, run_id: str) -> None:
    """Write the date's partitions of the long table, the profile and the change events."""
    check_profile_types(catalogue, profile, lake)  # before anything is written
    with stage("tags events"):
        previous = _previous_as_of(lake, as_of)
        events = _events(catalogue, profile, lake, previous, run_id) if previous else None
        if events is None and lake.exists(EVENTS):  # none for this date: a re-run clears its earlier ones
            events = lake.read(EVENTS).where(F.lit(False))
    with stage("tags write"), engine.split_codegen(lake.spark):
        date = [{"as_of": as_of}]  # every family of the date: a family gone from the catalogue too
        long = engine.long_tags(catalogue, profile, as_of)
        lake.replace_partitions(
            CUSTOMER_TAGS,
            long,
            partition_by=["family", "as_of"],
            partitions=date,
            plain_encoded=engine.plain_encoded(long[0].rows),
        )
        # A tag new to the catalogue is a new column (earlier dates read null); a tag gone from it
        # keeps its column, null from this date on. The rows of one date: written into its folder.
        lake.replace_partitions(
            PROFILE,
            [Partition({"as_of": as_of}, profile.drop("as_of"))],
            partition_by=["as_of"],
            partitions=date,
            evolve=True,
            plain_encoded=engine.plain_encoded(profile),
        )
        if events is not None:
            lake.replace_partitions(EVENTS, events, partition_by=["as_of"], partitions=date)


def check_profile_types(catalogue: Catalogue, profile: DataFrame, lake: Lake) -> None:
    """Every tag's values of the same type as its column in `tags.customer_profile`, if it has one.

    Raises:
        ConfigError: naming the tag, its file, both types and what to do, when an edited catalogue
            gives a tag values of another type than its earlier dates have (a column has one type).
    """
    if not lake.exists(PROFILE):
        return
    held = {f.name: f.dataType.simpleString() for f in lake.schema(PROFILE)}
    now = {f.name: f.dataType.simpleString() for f in profile.schema}
    for tag in catalogue:
        if tag.key in held and held[tag.key] != now[tag.key]:
            raise ConfigError(
                f"{tag.file}: tag {tag.key} now gives {now[tag.key]} values, but {PROFILE} holds "
                f"{held[tag.key]} values of it for earlier dates, and a column has one type: give the tag a "
                f"new key (the old column keeps its history), or make it give {held[tag.key]} again "
                f"(CAST(... AS {held[tag.key]})). Nothing was written."
            )


def _previous_as_of(lake: Lake, as_of: dt.date) -> dt.date | None:
    """The latest as-of date before `as_of` with a profile, if any."""
    if not lake.exists(PROFILE):
        return None
    row = lake.read(PROFILE).where(F.col("as_of") < F.lit(as_of)).agg(F.max("as_of").alias("d")).first()
    return row["d"] if row else None


def _events(catalogue: Catalogue, profile: DataFrame, lake: Lake, previous: dt.date, run_id: str) -> DataFrame | None:
    """Changes of the `events: true` tags between the previous date's profile and this one; None when
    no such tag has a value on the previous date."""
    watched = [t for t in catalogue if t.spec.events]
    before = lake.read(PROFILE).where(F.col("as_of") == F.lit(previous))
    # A tag with no value on the previous date was not computed then (new in the catalogue), or
    # known for nobody: no transitions from it, rather than one per person.
    present = [t for t in watched if t.key in before.columns]
    known = before.select(*[F.count(t.key).alias(t.key) for t in present]).first() if present else None
    missing = [t.key for t in watched if t not in present or not known[t.key]]
    if missing:
        logger.warning("tags: the profile of %s has no value of %s; no events for them", previous, ", ".join(missing))
    watched = [t for t in watched if t.key not in missing]
    if not watched:
        return None
    now = profile.select("one_id", "as_of", *[F.col(t.key).cast("string").alias(f"now_{t.key}") for t in watched])
    was = before.select("one_id", *[F.col(t.key).cast("string").alias(f"was_{t.key}") for t in watched])
    pairs = now.join(was, on="one_id", how="inner")
    changes = F.array(
        *[
            F.struct(
                F.lit(t.key).alias("tag"),
                F.col(f"was_{t.key}").alias("from_value"),
                F.col(f"now_{t.key}").alias("to_value"),
                _direction(t.spec.values if t.spec.ranked else None, f"was_{t.key}", f"now_{t.key}").alias("direction"),
            )
            for t in watched
        ]
    )
    return (
        pairs.select("one_id", "as_of", F.explode(changes).alias("c"))
        .where(~F.col("c.from_value").eqNullSafe(F.col("c.to_value")))
        .select(
            "one_id",
            "c.tag",
            "c.from_value",
            "c.to_value",
            "c.direction",
            "as_of",
            F.lit(previous).alias("previous_as_of"),
            F.lit(run_id).alias("run_id"),
        )
    )


def _direction(ranked: Sequence[str] | None, was: str, now: str) -> F.Column:
    """`up` when the new value ranks better (earlier in `ranked`), `down` when worse; null otherwise."""
    if not ranked:
        return F.lit(None).cast("string")
    rank = F.create_map(*[F.lit(x) for i, v in enumerate(ranked) for x in (v, i)])
    return (
        F.when(rank[F.col(now)] < rank[F.col(was)], F.lit("up"))
        .when(rank[F.col(now)] > rank[F.col(was)], F.lit("down"))
        .otherwise(F.lit(None).cast("string"))
    )


def expire(lake: Lake, *, keep_days: int, keep_month_starts: bool = True) -> list[dt.date]:
    """Drop the as-of dates of `tags.customer_tags` and `tags.customer_profile` older than
    `keep_days` before the newest date of the profile; returns the dates dropped, oldest first.

    With `keep_month_starts`, a date that is the first of its month stays whatever its age: the
    state at the end of each month, for training sets. `tags.tag_events` keeps every date. Each
    table drops its dates in one version (`Lake.drop_partitions`); their files stay until `maintain`
    vacuums them, so readers of earlier versions are not broken. Dropping again drops nothing.
    """
    if not lake.exists(PROFILE):
        return []
    held = {name: _dates(lake, name) for name in (PROFILE, CUSTOMER_TAGS) if lake.exists(name)}
    if not held[PROFILE]:
        return []
    oldest_kept = max(held[PROFILE]) - dt.timedelta(days=keep_days)
    dropped: set[dt.date] = set()
    for name, dates in held.items():
        old = sorted(d for d in dates if d < oldest_kept and not (keep_month_starts and d.day == 1))
        if old:
            lake.drop_partitions(name, [{"as_of": d} for d in old])
            logger.info("tags: %s: dropped %d as-of dates, %s to %s", name, len(old), old[0], old[-1])
            dropped.update(old)
    return sorted(dropped)


def _dates(lake: Lake, name: str) -> set[dt.date]:
    """The as-of dates of a table partitioned by `as_of`, from its log."""
    return {dt.date.fromisoformat(p["as_of"]) for p in lake.partitions(name) if p.get("as_of")}


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--as-of {text!r} is not a date (YYYY-MM-DD)") from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        type=parse_date,
        metavar="DATE",
        help="compute the tags as of this date (YYYY-MM-DD, in tags.timezone; default: today)",
    )


JOB = Job(name="tags", description=__doc__.splitlines()[0], run=run, add_arguments=add_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, argv)


if __name__ == "__main__":
    sys.exit(main())
