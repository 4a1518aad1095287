"""The lake: logical table names over one of two Delta engines. The only code that touches tables.

`silver.members` lives at `<root>/silver/members`. Every write carries the idempotency key of the
job run that makes it: the Delta app transaction `cdp/<job>/<run id>` with, as version, the number
of writes this run made to that table before (0, 1, ...). Re-running a run that already committed a
write skips it before any data is written, so a job restarted after a crash with the same run id
redoes only what did not commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cdp.config import Config
from cdp.errors import CdpError, LakeError, SchemaMismatchError
from cdp.lake import schema as schema_rules
from cdp.lake.delta_rs import DeltaRsEngine
from cdp.lake.delta_spark import DeltaSparkEngine
from cdp.lake.engine import (
    Commit,
    Engine,
    Partition,
    TableInfo,
    WriteMode,
    WriteRequest,
    WriteResult,
    partition_string,
)
from cdp.spark import capabilities

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def make_engine(spark: SparkSession, choice: str = "auto") -> Engine:
    """`delta-spark` when chosen or (for `auto`) when its session extension is active, else `delta-rs`."""
    if choice == "auto":
        choice = capabilities(spark).lake_engine
    if choice == "delta-spark":
        if not capabilities(spark).delta_extension:
            raise LakeError("lake.engine is delta-spark but io.delta.sql.DeltaSparkSessionExtension is not active")
        return DeltaSparkEngine(spark)
    return DeltaRsEngine(spark)


class Lake:
    """Tables by logical name, read and written by one engine for one job run.

    Args:
        spark: the session.
        root: lake root (local folder or object-store URI).
        engine: an engine, or None to pick one with `make_engine`.
        job: name of the job writing (part of the idempotency key).
        run_id: id of the run (part of the idempotency key).
    """

    def __init__(
        self,
        spark: SparkSession,
        root: str,
        *,
        engine: Engine | None = None,
        job: str = "adhoc",
        run_id: str = "adhoc",
    ) -> None:
        self.spark = spark
        self.root = root.rstrip("/")
        self.engine = engine or make_engine(spark)
        self.job = job
        self.run_id = run_id
        self._writes: Counter[str] = Counter()
        self.results: list[WriteResult] = []

    def scoped(self, unit: str) -> Lake:
        """A handle whose writes are keyed `cdp/<job>/<unit>/<run id>`, for work a re-run may skip.

        The idempotency key counts a run's writes to a table in order. A job that skips units of
        work already done (the batches an incremental job has processed) writes in a different
        order when re-run; keying each unit's writes separately keeps the count right. Results
        are shared with this handle.
        """
        child = Lake(self.spark, self.root, engine=self.engine, job=f"{self.job}/{unit}", run_id=self.run_id)
        child.results = self.results
        return child

    @classmethod
    def from_config(cls, spark: SparkSession, cfg: Config, *, job: str, run_id: str) -> Lake:
        return cls(spark, cfg.lake.root, engine=make_engine(spark, cfg.lake.engine), job=job, run_id=run_id)

    # -- names ----------------------------------------------------------------------------------

    def path(self, name: str) -> str:
        if not _NAME.match(name):
            raise LakeError(f"table name {name!r} is not of the form layer.table (lower case, digits, _)")
        layer, table = name.split(".")
        return f"{self.root}/{layer}/{table}"

    def exists(self, name: str) -> bool:
        return self.engine.exists(self.path(name))

    def tables(self) -> list[str]:
        """Logical names of the tables under the root (local lakes only)."""
        if "://" in self.root:
            raise LakeError(f"listing tables needs a local lake root, not {self.root}")
        found = []
        for log in sorted(Path(self.root).glob("*/*/_delta_log")):
            name = f"{log.parent.parent.name}.{log.parent.name}"
            if _NAME.match(name) and self.engine.exists(str(log.parent)):
                found.append(name)
        return found

    # -- read -----------------------------------------------------------------------------------

    def read(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> DataFrame:
        """The table's rows, latest or as of a version or a time (not both)."""
        if version is not None and timestamp is not None:
            raise LakeError(f"table {name}: read at a version or at a timestamp, not both")
        with _about(name):
            return self.engine.read(self.path(name), version=version, timestamp=timestamp)

    def schema(self, name: str) -> StructType:
        return self.engine.schema(self.path(name))

    def history(self, name: str) -> Sequence[Commit]:
        with _about(name):
            return self.engine.history(self.path(name))

    def info(self, name: str) -> TableInfo:
        with _about(name):
            return self.engine.info(name, self.path(name))

    def partitions(self, name: str) -> list[dict[str, str | None]]:
        """The partitions holding the table's current files, each once: {column: value as the Delta
        log spells it (a date as YYYY-MM-DD), None for the null partition}."""
        with _about(name):
            return [dict(p) for p in self.engine.partitions(self.path(name))]

    def drop_partitions(self, name: str, partitions: Iterable[Mapping[str, object]]) -> WriteResult:
        """Remove whole partitions in one version, as `replace_partitions` with no rows would.

        `partitions` are specs as in `replace_partitions` (a column left out matches every value).
        The files stay for readers of older versions until `vacuum` deletes them.
        """
        specs = list(partitions)
        if not specs:
            raise LakeError(f"table {name}: no partitions to drop")
        with _about(name):
            partition_by = self.engine.partition_columns(self.path(name))
        empty = self.spark.createDataFrame([], self.schema(name))
        return self.replace_partitions(name, empty, partition_by=partition_by, partitions=specs)

    def vacuum(self, name: str, *, retention_hours: int) -> list[str]:
        """Delete files no version within the retention period references (and leftovers of crashed writes)."""
        with _about(name):
            return self.engine.vacuum(self.path(name), retention_hours=retention_hours)

    # -- write ----------------------------------------------------------------------------------

    def overwrite(
        self,
        name: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        evolve: bool = False,
        plain_encoded: Sequence[str] = (),
    ) -> WriteResult:
        """Replace the table's content atomically: readers see the old or the new rows, never a mix.

        `plain_encoded`: as in `replace_partitions`."""
        return self._write(name, df, "overwrite", partition_by, None, evolve, plain_encoded)

    def append(
        self,
        name: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        evolve: bool = False,
        plain_encoded: Sequence[str] = (),
    ) -> WriteResult:
        """Add rows. `partition_by` is used when the table is created and must match afterwards.

        `plain_encoded`: as in `replace_partitions`."""
        return self._write(name, df, "append", partition_by, None, evolve, plain_encoded)

    def replace_partitions(
        self,
        name: str,
        df: DataFrame | Sequence[DataFrame | Partition],
        *,
        partition_by: Sequence[str],
        partitions: Iterable[Mapping[str, object]] | None = None,
        evolve: bool = False,
        plain_encoded: Sequence[str] = (),
    ) -> WriteResult:
        """Replace whole partitions atomically; the others stay as they are.

        Args:
            df: the rows, or several parts committed as one version: DataFrames of the same
                columns, or `Partition`s (the rows of one partition, without the partition
                columns). Spark writes each part by itself: a part whose partition values are
                literals is written without sorting its rows by them (what one DataFrame of several
                partitions needs), and a `Partition` straight into its folder.
            partitions: the partitions to replace, as {column: value} (None or "": the null
                partition, where Spark writes a row of ""); a partition column left out matches
                every value, so `{"as_of": d}` of a table partitioned by (family, as_of) is every
                family of date d. Rows of `df` must fall in them. None replaces exactly the
                partitions present in `df` (dynamic overwrite).
            plain_encoded: columns whose values are mostly distinct within a file (an id, a
                measured amount), written without a Parquet dictionary: for such a column the
                dictionary only costs time, as it overflows and the writer falls back to plain
                encoding. Readers see the same values; only the file layout differs.
        """
        if not partition_by:
            raise LakeError(f"table {name}: replace_partitions needs partition columns")
        specs = None
        if partitions is not None:
            specs = tuple({c: partition_string(p[c]) for c in partition_by if c in p} for p in partitions)
            for p in partitions:
                unknown = set(p) - set(partition_by)
                if unknown:
                    raise LakeError(f"table {name}: {', '.join(sorted(unknown))} are not partition columns")
        return self._write(name, df, "replace_partitions", partition_by, specs, evolve, plain_encoded)

    def _write(
        self,
        name: str,
        data: DataFrame | Sequence[DataFrame | Partition],
        mode: WriteMode,
        partition_by: Sequence[str],
        partitions: tuple | None,
        evolve: bool,
        plain_encoded: Sequence[str] = (),
    ) -> WriteResult:
        path = self.path(name)
        given = [data] if isinstance(data, DataFrame) else list(data)
        if not given:
            raise LakeError(f"table {name}: nothing to write (no parts)")
        exists = self.engine.exists(path)
        current = self.engine.schema(path) if exists else None
        partition_by = tuple(partition_by)
        if exists:
            table_parts = self.engine.partition_columns(path)
            if partition_by and partition_by != table_parts and not (mode == "overwrite" and evolve):
                raise SchemaMismatchError(
                    f"table {name}: partitioned by {list(table_parts)}, the write asks for {list(partition_by)}"
                )
            partition_by = partition_by or table_parts
        parts = [_whole(name, p, partition_by, current) if isinstance(p, Partition) else p for p in given]
        df = parts[0]
        for other in parts[1:]:
            if _columns(other) != _columns(df):
                raise SchemaMismatchError(
                    f"table {name}: the parts of one write differ: {other.schema.simpleString()} "
                    f"against {df.schema.simpleString()}"
                )
        app_id = f"cdp/{self.job}/{self.run_id}"
        txn_version = self._writes[name]
        self._writes[name] += 1

        with _about(name):
            committed = self.engine.committed_version(path, app_id)
        if committed is not None and committed >= txn_version:
            logger.info("%s: already committed by run %s (write %d), skipped", name, self.run_id, txn_version)
            result = WriteResult(name, None, True, None, 0, 0)
            self.results.append(result)
            return result

        missing = [c for c in partition_by if c not in df.columns]
        if missing:
            raise SchemaMismatchError(f"table {name}: partition column {', '.join(missing)} not in the data")
        target = schema_rules.resolve(name, current, df.schema, replace=mode == "overwrite", evolve=evolve)
        unknown = [c for c in plain_encoded if c not in target.names]
        if unknown:
            raise SchemaMismatchError(f"table {name}: plain_encoded names {', '.join(unknown)}, not a column")
        aligned = [_align(part, target) for part in parts]

        request = WriteRequest(
            table=name,
            path=path,
            mode=mode if exists else "overwrite",
            schema=target,
            schema_changed=current is not None and schema_rules.diff(current, target).empty is False,
            partition_by=partition_by,
            partitions=partitions,
            app_id=app_id,
            txn_version=txn_version,
            metadata={"cdp.job": self.job, "cdp.run_id": self.run_id, "cdp.mode": mode},
            plain_encoded=tuple(plain_encoded),
            part_partitions=tuple(p.spec() if isinstance(p, Partition) else None for p in given),
        )
        with _about(name):
            result = self.engine.write(aligned, request)
        logger.info(
            "%s: %s committed version %s (%s rows, %d files)",
            name,
            mode,
            result.version,
            "?" if result.rows is None else f"{result.rows:,}",
            result.files,
        )
        self.results.append(result)
        return result


def _whole(name: str, part: Partition, partition_by: Sequence[str], current: StructType | None) -> DataFrame:
    """A `Partition`'s rows with its partition values as columns (of the table's types, if it exists)."""
    if set(part.values) != set(partition_by):
        raise SchemaMismatchError(
            f"table {name}: a Partition gives values of {sorted(part.values)}, the partition columns are "
            f"{list(partition_by)}"
        )
    inside = [c for c in part.rows.columns if c in part.values]
    if inside:
        raise SchemaMismatchError(f"table {name}: a Partition's rows hold the partition column {', '.join(inside)}")
    types = {f.name: f.dataType for f in current} if current is not None else {}
    values = {}
    for column, value in part.values.items():
        literal = F.lit(value)
        if column in types:
            literal = literal.cast(types[column])
        elif value is None:  # a new table's column of the null partition: a string, as Spark's folders
            literal = literal.cast("string")
        values[column] = literal
    return part.rows.withColumns(values)


def _columns(df: DataFrame) -> list[tuple[str, object]]:
    return [(f.name, f.dataType) for f in df.schema]


def _align(df: DataFrame, target: StructType) -> DataFrame:
    """Columns in the table's order, by name; columns the data lacks come as typed nulls."""
    present = set(df.columns)
    return df.select(
        *[F.col(f"`{f.name}`") if f.name in present else F.lit(None).cast(f.dataType).alias(f.name) for f in target]
    )


@contextlib.contextmanager
def _about(name: str) -> Iterator[None]:
    """Errors of the storage libraries, re-raised as `LakeError` naming the table."""
    try:
        yield
    except CdpError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise LakeError(f"table {name}: {type(e).__name__}: {first}") from e
