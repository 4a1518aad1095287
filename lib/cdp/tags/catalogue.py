"""The tag catalogue: `conf/tags/*.yaml`, one family per file, validated into frozen objects.

A tag is data, not code. Each declares its key, display names (Chinese and English), a
description and how it is computed, by one of these kinds:

- `metric`: an aggregate over one fact (`count`, `sum`, `avg`, `min`, `max`, `count_distinct`,
  `latest` / `earliest`: the value at the newest / oldest fact), optionally within a window of days
  before the as-of date and a `where` filter; `fill` replaces "no fact at all" (0 orders, not null).
- `top`: the value of `by` with the largest total `measure` over one fact (a preference).
- `expr`: a Spark SQL expression over other tags and `as_of` (the date the tags are computed for).
- `score`: 1..`quantiles` by the quantiles of another tag among the persons it is known for
  (and who pass `where`).
- `bands`: a label per range of another tag (`below` thresholds, ascending).
- `cases`: the value of the first `when` (SQL over other tags) that holds.
- `clv`: an output of the BG/NBD and Gamma-Gamma models fitted on the orders of this run.

Expressions are Spark SQL, so a catalogue author never writes Python; the engine
(`cdp.tags.engine`) compiles the whole catalogue into one aggregation pass per fact (plus one for
the preferences of a fact, and one for the value models) and column expressions over their results.
Errors name the file and the tag key at fault.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdp.errors import ConfigError

KEY = r"^[a-z][a-z0-9_]*$"
AGGREGATES = ("count", "sum", "avg", "min", "max", "count_distinct", "latest", "earliest")
CLV_OUTPUTS = ("expected_purchases", "p_alive", "expected_value", "clv")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Model):
    zh: str
    en: str


class _Tag(_Model):
    key: str = Field(pattern=KEY)
    name: Names
    description: str
    values: tuple[str, ...] | None = None  # the value set of a categorical tag, in its natural order
    events: bool = False  # changes of this tag's value are written to tags.tag_events
    ranked: bool = False  # `values` are ordered best first: a change is an upgrade or a downgrade

    def words(self) -> set[str]:
        """The names this tag reads: other tags' keys among them (a superset for SQL expressions)."""
        return set()


class Metric(_Tag):
    kind: Literal["metric"]
    fact: str
    agg: Literal["count", "sum", "avg", "min", "max", "count_distinct", "latest", "earliest"]
    column: str | None = None  # SQL over the fact's columns; `count` without it counts rows
    where: str | None = None  # SQL filter over the fact's columns
    window_days: int | None = Field(default=None, ge=1)  # facts in [as_of - window_days, as_of); None: all
    fill: int | float | str | None = None  # the value for persons without any matching fact

    @model_validator(mode="after")
    def _column_needed(self) -> Metric:
        if self.column is None and self.agg != "count":
            raise ValueError(f"agg {self.agg} needs a column")
        return self


class Top(_Tag):
    kind: Literal["top"]
    fact: str
    by: str  # SQL over the fact's columns: the candidate values
    measure: str = "1"  # SQL over the fact's columns: what is summed per value (1: how often)
    where: str | None = None
    window_days: int | None = Field(default=None, ge=1)


class Expr(_Tag):
    kind: Literal["expr"]
    expr: str

    def words(self) -> set[str]:
        return _identifiers(self.expr)


class Score(_Tag):
    kind: Literal["score"]
    of: str = Field(pattern=KEY)
    quantiles: int = Field(default=5, ge=2, le=100)
    higher_is_better: bool = True  # False: the smallest values get the top score (recency)
    where: str | None = None  # SQL over tags: the persons ranked; the others get no score

    def words(self) -> set[str]:
        return {self.of} | (_identifiers(self.where) if self.where else set())


class Band(_Model):
    below: float
    value: str


class Bands(_Tag):
    kind: Literal["bands"]
    of: str = Field(pattern=KEY)
    bands: tuple[Band, ...] = Field(min_length=1)
    otherwise: str | None = None  # the value at or above the last threshold

    @model_validator(mode="after")
    def _ascending(self) -> Bands:
        limits = [b.below for b in self.bands]
        if limits != sorted(limits) or len(set(limits)) != len(limits):
            raise ValueError("bands must have strictly ascending `below` thresholds")
        return self

    def words(self) -> set[str]:
        return {self.of}


class Case(_Model):
    when: str
    value: str


class Cases(_Tag):
    kind: Literal["cases"]
    cases: tuple[Case, ...] = Field(min_length=1)
    otherwise: str | None = None

    def words(self) -> set[str]:
        return set().union(*(_identifiers(c.when) for c in self.cases))


class Clv(_Tag):
    kind: Literal["clv"]
    output: Literal["expected_purchases", "p_alive", "expected_value", "clv"]
    horizon_days: int = Field(default=365, ge=1)


TagSpec = Annotated[Metric | Top | Expr | Score | Bands | Cases | Clv, Field(discriminator="kind")]


class _File(_Model):
    family: str = Field(pattern=KEY)
    tags: tuple[TagSpec, ...] = Field(min_length=1)


@dataclass(frozen=True)
class Tag:
    """One tag of the catalogue with where it was declared."""

    spec: Metric | Top | Expr | Score | Bands | Cases | Clv
    family: str
    file: Path

    @property
    def key(self) -> str:
        return self.spec.key


@dataclass(frozen=True)
class Catalogue:
    tags: tuple[Tag, ...]

    def __iter__(self) -> Iterator[Tag]:
        return iter(self.tags)

    def __len__(self) -> int:
        return len(self.tags)

    def __getitem__(self, key: str) -> Tag:
        return self.by_key[key]

    @property
    def by_key(self) -> Mapping[str, Tag]:
        return {t.key: t for t in self.tags}

    @property
    def families(self) -> list[str]:
        return sorted({t.family for t in self.tags})

    def of_kind(self, kind: type) -> list[Tag]:
        return [t for t in self.tags if isinstance(t.spec, kind)]

    def inputs(self, tag: Tag) -> set[str]:
        """Keys of the tags `tag` is computed from."""
        return tag.spec.words() & set(self.by_key)

    def levels(self) -> list[list[Tag]]:
        """Tags computed from other tags, in dependency levels: each level needs only earlier ones."""
        # A derived tag naming no other tag (a constant `expr`) is in the first level.
        derived = self.of_kind(Expr | Cases | Bands | Score)
        done = set(self.by_key) - {t.key for t in derived}
        levels: list[list[Tag]] = []
        while derived:
            ready = [t for t in derived if self.inputs(t) <= done]
            if not ready:
                cycle = ", ".join(sorted(t.key for t in derived))
                raise ConfigError(f"{derived[0].file}: tags {cycle} depend on each other in a cycle")
            levels.append(ready)
            done |= {t.key for t in ready}
            derived = [t for t in derived if t.key not in done]
        return levels


def load_catalogue(folder: str | Path, facts: Sequence[str]) -> Catalogue:
    """Read every `*.yaml` in `folder` (one family each) and check the catalogue as a whole.

    Args:
        folder: the catalogue folder (`conf/tags`).
        facts: the names of the facts tags may aggregate.

    Raises:
        ConfigError: naming the file and the tag key at fault (unknown keys, a duplicate key, a
            reference to an unknown tag or fact, a dependency cycle).
    """
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        raise ConfigError(f"{folder}: no tag catalogue files (*.yaml)")
    tags: list[Tag] = []
    for path in paths:
        tags += _read(path)
    seen: dict[str, Path] = {}
    for tag in tags:
        if tag.key in seen:
            raise ConfigError(f"{tag.file}: tag {tag.key} is already declared in {seen[tag.key]}")
        seen[tag.key] = tag.file
    for tag in tags:
        fact = getattr(tag.spec, "fact", None)
        if fact is not None and fact not in facts:
            raise ConfigError(f"{tag.file}: tag {tag.key}: unknown fact {fact!r} (known: {', '.join(facts)})")
        of = getattr(tag.spec, "of", None)
        if of is not None and of not in seen:
            raise ConfigError(f"{tag.file}: tag {tag.key}: `of` names an unknown tag {of!r}")
    catalogue = Catalogue(tuple(tags))
    catalogue.levels()  # raises on a cycle
    return catalogue


def _read(path: Path) -> list[Tag]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        parsed = _File.model_validate(raw or {})
    except ValidationError as e:
        raise ConfigError(f"{path}: {_describe(e, raw)}") from e
    return [Tag(spec=spec, family=parsed.family, file=path) for spec in parsed.tags]


def _describe(error: ValidationError, raw: object) -> str:
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "tags" and isinstance(raw, dict):
            with contextlib.suppress(KeyError, IndexError, TypeError):
                where = f"tag {raw['tags'][loc[1]]['key']}: " + ".".join(str(p) for p in loc[3:] or loc[2:])
        what = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{where}: {what}")
    return "; ".join(lines)


_WORD = re.compile(r"`([^`]+)`|\b([A-Za-z_][A-Za-z0-9_]*)\b")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _identifiers(sql: str) -> set[str]:
    """Every word of a SQL expression outside string literals (a superset of the tags it reads)."""
    words = set()
    for match in _WORD.finditer(_STRING.sub("''", sql)):
        words.add(match.group(1) or match.group(2))
    return words
