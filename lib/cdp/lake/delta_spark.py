"""Engine `delta-spark`: the Delta Lake jar reads and writes, used when its session extension is active.

A thin adapter over Delta's documented DataFrame options: `txnAppId`/`txnVersion` for idempotent
writes, `replaceWhere` and dynamic `partitionOverwriteMode` for partition replacement,
`overwriteSchema`/`mergeSchema` for an accepted schema change, `versionAsOf`/`timestampAsOf` for
time travel. Metadata comes from SQL (`DESCRIBE HISTORY`, `DESCRIBE DETAIL`), so it works over
Spark Connect as well.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
from collections.abc import Iterator, Sequence

from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from cdp.errors import TableNotFoundError
from cdp.lake.engine import (
    Commit,
    PartitionSpec,
    TableInfo,
    WriteRequest,
    WriteResult,
    dictionary_off,
    partition_string,
)

logger = logging.getLogger(__name__)


class DeltaSparkEngine:
    name = "delta-spark"

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark

    def _ref(self, path: str) -> str:
        return "delta.`" + path.replace("`", "``") + "`"

    def _detail(self, path: str) -> dict:
        try:
            return self._spark.sql(f"DESCRIBE DETAIL {self._ref(path)}").first().asDict()
        except AnalysisException as e:
            raise TableNotFoundError(f"no Delta table at {path}") from e

    def exists(self, path: str) -> bool:
        try:
            self._detail(path)
        except TableNotFoundError:
            return False
        return True

    def schema(self, path: str) -> StructType:
        return self.read(path, version=None, timestamp=None).schema

    def partition_columns(self, path: str) -> tuple[str, ...]:
        return tuple(self._detail(path)["partitionColumns"])

    def partitions(self, path: str) -> list[PartitionSpec]:
        columns = self.partition_columns(path)
        if not columns:
            return []
        rows = self._spark.read.format("delta").load(path).select(*columns).distinct().collect()
        return [{c: partition_string(row[c]) for c in columns} for row in rows]

    def committed_version(self, path: str, app_id: str) -> int | None:
        # Delta itself skips a write whose (txnAppId, txnVersion) it has seen; the history's
        # userMetadata tells us whether this app id committed, so the facade can report the skip.
        if not self.exists(path):
            return None
        versions = [
            int(c.metadata["cdp.txn_version"])
            for c in self.history(path)
            if c.metadata.get("cdp.app_id") == app_id and "cdp.txn_version" in c.metadata
        ]
        return max(versions) if versions else None

    def read(self, path: str, *, version: int | None, timestamp: dt.datetime | None) -> DataFrame:
        reader = self._spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.astimezone(dt.UTC).isoformat())
        return reader.load(path)

    def write(self, parts: Sequence[DataFrame], request: WriteRequest) -> WriteResult:
        # One Delta write: one commit. A `Partition` part comes with its values as literal columns
        # (`request.part_partitions` says which), which Delta's writer partitions by like any other.
        df = functools.reduce(DataFrame.unionByName, parts)
        metadata = {
            **request.metadata,
            "cdp.app_id": request.app_id,
            "cdp.txn_version": str(request.txn_version),
        }
        writer = (
            df.select(*request.schema.names)
            .write.format("delta")
            .option("txnAppId", request.app_id)
            .option("txnVersion", request.txn_version)
            .option("userMetadata", json.dumps(metadata))
        )
        if request.partition_by:
            writer = writer.partitionBy(*request.partition_by)
        if request.mode == "append":
            writer = writer.mode("append").option("mergeSchema", request.schema_changed)
        elif request.mode == "overwrite":
            writer = writer.mode("overwrite").option("overwriteSchema", request.schema_changed)
        elif request.partitions is None:
            writer = writer.mode("overwrite").option("partitionOverwriteMode", "dynamic")
        else:
            writer = writer.mode("overwrite").option("replaceWhere", _predicate(request.partitions))
        with self._plain_encoded(request):
            writer.save(request.path)
        last = self.history(request.path)[-1]
        rows = last.metrics.get("numOutputRows")
        return WriteResult(
            request.table,
            last.version,
            False,
            int(rows) if rows is not None else None,
            int(last.metrics.get("numFiles", 0)),
            int(last.metrics.get("numOutputBytes", 0)),
        )

    @contextlib.contextmanager
    def _plain_encoded(self, request: WriteRequest) -> Iterator[None]:
        """The columns' dictionaries off for this write. Delta passes only the writer options it
        knows to Parquet, but builds the writer's Hadoop configuration from the session's, so the
        switch is a session setting for the duration of the write. A session that refuses it (some
        managed runtimes) writes dictionaries: the same values, a little slower."""
        before = {}
        for key, off in dictionary_off(request.plain_encoded).items():
            was = self._spark.conf.get(key, None)
            try:
                self._spark.conf.set(key, off)
            except PySparkException as e:
                logger.warning("table %s: cannot set %s (%s); the column keeps its dictionary", request.table, key, e)
                continue
            before[key] = was
        try:
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    self._spark.conf.unset(key)
                else:
                    self._spark.conf.set(key, value)

    def history(self, path: str) -> list[Commit]:
        rows = self._spark.sql(f"DESCRIBE HISTORY {self._ref(path)}").collect()
        commits = []
        for row in rows:
            user = json.loads(row["userMetadata"]) if row["userMetadata"] else {}
            commits.append(
                Commit(
                    version=int(row["version"]),
                    timestamp=row["timestamp"].replace(tzinfo=dt.UTC),
                    operation=row["operation"],
                    metadata={k: str(v) for k, v in user.items()},
                    metrics=dict(row["operationMetrics"] or {}),
                )
            )
        return sorted(commits, key=lambda c: c.version)

    def info(self, name: str, path: str) -> TableInfo:
        detail = self._detail(path)
        rows = self._spark.read.format("delta").load(path).count()
        return TableInfo(
            name=name,
            path=path,
            version=self.history(path)[-1].version,
            rows=rows,
            files=int(detail["numFiles"]),
            bytes=int(detail["sizeInBytes"]),
            partition_by=tuple(detail["partitionColumns"]),
        )

    def vacuum(self, path: str, *, retention_hours: int) -> list[str]:
        self._spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        removed = self._spark.sql(f"VACUUM {self._ref(path)} RETAIN {retention_hours} HOURS").collect()
        return [r[0] for r in removed]


def _predicate(partitions: tuple[PartitionSpec, ...]) -> str:
    def literal(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def one(spec: PartitionSpec) -> str:
        # A column the spec leaves out matches every value: a spec of no column is every partition.
        terms = [f"`{k}` IS NULL" if v is None else f"`{k}` = {literal(v)}" for k, v in spec.items()]
        return "(" + (" AND ".join(terms) or "true") + ")"

    return " OR ".join(one(p) for p in partitions) if partitions else "false"
