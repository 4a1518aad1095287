"""Raw landing files: `<lake>/landing/<source>/<batch>/`, as the channels deliver them.

Landing is not Delta: it holds files exactly as a source sends them (CSV in its own encoding, JSON
lines). A batch folder is written whole by one Spark write (its `_SUCCESS` marks it complete) and a
re-run replaces it, so writing a batch twice is safe.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from cdp.errors import LakeError

logger = logging.getLogger(__name__)

# Spark 4 accepts only the Unicode charsets and ISO-8859-1 for CSV unless this is set; Chinese
# CRMs export GBK. The flag is set only around a write that needs another charset.
_LEGACY_CHARSETS = "spark.sql.legacy.javaCharsets"
_SPARK_CHARSETS = {"utf-8", "utf-16", "utf-16be", "utf-16le", "utf-32", "us-ascii", "iso-8859-1"}


def landing_path(root: str, source: str, batch: str) -> str:
    return f"{root.rstrip('/')}/landing/{source}/{batch}"


def complete_batches(spark: SparkSession, root: str, source: str) -> list[str]:
    """Batches of a source (folders holding data files), in name order.

    Spark lists files only (the content is never read). A producer must place a batch folder
    complete, as Spark's own writer does: files appear in it only when the write commits.
    """
    pattern = f"{root.rstrip('/')}/landing/{source}/*"
    try:
        files = spark.read.format("binaryFile").load(pattern).select("path").collect()
    except Exception as e:
        if "PATH_NOT_FOUND" in str(e) or "does not exist" in str(e):
            return []
        raise LakeError(f"landing {source}: cannot list batches: {e}") from e
    return sorted({r.path.rstrip("/").split("/")[-2] for r in files})


def write_lines(
    spark: SparkSession, lines: DataFrame, path: str, *, header: str | None = None, encoding: str = "UTF-8"
) -> int:
    """Write the one-column `line` DataFrame as text files, each starting with `header` if given.

    Lines are written as they are (no quoting added). Returns the number of lines written,
    headers excluded.
    """
    if lines.columns != ["line"]:
        raise LakeError(f"landing {path}: expected one column `line`, got {lines.columns}")
    # The count comes from the write itself (an observed metric), not from reading the files back.
    written = Observation(f"landing {path}")
    lines = lines.observe(written, F.count(F.lit(1)).alias("lines"))
    try:
        if header is None and encoding.lower() == "utf-8":
            lines.write.mode("overwrite").text(path)
        else:
            # The CSV writer, with separator and quote set to characters no line contains, writes
            # each line untouched and can prepend the header and encode to any charset.
            writer = (
                lines.toDF(header or "line")
                .write.mode("overwrite")
                .option("header", header is not None)
                .option("encoding", encoding)
                .option("sep", "\u0001")
                .option("quote", "\u0000")
                .option("escape", "\u0000")
                .option("emptyValue", "")
            )
            with charset_allowed(spark, encoding):
                writer.csv(path)
    except Exception as e:
        raise LakeError(f"landing {path}: write failed: {e}") from e
    return int(written.get["lines"])


@contextlib.contextmanager
def charset_allowed(spark: SparkSession, encoding: str) -> Iterator[None]:
    """Let Spark read or write CSV/text in `encoding` (e.g. GBK) while the block runs."""
    if encoding.lower() in _SPARK_CHARSETS:
        yield
        return
    before = spark.conf.get(_LEGACY_CHARSETS, "false")
    spark.conf.set(_LEGACY_CHARSETS, "true")
    try:
        yield
    finally:
        spark.conf.set(_LEGACY_CHARSETS, before)
