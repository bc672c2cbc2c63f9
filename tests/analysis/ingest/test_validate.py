from datetime import date

import polars as pl
import pytest

from analysis.ingest.validate import conservation_ok, validate_rows
from analysis.schema import QUARANTINE_REASONS
from pipelines.configuration import ConfigDir

CODES = ConfigDir().table("delmaalgrupper")
GOOD = {"cpr": "610190-1235", "start_date": "01-02-2024", "end_date": "", "delmaalgruppe": "GRL", "completed": ""}


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
        ({"delmaalgruppe": "UNG", "start_date": "01-08-2025", "end_date": ""}, "unknown_delmaalgruppe"),  # expired code
        ({"start_date": "15-12-2023", "end_date": ""}, "unknown_delmaalgruppe"),  # starts before the code's valid_from
        ({"completed": "måske", "end_date": "01-10-2024"}, "completed_unparseable"),
        ({"cpr": "I alt", "start_date": "12"}, "not_a_data_row"),
    ],
)
def test_each_quarantine_reason(change: dict, reason: str) -> None:
    result = _validate({**GOOD, **change}, today=date(2025, 12, 31) if "UNG" in str(change) else date(2024, 12, 31))
    assert result.clean.height == 0 and result.quarantine.height == 1
    row = result.quarantine.row(0, named=True)
    assert reason in row["reasons"] and reason in QUARANTINE_REASONS
    assert row["message"].startswith("Row 1:") and "resend" in row["message"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("01-02-2024", date(2024, 2, 1)), ("01.02.2024", date(2024, 2, 1)), ("2024-02-01", date(2024, 2, 1)),
     ("01/02/2024", date(2024, 2, 1)), ("45323", date(2024, 2, 1)), ("2024-02-01T00:00:00", date(2024, 2, 1)),
     ("01-02-24", date(2024, 2, 1))],
)
def test_date_formats(text: str, expected: date) -> None:
    assert _validate({**GOOD, "start_date": text}).clean["start_date"][0] == expected


@pytest.mark.parametrize(("text", "flag"), [("Ja", True), ("J", True), ("1", True), ("x", True), ("Nej", False), ("N", False), ("0", False), ("", False)])
def test_completed_spellings(text: str, flag: bool) -> None:
    result = _validate({**GOOD, "end_date": "01-10-2024", "completed": text})
    assert result.clean["completed"][0] is flag


def test_ongoing_course_has_no_completion_and_lower_case_codes_are_accepted() -> None:
    row = _validate({**GOOD, "delmaalgruppe": " grl "}).clean.row(0, named=True)
    assert row["completed"] is None and row["end_date"] is None and row["delmaalgruppe"] == "GRL"


def test_exact_duplicates_are_removed_and_conflicting_duplicates_quarantined() -> None:
    result = _validate(GOOD, GOOD, {**GOOD, "cpr": "710285-2346"}, {**GOOD, "cpr": "710285-2346", "delmaalgruppe": "OVG"})
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
        validate_rows(pl.DataFrame({"cpr": ["1"]}), quarter="q", site="s", codes=CODES, today=date(2024, 1, 1))
