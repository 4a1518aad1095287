"""`cdp eval identity`: pairwise precision, recall and F1 against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cdp.cli import main
from cdp.lake import Lake
from cdp.lake.delta_rs import DeltaRsEngine

# Map: one_id 1 = {a, b, c, d}, one_id 2 = {e}, f only in the map.
# Truth: person p1 = {a, b}, p2 = {c, d, e}, g only in the truth.
# Predicted pairs C(4,2) = 6; true pairs C(2,2) + C(3,2) = 4; true positives ab + cd = 2.
# Precision 2/6, recall 2/4, F1 = 2PR/(P+R) = 0.4. One_id 1 over-merges p1 and p2; p2 is split.
# Edges: a, b share 10; c, d share 20; e has 30 alone; b and c share 40, but across persons. Within
# each person the identifiers link a-b and c-d only: the recall ceiling is 2/4.
ONEID_MAP = [("pos", "a", 1), ("pos", "b", 1), ("pos", "c", 1), ("pos", "d", 1), ("pos", "e", 2), ("pos", "f", 3)]
MAP_SCHEMA = "source string, record_id string, one_id long"
TRUTH = [("b1", "pos", r, p) for r, p in [("a", "p1"), ("b", "p1"), ("c", "p2"), ("d", "p2"), ("e", "p2")]] + [
    ("b1", "pos", "g", "p3")
]
EXPECTED = {
    "records compared": "5",
    "only in map": "1",
    "only in truth": "1",
    "true pairs": "4",
    "predicted pairs": "6",
    "true positives": "2",
    "precision": "0.3333",
    "recall": "0.5000",
    "F1": "0.4000",
    "recall ceiling": "0.5000",
    "persons": "2",
    "over-merged persons": "2",
    "split persons": "1",
}


@pytest.fixture(autouse=True)
def _no_env_lake(monkeypatch: pytest.MonkeyPatch, spark: SparkSession) -> None:
    monkeypatch.delenv("CDP_LAKE", raising=False)  # the session fixture is the active session


def test_eval_prints_hand_computed_pairwise_scores(tmp_path: Path, spark: SparkSession, capsys) -> None:
    root = str(tmp_path / "lake")
    lake = Lake(spark, root, engine=DeltaRsEngine(spark), job="test", run_id="r1")
    lake.overwrite("identity.oneid_map", spark.createDataFrame(ONEID_MAP, MAP_SCHEMA))
    lake.overwrite(
        "truth.person_records",
        spark.createDataFrame(TRUTH, "batch string, source string, record_id string, person_id string"),
    )
    edges = [("a", 10), ("b", 10), ("b", 40), ("c", 40), ("c", 20), ("d", 20), ("e", 30)]
    lake.overwrite(
        "identity.edges",
        spark.createDataFrame(
            [("pos", r, "mobile", i) for r, i in edges],
            "source string, record_id string, id_type string, identifier long",
        ),
    )
    assert main(["eval", "identity", "--lake", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"identity.oneid_map against truth.person_records (lake {root})"
    printed = {line[:22].strip(): line[22:].strip() for line in lines[1:]}
    assert printed == EXPECTED


@pytest.mark.parametrize(
    ("present", "missing", "command"),
    [([], "identity.oneid_map", "cdp run identity"), (["identity.oneid_map"], "truth.person_records", "cdp generate")],
)
def test_a_missing_table_is_one_line_naming_what_to_run(
    tmp_path: Path, spark: SparkSession, capsys, present: list[str], missing: str, command: str
) -> None:
    root = str(tmp_path / "lake")
    lake = Lake(spark, root, engine=DeltaRsEngine(spark), job="test", run_id="r1")
    for name in present:
        lake.overwrite(name, spark.createDataFrame(ONEID_MAP, MAP_SCHEMA))
    assert main(["eval", "identity", "--lake", root]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: table {missing} does not exist under {root}: run `{command}` first"]
