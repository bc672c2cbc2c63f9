"""The suites of each asset group accept good frames and catch the failures they name."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from analysis.schema import OUTCOME_PANEL, REGISTERS
from expectations import effects, ingest, linkage, names, registers
from expectations.adapter import Suite, check_specs, run_suite, run_suites

# --- registers ----------------------------------------------------------------------------------------------

_GOOD_VALUES: dict[str, object] = {
    "PNR": 17,
    "AAR": 2024,
    "KOEN": 2,
    "FOED_DAG": date(1980, 5, 1),
    "IE_TYPE": 3,
    "OPR_LAND": "GRL",
    "KOM": 751,
    "UGE_START": date(2024, 1, 1),
    "YDELSESKODE": "783",
    "MAANED": date(2024, 1, 1),
    "BESKAEFTIGET": 1,
    "LOEN": 23000.0,
    "RECNUM": 5,
    "C_PATTYPE": 3,
    "C_ADIAG": "DF20",
    "D_INDDTO": date(2024, 3, 1),
    "D_UDDTO": date(2024, 3, 2),
    "V_SENGDAGE": 1,
    "HFAUDD": "1010",
    "HF_VFRA": date(2000, 6, 1),
    "HF_VTIL": date(9999, 12, 31),
    "UDD": "5080",
    "ELEV3_VFRA": date(2023, 8, 1),
    "ELEV3_VTIL": date(2026, 6, 30),
    "OPHOLD_TYPE": "BOF",
    "INDDATO": date(2024, 2, 1),
    "UDDATO": date(2024, 5, 28),
}


def _register(name: str, **bad: object) -> pl.DataFrame:
    schema = REGISTERS[name]
    rows = [{c: _GOOD_VALUES[c] for c in schema.names()} for _ in range(3)]
    for column, value in bad.items():
        rows[1][column] = value
    return pl.DataFrame(rows, schema=schema)


@pytest.mark.parametrize("register", list(REGISTERS))
def test_register_suites_pass_on_a_valid_extract(register: str) -> None:
    outcomes = run_suites(_register(register), registers.REGISTERS[register])

    assert [o.suite for o in outcomes] == [names.register_schema(register), names.register_values(register)]
    assert all(o.success for o in outcomes), [o.failed() for o in outcomes]
    assert [s.blocking for s in registers.REGISTERS[register]] == [True, False]


@pytest.mark.parametrize(
    ("register", "bad"),
    [
        ("population", {"KOEN": 3}),
        ("population", {"IE_TYPE": 0}),
        ("population", {"PNR": None}),
        ("population", {"FOED_DAG": date(1850, 1, 1)}),
        ("health", {"C_PATTYPE": 1}),
        ("health", {"V_SENGDAGE": -1}),
        ("employment", {"LOEN": -5.0}),
        ("benefits", {"UGE_START": date(1901, 1, 1)}),
        ("stays", {"OPHOLD_TYPE": "XYZ"}),
        ("stays", {"UDDATO": date(1901, 1, 1)}),
    ],
)
def test_register_values_suite_catches_bad_codes(register: str, bad: dict[str, object]) -> None:
    schema_suite, values_suite = registers.REGISTERS[register]
    frame = _register(register, **bad)

    assert run_suite(frame, schema_suite).success
    outcome = run_suite(frame, values_suite)
    assert not outcome.success
    assert [(e.column, e.unexpected_count) for e in outcome.failed()] == [(next(iter(bad)), 1)]


def test_register_schema_suite_catches_missing_and_mistyped_columns() -> None:
    frame = _register("population").drop("KOEN").with_columns(pl.col("PNR").cast(pl.String))
    outcome = run_suite(frame, registers.REGISTERS["population"][0])

    (failed,) = outcome.failed()
    assert (failed.column, failed.unexpected_count, failed.reason) == ("KOEN,PNR", 2, "missing_column")


def test_register_suites_reject_unknown_register() -> None:
    with pytest.raises(ValueError, match="unknown register"):
        registers.register_suites("prisons")


def test_empty_register_fails_the_row_count() -> None:
    outcome = run_suite(_register("health").head(0), registers.REGISTERS["health"][1])

    (failed,) = outcome.failed()
    assert (failed.expectation_type, failed.reason) == (
        "expect_table_row_count_to_be_between",
        "aggregate_out_of_range",
    )


# --- ingest -------------------------------------------------------------------------------------------------

CPR = "6101901234"  # synthetic: day + 60


def _raw_rows(**overrides: object) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "cpr": [CPR, "6202851235", "7112004321"],
            "start_date": ["01-01-2024", "2024-02-01", "45300"],
            "end_date": [None, None, "01.06.2024"],
            "delmaalgruppe": ["1", "2", "1"],
            "completed": [None, None, "Ja"],
            "source_row": [2, 3, 4],
            "sha256": ["f" * 64] * 3,
        }
    )
    return frame.with_columns(**{k: pl.Series(v) for k, v in overrides.items()})


def test_raw_submission_suite() -> None:
    (suite,) = ingest.RAW_SUBMISSION
    assert suite.raw_cpr and suite.blocking

    assert run_suite(_raw_rows(), suite).success
    assert not run_suite(_raw_rows(source_row=[2, 2, 4]), suite).success
    assert not run_suite(_raw_rows(source_row=[2, None, 4]), suite).success
    # Two received versions of the quarter's file each number their rows from 1: still unique per file.
    assert run_suite(_raw_rows(source_row=[2, 2, 4], sha256=["a" * 64, "b" * 64, "a" * 64]), suite).success
    missing = run_suite(_raw_rows().drop("delmaalgruppe"), suite)
    assert [(e.column, e.reason) for e in missing.failed()] == [("delmaalgruppe", "missing_column")]


def _clean_rows(**overrides: object) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "cpr_norm": [CPR, "6202851235"],
            "start_date": [date(2024, 1, 1), date(2024, 2, 1)],
            "end_date": [date(2024, 1, 1), None],
        }
    )
    return frame.with_columns(**{k: pl.Series(v) for k, v in overrides.items()})


@pytest.mark.parametrize(
    ("overrides", "passes"),
    [
        ({}, True),
        ({"cpr_norm": ["610190-1234", "6202851235"]}, False),
        ({"cpr_norm": ["610190123", "6202851235"]}, False),
        ({"start_date": [None, date(2024, 2, 1)]}, False),
        ({"end_date": [date(2023, 12, 31), None]}, False),
    ],
)
def test_validated_rows_suite(overrides: dict[str, object], passes: bool) -> None:
    (suite,) = ingest.VALIDATED_ROWS
    assert run_suite(_clean_rows(**overrides), suite).success is passes


PSEUDONYM = "0123456789" + "abcdef0123" * 5 + "abcd"  # 64 hex; digit runs at its edges must not match


def _pseudonymised(**overrides: object) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "pseudonym": [PSEUDONYM, "f" * 64],
            "key_id": ["k2024a", "k2024a"],
            "site": ["aarhus", "odense"],
            "sha256": ["9" * 64, "1234567890" + "a" * 54],
            "note": ["tlf 12345678", None],
            "sex": pl.Series([1, 2], dtype=pl.Int8),
            "source_row": [2, 3],
        }
    )
    return frame.with_columns(**{k: pl.Series(v) for k, v in overrides.items()})


@pytest.mark.parametrize(
    "leak",
    [
        {"note": [CPR, None]},
        {"note": ["borger 610190-1234 flyttet", None]},
        {"note": ["610190 1234", None]},
        {"note": ["101901234", None]},  # 9 digits: leading zero lost in Excel
        {"site": ["aarhus", "odense;0101901234"]},
        {"source_row": [6101901234, 3]},  # a CPR read as a number
        {"pseudonym": [CPR, "f" * 64]},
    ],
)
def test_pseudonymised_suite_catches_any_cpr(leak: dict[str, object]) -> None:
    (suite,) = ingest.PSEUDONYMISED
    assert suite.blocking and suite.result_format == "BOOLEAN_ONLY"

    assert run_suite(_pseudonymised(), suite).success
    outcome = run_suite(_pseudonymised(**leak), suite)
    assert not outcome.success
    assert next(iter(leak)) in {e.column for e in outcome.failed()}


def test_pseudonymised_suite_needs_pseudonym_and_key_id() -> None:
    (suite,) = ingest.PSEUDONYMISED
    outcome = run_suite(_pseudonymised(pseudonym=["ABC", "f" * 64], key_id=[None, "k"]), suite)

    assert {(e.expectation_type, e.column) for e in outcome.failed()} == {
        ("expect_column_values_to_match_regex", "pseudonym"),
        ("expect_column_values_to_not_be_null", "key_id"),
    }


def _courses(**overrides: object) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "course_id": ["c1", "c2", "c3"],
            "start_date": [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)],
            "end_date": [date(2024, 9, 1), None, date(2024, 12, 1)],
            "completed": [True, None, False],
        }
    )
    return frame.with_columns(**{k: pl.Series(v) for k, v in overrides.items()})


def test_courses_suites() -> None:
    keys, completion = ingest.COURSES
    assert (keys.blocking, completion.blocking) == (True, False)

    assert all(o.success for o in run_suites(_courses(), ingest.COURSES))
    assert not run_suite(_courses(course_id=["c1", "c1", "c3"]), keys).success
    assert not run_suite(_courses(start_date=[None, date(2024, 2, 1), None]), keys).success
    ongoing_but_completed = run_suite(_courses(completed=[True, True, False]), completion)
    ended_without_flag = run_suite(_courses(completed=[None, None, False]), completion)
    assert [e.unexpected_count for e in ongoing_but_completed.failed()] == [1]
    assert [e.unexpected_count for e in ended_without_flag.failed()] == [1]


@pytest.mark.parametrize(
    ("counts", "passed"), [((10, 7, 2, 1), True), ((10, 7, 2, 0), False), ((10, 8, 2, 1), False)]
)
def test_conservation_check(counts: tuple[int, int, int, int], passed: bool) -> None:
    result = ingest.conservation_check(*counts, asset_key="validated_rows")

    assert result.passed is passed
    assert result.check_name == names.ROW_CONSERVATION
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["unexpected_count"].value == (0 if passed else 1)
    assert ingest.conservation_spec("validated_rows").blocking


def test_conservation_check_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        ingest.conservation_check(1, -1, 2, 0)


# --- linkage ------------------------------------------------------------------------------------------------


def _panel(**overrides: object) -> pl.DataFrame:
    values = {
        "person_id": [1, 1, 2],
        "month": [date(2024, 1, 1), date(2024, 2, 1), date(2024, 1, 1)],
        "employed": [0, 1, 0],
        "enrolled": [0, 0, 1],
        "edu_level": [0, 3, 8],
    }
    values |= {c: [0.0, 0.5, 1.0] for c in linkage.SHARE_COLUMNS}
    values |= {c: [0, 2, 1] for c in linkage.COUNT_COLUMNS}
    values["earnings"] = [0.0, 100.0, 0.0]
    frame = pl.DataFrame(values).select(OUTCOME_PANEL.names()).cast(dict(OUTCOME_PANEL))
    return frame.with_columns(**{k: pl.Series(v).cast(OUTCOME_PANEL[k]) for k, v in overrides.items()})


@pytest.mark.parametrize(
    ("overrides", "failing"),
    [
        ({}, set()),
        ({"month": [date(2024, 1, 1)] * 3}, {names.OUTCOME_PANEL_KEYS}),
        ({"person_id": [1, None, 2]}, {names.OUTCOME_PANEL_KEYS}),
        ({"self_support": [0.0, 1.2, 0.3]}, {names.OUTCOME_PANEL_VALUES}),
        ({"bed_days": [0, -1, 0]}, {names.OUTCOME_PANEL_VALUES}),
        ({"edu_level": [0, 9, 1]}, {names.OUTCOME_PANEL_VALUES}),
        ({"employed": [0, 2, 1]}, {names.OUTCOME_PANEL_VALUES}),
    ],
)
def test_outcome_panel_suites(overrides: dict[str, object], failing: set[str]) -> None:
    outcomes = run_suites(_panel(**overrides), linkage.OUTCOME_PANEL)

    assert {o.suite for o in outcomes if not o.success} == failing


def test_person_index_suite() -> None:
    (suite,) = linkage.PERSON_INDEX
    good = pl.DataFrame({"pseudonym": ["a" * 64, "b" * 64], "person_id": [1, 2]})

    assert suite.blocking and run_suite(good, suite).success
    assert not run_suite(good.with_columns(person_id=pl.lit(1)), suite).success
    assert not run_suite(good.with_columns(pseudonym=pl.lit("a" * 64)), suite).success


def test_person_index_results_are_exact_on_the_integer_prefix_path() -> None:
    digest = lambda head, tail: head + tail * (64 - len(head))  # noqa: E731  (synthetic 64-hex pseudonyms)
    ok = pl.DataFrame({"pseudonym": [digest("0" * 15 + "a", "1"), digest("1" * 15, "2")],
                       "person_id": [1, 2]})
    assert all(r.passed for r in linkage.person_index_results(ok))
    # distinct pseudonyms that share their 60-bit prefix: the fast check fails, the full strings decide
    collision = pl.DataFrame({"pseudonym": [digest("a" * 15 + "1", "3"), digest("a" * 15 + "2", "4")],
                              "person_id": [1, 2]})
    assert all(r.passed for r in linkage.person_index_results(collision))
    duplicate = pl.DataFrame({"pseudonym": [digest("b" * 15, "5")] * 2, "person_id": [1, 2]})
    (result,) = linkage.person_index_results(duplicate)
    assert not result.passed and result.check_name == names.PERSON_INDEX_UNIQUE
    # other formats: the full-string suite
    not_hex = pl.DataFrame({"pseudonym": ["x-1", "x-1"], "person_id": [1, 2]})
    assert not linkage.person_index_results(not_hex)[0].passed


def test_link_rate_check() -> None:
    rates = pl.DataFrame({"site": ["a", "b"], "participants": [50, 50], "linked": [50, 44]})

    low = linkage.link_rate_check(rates)
    assert (low.passed, low.severity, low.metadata["unexpected_count"].value) == (
        False,
        dg.AssetCheckSeverity.WARN,
        6,
    )
    assert linkage.link_rate_check(rates, minimum=0.9).passed
    assert linkage.link_rate_check(rates.drop("linked")).metadata["reason"].value == "missing_column"
    assert linkage.LINK_RATE_SPEC.asset_key == low.asset_key == dg.AssetKey("link_rate")


# --- effects ------------------------------------------------------------------------------------------------


def test_balance_suite_warns() -> None:
    (suite,) = effects.BALANCE
    table = pl.DataFrame({"covariate": ["age", "sex"], "smd_before": [0.5, 0.3], "smd_after": [0.05, -0.09]})

    assert not suite.blocking
    assert run_suite(table, suite).success
    assert not run_suite(table.with_columns(smd_after=pl.Series([0.05, -0.1])), suite).success


@pytest.mark.parametrize(
    ("row", "passes"),
    [
        ({"se": 0.1, "ci_lower": -0.3, "ci_upper": 0.1}, True),
        # se 0 is allowed: an outcome constant in the window
        ({"se": -0.1, "ci_lower": -0.3, "ci_upper": 0.1}, False),
        ({"se": 0.1, "ci_lower": -0.05, "ci_upper": 0.1}, False),
        ({"se": 0.1, "ci_lower": -0.3, "ci_upper": -0.2}, False),
    ],
)
def test_estimate_suites(row: dict[str, float], passes: bool) -> None:
    did = pl.DataFrame([{"estimator": "matched DiD", "estimate": -0.1, **row}])
    att = did.rename({"estimate": "att"})

    assert run_suite(did, effects.ESTIMATES[0]).success is passes
    assert run_suite(att, effects.GROUP_TIME[0]).success is passes


def test_every_check_name_is_unique_and_comes_from_names() -> None:
    suites: list[Suite] = [
        *ingest.RAW_SUBMISSION,
        *ingest.VALIDATED_ROWS,
        *ingest.PSEUDONYMISED,
        *ingest.COURSES,
        *linkage.PERSON_INDEX,
        *linkage.OUTCOME_PANEL,
        *effects.BALANCE,
        *effects.ESTIMATES,
        *effects.GROUP_TIME,
        *(s for group in registers.REGISTERS.values() for s in group),
    ]
    declared = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    check_names = [s.name for s in suites]

    assert len(check_names) == len(set(check_names))
    assert all(n in declared or n.endswith(("_schema", "_values")) for n in check_names)
    assert len(check_specs("x", suites)) == len(suites)
