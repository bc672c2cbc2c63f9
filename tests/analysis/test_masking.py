"""One masking rule for every general output: CPR numbers with any separator and every run of 6+ digits."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.masking import is_masked, mask_column, mask_frame, mask_text
from pipelines.audit import cpr_like


@pytest.mark.parametrize(("text", "masked"), [
    ("610190-1238", "999999-9999"),
    ("610190 1238", "999999 9999"),  # a space: the old regex left it visible
    ("610190\u20131238", "999999\u20139999"),  # an en dash
    ("61 01 90 12 38", "99 99 99 99 99"),
    ("6101901238", "9999999999"),
    ("101901238", "999999999"),  # nine digits (a dropped leading zero)
    ("690489-33", "999999-99"),  # partial: no part stays visible
    ("999999-99995", "999999-99999"),  # eleven digits
    ("69048933123", "99999999999"),
    ("esbjerg_6701901236.csv", "esbjerg_9999999999.csv"),
    ("cpr=6101901238;", "cpr=9999999999;"),
])
def test_cpr_shaped_text_is_masked_to_its_shape(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert cpr_like(mask_text(text)) == []


@pytest.mark.parametrize("text", [
    "Row 12: start '2024-01-31'; end '31.01.2024'", "aarhus_rettet.xlsx", "2024Q1", "12345 rows", "version 3",
])
def test_dates_and_short_numbers_are_kept(text: str) -> None:
    assert mask_text(text) == text and is_masked(text)


def test_none_and_frames() -> None:
    assert mask_text(None) is None
    frame = pl.DataFrame({"message": ["Row 1: CPR '610190 1238'", None], "rows": [1, 2]})
    assert frame.select(mask_column("message"))["message"].to_list() == ["Row 1: CPR '999999 9999'", None]
    assert mask_frame(frame)["message"][0] == "Row 1: CPR '999999 9999'" and mask_frame(frame)["rows"].to_list() == [1, 2]


@given(st.text(alphabet="0123456789 -./_\u2013abc", max_size=40))
def test_nothing_cpr_shaped_survives(text: str) -> None:
    out = mask_text(text)
    assert len(out) == len(text)
    assert cpr_like(out) == [], (text, out)
    assert mask_text(out) == out  # idempotent
