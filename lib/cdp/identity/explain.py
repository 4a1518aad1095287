"""Why records are one person: a one_id's records and the identifier path that joined two of them.

The records of a person and their identifiers come from `identity.oneid_map`, `identity.edges` and
`identity.id_dictionary`; values are shown masked only. Whether an observation joined records is
`identity.edges.links`, as the job decided it; `identity.hygiene_report` says why one did not (its
value was removed, or a cap dropped it on that record). An edges table written before `links`
existed is read as: linking unless the report lists the value.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp.errors import CdpError
from cdp.identity.identifiers import masked
from cdp.schemas import RECORD

MAX_OBSERVATIONS = 50_000  # a person is collected to the driver; a larger one is a hygiene problem
LINKS, ATTRIBUTE, CAPPED = "links", "attribute", "capped"

Record = tuple[str, str]


@dataclass(frozen=True)
class Observation:
    id_type: str
    identifier: int
    value_masked: str
    status: str  # LINKS, ATTRIBUTE (type does not link), CAPPED or `removed: <hygiene rule>`


@dataclass(frozen=True)
class Person:
    one_id: int
    records: dict[Record, list[Observation]]  # every record of the person, with its identifiers


@dataclass(frozen=True)
class Explanation:
    asked: list[Record]  # the records asked about, in order (empty when asked by one_id)
    persons: list[Person]  # one, or two when two records are not the same person
    path: list[tuple[Observation, Record]] | None  # hops from asked[0] to asked[1]; None: none asked or found


def parse_record(text: str) -> Record:
    """`crm_members:M001` -> ("crm_members", "M001"); the record id may itself contain colons."""
    source, sep, record_id = text.partition(":")
    if not (sep and source and record_id):
        raise CdpError(f"--record {text!r} is not of the form SOURCE:ID (e.g. crm_members:M001)")
    return source, record_id


def show(record: Record) -> str:
    return f"{record[0]}:{record[1]}"


def observations(
    members: DataFrame, *, edges: DataFrame, dictionary: DataFrame, report: DataFrame, linking_types: Collection[str]
) -> DataFrame:
    """The identifiers of some records, masked, with whether each one links.

    Args:
        members: `source`, `record_id`, `one_id` of the records (a person: the dictionary is read for them only).
        edges, dictionary, report: `identity.edges`, `identity.id_dictionary`, `identity.hygiene_report`.
        linking_types: the identifier types configured to link.

    Output columns: `one_id`, `source`, `record_id`, `id_type`, `identifier`, `value_masked`,
    `status`; a record without identifiers has one row with nulls from `id_type` on.
    """
    linked = F.col("links") if "links" in edges.columns else F.lit(None).cast("boolean")
    carried = members.select(*RECORD, "one_id").join(
        edges.select(*RECORD, "id_type", "identifier", linked.alias("linked")), on=RECORD, how="left"
    )
    ids = carried.select("identifier").where(F.col("identifier").isNotNull()).distinct()
    shown = (
        dictionary.join(ids, on="identifier", how="left_semi")
        .groupBy("identifier", "id_type")
        .agg(F.min(masked(F.col("id_type"), F.col("value"))).alias("value_masked"))  # a hash collision shows one
    )
    rules = report.join(ids, on="identifier", how="left_semi").groupBy("identifier").agg(F.min("rule").alias("rule"))
    links = F.col("id_type").isin(*linking_types) if linking_types else F.lit(False)
    status = (
        F.when(F.col("id_type").isNull(), F.lit(None))
        .when(~links, F.lit(ATTRIBUTE))
        .when(F.coalesce(F.col("linked"), F.col("rule").isNull()), F.lit(LINKS))
        .when(F.col("rule") == "cap", F.lit(CAPPED))
        .otherwise(F.concat(F.lit("removed: "), F.col("rule")))
    )
    return (
        carried.join(shown, on=["identifier", "id_type"], how="left")
        .join(rules, on="identifier", how="left")
        .select("one_id", *RECORD, "id_type", "identifier", "value_masked", status.alias("status"))
    )


def one_ids(oneid_map: DataFrame, records: Sequence[Record], *, table: str) -> dict[Record, int]:
    """The one_id of each record; a record absent from the map is an error naming it."""
    wanted = functools.reduce(
        lambda a, b: a | b, [(F.col("source") == s) & (F.col("record_id") == r) for s, r in records]
    )
    found = {(r.source, r.record_id): r.one_id for r in oneid_map.where(wanted).select(*RECORD, "one_id").collect()}
    for record in records:
        if record not in found:
            raise CdpError(f"record {show(record)} is not in {table} (check SOURCE:ID, or run `cdp run identity`)")
    return found


def collect_person(obs: DataFrame, one_id: int, *, table: str, max_observations: int = MAX_OBSERVATIONS) -> Person:
    """The records and identifiers of one person (`obs` of its records), on the driver; refused when too large."""
    size = obs.agg(F.count("*").alias("rows"), F.count("identifier").alias("n")).first()
    if not size or size["rows"] == 0:
        raise CdpError(f"one_id {one_id} is not in {table}")
    n = size["n"]
    if n > max_observations:
        raise CdpError(
            f"one_id {one_id} has {n:,} identifier observations, more than explain collects ({max_observations:,}); "
            "see identity.hygiene_report for the values that may have merged it"
        )
    records: dict[Record, list[Observation]] = {}
    for r in obs.orderBy(*RECORD, "id_type", "identifier").collect():
        found = records.setdefault((r.source, r.record_id), [])
        if r.id_type is not None:
            found.append(Observation(r.id_type, r.identifier, r.value_masked or "?", r.status))
    return Person(one_id, records)


def shortest_path(person: Person, start: Record, goal: Record) -> list[tuple[Observation, Record]] | None:
    """The fewest linking identifiers that chain `start` to `goal`, as (identifier, next record) hops.

    1. The bipartite graph record <-> linking identifier of the person, neighbours in a fixed order.
    2. Breadth-first search from `start`, remembering how each record was first reached.
    3. Walk back from `goal`. None when no chain of linking identifiers joins them.
    """
    # 1. Graph
    carriers: dict[int, list[Record]] = {}
    for record, found in sorted(person.records.items()):
        for o in found:
            if o.status == LINKS:
                carriers.setdefault(o.identifier, []).append(record)
    # 2. Search
    reached: dict[Record, tuple[Observation, Record] | None] = {start: None}
    used: set[int] = set()
    queue = deque([start])
    while queue and goal not in reached:
        record = queue.popleft()
        for o in sorted(person.records[record], key=lambda o: (o.identifier, o.id_type)):
            if o.status != LINKS or o.identifier in used:
                continue
            used.add(o.identifier)
            for other in carriers[o.identifier]:
                if other not in reached:
                    reached[other] = (o, record)
                    queue.append(other)
    if goal not in reached:
        return None
    # 3. Walk back
    hops: list[tuple[Observation, Record]] = []
    record = goal
    while (step := reached[record]) is not None:
        hops.append((step[0], record))
        record = step[1]
    return hops[::-1]


def explain(
    *,
    oneid_map: DataFrame,
    edges: DataFrame,
    dictionary: DataFrame,
    report: DataFrame,
    linking_types: Collection[str],
    records: Sequence[Record] = (),
    one_id: int | None = None,
    table: str = "identity.oneid_map",
    max_observations: int = MAX_OBSERVATIONS,
) -> Explanation:
    """Explain one record, two records or one one_id (`table` names `oneid_map` in errors)."""
    if bool(records) == (one_id is not None) or len(records) > 2:
        raise CdpError("explain: give --record once or twice, or --one-id, not both")
    if one_id is not None:
        ids = [one_id]
    else:
        found = one_ids(oneid_map, records, table=table)
        ids = list(dict.fromkeys(found[r] for r in records))
    persons = []
    for i in ids:
        members = oneid_map.where(F.col("one_id") == i)
        obs = observations(members, edges=edges, dictionary=dictionary, report=report, linking_types=linking_types)
        persons.append(collect_person(obs, i, table=table, max_observations=max_observations))
    path = shortest_path(persons[0], records[0], records[1]) if len(records) == 2 and len(persons) == 1 else None
    return Explanation(list(records), persons, path)


def render(explanation: Explanation, *, max_records: int = 20) -> str:
    """The explanation as text: masked values only."""
    lines: list[str] = []
    asked, persons = explanation.asked, explanation.persons
    if len(persons) == 2:
        lines.append(
            f"{show(asked[0])} and {show(asked[1])} are not the same person: "
            f"one_id {persons[0].one_id} and one_id {persons[1].one_id}"
        )
    for person in persons:
        lines += _person(person, asked, max_records)
    if len(asked) == 2 and len(persons) == 1:
        lines += _path(explanation.path, asked)
    return "\n".join(lines)


def _person(person: Person, asked: Sequence[Record], max_records: int) -> list[str]:
    n_obs = sum(len(found) for found in person.records.values())
    n = len(person.records)
    lines = [f"one_id {person.one_id}: {n:,} record{'s' * (n != 1)}, {n_obs:,} identifier observations"]
    order = [r for r in asked if r in person.records] + [r for r in sorted(person.records) if r not in asked]
    width = max(len(show(r)) for r in order[:max_records])
    for record in order[:max_records]:
        found = person.records[record]
        ids = ", ".join(_identifier(o) + ("" if o.status == LINKS else f" ({o.status})") for o in found)
        lines.append(f"  {show(record):<{width}}  {ids or 'no identifiers'}")
    if len(order) > max_records:
        lines.append(f"  ... and {len(order) - max_records:,} more records")
    return lines


def _path(path: list[tuple[Observation, Record]] | None, asked: Sequence[Record]) -> list[str]:
    if path is None:
        return [
            f"no path of linking identifiers joins {show(asked[0])} and {show(asked[1])}: the identity "
            "tables come from different runs, or from a version without `identity.edges.links` "
            "(run `cdp run identity` again)"
        ]
    lines = [f"path from {show(asked[0])} to {show(asked[1])}: {len(path)} links", f"  {show(asked[0])}"]
    lines += [f"  -[{_identifier(o)}]- {show(record)}" for o, record in path]
    return lines


def _identifier(o: Observation) -> str:
    return f"{o.id_type} {o.value_masked}"
