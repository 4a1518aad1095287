"""Engine `delta-rs`: Spark writes the Parquet files, the `deltalake` package commits them.

Used wherever the Delta Lake jar is not on Spark's classpath. The data never passes through the
driver: executors write Parquet in parallel into a folder of their own under the table root,
`cdp_commit=<id>/<partition dirs>/part-*.parquet`; the driver then reads only the footers (for
file statistics) and commits add and remove actions with the app transaction in one Delta commit.
A crash before that commit leaves the table as it was; the unreferenced folder is removed by
`vacuum` once it is older than the retention period.

Reads ask delta-rs for the active files of the wanted version and hand them to one distributed
Spark Parquet scan. The commit folder is named like a partition (`cdp_commit=...`) so that Spark's
partition discovery, rooted at the table, reads the real partition columns from the paths under
it; the pseudo-column is dropped right after.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction
from deltalake.exceptions import TableNotFoundError as DeltaRsTableNotFound
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from cdp.errors import LakeError, TableNotFoundError
from cdp.lake.engine import (
    Commit,
    PartitionSpec,
    TableInfo,
    WriteRequest,
    WriteResult,
    dictionary_off,
    partition_string,
)
from cdp.lake.stats import stats_json

logger = logging.getLogger(__name__)

COMMIT_DIR = "cdp_commit"
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Reader features this engine's plain Parquet scan does not apply; such tables need delta-spark.
_UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping", "v2Checkpoint", "typeWidening"}


class DeltaRsEngine:
    name = "delta-rs"

    def __init__(self, spark: SparkSession, *, footer_threads: int = 16) -> None:
        self._spark = spark
        self._footer_threads = footer_threads

    # -- metadata -------------------------------------------------------------------------------

    def _table(self, path: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(path, version=version)
        except DeltaRsTableNotFound as e:
            raise TableNotFoundError(f"no Delta table at {path}") from e

    def exists(self, path: str) -> bool:
        return DeltaTable.is_deltatable(path)

    def schema(self, path: str) -> StructType:
        return _spark_schema(self._table(path))

    def partition_columns(self, path: str) -> tuple[str, ...]:
        return tuple(self._table(path).metadata().partition_columns)

    def partitions(self, path: str) -> list[PartitionSpec]:
        # From the log's add actions: no data file is read.
        return [{c: partition_string(v) for c, v in p.items()} for p in self._table(path).partitions()]

    def committed_version(self, path: str, app_id: str) -> int | None:
        if not self.exists(path):
            return None
        return self._table(path).transaction_version(app_id)

    def history(self, path: str) -> list[Commit]:
        commits = []
        for entry in self._table(path).history():
            metadata = {k: str(v) for k, v in entry.items() if k.startswith("cdp.")}
            commits.append(
                Commit(
                    version=int(entry["version"]),
                    timestamp=dt.datetime.fromtimestamp(entry["timestamp"] / 1000, tz=dt.UTC),
                    operation=str(entry.get("operation", "")),
                    metadata=metadata,
                    metrics=dict(entry.get("operationMetrics") or {}),
                )
            )
        return sorted(commits, key=lambda c: c.version)

    def info(self, name: str, path: str) -> TableInfo:
        table = self._table(path)
        actions = _active_files(table)
        counts = [a["num_records"] for a in actions]
        return TableInfo(
            name=name,
            path=path,
            version=table.version(),
            rows=None if any(c is None for c in counts) else sum(counts),
            files=len(actions),
            bytes=sum(a["size_bytes"] for a in actions),
            partition_by=tuple(table.metadata().partition_columns),
        )

    def vacuum(self, path: str, *, retention_hours: int) -> list[str]:
        return self._table(path).vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )

    # -- read -----------------------------------------------------------------------------------

    def read(self, path: str, *, version: int | None, timestamp: dt.datetime | None) -> DataFrame:
        table = self._table(path, version)
        if timestamp is not None:
            try:
                table.load_as_version(timestamp)
            except Exception as e:  # delta-rs raises a generic error for a time before the table
                raise LakeError(f"table at {path}: no version at or before {timestamp.isoformat()}") from e
        unsupported = set(table.protocol().reader_features or ()) & _UNSUPPORTED_READER_FEATURES
        if unsupported:
            raise LakeError(
                f"table at {path} uses {', '.join(sorted(unsupported))}: read it with the delta-spark engine"
            )
        schema = _spark_schema(table)
        partitions = table.metadata().partition_columns
        root = table.table_uri.rstrip("/")
        uris = table.file_uris()
        if not uris:
            return self._spark.createDataFrame([], schema)
        ours = [u for u in uris if _relative(u, root).startswith(f"{COMMIT_DIR}=")]
        foreign = [u for u in uris if not _relative(u, root).startswith(f"{COMMIT_DIR}=")]
        data_fields = [f for f in schema if f.name not in partitions]
        part_fields = [schema[p] for p in partitions]
        scans = []
        if ours:
            layout = StructType([*data_fields, StructField(COMMIT_DIR, StringType()), *part_fields])
            scans.append(self._scan(layout, root, ours))
        if foreign:  # files written by another Delta writer with a plain Hive layout
            scans.append(self._scan(StructType([*data_fields, *part_fields]), root, foreign))
        frame = reduce(DataFrame.unionByName, scans)
        return frame.select(*schema.names)

    def _scan(self, layout: StructType, root: str, files: Sequence[str]) -> DataFrame:
        return self._spark.read.schema(layout).option("basePath", root).parquet(*files)

    # -- write ----------------------------------------------------------------------------------

    def write(self, parts: Sequence[DataFrame], request: WriteRequest) -> WriteResult:
        commit_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        folder = f"{request.path.rstrip('/')}/{COMMIT_DIR}={commit_id}"
        within = request.part_partitions or (None,) * len(parts)
        for i, (part, partition) in enumerate(zip(parts, within, strict=True)):
            # The first part creates the folder ("error", not its synonym "errorifexists", which the
            # Spark Connect client refuses); the others add files to it. Nothing is committed yet.
            # A Partition's rows go into its folder, without the partition columns.
            columns = [n for n in request.schema.names if partition is None or n not in request.partition_by]
            writer = (
                part.select(*columns)
                .write.mode("append" if i else "error")
                .options(**dictionary_off(request.plain_encoded))
            )
            if partition is not None:
                writer.parquet(f"{folder}/{partition_path(partition, request.partition_by)}")
                continue
            if request.partition_by:
                writer = writer.partitionBy(*request.partition_by)
            writer.parquet(folder)
        adds = self._add_actions(request.path, folder)
        rows = sum(json.loads(a.stats)["numRecords"] for a in adds)
        written = sum(a.size for a in adds)
        logger.debug("table %s: %d files written under %s", request.table, len(adds), folder)

        properties = CommitProperties(
            custom_metadata=dict(request.metadata),
            app_transactions=[Transaction(request.app_id, request.txn_version)],
        )
        delta_schema = Schema.from_json(request.schema.json())
        if not self.exists(request.path):
            create_table_with_add_actions(
                request.path,
                delta_schema,
                adds,
                mode="error",
                partition_by=list(request.partition_by) or None,
                commit_properties=properties,
            )
        elif request.mode == "overwrite":
            # delta-rs removes every active file and records a changed schema in the same commit.
            self._table(request.path).create_write_transaction(
                adds,
                mode="overwrite",
                schema=delta_schema,
                partition_by=list(request.partition_by) or None,
                commit_properties=properties,
            )
        else:
            table = self._table(request.path)
            if request.schema_changed:
                # Only added (nullable) columns reach here. They are committed just before the data:
                # if the data commit then fails, the table merely has columns that read as null.
                known = set(_spark_schema(table).names)
                added = [f for f in request.schema if f.name not in known]
                table.alter.add_columns(Schema.from_json(StructType(added).json()).fields)
                table = self._table(request.path)
            table.create_write_transaction(
                [*adds, *self._removes(table, request, adds)],
                mode="append",
                schema=delta_schema,
                partition_by=list(request.partition_by) or None,
                commit_properties=properties,
            )
        version = self._table(request.path).version()
        return WriteResult(request.table, version, False, rows, len(adds), written)

    def _add_actions(self, root: str, folder: str) -> list[AddAction]:
        filesystem, base = pafs.FileSystem.from_uri(folder)
        _, root_base = pafs.FileSystem.from_uri(root)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        files = [
            f
            for f in filesystem.get_file_info(selector)
            if f.type == pafs.FileType.File
            and f.base_name.endswith(".parquet")
            and not any(part.startswith(("_", ".")) for part in os.path.relpath(f.path, base).split("/"))
        ]

        def action(info: pafs.FileInfo) -> AddAction:
            with filesystem.open_input_file(info.path) as handle:
                metadata = pq.ParquetFile(handle).metadata
            relative = os.path.relpath(info.path, root_base)
            return AddAction(
                path=relative,
                size=info.size,
                partition_values=_partition_values(relative),
                modification_time=int(info.mtime.timestamp() * 1000),
                data_change=True,
                stats=stats_json(metadata),
            )

        with ThreadPoolExecutor(max_workers=self._footer_threads) as pool:
            return list(pool.map(action, files))

    def _removes(self, table: DeltaTable, request: WriteRequest, adds: list[AddAction]) -> list[RemoveAction]:
        if request.mode != "replace_partitions":
            return []
        if request.partitions is None:  # dynamic: the partitions the data holds
            specs = [
                dict(zip(request.partition_by, k, strict=True))
                for k in {_key(a.partition_values, request.partition_by) for a in adds}
            ]
        else:
            specs = list(request.partitions)
        # A spec matches the partitions whose values equal its own on the columns it names.
        by_columns: dict[tuple[str, ...], set[tuple[str | None, ...]]] = {}
        for spec in specs:
            by_columns.setdefault(tuple(sorted(spec)), set()).add(_key(spec, sorted(spec)))

        def replaced(values: PartitionSpec) -> bool:
            return any(_key(values, columns) in keys for columns, keys in by_columns.items())

        outside = {_key(a.partition_values, request.partition_by) for a in adds if not replaced(a.partition_values)}
        if outside:
            raise LakeError(
                f"table {request.table}: the data holds partitions outside those to replace: "
                + ", ".join(str(dict(zip(request.partition_by, k, strict=True))) for k in sorted(outside, key=str))
            )
        active = [a for a in _active_files(table) if replaced(a["partition"])]
        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        return [
            RemoveAction(
                path=a["path"],
                data_change=True,
                deletion_timestamp=now,
                size=a["size_bytes"],
                partition_values=a["partition"],
            )
            for a in active
        ]


def _spark_schema(table: DeltaTable) -> StructType:
    return StructType.fromJson(json.loads(table.schema().to_json()))


def _active_files(table: DeltaTable) -> list[dict]:
    actions = pa.table(table.get_add_actions(flatten=False)).to_pylist()
    for a in actions:
        a["partition"] = {k: partition_string(v) for k, v in (a.get("partition") or {}).items()}
    return actions


def _key(values: PartitionSpec, columns: Sequence[str]) -> tuple[str | None, ...]:
    return tuple(values.get(c) for c in columns)


def _relative(uri: str, root: str) -> str:
    for prefix in (root + "/", root.removeprefix("file://") + "/"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri


# The characters Spark escapes in a partition folder's name (`ExternalCatalogUtils.escapePathName`).
_ESCAPED = frozenset(chr(c) for c in range(1, 32)) | frozenset("\"#%'*/:=?\\\x7f{[]^")


def partition_path(values: PartitionSpec, columns: Sequence[str]) -> str:
    """The folder of a partition below a table's (or a commit folder's) root, as Spark names it:
    `k=v/...` in the order of `columns`, escaped, with the null partition's name for None."""

    def escape(text: str) -> str:
        return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in text)

    return "/".join(f"{escape(c)}={_NULL_PARTITION if values[c] is None else escape(values[c])}" for c in columns)


def _partition_values(relative: str) -> dict[str, str | None]:
    """`k=v` directories below the commit folder, decoded as Spark escaped them."""
    values: dict[str, str | None] = {}
    for part in relative.split("/")[1:-1]:
        key, _, raw = part.partition("=")
        value = unquote(raw)
        values[unquote(key)] = None if value == _NULL_PARTITION else value
    return values
