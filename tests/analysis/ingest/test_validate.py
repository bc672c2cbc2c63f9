from datetime import date

import polars as pl
import pytest

from analysis.ingest.validate import conservation_ok, validate_rows
from analysis.schema import QUARANTINE_REASONS
from pipelines.configuration import ConfigDir

CODES = ConfigDir().table("delmaalgrupper")
GOOD = {"cpr": "610190-1235", "start_date": "01-02-2024", "end_date": "", "delmaalgruppe": "GRL",
        "completed": ""}


def _validate(*rows: dict, today: date = date(2024, 12, 31)):
    frame = pl.DataFrame(
        [{"source_row": i + 1, **{k: (v or None) for k, v in r.items()}} for i, r in enumerate(rows)],
        schema={"source_row": pl.Int64, **{c: pl.String for c in GOOD}},
    )
    result = validate_rows(frame, quarter="2024Q4", site="aarhus", codes=CODES, today=today)
    assert conservation_ok(result)
    return result


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cpr": ""}, "missing_required_field"),
        ({"start_date": ""}, "missing_required_field"),
        ({"delmaalgruppe": ""}, "missing_required_field"),
        ({"cpr": "6101901"}, "cpr_wrong_length"),
        ({"cpr": "611390-1235"}, "cpr_invalid_date"),
        ({"start_date": "primo februar"}, "date_unparseable"),
        ({"end_date": "31-02-2024"}, "date_unparseable"),
        ({"end_date": "01-0-2024"}, "date_unparseable"),
        ({"start_date": "-2024-01-15"}, "date_unparseable"),  # "%Y" reads year -2024 (hypothesis found it)
        ({"start_date": "0024-01-15"}, "date_unparseable"),
        ({"end_date": "01-01-2024", "completed": "Nej"}, "end_before_start"),
        ({"start_date": "01-02-2025"}, "start_in_future"),
        ({"end_date": "01-06-2025", "completed": "Ja"}, "course_too_long"),
        ({"delmaalgruppe": "ZZ9"}, "unknown_delmaalgruppe"),
        # expired code
        ({"delmaalgruppe": "UNG", "start_date": "01-08-2025", "end_date": ""}, "unknown_delmaalgruppe"),
        # starts before the code's valid_from
        ({"start_date": "15-12-2023", "end_date": ""}, "unknown_delmaalgruppe"),
        ({"completed": "måske", "end_date": "01-10-2024"}, "completed_unparseable"),
        ({"cpr": "I alt", "start_date": "12"}, "not_a_data_row"),
    ],
)
def test_each_quarantine_reason(change: dict, reason: str) -> None:
    result = _validate({**GOOD, **change},
                       today=date(2025, 12, 31) if "UNG" in str(change) else date(2024, 12, 31))
    assert result.clean.height == 0 and result.quarantine.height == 1
    row = result.quarantine.row(0, named=True)
    assert reason in row["reasons"] and reason in QUARANTINE_REASONS
    assert row["message"].startswith("Data row 1: ")
    assert ("resend" in row["message"]) is (reason != "not_a_data_row")  # a totals row is removed, not resent


@pytest.mark.parametrize(
    ("text", "expected"),
    [("01-02-2024", date(2024, 2, 1)), ("01.02.2024", date(2024, 2, 1)), ("2024-02-01", date(2024, 2, 1)),
     ("01/02/2024", date(2024, 2, 1)), ("45323", date(2024, 2, 1)), ("2024-02-01T00:00:00", date(2024, 2, 1)),
     ("01-02-24", date(2024, 2, 1))],
)
def test_date_formats(text: str, expected: date) -> None:
    assert _validate({**GOOD, "start_date": text}).clean["start_date"][0] == expected


@pytest.mark.parametrize(("text", "flag"), [("Ja", True), ("J", True), ("1", True), ("x", True),
                                            ("Nej", False), ("N", False), ("0", False), ("", False)])
def test_completed_spellings(text: str, flag: bool) -> None:
    result = _validate({**GOOD, "end_date": "01-10-2024", "completed": text})
    assert result.clean["completed"][0] is flag


def test_ongoing_course_has_no_completion_and_lower_case_codes_are_accepted() -> None:
    row = _validate({**GOOD, "delmaalgruppe": " grl "}).clean.row(0, named=True)
    assert row["completed"] is None and row["end_date"] is None and row["delmaalgruppe"] == "GRL"


def test_exact_duplicates_are_removed_and_conflicting_duplicates_quarantined() -> None:
    result = _validate(GOOD, GOOD, {**GOOD, "cpr": "710285-2346"},
                       {**GOOD, "cpr": "710285-2346", "delmaalgruppe": "OVG"})
    assert result.exact_duplicates_removed == 1
    assert result.clean.height == 1
    assert result.quarantine["reasons"].to_list() == [["duplicate_in_file"], ["duplicate_in_file"]]
    assert result.rows_in == 4


def test_repaired_and_mod11_rows_stay_clean_with_a_warning() -> None:
    # "0101900001" (repaired) fails modulus 11 and is born 1990, so it cannot be a real pre-2007 number.
    result = _validate({**GOOD, "cpr": "101900001"})
    assert result.clean["warnings"][0] == "cpr_repaired_leading_zero,cpr_mod11_failed"


def test_missing_columns_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs columns"):
        validate_rows(pl.DataFrame({"cpr": ["1"]}), quarter="q", site="s", codes=CODES,
                      today=date(2024, 1, 1))


def test_the_course_length_rule_is_the_constant_the_texts_quote() -> None:
    from analysis.ingest import reasons, rules

    start = date(2024, 2, 1)
    at_limit = date(start.year + (start.month + rules.MAX_COURSE_MONTHS - 1) // 12,
                    (start.month + rules.MAX_COURSE_MONTHS - 1) % 12 + 1, 1)
    ok = _validate({**GOOD, "end_date": at_limit.strftime("%d-%m-%Y"), "completed": "Ja"},
                   today=date(2025, 12, 31))
    over = _validate({**GOOD, "end_date": "02-" + at_limit.strftime("%m-%Y"), "completed": "Ja"},
                     today=date(2025, 12, 31))
    assert ok.clean.height == 1 and over.quarantine["reasons"].to_list() == [["course_too_long"]]
    assert rules.COURSE_MONTHS == 9
    assert rules.MAX_COURSE_MONTHS == rules.COURSE_MONTHS + rules.COURSE_TOLERANCE_MONTHS
    for language in reasons.LANGUAGES:
        rule = reasons.reason_texts(language)["course_too_long"].rule
        assert f"{rules.COURSE_MONTHS} " in rule and f"{rules.MAX_COURSE_MONTHS} " in rule
    assert "9 months and up to 12 are accepted" in over.quarantine["message"][0]


def test_quarantine_keeps_where_the_site_sees_the_row_and_the_message_says_it() -> None:
    frame = pl.DataFrame({"source_row": [1, 2, 3], "file_line": [2, 4, 5], "sheet": [None, None, None],
                          "sheet_row": [None, None, None],
                          "cpr": ["610190-1235", "710285-2346", "710285-2346"],
                          "start_date": ["01-02-2024", "31-02-2024", "01-03-2024"],
                          "end_date": [None, None, None],
                          "delmaalgruppe": ["GRL", "GRL", "GRL"], "completed": [None, None, None]},
                         schema_overrides={"sheet": pl.String, "sheet_row": pl.Int64, "end_date": pl.String,
                                           "completed": pl.String})
    result = validate_rows(frame, quarter="2024Q1", site="aarhus", codes=CODES, today=date(2024, 3, 31))
    row = result.quarantine.row(0, named=True)
    found = (row["file_line"], row["source_row"], row["start_parsed"], row["cpr_norm"])
    assert found == (4, 2, None, "7102852346")
    assert row["message"].startswith("Line 4: The start date '31-02-2024' is not a date that exists")
    assert result.clean.select("source_row", "file_line").rows() == [(1, 2), (3, 5)]


def test_duplicates_name_the_other_lines() -> None:
    frame = pl.DataFrame({"source_row": [1, 2, 3], "file_line": [2, 3, 7], "cpr": ["710285-2346"] * 3,
                          "start_date": ["01-02-2024"] * 3, "end_date": [None] * 3,
                          "delmaalgruppe": ["GRL", "OVG", "PSY"], "completed": [None] * 3},
                         schema_overrides={"end_date": pl.String, "completed": pl.String})
    result = validate_rows(frame, quarter="2024Q1", site="aarhus", codes=CODES, today=date(2024, 3, 31))
    assert result.quarantine["duplicate_lines"].to_list() == [[3, 7], [2, 7], [2, 3]]
    assert "also appear on lines 3 and 7" in result.quarantine["message"][0]
