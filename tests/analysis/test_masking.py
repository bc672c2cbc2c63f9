"""One masking rule for every general output: CPR numbers with any separator and every run of 6+ digits."""

import re

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.masking import is_masked, mask_column, mask_frame, mask_text
from expectations.ingest import CPR_IN_TEXT
from pipelines.audit import cpr_like


@pytest.mark.parametrize(("text", "masked"), [
    ("610190-1238", "XXXXXX-XXXX"),
    ("610190 1238", "XXXXXX XXXX"),  # a space: the old regex left it visible
    ("610190\u20131238", "XXXXXX\u2013XXXX"),  # an en dash
    ("61 01 90 12 38", "XX XX XX XX XX"),
    ("6101901238", "XXXXXXXXXX"),
    ("101901238", "XXXXXXXXX"),  # nine digits (a dropped leading zero)
    ("690489-33", "XXXXXX-XX"),  # partial: no part stays visible
    ("999999-99995", "XXXXXX-XXXXX"),  # eleven digits
    ("69048933123", "XXXXXXXXXXX"),
    ("esbjerg_6701901236.csv", "esbjerg_XXXXXXXXXX.csv"),
    ("cpr=6101901238;", "cpr=XXXXXXXXXX;"),
])
def test_cpr_shaped_text_is_masked_to_its_shape(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert cpr_like(mask_text(text)) == []
    assert not re.search(CPR_IN_TEXT, mask_text(text))  # nor does the blocking check mistake the mask for one


@pytest.mark.parametrize("text", [
    "Row 12: start '2024-01-31'; end '31.01.2024'", "aarhus_rettet.xlsx", "2024Q1", "12345 rows", "version 3",
])
def test_dates_and_short_numbers_are_kept(text: str) -> None:
    assert mask_text(text) == text and is_masked(text)


def test_none_and_frames() -> None:
    assert mask_text(None) is None
    frame = pl.DataFrame({"message": ["Row 1: CPR '610190 1238'", None], "rows": [1, 2]})
    assert frame.select(mask_column("message"))["message"].to_list() == ["Row 1: CPR 'XXXXXX XXXX'", None]
    assert (mask_frame(frame)["message"][0] == "Row 1: CPR 'XXXXXX XXXX'"
            and mask_frame(frame)["rows"].to_list() == [1, 2])


@given(st.text(alphabet="0123456789 -./_\u2013abc", max_size=40))
def test_nothing_cpr_shaped_survives(text: str) -> None:
    out = mask_text(text)
    assert len(out) == len(text)
    assert cpr_like(out) == [], (text, out)
    assert mask_text(out) == out  # idempotent
