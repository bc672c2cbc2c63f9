"""The steward view's general version: one masking rule for messages and file names, and the inbox account."""

from datetime import UTC, datetime

import polars as pl
from deliveries import DELIVERIES, KEY, ingest, settings

from analysis.publish.feedback import build_feedback, mask_text
from analysis.publish.steward_view import steward_outputs, stray_rows
from analysis.schema import INBOX_ENTRIES
from pipelines.audit import cpr_like

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ENTRIES = pl.DataFrame(
    [
        ("misc/", None, None, "not_a_quarter_folder", False, "not a quarter", "Move it."),
        ("2024Q1/x_6701901236.csv", "2024Q1", None, "unknown_site", False, "no site", "Rename."),
    ],
    schema=INBOX_ENTRIES,
    orient="row",
)


def test_spaced_and_partial_cpr_numbers_are_masked_completely() -> None:
    for value, shape in (
        ("610190 1238", "XXXXXX XXXX"),
        ("690489-33", "XXXXXX-XX"),
        ("999999-99995", "XXXXXX-XXXXX"),
    ):
        assert (
            mask_text(f"Linje 3: CPR '{value}' er ikke et CPR-nummer.")
            == f"Linje 3: CPR '{shape}' er ikke et CPR-nummer."
        )


def test_the_inbox_account_is_part_of_the_steward_view_in_danish_and_masked() -> None:
    shown = stray_rows(ENTRIES, language="da", restricted=False)
    assert shown["entry"].to_list() == ["misc/", "2024Q1/x_XXXXXXXXXX.csv"]
    assert shown["message"][0].startswith("Mappenavnet er ikke et kvartal")
    assert stray_rows(ENTRIES, language="en", restricted=True)["advice"].to_list() == ["Move it.", "Rename."]
    feedback = build_feedback(ingest(DELIVERIES), key=KEY, previous_state=None)
    outputs = steward_outputs(feedback, pl.DataFrame(), settings=settings(), now=NOW, sites=["aarhus"],
                              strays=ENTRIES)
    general, restricted = outputs.pages[False], outputs.pages[True]
    assert (
        '<section id="strays">' in general and "misc/" in general and "Flyt indberetternes filer" in general
    )
    assert (
        "x_XXXXXXXXXX.csv" in general
        and cpr_like(general.split('id="strays"')[1].split("</section>")[0]) == []
    )
    assert "x_6701901236.csv" in restricted
