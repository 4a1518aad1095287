"""What every lake engine provides, and the values it returns.

An engine works on table paths; the `Lake` facade maps logical names to paths, checks idempotency
keys and schemas, and then calls the engine. Two engines implement this: `delta_rs.DeltaRsEngine`
(Spark writes Parquet, delta-rs commits) and `delta_spark.DeltaSparkEngine` (the Delta jar does both).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

WriteMode = Literal["overwrite", "append", "replace_partitions"]
# Partition values by column, as strings (None: the null partition). In `WriteRequest.partitions`
# a spec may name some of the partition columns only: it matches every value of the others.
PartitionSpec = Mapping[str, str | None]


@dataclass(frozen=True)
class Partition:
    """A part of a write whose rows all fall in one partition: `rows` hold the table's other
    columns, `values` the partition's value of every partition column (None: the null partition).

    The engine writes the rows straight into the partition's folder: Spark neither computes nor
    carries the partition of each row. At 1M persons, the 150M rows of the tag engine's long table
    (eight parts, one per family): 32.5-34.5 s written this way, 37.3-41.0 s as DataFrames with the
    family and the date as literal columns (one session, alternating, the same rows read back).
    """

    values: Mapping[str, object]
    rows: DataFrame

    def spec(self) -> dict[str, str | None]:
        """The values as the Delta log and Spark's folders spell them (`partition_string`)."""
        return {column: partition_string(value) for column, value in self.values.items()}


@dataclass(frozen=True)
class WriteRequest:
    """One write, fully resolved by the facade."""

    table: str
    path: str
    mode: WriteMode
    schema: StructType  # the table's schema after the write
    schema_changed: bool
    partition_by: tuple[str, ...]
    partitions: tuple[PartitionSpec, ...] | None  # replace_partitions: explicit partitions, None = those in the data
    app_id: str
    txn_version: int
    metadata: Mapping[str, str]
    # Columns written without a Parquet dictionary (see `Lake.replace_partitions`).
    plain_encoded: tuple[str, ...] = ()
    # For each part, its partition when it is a `Partition` (its rows lack the partition columns
    # then), else None (a DataFrame with the partition columns). Empty: every part is a DataFrame.
    part_partitions: tuple[PartitionSpec | None, ...] = ()


# The Parquet writer's switch for one column's dictionary (parquet-mr's `<key>#<column>` form).
DICTIONARY_OPTION = "parquet.enable.dictionary#{column}"


def dictionary_off(columns: Iterable[str]) -> dict[str, str]:
    """The Parquet writer options (or session settings) that write `columns` without a dictionary."""
    return {DICTIONARY_OPTION.format(column=column): "false" for column in columns}


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int | None  # None when skipped
    skipped: bool
    rows: int | None
    files: int
    bytes: int


@dataclass(frozen=True)
class Commit:
    version: int
    timestamp: dt.datetime
    operation: str
    metadata: Mapping[str, str]
    metrics: Mapping[str, object]


@dataclass(frozen=True)
class TableInfo:
    name: str
    path: str
    version: int
    rows: int | None
    files: int
    bytes: int
    partition_by: tuple[str, ...]


class Engine(Protocol):
    name: str

    def exists(self, path: str) -> bool: ...

    def schema(self, path: str) -> StructType: ...

    def partition_columns(self, path: str) -> tuple[str, ...]: ...

    def partitions(self, path: str) -> list[PartitionSpec]:
        """The partitions of the table's current files, each once (values as `Partition.spec` spells them)."""
        ...

    def committed_version(self, path: str, app_id: str) -> int | None:
        """The app transaction version recorded for `app_id`, None if it never committed."""
        ...

    def read(self, path: str, *, version: int | None, timestamp: dt.datetime | None) -> DataFrame: ...

    def write(self, parts: Sequence[DataFrame], request: WriteRequest) -> WriteResult:
        """Write the parts (DataFrames of the request's columns) and commit them as one version."""
        ...

    def history(self, path: str) -> Sequence[Commit]: ...

    def info(self, name: str, path: str) -> TableInfo: ...

    def vacuum(self, path: str, *, retention_hours: int) -> list[str]: ...


def partition_string(value: object) -> str | None:
    """A partition value as the Delta log and Spark's partition directories spell it: None for the
    null partition, which is also where Spark writes rows whose value is an empty string."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return text.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
