"""Run Great Expectations suites on polars frames and report them as Dagster asset checks.

The adapter is the only place that touches Great Expectations (GX 1.x has no polars backend):

- a frame is converted to pandas once, by :func:`to_pandas`, per call of :func:`run_suite` or
  :func:`check_results` (however many suites run on it);
- GX runs in one cached *ephemeral* context (in-memory stores, no ``great_expectations.yml``, no files,
  analytics and progress bars off); GX is imported lazily so ``import expectations`` stays fast;
- results are reduced to counts at once: expectation type, column, success, element/unexpected counts and,
  for a few aggregate expectations (row count, mean, ...), the observed number. GX's partial unexpected
  lists, index lists and exception messages are never copied, so no data value reaches Dagster metadata.
  Suites over raw (pre-pseudonymisation) data run with ``result_format="BOOLEAN_ONLY"``, so GX does not
  even collect unexpected values for them (and reports no unexpected counts either).

Blocking: a suite with ``blocking=True`` becomes an ``AssetCheckSpec(blocking=True)``; a failing result is
yielded with ``severity=ERROR``. Dagster 1.13 then fails the asset's step *after* storing its outputs
(``DagsterAssetCheckFailedError``), so downstream assets in the same run are skipped (see
``tests/expectations/test_blocking.py``). Non-blocking suites fail with ``severity=WARN``.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl
import polars.selectors as cs

if TYPE_CHECKING:
    import pandas as pd

BOOLEAN_ONLY = "BOOLEAN_ONLY"
SUMMARY = "SUMMARY"

#: Expectations whose ``observed_value`` is an aggregate (never one person's value) and may be reported.
AGGREGATE_EXPECTATIONS = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_column_mean_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_unique_value_count_to_be_between",
    }
)

#: Reason codes of a failed expectation (machine-readable, like analysis.schema.QUARANTINE_REASONS).
FAILURE_REASONS: tuple[str, ...] = (
    "unexpected_values",  # some values broke the expectation (see unexpected_count)
    "missing_column",  # a column the expectation needs is not in the frame
    "wrong_dtype",  # a column has another polars dtype than the contract
    "aggregate_out_of_range",  # a table/column aggregate (row count, mean) is outside its bounds
    "failed",  # GX reported failure without counts (BOOLEAN_ONLY)
    "error",  # GX raised while evaluating (message withheld: it may quote data)
)

#: Columns of :meth:`SuiteOutcome.failures` (the data stewards' failure view).
FAILURE_COLUMNS = pl.Schema(
    {
        "suite": pl.String,
        "expectation": pl.String,
        "column": pl.String,
        "reason": pl.String,
        "unexpected_count": pl.Int64,
        "element_count": pl.Int64,
    }
)

_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list",)


# --- declaring expectations without importing GX ------------------------------------------------------------


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return tuple(_freeze(v) for v in items)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        # polars dates arrive in pandas as datetime64; GX compares them with datetimes
        return datetime(value.year, value.month, value.day)
    if isinstance(value, When):
        from great_expectations.expectations.row_conditions import Column

        column = Column(value.column)
        return column.is_null() if value.is_null else column.is_not_null()
    return value


@dataclass(frozen=True, slots=True)
class When:
    """A row condition on the nullity of ``column`` (built into a GX ``Column(...)`` condition lazily)."""

    column: str
    is_null: bool

    @classmethod
    def null(cls, column: str) -> When:
        """Rows where ``column`` is null."""
        return cls(column, True)

    @classmethod
    def not_null(cls, column: str) -> When:
        """Rows where ``column`` is not null."""
        return cls(column, False)


@dataclass(frozen=True, slots=True, init=False)
class Gx:
    """A GX expectation declared by class name and keyword arguments, built only when a suite runs.

    ``Gx("ExpectColumnValuesToNotBeNull", column="PNR")`` is
    ``great_expectations.expectations.ExpectColumnValuesToNotBeNull(column="PNR")`` without importing GX.
    Lists become tuples (so suites are hashable), ``datetime.date`` bounds become datetimes and
    :class:`When` becomes a GX row condition.
    """

    expectation: str
    kwargs: tuple[tuple[str, Any], ...]

    def __init__(self, expectation: str, /, **kwargs: Any) -> None:
        if not expectation.startswith("Expect"):
            raise ValueError(
                f"{expectation!r} is not a GX expectation class name (e.g. 'ExpectColumnValuesToBeUnique')"
            )
        object.__setattr__(self, "expectation", expectation)
        object.__setattr__(self, "kwargs", tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))

    def columns(self) -> tuple[str, ...]:
        """Return the frame columns this expectation reads (row conditions included)."""
        found: list[str] = []
        for key, value in self.kwargs:
            if key in _COLUMN_KWARGS:
                found.append(value)
            elif key in _COLUMN_LIST_KWARGS:
                found.extend(value)
            elif isinstance(value, When):
                found.append(value.column)
        return tuple(found)

    def build(self) -> Any:
        """Build the GX expectation object (imports GX)."""
        import great_expectations.expectations as gxe

        try:
            cls = getattr(gxe, self.expectation)
        except AttributeError:
            raise ValueError(f"great_expectations.expectations has no {self.expectation!r}") from None
        return cls(**{key: _thaw(value) for key, value in self.kwargs})


@dataclass(frozen=True, slots=True, init=False)
class HasSchema:
    """The frame has every column of ``schema`` with exactly that polars dtype (checked in polars, not GX).

    GX sees pandas dtypes, which lose polars' integer widths and turn nullable integers into floats, so the
    column contract is checked on the polars schema itself. Extra columns are allowed.
    """

    columns: tuple[tuple[str, pl.DataType], ...]

    def __init__(self, schema: Mapping[str, pl.DataType] | pl.Schema, /) -> None:
        object.__setattr__(self, "columns", tuple(schema.items()))


@dataclass(frozen=True, slots=True, init=False)
class ForEachColumn:
    """One :class:`Gx` expectation per column of the frame whose dtype matches ``selector`` (at run time).

    Used where the columns are not known in advance, e.g. "no text column holds a CPR number".
    """

    expectation: str
    selector: Any  # a polars selector, e.g. ``cs.string() | cs.integer()``
    kwargs: tuple[tuple[str, Any], ...]

    def __init__(self, expectation: str, /, *, selector: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "expectation", expectation)
        object.__setattr__(self, "selector", selector)
        object.__setattr__(self, "kwargs", tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))

    def expand(self, schema: pl.Schema) -> list[Gx]:
        """Return the per-column expectations for a frame with ``schema``."""
        chosen = cs.expand_selector(schema, self.selector)
        return [Gx(self.expectation, column=name, **dict(self.kwargs)) for name in chosen]


@dataclass(frozen=True)
class Suite:
    """A named set of expectations that becomes one Dagster asset check.

    Parameters
    ----------
    name
        Check name (a constant from :mod:`expectations.names`).
    expectations
        :class:`Gx`, :class:`HasSchema`, :class:`ForEachColumn`, or ready-made GX expectation objects.
    raw_cpr
        The frame holds raw CPR numbers: run with ``BOOLEAN_ONLY`` so GX never collects values.
    blocking
        A failure stops downstream assets (``severity=ERROR``); otherwise it is a warning.
    description
        What the check guarantees, in a sentence a data steward understands.
    """

    name: str
    expectations: Sequence[Any]
    raw_cpr: bool = False
    blocking: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "expectations", tuple(self.expectations))
        if not self.expectations:
            raise ValueError(f"suite {self.name!r} has no expectations; give it at least one")

    @property
    def result_format(self) -> str:
        """``BOOLEAN_ONLY`` for raw CPR data, else ``SUMMARY``."""
        return BOOLEAN_ONLY if self.raw_cpr else SUMMARY


# --- outcomes: counts only ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    """One expectation's verdict: type, column(s), success and counts. Never a data value."""

    expectation_type: str
    column: str | None
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: float | None = None  # only for AGGREGATE_EXPECTATIONS on non-raw data
    reason: str | None = None  # one of FAILURE_REASONS when success is False


@dataclass(frozen=True, slots=True)
class SuiteOutcome:
    """The verdict of one :class:`Suite` on one frame."""

    suite: str
    success: bool
    rows: int
    result_format: str
    expectations: tuple[ExpectationOutcome, ...]

    @property
    def unexpected_count(self) -> int | None:
        """Unexpected values summed over the failed expectations (None when GX gave no counts)."""
        counts = [e.unexpected_count for e in self.expectations if not e.success]
        if any(c is None for c in counts):
            return None
        return int(sum(counts))  # type: ignore[arg-type]

    def failed(self) -> tuple[ExpectationOutcome, ...]:
        """Return the expectations that failed."""
        return tuple(e for e in self.expectations if not e.success)

    def metadata(self) -> dict[str, Any]:
        """Dagster metadata: counts, expectation types, columns and success only."""
        meta: dict[str, Any] = {
            "suite": self.suite,
            "result_format": self.result_format,
            "element_count": self.rows,
            "expectations": len(self.expectations),
            "failed_expectations": len(self.failed()),
        }
        if self.unexpected_count is not None:
            meta["unexpected_count"] = self.unexpected_count
        meta["failed"] = dg.MetadataValue.json(
            [f"{e.expectation_type}({e.column or ''}): {e.reason}" for e in self.failed()]
        )
        meta["results"] = dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "expectation": e.expectation_type,
                        "column": e.column or "",
                        "success": e.success,
                        "reason": e.reason or "",
                        "element_count": e.element_count,
                        "unexpected_count": e.unexpected_count,
                        "unexpected_percent": e.unexpected_percent,
                        "observed_value": e.observed_value,
                    }
                )
                for e in self.expectations
            ],
            schema=_RESULTS_SCHEMA,
        )
        return meta

    def failures(self) -> pl.DataFrame:
        """One row per failed expectation (suite, expectation, column, reason, counts)."""
        return pl.DataFrame(
            [
                {
                    "suite": self.suite,
                    "expectation": e.expectation_type,
                    "column": e.column,
                    "reason": e.reason,
                    "unexpected_count": e.unexpected_count,
                    "element_count": e.element_count,
                }
                for e in self.failed()
            ],
            schema=FAILURE_COLUMNS,
        )


_RESULTS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("expectation", "string"),
        dg.TableColumn("column", "string"),
        dg.TableColumn("success", "bool"),
        dg.TableColumn("reason", "string"),
        dg.TableColumn("element_count", "int"),
        dg.TableColumn("unexpected_count", "int"),
        dg.TableColumn("unexpected_percent", "float"),
        dg.TableColumn("observed_value", "float"),
    ]
)


# --- the GX boundary ----------------------------------------------------------------------------------------


def to_pandas(frame: pl.DataFrame, /) -> pd.DataFrame:
    """Convert polars -> pandas: the one conversion (GX 1.x validates pandas, not polars)."""
    _require_frame(frame)
    return frame.to_pandas()


def _require_frame(frame: object) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise ValueError(
            f"expected a polars DataFrame, got {type(frame).__name__}; collect a LazyFrame first"
        )


_POSITION = "cti_position"
_LOCK = threading.Lock()  # the GX context is not thread-safe; the in-process executor may run threads


@cache
def _batch_definition() -> Any:
    """Return a whole-dataframe batch definition in a cached ephemeral GX context (no files, no analytics)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("polars_frames")
    return source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole_frame")


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return int(number) if float(number).is_integer() and not isinstance(value, float) else number


def _column_label(columns: Sequence[str]) -> str | None:
    return ",".join(columns) if columns else None


def _schema_outcome(check: HasSchema, schema: pl.Schema) -> ExpectationOutcome:
    missing = [name for name, _ in check.columns if name not in schema]
    mistyped = [name for name, dtype in check.columns if name in schema and schema[name] != dtype]
    # Only contract column names are named (never a header from the file, which could be a data row).
    return ExpectationOutcome(
        expectation_type="expect_polars_schema",
        column=_column_label(missing + mistyped),
        success=not missing and not mistyped,
        element_count=len(check.columns),
        unexpected_count=len(missing) + len(mistyped),
        unexpected_percent=100.0 * (len(missing) + len(mistyped)) / max(len(check.columns), 1),
        reason="missing_column" if missing else "wrong_dtype" if mistyped else None,
    )


def _expectation_type(expectation: Any) -> str:
    return str(getattr(expectation, "expectation_type", type(expectation).__name__))


def _declared_columns(expectation: Any) -> tuple[str, ...]:
    if isinstance(expectation, Gx):
        return expectation.columns()
    found = [getattr(expectation, k, None) for k in _COLUMN_KWARGS]
    listed = getattr(expectation, "column_list", None) or []
    return tuple(c for c in [*found, *listed] if isinstance(c, str))


def _raised(info: Any) -> bool:
    """Whether GX caught an exception (a flat dict per expectation, or one dict per failed metric)."""
    if not info:
        return False
    if isinstance(info, Mapping) and "raised_exception" in info:
        return bool(info["raised_exception"])
    if isinstance(info, Mapping):
        return any(_raised(value) for value in info.values() if isinstance(value, Mapping))
    return bool(getattr(info, "raised_exception", False))


def _gx_outcome(
    result: Any, expectation_type: str, column: str | None, suite: Suite, rows: int
) -> ExpectationOutcome:
    success = bool(result.success)
    if _raised(result.exception_info):
        return ExpectationOutcome(expectation_type, column, False, element_count=rows, reason="error")
    counts = result.result or {}
    element_count = _number(counts.get("element_count"))
    unexpected_count = _number(counts.get("unexpected_count"))
    unexpected_percent = _number(counts.get("unexpected_percent"))
    observed = None
    if not suite.raw_cpr and expectation_type in AGGREGATE_EXPECTATIONS:
        observed = _number(counts.get("observed_value"))
    reason = None
    if not success:
        if unexpected_count:
            reason = "unexpected_values"
        elif expectation_type in AGGREGATE_EXPECTATIONS:
            reason = "aggregate_out_of_range"
        else:
            reason = "failed"
    return ExpectationOutcome(
        expectation_type=expectation_type,
        column=column,
        success=success,
        element_count=int(element_count) if element_count is not None else rows,
        unexpected_count=int(unexpected_count) if unexpected_count is not None else None,
        unexpected_percent=float(unexpected_percent) if unexpected_percent is not None else None,
        observed_value=float(observed) if observed is not None else None,
        reason=reason,
    )


def _release(batch: Any) -> None:
    """Drop GX's cached copy of the frame (it would keep the last frame, raw CPR included, in memory)."""
    try:
        manager = batch.data.execution_engine.batch_manager
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()
    except AttributeError:  # GX internals moved: only memory is at stake, never correctness
        pass


def _run(frame: pl.DataFrame, pandas_frame: pd.DataFrame | None, suite: Suite) -> tuple[SuiteOutcome, Any]:
    """Evaluate ``suite``; returns the outcome and the (possibly newly converted) pandas frame."""
    _require_frame(frame)
    schema = frame.schema
    outcomes: dict[int, ExpectationOutcome] = {}
    to_validate: list[tuple[int, Any, str, str | None]] = []  # (position, GX object, type, column)
    position = 0
    for item in suite.expectations:
        members = item.expand(schema) if isinstance(item, ForEachColumn) else [item]
        for member in members:
            if isinstance(member, HasSchema):
                outcomes[position] = _schema_outcome(member, schema)
            else:
                built = member.build() if isinstance(member, Gx) else member
                kind = _expectation_type(built)
                columns = _declared_columns(member)
                label = _column_label(columns)
                if any(c not in schema for c in columns):
                    outcomes[position] = ExpectationOutcome(
                        kind, label, False, element_count=frame.height, reason="missing_column"
                    )
                else:
                    to_validate.append((position, built, kind, label))
            position += 1

    if to_validate:
        import great_expectations as gx

        if pandas_frame is None:
            pandas_frame = to_pandas(frame)
        expectations = []
        for pos, built, _, _ in to_validate:
            # GX reorders results (by domain); a position in ``meta`` maps each result back
            tagged = built.copy(deep=True)
            tagged.meta = {**(tagged.meta or {}), _POSITION: pos}
            expectations.append(tagged)
        gx_suite = gx.ExpectationSuite(name=suite.name, expectations=expectations)
        with _LOCK:
            batch = _batch_definition().get_batch(batch_parameters={"dataframe": pandas_frame})
            validation = batch.validate(gx_suite, result_format=suite.result_format)
            _release(batch)
        wanted = {pos: (kind, label) for pos, _, kind, label in to_validate}
        for result in validation.results:
            pos = int(result.expectation_config.meta[_POSITION])
            kind, label = wanted.pop(pos)
            outcomes[pos] = _gx_outcome(result, kind, label, suite, frame.height)
        if wanted:
            raise RuntimeError(
                f"GX returned no result for {len(wanted)} expectation(s) of suite {suite.name!r}"
            )
        del validation, batch  # drop GX's copies of values at once

    ordered = tuple(outcomes[p] for p in sorted(outcomes))
    outcome = SuiteOutcome(
        suite=suite.name,
        success=all(o.success for o in ordered),
        rows=frame.height,
        result_format=suite.result_format,
        expectations=ordered,
    )
    return outcome, pandas_frame


def run_suite(frame: pl.DataFrame, suite: Suite, /) -> SuiteOutcome:
    """Validate ``frame`` against ``suite``; the outcome carries counts and reasons, never values."""
    outcome, _ = _run(frame, None, suite)
    return outcome


def run_suites(frame: pl.DataFrame, suites: Iterable[Suite], /) -> list[SuiteOutcome]:
    """Validate ``frame`` against several suites, converting it to pandas at most once."""
    outcomes, pandas_frame = [], None
    for suite in suites:
        outcome, pandas_frame = _run(frame, pandas_frame, suite)
        outcomes.append(outcome)
    return outcomes


# --- Dagster ------------------------------------------------------------------------------------------------


def check_spec(**kwargs: Any) -> dg.AssetCheckSpec:
    """``dg.AssetCheckSpec(**kwargs)`` without Dagster's PreviewWarning for ``partitions_def``.

    Partitioned asset checks are a preview feature this project relies on deliberately (each evaluation is
    recorded with its partition key); the warning would otherwise print once per worker process of
    ``cti run``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(**kwargs)


def check_specs(
    asset_key: dg.AssetKey | str,
    suites: Iterable[Suite],
    /,
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> list[dg.AssetCheckSpec]:
    """One ``AssetCheckSpec`` per suite (name = suite name, blocking = suite.blocking).

    Pass the asset's ``partitions_def`` for a partitioned asset: only then does Dagster record each
    evaluation with its partition key (without it the evaluation's ``partition`` is None).
    """
    key = dg.AssetKey.from_coercible(asset_key)
    return [
        check_spec(
            name=s.name,
            asset=key,
            blocking=s.blocking,
            description=s.description or None,
            partitions_def=partitions_def,
        )
        for s in suites
    ]


def severity(suite: Suite) -> dg.AssetCheckSeverity:
    """ERROR for blocking suites (Dagster blocks only ERROR failures of blocking checks), else WARN."""
    return dg.AssetCheckSeverity.ERROR if suite.blocking else dg.AssetCheckSeverity.WARN


def to_check_result(
    outcome: SuiteOutcome, suite: Suite, /, *, asset_key: dg.AssetKey | str | None = None
) -> dg.AssetCheckResult:
    """Turn one suite outcome into a Dagster check result (metadata from counts only)."""
    return dg.AssetCheckResult(
        check_name=suite.name,
        asset_key=dg.AssetKey.from_coercible(asset_key) if asset_key is not None else None,
        passed=outcome.success,
        severity=severity(suite),
        metadata=outcome.metadata(),
        description=suite.description or None,
    )


def check_results(
    frame: pl.DataFrame, suites: Iterable[Suite], /, *, asset_key: dg.AssetKey | str | None = None
) -> list[dg.AssetCheckResult]:
    """Run every suite on ``frame`` and return their check results (yield them after the ``Output``).

    ``asset_key`` is required when the asset definition has several assets (``multi_asset``).
    """
    suites = list(suites)
    return [
        to_check_result(outcome, suite, asset_key=asset_key)
        for outcome, suite in zip(run_suites(frame, suites), suites, strict=True)
    ]
