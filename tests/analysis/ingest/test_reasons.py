"""Reason texts: why a date is not a date, which cell, and advice that fits the failure, in both languages."""

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from language import english_in

from analysis.ingest import reasons, rules
from analysis.ingest.validate import parse_dates, validate_rows
from analysis.schema import QUARANTINE_REASONS
from pipelines.configuration import ConfigDir

CODES = ConfigDir().table("delmaalgrupper")


@pytest.mark.parametrize(
    ("text", "kind", "suggestion"),
    [
        ("31-02-2024", "impossible_day", None),
        ("2024-02-30", "impossible_day", None),
        ("29-02-2023", "impossible_day", None),
        ("15-13-2024", "impossible_month", None),
        ("02/15/2024", "month_first", date(2024, 2, 15)),
        ("31-02-24", "two_digit_year", None),
        ("15-03-0024", "bad_year", None),
        ("15-03-124", "bad_year", None),
        ("12345", "number", None),
        ("15032024", "no_separators", date(2024, 3, 15)),
        ("primo 12/2025", "unknown_format", None),
        ("15-03-2024?", "unknown_format", date(2024, 3, 15)),
        ("2024/03/15", "unknown_format", date(2024, 3, 15)),
    ],
)
def test_an_unreadable_date_is_classified(text: str, kind: str, suggestion: date | None) -> None:
    assert pl.DataFrame({"d": [text]}).select(parse_dates("d")).item() is None  # the validator rejects it
    issue = reasons.date_issue(text)
    assert issue.kind == kind and issue.suggestion == suggestion


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_text_gets_a_classification(text: str) -> None:
    kinds = {"impossible_day", "impossible_month", "month_first", "two_digit_year", "bad_year", "number",
             "no_separators", "unknown_format"}
    assert reasons.date_issue(text).kind in kinds


def _quarantined(**change) -> dict:
    good = {"source_row": 1, "file_line": 17, "cpr": "610190-1235", "start_date": "01-02-2024",
            "end_date": None, "delmaalgruppe": "GRL", "completed": None}
    frame = pl.DataFrame([{**good, **change}], schema={"source_row": pl.Int64, "file_line": pl.Int64,
                                                       **{c: pl.String for c in list(good)[2:]}})
    result = validate_rows(frame, quarter="2024Q4", site="aarhus", codes=CODES, today=date(2024, 12, 31))
    assert result.quarantine.height == 1
    return result.quarantine.row(0, named=True)


CHANGES = [{"cpr": None}, {"cpr": "6101901"}, {"cpr": "611390-1235"}, {"start_date": "primo februar"},
           {"end_date": "31-02-2024"}, {"end_date": "01-01-2024", "completed": "Nej"},
           {"start_date": "01-02-2025"}, {"end_date": "01-06-2025", "completed": "Ja"},
           {"delmaalgruppe": "ZZ9"}, {"start_date": "15-12-2023"},
           {"completed": "måske", "end_date": "01-10-2024"}, {"cpr": "I alt", "start_date": "12"},
           {"start_date": "31-02-24"}, {"start_date": "02/15/2024"}, {"start_date": "12345"}]


def test_every_reason_has_danish_and_english_texts_generated_for_it() -> None:
    for language in reasons.LANGUAGES:
        texts = reasons.reason_texts(language, codes=CODES)
        assert set(texts) == set(QUARANTINE_REASONS)
        assert all(t.label and t.rule and t.advice for t in texts.values())
    assert "DD-MM-ÅÅÅÅ, DD.MM.ÅÅÅÅ" in reasons.reason_texts("da")["date_unparseable"].rule
    rule = reasons.reason_texts("da")["cpr_invalid_date"].rule
    assert f"lagt {rules.CPR_REPLACEMENT_DAY_OFFSET} til" in rule


@pytest.mark.parametrize("change", CHANGES)
def test_the_danish_sentence_names_the_cell_and_holds_no_english(change: dict) -> None:
    row = _quarantined(**change)
    columns = reasons.Columns(("CPR-nr.", "Opstart", "Slutdato", "Målgruppe", "Gennemført"),
                              {"cpr": 0, "start_date": 1, "end_date": 2, "delmaalgruppe": 3, "completed": 4})
    text = reasons.row_text(row, language="da", columns=columns, codes=CODES, quarter_end=date(2024, 12, 31))
    assert text.message and text.advice and text.labels
    assert english_in(f"{text.labels} {text.message} {text.advice}") == [], text
    if row["reasons"] != ["not_a_data_row"]:
        assert "17" in text.cells and "celle" in text.message, text


def test_advice_differs_by_kind_of_date_failure() -> None:
    advice = {text: reasons.row_text(_quarantined(start_date=text), language="da").advice
              for text in ("31-02-2024", "primo februar", "31-02-24", "02/15/2024")}
    assert "formatet er i orden" in advice["31-02-2024"]
    assert "primo" in advice["primo februar"] and "formatet er i orden" not in advice["primo februar"]
    assert "firecifret årstal" in advice["31-02-24"]
    assert "15-02-2024" in advice["02/15/2024"]
    assert len(set(advice.values())) == 4


def test_locations_read_as_the_site_sees_them() -> None:
    assert reasons.location({"file_line": 17}, language="da") == "linje 17"
    assert reasons.location({"sheet": "Forløb", "sheet_row": 30}, language="da") == "arket 'Forløb', række 30"
    assert reasons.location({"source_row": 16}, language="en") == "data row 16"
    assert [reasons.column_letter(i) for i in (0, 25, 26, 27)] == ["A", "Z", "AA", "AB"]
