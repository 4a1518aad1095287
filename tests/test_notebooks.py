"""The notebooks in notebooks/ run top to bottom in a fresh kernel, as a data scientist runs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from pyspark.sql import SparkSession

from cdp.lake import Lake
from cdp.tags import facts

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(name: str, lake: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Execute notebook `name` in a new kernel (its own Spark session) on `lake`; return the text it printed."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(cell.outputs for cell in code), f"{name} is stored with outputs; clear them before committing"
    monkeypatch.setenv("CDP_LAKE", str(lake))
    # A cell that raises (an assert of the notebook's own) fails the test with the cell and its error.
    where = {"metadata": {"path": str(workdir)}}  # the kernel's working folder (the jobs' logs/)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources=where)
    client.execute()
    return "\n".join(
        out.get("text", "") if out.output_type == "stream" else out.get("data", {}).get("text/plain", "")
        for cell in code
        for out in cell.outputs
    )


def test_every_notebook_is_tested() -> None:
    tested = {"tags_training_set.ipynb"}
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == tested


@pytest.mark.slow
def test_training_set_notebook(
    spark: SparkSession, resolved_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"  # its own copy: the notebook writes the tags of its date
    shutil.copytree(resolved_lake, lake, ignore=shutil.ignore_patterns("tags", "logs"))
    printed = run("tags_training_set.ipynb", lake, tmp_path, monkeypatch)

    tables = Lake(spark, str(lake))
    one_ids = tables.read(facts.ONEID_MAP).select("one_id").distinct().count()
    found = re.search(r"training set: ([\d,]+) rows, ([\d,]+) positive", printed)
    assert found, printed
    rows, positive = (int(g.replace(",", "")) for g in found.groups())
    assert rows == one_ids  # every one_id once, buyer or not
    assert 0 < positive < rows
    assert f"for all {one_ids:,} one_ids" in printed  # the point-in-time check ran over every one_id
    assert "lifecycle_stage" in printed and "rfm_segment" in printed
    # A tag tried in a copy of the catalogue, computed in memory with the others, which equal the job's.
    assert f"orders_total, lifecycle_stage, rfm_segment: as the job wrote them, for all {one_ids:,} one_ids" in printed
    assert "weekend_orders" in printed
    # The features were written by the tags job for the notebook's date.
    written = tables.read("tags.customer_profile").select("as_of").distinct().collect()
    assert [str(r.as_of) for r in written] == ["2026-09-01"]
