"""What every lake engine provides, and the values it returns.

An engine works on table paths; the `Lake` facade maps logical names to paths, checks idempotency
keys and schemas, and then calls the engine. Two engines implement this: `delta_rs.DeltaRsEngine`
(Spark writes Parquet, delta-rs commits) and `delta_spark.DeltaSparkEngine` (the Delta jar does both).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

WriteMode = Literal["overwrite", "append", "replace_partitions"]
# Partition values by column, as strings (None: the null partition). In `WriteRequest.partitions`
# a spec may name some of the partition columns only: it matches every value of the others.
PartitionSpec = Mapping[str, str | None]


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


# The Parquet writer's switch for one column's dictionary (parquet-mr's `<key>#<column>` form).
DICTIONARY_OPTION = "parquet.enable.dictionary#{column}"


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
    """A partition value as the Delta log and Spark's partition directories spell it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return text.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
