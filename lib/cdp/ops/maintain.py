"""Job `maintain`: drop expired tag dates; delete data files no version within the retention period references.

With `tags.keep_days` set, the as-of dates of the tag tables older than that before the newest
date are dropped first (`cdp.tags.job.expire`). Overwrites leave the replaced files behind
(readers of older versions and time travel need them), and a write killed before its commit leaves
an unreferenced commit folder. Both are removed here once older than `lake.vacuum_retention_hours`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cdp.runtime import Job, JobContext, job_main, stage
from cdp.tags.job import expire

logger = logging.getLogger(__name__)


def run(ctx: JobContext) -> None:
    keep = ctx.cfg.tags.keep_days
    if keep is not None:
        with stage("tags retention"):
            dropped = expire(ctx.lake, keep_days=keep, keep_month_starts=ctx.cfg.tags.keep_month_starts)
            logger.info("tags: %d as-of dates older than %d days before the newest dropped", len(dropped), keep)
    retention = ctx.args.retention_hours
    if retention is None:
        retention = ctx.cfg.lake.vacuum_retention_hours
    with stage("vacuum"):
        for name in ctx.lake.tables():
            removed = ctx.lake.vacuum(name, retention_hours=retention)
            logger.info("%s: %d unreferenced files older than %dh deleted", name, len(removed), retention)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention-hours", type=int, help="keep unreferenced files younger than this (default: from config)"
    )


JOB = Job(name="maintain", description=__doc__.splitlines()[0], run=run, add_arguments=_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, argv)


if __name__ == "__main__":
    sys.exit(main())
