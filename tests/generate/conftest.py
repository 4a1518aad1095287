"""One generated lake shared by the generator tests, and plain-Python readers of its landing files.

The readers use `csv` and `json` from the standard library, not Spark: they check the files as a
channel's consumer would see them, independently of the code that wrote them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cdp.generate.job import main as generate_main
from cdp.lake import Lake

PERSONS = 4000
SEED = 11
# Rates raised above the defaults so that each kind of damage is frequent enough to measure.
RATES = {
    "duplicate-rate": 0.03,
    "placeholder-rate": 0.04,
    "malformed-rate": 0.02,
    "bad-date-rate": 0.02,
    "negative-amount-rate": 0.02,
    "unknown-sku-rate": 0.02,
    "typo-rate": 0.05,
    "family-phone-rate": 0.05,
    "recycled-device-rate": 0.05,
    "double-member-rate": 0.05,
}


@dataclass(frozen=True)
class Generated:
    root: Path
    batch: str
    lake: Lake

    def files(self, source: str) -> list[Path]:
        return sorted((self.root / "landing" / source / self.batch).glob("part-*"))

    def text(self, source: str, encoding: str = "utf-8") -> list[str]:
        """Every line of a source, headers included, in file order."""
        return [line for f in self.files(source) for line in f.read_bytes().decode(encoding).splitlines()]

    def csv_rows(self, source: str, encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
        """(header, rows) of a CSV source; each file starts with the header."""
        header: list[str] = []
        rows: list[list[str]] = []
        for f in self.files(source):
            parsed = list(csv.reader(io.StringIO(f.read_bytes().decode(encoding))))
            header = parsed[0]
            rows += parsed[1:]
        return header, rows

    def json_rows(self, source: str) -> tuple[list[dict], list[str]]:
        """(parsed records, lines that are not valid JSON) of a JSON-lines source."""
        good, bad = [], []
        for line in self.text(source):
            try:
                good.append(json.loads(line))
            except json.JSONDecodeError:
                bad.append(line)
        return good, bad


def generate(root: Path, *extra: str, persons: int = PERSONS, seed: int = SEED, run_id: str = "gen-test") -> None:
    args = ["--lake", str(root), "--persons", str(persons), "--seed", str(seed), "--run-id", run_id]
    assert generate_main([*args, *extra]) == 0


@pytest.fixture(scope="session")
def generated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Generated:
    root = tmp_path_factory.mktemp("generated")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the run's log goes to <root>/logs
        generate(root / "lake", *[x for k, v in RATES.items() for x in (f"--{k}", str(v))])
    root = root / "lake"
    return Generated(root=root, batch="20260930", lake=Lake(spark, str(root)))
