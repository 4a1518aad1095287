"""Benchmark: the whole `cleanse` job on generated data, and the share of it spent in GX validation.

    .venv/bin/python bench/cleanse.py --persons 1000000

Generates the data first (not timed) unless --lake points at a lake that already has landing
files, then times one cleanse run. The GX share is measured in the same run: the time inside
`cdp.quality.validation.validate` over the job's wall time (target: under 35%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from cdp.cleansing import job as cleanse_job
from cdp.generate.job import main as generate_main
from cdp.quality import validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--lake", help="lake with landing files to cleanse (default: generate into a temporary one)")
    args = parser.parse_args()

    work = Path(args.lake) if args.lake else Path(tempfile.mkdtemp(prefix="bench-cleanse-"))
    if not (work / "landing").exists():
        started = time.monotonic()
        assert generate_main(["--lake", str(work), "--persons", str(args.persons)]) == 0
        print(f"generated {args.persons:,} persons in {time.monotonic() - started:.0f}s (not part of the figures)")
    for table in ("silver", "quality"):
        shutil.rmtree(work / table, ignore_errors=True)

    spent = [0.0]
    original = validation.validate

    def timed_validate(*a, **kw):
        t = time.monotonic()
        try:
            return original(*a, **kw)
        finally:
            spent[0] += time.monotonic() - t

    cleanse_job.validation.validate = timed_validate  # type: ignore[assignment]
    started = time.monotonic()
    assert cleanse_job.main(["--lake", str(work), "--run-id", f"bench-{int(started)}"]) == 0
    wall = time.monotonic() - started
    share = spent[0] / wall
    print(f"cleanse of {args.persons:,} persons on {os.cpu_count()} cores: {wall:.1f}s wall")
    print(f"GX validation: {spent[0]:.1f}s = {share:.1%} of the run (target < 35%)")
    if not args.lake:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
