from __future__ import annotations

import io
import math
from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from analysis.publish.workbook import (
    CSV_CONVENTION,
    published_csv_bytes,
    read_published_csv,
    workbook_bytes,
)


def _estimates() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "Outcome": ["Share of months self-supporting", "Earnings, DKK per month", '=HYPERLINK("x")'],
            "unit_code": ["pp", "dkk", "rate"],
            "Estimate": [4.3, -35.0, -0.0],
            "Participants": [212, 1239, None],
            "p": [0.032, float("nan"), 0.5],
            "Start": [date(2024, 1, 1), date(2025, 4, 1), None],
            "Significant": [True, False, None],
        }
    )


def _book(content: bytes):
    return load_workbook(io.BytesIO(content))


def test_cells_stay_numbers_with_the_format_of_their_unit():
    content = workbook_bytes(
        {"estimates": _estimates()},
        units={"estimates": {"Estimate": "@unit_code", "Participants": "count", "p": "p_value"}},
        descriptions={"estimates": "Pooled effects"},
    )
    sheet = _book(content)["estimates"]
    assert [c.value for c in sheet[1]] == list(_estimates().columns)
    estimate = [sheet.cell(row=r, column=3) for r in (2, 3, 4)]
    assert [c.value for c in estimate] == [4.3, -35.0, 0]
    assert all(isinstance(c.value, int | float) for c in estimate)
    assert [c.number_format for c in estimate] == ["0.0", "#,##0", "0.000"]
    assert math.copysign(1.0, estimate[2].value) == 1.0  # -0.0 written as 0
    count = sheet.cell(row=3, column=4)
    assert count.value == 1239 and count.number_format == "#,##0"
    assert sheet.cell(row=4, column=4).value is None
    assert sheet.cell(row=3, column=5).value is None  # NaN: an empty cell
    assert sheet.cell(row=2, column=5).number_format == "0.000"
    start = sheet.cell(row=2, column=6)
    assert start.value.date() == date(2024, 1, 1) and start.number_format == "yyyy-mm-dd"
    assert sheet.cell(row=2, column=7).value is True
    assert sheet.freeze_panes == "A2"


def test_text_is_never_a_formula():
    sheet = _book(workbook_bytes({"estimates": _estimates()}))["estimates"]
    cell = sheet.cell(row=4, column=1)
    assert cell.value == '\'=HYPERLINK("x")' and cell.data_type == "s"


def test_the_about_sheet_lists_sheets_units_and_the_csv_convention():
    book = _book(
        workbook_bytes(
            {"estimates": _estimates(), "flow": pl.DataFrame({"Stage": ["Courses"]})},
            descriptions={"estimates": "Pooled effects", "flow": "Sample flow"},
        )
    )
    assert book.sheetnames == ["About", "estimates", "flow"]
    about = [[c.value for c in row] for row in book["About"].iter_rows()]
    assert ["estimates", "Pooled effects"] in about and ["flow", "Sample flow"] in about
    assert ["CSV", CSV_CONVENTION] in about
    assert any(row[0] == "pp" and "percentage points" in row[1] for row in about)


def test_the_workbook_is_byte_identical_on_rerun():
    sheets = {"estimates": _estimates()}
    assert workbook_bytes(sheets) == workbook_bytes(sheets)


def test_control_characters_are_dropped_not_fatal():
    sheet = _book(workbook_bytes({"t": pl.DataFrame({"Text": ["bad\x00\x07 cell"]})}))["t"]
    assert sheet.cell(row=2, column=1).value == "bad cell"


@pytest.mark.parametrize(
    ("sheets", "units", "message"),
    [
        ({"a" * 40: pl.DataFrame({"x": [1]}), "a" * 35: pl.DataFrame({"x": [1]})}, None, "distinct"),
        ({"t": pl.DataFrame({"x": [1.0]})}, {"t": {"x": "furlongs"}}, "unknown unit"),
        ({"t": pl.DataFrame({"x": [1.0]})}, {"t": {"y": "pp"}}, "lacks"),
        ({"t": pl.DataFrame({"x": [1.0]})}, {"t": {"x": "@unit"}}, "unit column"),
        ({"t": pl.DataFrame({"x": [1.0]})}, {"u": {"x": "pp"}}, "not a sheet"),
        ({"''": pl.DataFrame({"x": [1.0]})}, None, "empty"),
    ],
)
def test_bad_requests_say_what_to_fix(sheets, units, message):
    with pytest.raises(ValueError, match=message):
        workbook_bytes(sheets, units=units)


def test_csv_uses_semicolons_and_decimal_commas_and_round_trips():
    frame = pl.DataFrame(
        {
            "Outcome": ["Share; of months", 'Earnings "DKK"', "=cmd"],
            "Estimate": [4.3, -35.25, -0.0],
            "Participants": [212, 1239, None],
            "Start": [date(2024, 1, 1), None, date(2026, 7, 1)],
        }
    )
    content = published_csv_bytes(frame)
    assert content.startswith(b"\xef\xbb\xbf")
    lines = content.decode("utf-8-sig").splitlines()
    assert lines[0] == "Outcome;Estimate;Participants;Start"
    assert lines[1] == '"Share; of months";4,300000;212;2024-01-01'
    assert lines[2] == '"Earnings ""DKK""";-35,250000;1239;'
    assert lines[3] == "'=cmd;0,000000;;2026-07-01"  # formula escaped, no negative zero
    back = read_published_csv(content)
    assert back["Estimate"].to_list() == [4.3, -35.25, 0.0]
    assert back["Participants"].to_list() == [212, 1239, None]
    assert back["Start"].to_list() == [date(2024, 1, 1), None, date(2026, 7, 1)]
    assert back["Outcome"].to_list() == ["Share; of months", 'Earnings "DKK"', "'=cmd"]


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=20),
    text=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
        min_size=1,
        max_size=20,
    ),
)
def test_csv_round_trips_numbers_to_the_written_precision(values, text):
    n = min(len(values), len(text))
    frame = pl.DataFrame({"value": values[:n], "label": [t or "x" for t in text[:n]]})
    back = read_published_csv(published_csv_bytes(frame))
    assert back["value"].cast(pl.Float64).to_list() == pytest.approx(
        [round(v, 6) for v in values[:n]], abs=1e-6
    )
    assert back.height == n
