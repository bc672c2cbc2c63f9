"""Feedback across three quarters of deliveries with a correction: new, outstanding since when, corrected.

The deliveries (``tests/deliveries.py``) are read and validated by the real reader and rules; the scenario
table there says which row is which.
"""

import io
from datetime import UTC, datetime

import polars as pl
import pytest
from deliveries import (
    AARHUS_Q1,
    AARHUS_Q1_CORRECTED,
    AARHUS_Q2,
    AARHUS_Q3,
    CONFIG,
    DELIVERIES,
    KEY,
    ODENSE_Q1,
    ingest,
    settings,
    until,
)
from openpyxl import load_workbook

from analysis.publish.feedback import (
    FeedbackSettings,
    build_feedback,
    feedback_rounds,
    fingerprint,
    local_time,
    quarter_span,
)
from analysis.publish.feedback_text import describe
from analysis.publish.safe_export import xlsx_bytes
from analysis.publish.steward_view import SHEETS, feedback_sheets, steward_outputs
from pipelines.audit import cpr_like

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SETTINGS = settings()
ROUND_2 = "2024-07-01"  # after the 2024Q1 files, before the 2024Q2 ones
ROUND_3 = "2024-10-01"


@pytest.fixture(scope="module")
def rounds():
    """The feedback after each of the three rounds, run one round at a time with the memory carried over."""
    first = build_feedback(ingest(until(ROUND_2)), key=KEY, previous_state=None)
    second = build_feedback(ingest(until(ROUND_3)), key=KEY, previous_state=first.state)
    third = build_feedback(ingest(), key=KEY, previous_state=second.state)
    return first, second, third


def _row(feedback, cpr: str) -> dict | None:
    found = describe(feedback, language="da", restricted=True).rows.filter(pl.col("cpr") == cpr)
    return found.row(0, named=True) if found.height else None


def _status(feedback, kind: str, site: str) -> list[tuple[str, str, str]]:
    frame = {"conflict": feedback.conflicts, "unlinked": feedback.unlinked, "file": feedback.files}[kind]
    return sorted(frame.filter(pl.col("site") == site).select("quarter", "status", "since").rows())


def test_rounds_follow_the_deliveries_and_a_late_correction_belongs_to_the_running_round() -> None:
    schedule = feedback_rounds(ingest().received)
    aarhus = schedule.filter(pl.col("site") == "aarhus")
    assert aarhus["round"].to_list() == ["2024Q1", "2024Q2", "2024Q3"]
    assert aarhus["ends"].to_list() == ["2024-07-20T00:00:00+00:00", "2024-10-20T00:00:00+00:00", None]


def test_a_problem_is_new_then_outstanding_since_its_first_round_then_gone_when_corrected(rounds) -> None:
    first, second, third = rounds
    impossible, unknown_code = "710285-2346", "620190-1236"
    unreadable, two_digit = "630190-1237", "670190-1231"

    def said(feedback, cpr: str) -> tuple[str, str] | None:
        row = _row(feedback, cpr)
        return None if row is None else (row["status"], row["since"])

    assert said(first, impossible) == ("new", "2024Q1")
    assert said(second, impossible) == ("outstanding", "2024Q1")
    assert said(third, impossible) is None  # aarhus_rettet.csv corrected it: gone from the feedback
    assert said(third, unknown_code) == ("outstanding", "2024Q1")
    assert said(first, unreadable) is None and said(second, unreadable) == ("new", "2024Q2")
    assert said(third, unreadable) == ("outstanding", "2024Q2")
    assert said(third, two_digit) == ("new", "2024Q3")
    aarhus = third.overview.filter(pl.col("site") == "aarhus").row(0, named=True)
    assert (aarhus["round"], aarhus["new"], aarhus["outstanding"], aarhus["resolved"], aarhus["oldest"]) == (
        "2024Q3", 1, 3, 2, "2024Q1")  # resolved: the corrected row and the totals row the 2024Q3 file dropped
    resolved = third.state.filter((pl.col("site") == "aarhus") & (pl.col("round") == "2024Q3")
                                  & (pl.col("status") == "resolved"))
    assert sorted(resolved["kind"].to_list()) == ["file", "row"]


def test_conflicts_unlinked_and_file_problems_are_remembered_too(rounds) -> None:
    first, second, third = rounds
    assert _status(first, "conflict", "aarhus") == []
    assert _status(second, "conflict", "aarhus") == [("2024Q2", "new", "2024Q2")]  # start 15-01 became 20-01
    assert _status(third, "conflict", "aarhus") == [("2024Q3", "outstanding", "2024Q2")]
    assert _status(first, "unlinked", "odense") == [("2024Q1", "new", "2024Q1")]
    assert _status(third, "unlinked", "odense") == [("2024Q3", "outstanding", "2024Q1")]
    assert _status(second, "file", "aarhus") == [("2024Q2", "outstanding", "2024Q1")]  # the totals row, once
    assert _status(third, "file", "aarhus") == []  # the 2024Q3 file has none


def test_memory_is_deterministic_a_replayed_history_equals_round_by_round_and_a_rerun_changes_nothing(rounds):
    _, second, third = rounds
    replayed = build_feedback(ingest(), key=KEY, previous_state=None)
    assert replayed.state.equals(third.state)
    assert build_feedback(ingest(), key=KEY, previous_state=third.state).state.equals(third.state)
    # past rounds are kept as they were told: a later change of the data does not rewrite them
    told = second.state.filter(pl.col("round") < "2024Q3")
    assert third.state.filter(pl.col("round") < "2024Q3").equals(told)


def test_the_memory_holds_no_cpr_and_fingerprints_depend_on_the_key(rounds) -> None:
    _, _, third = rounds
    text = "\n".join(str(v) for row in third.state.rows() for v in row)
    assert cpr_like(text) == []
    assert "710285" not in text and "6201901236" not in text
    assert fingerprint(KEY, "a", "b") == fingerprint(KEY, "a", "b") != fingerprint(KEY[::-1], "a", "b")


def _line_holding(content: bytes, value: str) -> int:
    lines = content.decode("cp1252").replace("\r\n", "\n").split("\n")
    return next(i for i, line in enumerate(lines, start=1) if line.startswith(value + ";"))


def test_row_references_are_the_csv_line_and_the_excel_sheet_row_of_the_source_file(rounds) -> None:
    first, _, third = rounds
    files = {"aarhus.csv": {"2024Q1": AARHUS_Q1, "2024Q2": AARHUS_Q2, "2024Q3": AARHUS_Q3},
             "aarhus_rettet.csv": {"2024Q1": AARHUS_Q1_CORRECTED}}
    rows = describe(third, language="da", restricted=True).rows
    checked = 0
    for row in rows.filter(pl.col("filename").str.ends_with(".csv")).iter_rows(named=True):
        assert row["line"] == _line_holding(files[row["filename"]][row["quarter"]], row["cpr"]), row
        checked += 1
    assert checked == 3
    odense = describe(first, language="da", restricted=True).rows.filter(pl.col("site") == "odense")
    assert odense.select("filename", "sheet", "line", "cells").rows() == [("odense.xlsx", "Forløb", 3, "B3")]
    sheet = load_workbook(io.BytesIO(ODENSE_Q1))["Forløb"]  # not the first sheet
    assert sheet["A3"].value == odense["cpr"][0] and sheet["B3"].value == "2024-02-30"
    conflict = third.conflicts.filter(pl.col("site") == "aarhus")["courses"][0]
    assert '"file_line": 2' in conflict  # the conflicting course's row in the latest file: line 2 of each


def test_messages_name_the_cell_and_advice_fits_the_failure(rounds) -> None:
    _, second, third = rounds
    impossible = _row(second, "710285-2346")
    assert impossible["cells"] == "B3" and "celle B3 ('Startdato')" in impossible["message"]
    assert "februar 2024 har 29 dage" in impossible["message"]
    assert "formatet er i orden" in impossible["advice"]
    unknown_format = _row(third, "630190-1237")
    assert "'primo 05/2024'" in unknown_format["message"] and "primo" in unknown_format["advice"]
    assert "formatet er i orden" not in unknown_format["advice"]
    two_digit = _row(third, "670190-1231")
    assert "to cifre" in two_digit["message"] and "firecifret årstal" in two_digit["advice"]
    code = _row(third, "620190-1236")
    assert "'ZZ9'" in code["message"] and "celle D4" in code["message"]
    assert "GRL: Borger med grønlandsk" in code["advice"]


def test_the_general_version_masks_cpr_everywhere(rounds) -> None:
    _, _, third = rounds
    masked = describe(third, language="da", restricted=False)
    everything = "\n".join(str(v) for frame in (masked.rows, masked.conflicts, masked.unlinked, masked.files)
                           for row in frame.rows() for v in row)
    assert cpr_like(everything) == [] and "XXXXXX-XXXX" in everything
    assert "710285-2346" not in everything


def test_the_cover_sheet_says_what_is_new_outstanding_the_deadline_and_the_contact(rounds) -> None:
    _, _, third = rounds
    targets = pl.concat([CONFIG.table("monitoring_targets"), pl.DataFrame(
        [{"measure": "delivery_days", "scope": "aarhus", "delmaalgruppe": "*", "min": None, "max": "27",
          "unit": "days", "source": "test: aarhus has its own deadline"}])], how="diagonal")
    custom = settings(targets, contact="Mette Hansen, cti@example.dk", staff_language="da")
    sheets = feedback_sheets(third, describe(third, language="da", restricted=True), "aarhus", language="da",
                             restricted=True, settings=custom, generated_at="01-12-2026 kl. 10.00")
    cover = dict(sheets["Forside"].rows())
    assert cover["Nyt siden sidste tilbagemelding"] == "1 række (status 'Ny')"
    assert cover["Stadig udestående"].startswith("2 rækker og 1 forløbskonflikt")
    assert "1. kvartal 2024" in cover["Stadig udestående"]
    assert cover["Rettet siden sidste tilbagemelding"] == "1 række og 1 problem med filen – tak"
    assert cover["Frist for næste fil"] == ("Filen for 4. kvartal 2024 skal være modtaget senest "
                                           "27. januar 2025.")
    assert cover["Kontakt"] == "Mette Hansen, cti@example.dk"
    assert "sikker e-mail" in cover["CPR-numre"]
    assert SETTINGS.deadline("2025Q1", "aarhus").isoformat() == "2025-04-30"  # delivery_days 30
    assert custom.deadline("2025Q1", "odense").isoformat() == "2025-04-30"
    assert FeedbackSettings().deadline("2025Q1", "aarhus") is None


def test_a_recurring_totals_row_is_said_once_on_the_cover_not_per_row(rounds) -> None:
    _, second, _ = rounds
    sheets = feedback_sheets(second, describe(second, language="da", restricted=False), "aarhus",
                             language="da", restricted=False, settings=SETTINGS, generated_at="t")
    rows = sheets["Rækker der skal rettes"]
    assert not rows["Fejl"].str.contains("Sumrække").any() and rows.height == 3
    recurring = [text for topic, text in sheets["Forside"].rows() if topic.startswith("Gennemgående problem")]
    assert len(recurring) == 1 and "linje 4: 'I alt'" in recurring[0] and "2024K1" in recurring[0]


def test_the_english_variant_is_one_switch_away(rounds) -> None:
    _, _, third = rounds
    sheets = feedback_sheets(third, describe(third, language="en", restricted=False), "aarhus", language="en",
                             restricted=False, settings=SETTINGS, generated_at="t")
    assert list(sheets) == list(SHEETS["en"].values())
    assert sheets["Rows to correct"]["What is wrong"][0].startswith("The start date '31-02-24' in cell B3")


def _workbook_texts(content: bytes) -> list[str]:
    book = load_workbook(io.BytesIO(content))
    return [book.sheetnames[0], *book.sheetnames[1:]] + [
        str(cell.value) for sheet in book.worksheets for row in sheet.iter_rows() for cell in row
        if isinstance(cell.value, str)]


def test_the_danish_workbook_holds_no_english_and_the_check_would_catch_some(rounds) -> None:
    from language import english_in

    _, _, third = rounds
    names = ["kofoeds_skole", "aarhus_rettet", "aarhus", "odense", *{d[2] for d in DELIVERIES}]
    for site in ("aarhus", "odense"):
        for restricted in (False, True):
            sheets = feedback_sheets(third, describe(third, language="da", restricted=restricted), site,
                                     language="da", restricted=restricted, settings=SETTINGS,
                                     generated_at=local_time("2026-12-01T09:00:00+00:00", language="da"))
            texts = _workbook_texts(xlsx_bytes(sheets))
            found = [w for text in texts for w in english_in(text, allowed=names)]
            assert found == [], (site, found)
    english = feedback_sheets(third, describe(third, language="en", restricted=False), "aarhus",
                              language="en", restricted=False, settings=SETTINGS, generated_at="t")
    texts = _workbook_texts(xlsx_bytes(english))
    caught = {w.lower() for text in texts for w in english_in(text, allowed=names)}
    assert {"the", "date", "rows", "file"} <= caught
    assert english_in("Row 16: cpr_wrong_length. Please correct it and resend") == [
        "cpr_wrong_length", "Row", "Please", "correct", "it", "and", "resend"]


def test_danish_local_timestamps_and_quarter_ranges() -> None:
    assert local_time("2024-10-20T00:00:00+00:00", language="da") == "20-10-2024 kl. 02.00"
    assert local_time("2025-01-20T00:00:00+00:00", language="da") == "20-01-2025 kl. 01.00"  # winter time
    spans = quarter_span(["2024Q4", "2024Q1", "2024Q2", "2025Q1"], language="da")
    assert spans == "2024K1–2024K2 og 2024K4–2025K1"


def test_an_unreadable_file_is_explained_in_danish_and_remembered_until_a_readable_one_arrives() -> None:
    failures = pl.DataFrame({"quarter": ["2024Q2"], "site": ["odense"], "run_id": ["r"],
                             "message": ["odense.xlsx: the Excel file could not be opened (BadZipFile)"],
                             "reason": ["xlsx_damaged"], "details": ['{"filename": "odense.xlsx"}']})
    told = build_feedback(ingest(until(ROUND_3), unreadable=failures), key=KEY, previous_state=None)
    item = describe(told, language="da", restricted=False).unreadable.row(0, named=True)
    assert item["message"] == ("Excel-filen odense.xlsx kunne ikke åbnes; den er måske beskadiget eller ikke "
                               "en rigtig .xlsx-fil.") and item["status"] == "new"
    sheets = feedback_sheets(told, describe(told, language="da", restricted=False), "odense", language="da",
                             restricted=False, settings=SETTINGS, generated_at="t")
    assert any(topic == "Ulæselig fil (2024K2)" for topic, _ in sheets["Forside"].rows())
    later = build_feedback(ingest(), key=KEY, previous_state=told.state)  # next round: the file was readable
    assert later.unreadable.height == 0
    unreadable = later.state.filter(pl.col("kind") == "unreadable").select("round", "status").rows()
    assert unreadable == [("2024Q2", "new"), ("2024Q3", "resolved")]  # the past round kept what it said


def test_a_wrong_column_name_is_one_item_for_every_quarter_it_touches() -> None:
    header = "CPR-nr.;Startdato;Afslutning;Delmålgruppe;Gennemført"  # no known end-date header
    content = (header + "\r\n610190-1235;15-01-2024;10-06-2024;GRL;Ja\r\n").encode("cp1252")
    files = [(quarter, "aarhus", "aarhus.csv", content, when) for quarter, when in (
        ("2024Q1", "2024-04-20T00:00:00+00:00"), ("2024Q2", "2024-07-20T00:00:00+00:00"))]
    feedback = build_feedback(ingest(files), key=KEY, previous_state=None)
    (item,) = describe(feedback, language="da", restricted=False).files.rows(named=True)
    assert item["label"] == "Kolonne mangler"
    assert item["status"] == "outstanding" and item["since"] == "2024Q1"
    assert "ingen kolonne for slutdato" in item["message"] and "'Afslutning'" in item["message"]
    assert "alle forløb står, som om de stadig var i gang" in item["message"]
    assert item["advice"] == ("Giv kolonnen overskriften 'Slutdato', og send filerne for 2024K1–2024K2 "
                              "igen.")


def test_the_general_version_masks_a_cpr_in_a_file_name_too() -> None:
    named = [(q, s, "aarhus_6101901235.csv" if f == "aarhus.csv" else f, c, w)
             for q, s, f, c, w in DELIVERIES]
    feedback = build_feedback(ingest(named), key=KEY, previous_state=None)
    general = steward_outputs(feedback, pl.DataFrame(), settings=SETTINGS, now=NOW,
                              sites=["aarhus"])
    texts = _workbook_texts(general.workbooks[0].xlsx) + [general.pages[False]]
    assert cpr_like("\n".join(texts)) == [] and any("aarhus_XXXXXXXXXX.csv" in t for t in texts)
    restricted = next(b for b in general.workbooks if b.restricted)
    assert any("aarhus_6101901235.csv" in t for t in _workbook_texts(restricted.xlsx))
