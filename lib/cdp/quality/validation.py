"""Expectation suites applied to Spark DataFrames with Great Expectations, one throw-away context per run.

Suites are GX 1.x JSON files `<expectations dir>/<table>.json`, one per table (`silver.crm_members`).
Each expectation carries a `severity`: a failed `critical` one makes `raise_on_critical` raise, a
failed `warning` one is only reported. `report_rows` turns a report into rows for the
`quality.validation_runs` table. Sample values GX reports are masked before they reach a report, a
log line or a Data Docs page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.store.store import DataDocsSiteConfigTypedDict
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.exceptions import GreatExpectationsError
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pyspark.sql import DataFrame
from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType, TimestampType

from cdp.errors import DataQualityError
from cdp.logs import redact

logger = logging.getLogger(__name__)

SEVERITIES = ("critical", "warning")
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
DOCS_SITE = "cdp_local_site"

# One row per expectation per run; `sample` is a JSON list of masked values.
VALIDATION_RUNS_SCHEMA = StructType(
    [StructField(n, StringType()) for n in ("run_id", "suite", "table", "expectation", "column", "severity")]
    + [StructField("success", BooleanType()), StructField("unexpected_count", LongType())]
    + [StructField("sample", StringType()), StructField("validated_at", TimestampType())]
)

# A stand-alone run of digits, in groups of 3+ joined by '-' or ' ' (021-5555 1234). `mask` hides it
# when it holds 7 to 12 digits: landlines and member cards. Longer runs are order numbers, which the
# logs keep as well; a leading letter makes an id (M0123456789), not a phone.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\+?[0-9]{2,}(?:[- ][0-9]{3,})*(?![0-9])")


def mask(text: str) -> str:
    """`text` with e-mails and mobiles masked as in the logs, and other 7-12 digit numbers as `<phone>`."""
    return _DIGIT_RUN.sub(lambda m: "<phone>" if 7 <= sum(c.isdigit() for c in m[0]) <= 12 else m[0], redact(text))


@dataclass(frozen=True)
class Outcome:
    """The result of one expectation; `sample` holds up to 5 distinct masked unexpected values."""

    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    sample: list[str]


@dataclass(frozen=True)
class Report:
    """One suite run on one DataFrame; `success` is true only when every expectation, warnings included, held."""

    suite: str
    run_id: str
    success: bool
    outcomes: list[Outcome]
    seconds: float
    validated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def critical_failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[Outcome]:
        """Failed expectations of severity `warning`."""
        return [o for o in self.outcomes if not o.success and o.severity == "warning"]


def default_expectations_dir() -> Path:
    """`$CDP_EXPECTATIONS_DIR`, else the repository's `expectations/` folder."""
    configured = os.environ.get("CDP_EXPECTATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "expectations"


def load_suite(table: str, directory: Path | None = None) -> gx.ExpectationSuite:
    """The suite `<directory>/<table>.json`, every expectation checked.

    GX's own `ExpectationSuite(**json)` logs and drops an expectation it cannot build; here any
    invalid expectation, or a severity other than critical/warning, is an error.

    Raises:
        DataQualityError: the file is missing, is not a suite named `table`, or holds an invalid expectation.
    """
    path = (directory or default_expectations_dir()) / f"{table}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataQualityError(f"{table}: expectation suite file {path} does not exist") from e
    except (OSError, ValueError) as e:
        raise DataQualityError(f"{table}: expectation suite file {path} is not readable JSON: {e}") from e
    if not isinstance(data, dict) or data.get("name") != table or not isinstance(data.get("expectations"), list):
        raise DataQualityError(f"{table}: {path} is not a GX suite named {table!r} with a list of expectations")
    expectations = []
    for i, item in enumerate(data["expectations"]):
        try:
            expectation = ExpectationConfiguration(**item).to_domain_obj()
        except (TypeError, ValueError, GreatExpectationsError) as e:
            raise DataQualityError(f"{table}: expectation {i} in {path} is invalid: {e}") from e
        if expectation.severity not in SEVERITIES:
            raise DataQualityError(f"{table}: expectation {i} in {path} has severity {expectation.severity.value!r}")
        expectations.append(expectation)
    return gx.ExpectationSuite(name=table, expectations=expectations, meta=data.get("meta"), notes=data.get("notes"))


def validate(
    df: DataFrame, table: str, *, run_id: str, directory: Path | None = None, docs_dir: str | None = None
) -> Report:
    """Run the suite of `table` on `df` (one Spark pass per metric GX needs; `df` is not cached here).

    Args:
        df: the DataFrame to check, with the table's schema.
        table: the suite name, e.g. `silver.crm_members`.
        run_id: the pipeline run, recorded as GX's run name.
        directory: where the suite files are; `default_expectations_dir()` when None.
        docs_dir: when given, GX Data Docs for this validation are written to `<docs_dir>/<table>/index.html`.
            One folder per table: GX deletes from a site every page whose result its context does not
            hold, and each run's context holds only this one.

    Returns:
        A `Report` with one `Outcome` per expectation, in suite order.
    """
    started, validated_at = time.perf_counter(), dt.datetime.now(dt.UTC)
    suite = load_suite(table, directory)
    context = gx.get_context(mode="ephemeral")
    # Without this GX draws a tqdm bar on stderr for every validation.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir:
        context.add_data_docs_site(DOCS_SITE, _docs_site(Path(docs_dir) / table))
    asset = context.data_sources.add_spark(name="cdp").add_dataframe_asset(name=table)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=f"{table}:{run_id}",
            data=asset.add_batch_definition_whole_dataframe(name="whole"),
            suite=context.suites.add(suite),
        )
    )
    result = definition.run(
        batch_parameters={"dataframe": df},
        result_format=RESULT_FORMAT,
        run_id=RunIdentifier(run_name=run_id, run_time=validated_at),
    )
    for item in result.results:
        _mask_result(item)
    if docs_dir:
        _write_docs(context, result)
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    ranked = sorted(result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    outcomes = [_outcome(table, r) for r in ranked]
    report = Report(table, run_id, bool(result.success), outcomes, time.perf_counter() - started, validated_at)
    failed = sum(not o.success for o in outcomes)
    logger.info(
        "%s run %s: %d of %d expectations failed in %.1f s", table, run_id, failed, len(outcomes), report.seconds
    )
    return report


def raise_on_critical(report: Report) -> None:
    """Raise when a critical expectation failed; warnings pass.

    Raises:
        DataQualityError: naming the suite, run and each failed expectation with column, count and masked sample.
    """
    failures = report.critical_failures
    if not failures:
        return
    details = "; ".join(
        f"{o.expectation} on {o.column or '(table)'}: "
        + (f"{o.unexpected_count} unexpected, sample {o.sample}" if o.unexpected_count is not None else "not evaluated")
        for o in failures
    )
    raise DataQualityError(
        f"{report.suite} (run {report.run_id}): {len(failures)} critical expectation(s) failed: {details}"
    )


def report_rows(report: Report, *, table: str) -> list[tuple]:
    """Rows of `VALIDATION_RUNS_SCHEMA`, one per expectation, for the `quality.validation_runs` table."""
    return [
        (
            report.run_id,
            report.suite,
            table,
            o.expectation,
            o.column,
            o.severity,
            o.success,
            o.unexpected_count,
            json.dumps(o.sample, ensure_ascii=False),
            report.validated_at,
        )
        for o in report.outcomes
    ]


def _docs_site(folder: Path) -> DataDocsSiteConfigTypedDict:
    # An ephemeral context has no root directory: the site's folder must be absolute.
    return {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder.resolve())},
    }


def _write_docs(context: Any, result: ExpectationSuiteValidationResult) -> None:
    # The run stored its result before we masked it: store the masked one over it, then render.
    store = context.validation_results_store
    for key in store.list_keys():
        store.set(key, result)
    urls = context.build_data_docs(site_names=[DOCS_SITE])
    logger.info("data docs for %s: %s", result.suite_name, urls[DOCS_SITE])


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    hidden = mask(text)
    return value if hidden == text else hidden


def _mask_result(item: ExpectationValidationResult) -> None:
    details = item.result or {}
    if "partial_unexpected_list" in details:
        details["partial_unexpected_list"] = [_masked(v) for v in details["partial_unexpected_list"]]
    for count in details.get("partial_unexpected_counts") or []:
        count["value"] = _masked(count["value"])


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return "null" if value is None else str(value)


def _outcome(table: str, item: ExpectationValidationResult) -> Outcome:
    config = item.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or None
    details = item.result or {}
    for message in _errors(item.exception_info):
        logger.error("%s: %s on %s could not run: %s", table, config.type, column, message)
    sample = list(dict.fromkeys(_text(v) for v in details.get("partial_unexpected_list") or []))
    count = details.get("unexpected_count")
    return Outcome(
        config.type, column, config.severity.value, bool(item.success), None if count is None else int(count), sample
    )


def _errors(info: dict | None) -> list[str]:
    # GX reports one exception as {"raised_exception": ...}, metric failures keyed by metric id.
    if not info:
        return []
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    return [str(e.get("exception_message")) for e in entries if e.get("raised_exception")]


def write_docs_index(docs_dir: str) -> Path:
    """A top page linking each table's Data Docs (`<docs_dir>/<table>/index.html`); returns its path."""
    folder = Path(docs_dir)
    tables = sorted(p.parent.name for p in folder.glob("*/index.html"))
    links = "\n".join(f'<li><a href="{t}/index.html">{t}</a></li>' for t in tables)
    page = folder / "index.html"
    page.write_text(
        f"<!doctype html><meta charset='utf-8'><title>cdp-lakehouse data docs</title>"
        f"<h1>Validation results by table</h1><ul>\n{links}\n</ul>\n",
        encoding="utf-8",
    )
    return page
