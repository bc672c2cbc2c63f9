"""The steward view's general version: one masking rule for messages and file names, and the inbox account."""

import polars as pl

from analysis.publish.steward_view import feedback_sheets, render_steward_page, steward_tables
from analysis.schema import INBOX_ENTRIES
from pipelines.audit import cpr_like


def _tables(message: str, filename: str = "a.csv", **extra):
    q = pl.DataFrame({"source_row": [3], "cpr": ["610190 1238"], "reasons": [["cpr_wrong_length"]], "message": [message],
                      "quarter": ["2024Q1"], "site": ["aarhus"], "filename": [filename], "superseded": [False]})
    stats = pl.DataFrame({"site": ["aarhus"], "quarter": ["2024Q1"], "filename": [filename], "received": ["2024-04-02"],
                          "rows_in": [10], "clean": [9], "quarantined": [1], "duplicates": [0], "superseded": [False]})
    checks = pl.DataFrame(schema={"asset": pl.String, "check": pl.String, "partition": pl.String, "passed": pl.Boolean,
                                  "severity": pl.String, "description": pl.String, "unexpected_count": pl.Int64})
    return steward_tables(q, stats, checks, restricted=False, **extra)


def test_spaced_and_partial_cpr_numbers_are_masked_completely() -> None:
    for value, shape in (("610190 1238", "XXXXXX XXXX"), ("690489-33", "XXXXXX-XX"), ("999999-99995", "XXXXXX-XXXXX")):
        tables = _tables(f"Row 3: CPR '{value}' is not a CPR number.")
        assert tables.rows["message"][0] == f"Row 3: CPR '{shape}' is not a CPR number.", value
    page = render_steward_page(_tables("CPR '610190 1238'"), restricted=False, generated_at="t")
    assert "610190" not in page and cpr_like(page) == []


def test_a_cpr_in_a_file_name_is_masked_in_every_table() -> None:
    tables = _tables("ok", filename="esbjerg_6701901236.csv")
    assert set(tables.summary["filename"]) == set(tables.rows["filename"]) == {"esbjerg_XXXXXXXXXX.csv"}


def test_the_inbox_account_is_part_of_the_steward_view() -> None:
    entries = pl.DataFrame([("misc/", None, None, "not_a_quarter_folder", False, "not a quarter", "Move it."),
                            ("2024Q1/x_6701901236.csv", "2024Q1", None, "unknown_site", False, "no site", "Rename.")],
                           schema=INBOX_ENTRIES, orient="row")
    tables = _tables("ok", inbox=entries)
    assert tables.inbox["entry"].to_list() == ["misc/", "2024Q1/x_XXXXXXXXXX.csv"]
    page = render_steward_page(tables, restricted=False, generated_at="t")
    assert '<section id="inbox">' in page and "misc/" in page and "Move it." in page
    assert feedback_sheets(tables, "aarhus")  # the per-site workbook still builds
