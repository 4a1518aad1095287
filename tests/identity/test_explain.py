"""`cdp explain` on a hand-made identity result: shortest linking path, hygiene, masking, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdp.cli import main
from cdp.errors import CdpError
from cdp.identity import explain
from cdp.identity.identifiers import identifier_id, masked
from cdp.identity.job import DICTIONARY, EDGES, HYGIENE_REPORT, ONEID_MAP
from cdp.lake import Lake
from cdp.lake.delta_rs import DeltaRsEngine

# (source, record_id, id_type, value). one_id 100 holds seven records: M1 and M3 are joined through
# W1 (mobile, then unionid, 2 links) and through A1, A2 (3 links); the hub email and the device they
# share directly must not be used (the device was capped on M3: it still links M1 and A3). one_id 200
# is someone else; E0 of one_id 300 carries nothing.
OBSERVATIONS = [
    ("crm_members", "M1", "member_id", "M1"),
    ("crm_members", "M1", "mobile", "13800138000"),
    ("crm_members", "M1", "email", "shop@store.cn"),
    ("crm_members", "M1", "device", "dev-99-xyz"),
    ("wechat_users", "W1", "mobile", "13800138000"),
    ("wechat_users", "W1", "unionid", "unAAAA1111"),
    ("crm_members", "M3", "member_id", "M3"),
    ("crm_members", "M3", "unionid", "unAAAA1111"),
    ("crm_members", "M3", "email", "shop@store.cn"),
    ("crm_members", "M3", "device", "dev-99-xyz"),
    ("app_events", "A1", "member_id", "M1"),
    ("app_events", "A1", "device", "dev-42-abc"),
    ("app_events", "A2", "device", "dev-42-abc"),
    ("app_events", "A2", "member_id", "M3"),
    ("app_events", "A3", "device", "dev-99-xyz"),
    ("crm_members", "M9", "mobile", "13700001111"),
    ("crm_members", "M9", "email", "li.na@163.com"),
]
ONE_IDS = [
    *[(s, r, 100) for s, r in [("crm_members", "M1"), ("wechat_users", "W1"), ("crm_members", "M3")]],
    *[(s, r, 100) for s, r in [("app_events", "A1"), ("app_events", "A2"), ("app_events", "A3")]],
    ("app_events", "A4", 100),
    ("crm_members", "M9", 200),
    ("app_events", "E0", 300),
]
REMOVED = {"shop@store.cn": "hub:names", "dev-99-xyz": "cap"}
CAPPED_ON = ("crm_members", "M3", "dev-99-xyz")  # the one record the cap dropped the device on
RAW = {v for *_, v in OBSERVATIONS if v not in ("M1", "M3")}  # record ids are shown; contact values never


@pytest.fixture(scope="module")
def root(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("explain") / "lake")
    lake = Lake(spark, path, engine=DeltaRsEngine(spark), job="test", run_id="r1")
    obs = spark.createDataFrame(OBSERVATIONS, "source string, record_id string, id_type string, value string")
    obs = obs.withColumn("scope", F.lit("")).withColumn(
        "identifier", identifier_id(F.col("id_type"), F.col("scope"), F.col("value"))
    )
    capped = (F.col("source") == CAPPED_ON[0]) & (F.col("record_id") == CAPPED_ON[1]) & (F.col("value") == CAPPED_ON[2])
    links = ~(F.col("value") == "shop@store.cn") & ~capped
    lake.overwrite(EDGES, obs.select("source", "record_id", "id_type", "identifier", links.alias("links")))
    lake.overwrite(DICTIONARY, obs.select("identifier", "id_type", "scope", "value").distinct())
    lake.overwrite(ONEID_MAP, spark.createDataFrame(ONE_IDS, "source string, record_id string, one_id long"))
    rules = F.create_map(*[F.lit(x) for kv in REMOVED.items() for x in kv])
    report = (
        obs.where(F.col("value").isin(*REMOVED))
        .groupBy("id_type", "identifier", "value")
        .agg(F.count("*").alias("records"))
        .select(
            F.lit("r1").alias("run_id"),
            rules[F.col("value")].alias("rule"),
            "id_type",
            "identifier",
            masked(F.col("id_type"), F.col("value")).alias("value_masked"),
            "records",
            F.lit(2).cast("long").alias("names"),
            F.col("records").alias("dropped_on"),
            F.lit(1).cast("long").alias("would_join"),
        )
    )
    lake.overwrite(HYGIENE_REPORT, report)
    return path


@pytest.fixture(autouse=True)
def _no_env_lake(monkeypatch: pytest.MonkeyPatch, spark: SparkSession) -> None:
    monkeypatch.delenv("CDP_LAKE", raising=False)  # the session fixture is the active session


def run(capsys: pytest.CaptureFixture[str], root: str, *args: str) -> tuple[int, str, str]:
    code = main(["explain", "--lake", root, *args])
    captured = capsys.readouterr()
    leaked = [raw for raw in RAW if raw in captured.out + captured.err]
    assert not leaked, leaked
    return code, captured.out, captured.err


def test_path_is_the_shortest_over_linking_identifiers(root: str, capsys) -> None:
    code, out, _ = run(capsys, root, "--record", "crm_members:M1", "--record", "crm_members:M3")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert "path from crm_members:M1 to crm_members:M3: 2 links" in lines
    assert [line for line in lines if line.startswith("-[")] == [
        "-[mobile 138****8000]- wechat_users:W1",
        "-[unionid un***11]- crm_members:M3",
    ]
    assert "one_id 100: 7 records, 15 identifier observations" in lines
    assert "email s***@store.cn (removed: hub:names)" in out
    m1, m3 = (next(line for line in lines if line.startswith(f"crm_members:{r} ")) for r in ("M1", "M3"))
    assert "device de***yz," in m1 and "(capped)" not in m1  # the cap dropped it on M3 only
    assert "device de***yz (capped)" in m3


def test_a_capped_identifier_links_the_records_it_was_kept_on(root: str, capsys) -> None:
    code, out, _ = run(capsys, root, "--record", "crm_members:M1", "--record", "app_events:A3")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert "path from crm_members:M1 to app_events:A3: 1 links" in lines
    assert [line for line in lines if line.startswith("-[")] == ["-[device de***yz]- app_events:A3"]


def test_records_of_different_persons_are_not_the_same_person(root: str, capsys) -> None:
    code, out, _ = run(capsys, root, "--record", "crm_members:M1", "--record", "crm_members:M9")
    assert code == 0
    assert out.splitlines()[0] == (
        "crm_members:M1 and crm_members:M9 are not the same person: one_id 100 and one_id 200"
    )
    assert "path" not in out
    assert "crm_members:M9  email l***@163.com, mobile 137****1111" in out


def test_one_id_lists_records_masked_and_capped(root: str, capsys) -> None:
    code, out, _ = run(capsys, root, "--one-id", "100", "--max-records", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "one_id 100: 7 records, 15 identifier observations"
    assert lines[1].split() == ["app_events:A1", "device", "de***bc,", "member_id", "***"]
    assert lines[4] == "  ... and 4 more records"
    code, out, _ = run(capsys, root, "--one-id", "300")
    assert (code, out.splitlines()[1].split()) == (0, ["app_events:E0", "no", "identifiers"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--record", "crm_members:NOPE"], "error: record crm_members:NOPE is not in identity.oneid_map"),
        (["--one-id", "999"], "error: one_id 999 is not in identity.oneid_map"),
        (["--record", "M1"], "error: --record 'M1' is not of the form SOURCE:ID"),
        (["--record", "crm_members:M1", "--one-id", "100"], "error: explain: give --record once or twice"),
    ],
)
def test_unknown_or_malformed_request_is_one_line(root: str, capsys, args: list[str], message: str) -> None:
    code, out, err = run(capsys, root, *args)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith(message), err


def test_missing_identity_tables_name_the_job(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, str(tmp_path / "empty"), "--one-id", "1")
    assert code == 2
    assert "table identity.oneid_map does not exist" in err and "`cdp run identity`" in err


def test_a_person_too_large_to_collect_is_refused(spark: SparkSession, root: str) -> None:
    lake = Lake(spark, root, engine=DeltaRsEngine(spark))
    tables = {"edges": EDGES, "dictionary": DICTIONARY, "report": HYGIENE_REPORT, "oneid_map": ONEID_MAP}
    with pytest.raises(CdpError, match=r"one_id 100 has 15 identifier observations, more than explain collects \(5\)"):
        explain.explain(
            **{k: lake.read(v) for k, v in tables.items()}, linking_types=["mobile"], one_id=100, max_observations=5
        )


def test_shortest_path_skips_attributes_removed_and_capped_values() -> None:
    def o(identifier: int, status: str = explain.LINKS) -> explain.Observation:
        return explain.Observation("t", identifier, f"v{identifier}", status)

    a, b, c, d = ("s", "a"), ("s", "b"), ("s", "c"), ("s", "d")
    person = explain.Person(
        1,
        {
            a: [o(1), o(9, explain.ATTRIBUTE), o(8, "removed: hub:records"), o(7, explain.CAPPED)],
            b: [o(1), o(2)],
            c: [o(2), o(3)],
            d: [o(3), o(9, explain.ATTRIBUTE), o(8, "removed: hub:records"), o(7, explain.CAPPED)],
        },
    )
    assert [(h.identifier, r) for h, r in explain.shortest_path(person, a, d) or []] == [(1, b), (2, c), (3, d)]
    assert explain.shortest_path(person, a, a) == []
    lonely = explain.Person(1, {a: [o(7, explain.CAPPED)], d: [o(7, explain.CAPPED)]})
    assert explain.shortest_path(lonely, a, d) is None
