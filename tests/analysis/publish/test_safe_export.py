"""Exports that one site's odd bytes cannot break."""

import io

import polars as pl
from openpyxl import load_workbook

from analysis.publish.safe_export import REPLACEMENT, csv_bytes, xlsx_bytes, xlsx_text


def test_control_characters_never_stop_a_workbook() -> None:
    frame = pl.DataFrame(
        {
            "message": ["ok", "NUL\x00 here", "esc\x1b and bell\x07", "tab\tand newline\n kept"],
            "rows": [1, 2, 3, 4],
        }
    )
    content = xlsx_bytes({"Rækker": frame, "Oversigt": frame.head(1)})
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    values = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert values == ["ok", f"NUL{REPLACEMENT} here", f"esc{REPLACEMENT} and bell{REPLACEMENT}",
                      "tab\tand newline\n kept"]
    assert xlsx_text("plain") == "plain"
    assert xlsx_bytes({"Rækker": frame}) == xlsx_bytes({"Rækker": frame})  # still byte-identical on rerun
    assert b"NUL" in csv_bytes(frame)
