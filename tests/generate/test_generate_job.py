"""The generate job: deterministic for a seed whatever the partitioning, safe to re-run, clear on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cdp.cli import main as cdp_main
from cdp.generate import catalogue, population, purchases
from cdp.generate.params import Params, knobs
from cdp.lake import Lake
from conftest import generate


def test_same_seed_same_people_and_orders_whatever_the_partitioning(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = Params(persons=500, seed=3)
    cat = catalogue.build(params.skus, params.seed, end=params.end)

    def draw() -> tuple:
        persons = population.persons(spark, params)
        orders = purchases.orders(persons, params)
        return persons, orders, purchases.lines(spark, orders, params, cat)

    coarse = draw()
    monkeypatch.setattr(population, "PERSONS_PER_PARTITION", 37)
    fine = draw()
    assert fine[0].rdd.getNumPartitions() > coarse[0].rdd.getNumPartitions()
    for a, b in zip(coarse, fine, strict=True):
        assertDataFrameEqual(a, b)
    other_seed = population.persons(spark, Params(persons=500, seed=4))
    assert other_seed.exceptAll(coarse[0]).count() == 500


def _landing(root: Path) -> dict[str, list[bytes]]:
    out = {}
    for folder in sorted((root / "landing").glob("*/*")):
        out[folder.parent.name] = sorted(line for f in folder.glob("part-*") for line in f.read_bytes().splitlines())
    return out


def test_rerun_reproduces_the_data_and_commits_nothing_new(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    generate(tmp_path / "a", persons=300, seed=5)
    first = _landing(tmp_path / "a")
    lake = Lake(spark, str(tmp_path / "a"))
    version = lake.info("truth.person_records").version
    generate(tmp_path / "a", persons=300, seed=5)  # same run id: the truth commits are skipped
    assert lake.info("truth.person_records").version == version
    assert _landing(tmp_path / "a") == first

    generate(tmp_path / "b", persons=300, seed=5, run_id="another-run")
    assert _landing(tmp_path / "b") == first
    truth_b = Lake(spark, str(tmp_path / "b")).read("truth.person_records")
    assertDataFrameEqual(truth_b, lake.read("truth.person_records"))


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (["--persons", "0"], "--persons must be at least 1"),
        (["--typo-rate", "1.5"], "--typo-rate must be between 0 and 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argument: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: SparkSession, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cdp_main(["generate", "--lake", str(tmp_path / "lake"), *argument]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and message in errors[0] and "(log: logs/generate-" in errors[0], errors


def test_readme_and_help_document_every_knob_with_its_default(capsys) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    with pytest.raises(SystemExit):
        cdp_main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for _group, name, default, meaning in knobs():
        option = "--" + name.replace("_", "-")
        assert f"| `{option}` | {default:g} | {meaning} |" in readme, option
        assert f"{option} RATE {' '.join(meaning.split())} (default: {default:g})" in help_text, option
