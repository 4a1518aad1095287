"""The jobs of the pipeline, in the order `cdp run pipeline` runs them."""

from __future__ import annotations

import importlib

from cdp.runtime import Job

# name -> module defining JOB; order is pipeline order.
JOBS: dict[str, str] = {
    "cleanse": "cdp.cleansing.job",
    "identity": "cdp.identity.job",
    "tags": "cdp.tags.job",
    "maintain": "cdp.ops.maintain",
}


def job(name: str) -> Job:
    if name not in JOBS:
        raise KeyError(name)
    return importlib.import_module(JOBS[name]).JOB


def pipeline() -> list[Job]:
    return [job(name) for name in JOBS]
