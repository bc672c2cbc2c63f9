"""The adapter: verdicts, counts-only metadata, no CPR in any result, one pandas conversion, no files."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import warnings
import weakref
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from expectations import adapter
from expectations.adapter import (
    FAILURE_COLUMNS,
    FAILURE_REASONS,
    Gx,
    HasSchema,
    Suite,
    When,
    check_results,
    check_specs,
    run_suite,
    run_suites,
)
from expectations.ingest import PSEUDONYMISED, RAW_SUBMISSION, VALIDATED_ROWS

# Synthetic CPR numbers: day + 60, so they can never be a real person's.
SYNTHETIC_CPR = ("6101901234", "6202851235", "7112004321", "8803926789")
CANARY_TEXT = "canary-value-Zx81"
CANARY_NUMBER = -987654


def _people(**overrides: object) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "share": [0.0, 0.25, 0.5, 1.0],
            "start": [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)],
            "end": [date(2024, 6, 1), None, date(2024, 9, 1), None],
            "done": [True, None, False, None],
            "label": ["a", "b", "c", "d"],
        }
    )
    return frame.with_columns(**{k: pl.Series(v) for k, v in overrides.items()})


SUITE = Suite(
    "people",
    [
        HasSchema({"id": pl.Int64, "share": pl.Float64}),
        Gx("ExpectColumnValuesToBeUnique", column="id"),
        Gx("ExpectColumnValuesToBeBetween", column="share", min_value=0, max_value=1),
        Gx("ExpectColumnValuesToBeInSet", column="label", value_set=["a", "b", "c", "d"]),
        Gx("ExpectColumnValuesToNotBeNull", column="done", row_condition=When.not_null("end")),
        Gx(
            "ExpectColumnValuesToBeBetween",
            column="start",
            min_value=date(2020, 1, 1),
            max_value=date(2030, 1, 1),
        ),
        Gx("ExpectTableRowCountToBeBetween", min_value=1),
        Gx("ExpectColumnMeanToBeBetween", column="share", min_value=0, max_value=1),
    ],
    description="synthetic people",
)


def test_clean_frame_passes_with_counts() -> None:
    outcome = run_suite(_people(), SUITE)

    assert outcome.success, outcome.failed()
    assert outcome.rows == 4 and outcome.result_format == "SUMMARY"
    assert [e.success for e in outcome.expectations] == [True] * len(SUITE.expectations)
    unique = outcome.expectations[1]
    assert (unique.expectation_type, unique.column) == ("expect_column_values_to_be_unique", "id")
    assert (unique.element_count, unique.unexpected_count) == (4, 0)
    row_count = outcome.expectations[6]
    assert row_count.observed_value == 4  # an aggregate may be reported
    assert outcome.expectations[7].observed_value == pytest.approx(0.4375)
    assert outcome.failures().height == 0


def test_bad_frame_fails_with_counts_and_reasons() -> None:
    frame = _people(id=[1, 1, 1, 4], share=[0.0, 1.5, -0.1, 0.5], label=["a", "b", "x", "y"], done=[None] * 4)
    outcome = run_suite(frame, SUITE)

    assert not outcome.success
    by_column = {(e.expectation_type, e.column): e for e in outcome.failed()}
    assert by_column["expect_column_values_to_be_unique", "id"].unexpected_count == 3
    assert by_column["expect_column_values_to_be_between", "share"].unexpected_count == 2
    assert by_column["expect_column_values_to_be_in_set", "label"].unexpected_count == 2
    conditional = by_column["expect_column_values_to_not_be_null", "done,end"]
    assert (conditional.element_count, conditional.unexpected_count) == (2, 2)  # only rows with an end date
    assert {e.reason for e in outcome.failed()} == {"unexpected_values"}
    assert outcome.unexpected_count == 3 + 2 + 2 + 2


def test_dates_outside_range_fail() -> None:
    frame = _people(start=[date(1850, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2099, 1, 1)])
    outcome = run_suite(frame, SUITE)

    (failed,) = outcome.failed()
    assert (failed.column, failed.unexpected_count) == ("start", 2)


def test_missing_column_and_wrong_dtype_are_reasons_not_crashes() -> None:
    frame = _people().drop("label").with_columns(pl.col("id").cast(pl.Int32))
    outcome = run_suite(frame, SUITE)

    reasons = {(e.expectation_type, e.column): e.reason for e in outcome.failed()}
    assert reasons == {
        ("expect_polars_schema", "id"): "wrong_dtype",
        ("expect_column_values_to_be_in_set", "label"): "missing_column",
    }
    assert set(reasons.values()) <= set(FAILURE_REASONS)


def test_failures_frame_has_the_steward_columns() -> None:
    outcome = run_suite(_people(id=[1, 1, 3, 4]), SUITE)

    failures = outcome.failures()
    assert failures.schema == FAILURE_COLUMNS
    assert failures.row(0, named=True) == {
        "suite": "people",
        "expectation": "expect_column_values_to_be_unique",
        "column": "id",
        "reason": "unexpected_values",
        "unexpected_count": 2,
        "element_count": 4,
    }


def test_metadata_holds_counts_and_never_values() -> None:
    frame = _people(label=["a", CANARY_TEXT, "c", CANARY_TEXT], id=[1, CANARY_NUMBER, CANARY_NUMBER, 4])
    outcome = run_suite(frame, SUITE)
    (result,) = check_results(frame, [SUITE])

    meta = outcome.metadata()
    assert meta["element_count"] == 4 and meta["unexpected_count"] == 4 and meta["failed_expectations"] == 2
    assert result.metadata == dg.AssetCheckResult(passed=False, metadata=meta).metadata
    for text in (str(outcome), str(meta), str(result), str(outcome.failures().to_dicts())):
        assert CANARY_TEXT not in text
        assert str(CANARY_NUMBER) not in text


def _cpr_frames() -> dict[str, pl.DataFrame]:
    cprs = list(SYNTHETIC_CPR)
    return {
        "raw": pl.DataFrame(
            {
                "cpr": cprs,
                "start_date": ["01-01-2024"] * 4,
                "end_date": [None] * 4,
                "delmaalgruppe": ["1"] * 4,
                "completed": [None] * 4,
                "source_row": [1, 1, 2, None],  # fails: duplicate and null
                "sha256": ["f" * 64] * 4,
            }
        ),
        "validated": pl.DataFrame(
            {
                "cpr_norm": [cprs[0], "610190-1234", cprs[2], cprs[3][:9]],  # two malformed: fails
                "start_date": [date(2024, 1, 1)] * 4,
                "end_date": [date(2023, 1, 1), None, None, None],  # end before start: fails
            }
        ),
        "pseudonymised": pl.DataFrame(
            {
                "pseudonym": ["a" * 64, cprs[1], "b" * 64, "c" * 64],  # a CPR leaked: fails
                "key_id": ["k1"] * 4,
                "note": [f"cpr {cprs[2]}", None, "x", "y"],
                "number": [int(cprs[3]), 1, 2, 3],
            }
        ),
    }


SUMMARY_OVER_CPR = Suite(
    "summary_over_cpr",
    [
        Gx("ExpectColumnValuesToMatchRegex", column="cpr", regex=r"^x$"),
        Gx("ExpectColumnValuesToBeUnique", column="cpr"),
    ],
    raw_cpr=False,  # deliberately SUMMARY: the adapter must still not copy GX's partial_unexpected_list
)


@pytest.mark.parametrize(
    ("frame_name", "suites"),
    [
        ("raw", RAW_SUBMISSION),
        ("validated", VALIDATED_ROWS),
        ("pseudonymised", PSEUDONYMISED),
        ("raw", [SUMMARY_OVER_CPR]),
    ],
)
def test_no_cpr_value_in_any_result(frame_name: str, suites: list[Suite]) -> None:
    frame = _cpr_frames()[frame_name]
    outcomes = run_suites(frame, suites)
    results = check_results(frame, suites)

    assert not any(o.success for o in outcomes)  # every frame has planted failures
    texts = [str(outcomes), str(results), str([o.metadata() for o in outcomes])]
    texts += [str(o.failures().to_dicts()) for o in outcomes]
    for text in texts:
        for cpr in SYNTHETIC_CPR:
            assert cpr not in text and cpr[:6] not in text and cpr[:9] not in text


def test_raw_cpr_suites_run_boolean_only() -> None:
    outcome = run_suite(_cpr_frames()["validated"], VALIDATED_ROWS[0])

    assert outcome.result_format == "BOOLEAN_ONLY"
    assert all(e.unexpected_count is None for e in outcome.expectations)  # GX collects nothing
    assert "unexpected_count" not in outcome.metadata()


def test_check_specs_and_severity_follow_the_suite() -> None:
    warn = Suite("soft", [Gx("ExpectColumnValuesToBeUnique", column="id")], description="soft")
    hard = Suite("hard", [Gx("ExpectColumnValuesToBeUnique", column="id")], blocking=True)
    specs = check_specs("people", [warn, hard])

    assert [(s.name, s.blocking, s.asset_key) for s in specs] == [
        ("soft", False, dg.AssetKey("people")),
        ("hard", True, dg.AssetKey("people")),
    ]
    results = check_results(_people(id=[1, 1, 2, 3]), [warn, hard], asset_key="people")
    assert [(r.check_name, r.passed, r.severity) for r in results] == [
        ("soft", False, dg.AssetCheckSeverity.WARN),
        ("hard", False, dg.AssetCheckSeverity.ERROR),
    ]
    assert results[0].asset_key == dg.AssetKey("people")


def test_several_suites_convert_to_pandas_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = adapter.to_pandas
    monkeypatch.setattr(adapter, "to_pandas", lambda frame: calls.append(1) or original(frame))

    check_results(_people(), [SUITE, SUITE, SUITE])

    assert len(calls) == 1


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="GX expectation class name"):
        Gx("column_values_unique", column="id")
    with pytest.raises(ValueError, match="no expectations"):
        Suite("empty", [])
    with pytest.raises(ValueError, match="collect a LazyFrame"):
        run_suite(_people().lazy(), SUITE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no 'ExpectNothing'"):
        run_suite(_people(), Suite("nothing", [Gx("ExpectNothing")]))


def test_gx_objects_can_be_used_directly() -> None:
    import great_expectations.expectations as gxe

    suite = Suite("direct", [gxe.ExpectColumnValuesToBeUnique(column="id")])

    assert run_suite(_people(), suite).success
    assert not run_suite(_people(id=[1, 1, 3, 4]), suite).success
    assert run_suite(_people(), suite).success  # the object is reusable (the adapter copies it)


def test_gx_writes_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    adapter._batch_definition.cache_clear()  # build a fresh context here, in the empty directory
    try:
        run_suite(_people(id=[1, 1, 3, 4]), SUITE)
        check_results(_cpr_frames()["raw"], RAW_SUBMISSION)
    finally:
        adapter._batch_definition.cache_clear()
    assert list(tmp_path.iterdir()) == []
    assert os.environ["GX_ANALYTICS_ENABLED"] == "False"


def test_importing_the_suites_does_not_import_gx() -> None:
    code = (
        "import sys, expectations, expectations.adapter, expectations.registers, expectations.ingest, "
        "expectations.linkage, expectations.effects; "
        "assert 'great_expectations' not in sys.modules, 'GX imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_an_expectation_that_raises_is_an_error_without_its_message() -> None:
    # A capture group makes pandas warn; turned into an error inside GX's metric computation.
    suite = Suite("raises", [Gx("ExpectColumnValuesToNotMatchRegex", column="label", regex=r"(a)")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outcome = run_suite(_people(label=[CANARY_TEXT] * 4), suite)

    (failed,) = outcome.failed()
    assert (failed.reason, failed.unexpected_count) == ("error", None)
    assert CANARY_TEXT not in str(outcome.metadata())


def test_gx_keeps_no_copy_of_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    converted = []
    original = adapter.to_pandas
    monkeypatch.setattr(
        adapter, "to_pandas", lambda frame: converted.append(weakref.ref(pdf := original(frame))) or pdf
    )

    run_suite(_cpr_frames()["raw"], RAW_SUBMISSION[0])
    gc.collect()

    assert converted and converted[0]() is None
