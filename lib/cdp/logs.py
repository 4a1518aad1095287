"""Logging for jobs: short lines on the console, everything in a per-run log file, no personal data.

Library modules only call `logging.getLogger(__name__)`; `configure` is called once by a job's `main`.
A redaction filter masks anything shaped like a mobile number or an e-mail address in every record,
as a last line of defence: code must not log such values in the first place.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pyspark.logger import PySparkLogger

_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]){8}(?![0-9])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def redact(text: str) -> str:
    """`text` with mobile numbers and e-mail addresses replaced by placeholders."""
    return _EMAIL.sub("<email>", _MOBILE.sub("<mobile>", text))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(*, level: str, log_dir: str, job: str, run_id: str) -> Path:
    """Console at `level`, file at DEBUG under `log_dir`; returns the file's path."""
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}-{run_id}.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_cdp", False):
            root.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler()
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(message)s", "%H:%M:%S"))
    file = logging.FileHandler(path, encoding="utf-8")
    file.setLevel(logging.DEBUG)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for handler in (console, file):
        handler.addFilter(RedactingFilter())
        handler._cdp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for noisy in ("py4j", "pyspark", "great_expectations", "urllib3", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # PySpark prints each failed query's context as a multi-kilobyte JSON line on stderr, outside our
    # handlers; the same context is in the traceback our log file keeps.
    for spark_logger in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        PySparkLogger.getLogger(spark_logger).setLevel(logging.CRITICAL)
    return path
