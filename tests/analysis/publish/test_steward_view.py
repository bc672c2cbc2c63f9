"""The steward page: by site and quarter, current quarter first, history folded, only steward checks."""

import html
import io
import re
from datetime import UTC, datetime

import polars as pl
import pytest
from deliveries import KEY, ingest, settings
from language import english_in
from openpyxl import load_workbook

from analysis.publish.feedback import build_feedback
from analysis.publish.feedback_text import describe
from analysis.publish.steward_view import render_steward_page, steward_checks, steward_outputs
from expectations.steward import DANISH as DANISH_CHECKS
from pipelines.audit import cpr_like

CHECKS = pl.DataFrame({
    "asset": ["validated_rows", "balance", "link_rate"],
    "check": ["row_conservation", "balance_after_matching", "link_rate_minimum"],
    "partition": ["2024-07-01|aarhus", "", ""], "passed": [False, False, False],
    "severity": ["ERROR", "WARN", "WARN"], "blocking": [True, False, False],
    "description": ["rows in = clean + quarantined", "SMD < 0.1", "95 % linked"],
    "unexpected_count": [1, 6, 3], "element_count": [10, 20, 60], "run_id": ["r", "r", "r"]})
STEWARD_ASSETS = {"validated_rows", "link_rate", "quarantine"}


@pytest.fixture(scope="module")
def feedback():
    return build_feedback(ingest(), key=KEY, previous_state=None)


def _page(feedback, *, restricted: bool, language: str = "da") -> str:
    checks = steward_checks(CHECKS, assets=STEWARD_ASSETS, danish=DANISH_CHECKS)
    return render_steward_page(feedback, describe(feedback, language=language, restricted=restricted), checks,
                               restricted=restricted, language=language, generated_at="01-12-2026 kl. 10.00",
                               settings=settings())


def test_only_checks_a_steward_can_act_on_with_site_and_quarter_from_the_partition() -> None:
    checks = steward_checks(CHECKS, assets=STEWARD_ASSETS, danish=DANISH_CHECKS)
    assert checks.select("check", "site", "quarter").rows() == [
        ("link_rate_minimum", None, None), ("row_conservation", "aarhus", "2024Q3")]
    assert checks["description_da"][0].startswith("Mindst 95 % af deltagerne")


def test_each_site_shows_its_current_quarter_first_and_folds_the_history(feedback) -> None:
    page = _page(feedback, restricted=False)
    aarhus = page.split('<section class="site" id="site-aarhus">')[1].split("</section>")[0]
    current = aarhus.index("Aktuelt kvartal: 3. kvartal 2024")
    older = aarhus.index("Udestående fra tidligere kvartaler")
    history = aarhus.index("<details>")
    assert current < older < history
    assert "31-02-24" in aarhus[current:older]  # the new row of the current quarter
    assert "primo 05/2024" in aarhus[older:history] and "ZZ9" in aarhus[older:history]
    assert "Tilbagemeldinger pr. kvartal" in aarhus[history:]
    assert "Frist for næste fil (2024K4): 30. januar 2025" in aarhus
    odense = page.split('id="site-odense">')[1].split("</section>")[0]
    assert "Ikke fundet i befolkningsregistret" in odense and "arket &#x27;Forløb&#x27;, række 3" in odense


def test_methods_checks_stay_out_and_timestamps_are_danish(feedback) -> None:
    page = _page(feedback, restricted=False)
    assert "balance_after_matching" not in page and "link_rate_minimum" in page and "row_conservation" in page
    assert "T00:00:00" not in page and "+00:00" not in page
    assert "20-10-2024 kl. 02.00" in page


def test_the_general_page_masks_cpr_and_the_restricted_one_shows_it(feedback) -> None:
    general, restricted = _page(feedback, restricted=False), _page(feedback, restricted=True)
    assert cpr_like(general) == [] and "710285-2346" not in general
    assert "670190-1231" in restricted and "BEGRÆNSET ADGANG" in restricted
    assert "http://" not in general and "https://" not in general and "<script" not in general


def test_the_danish_page_reads_danish_and_the_english_one_is_a_switch(feedback) -> None:
    page = _page(feedback, restricted=False)
    text = html.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page))
    technical = ["link_rate_minimum", "row_conservation", "validated_rows", "link_rate", "aarhus_rettet",
                 "aarhus", "odense", "feedback/", ".xlsx", ".csv", "restricted/"]
    assert english_in(text, allowed=technical) == []
    english = _page(feedback, restricted=False, language="en")
    assert "Current quarter: Q3 2024" in english and "always in Danish" in english


def test_outputs_are_danish_for_the_site_with_an_english_staff_copy_on_the_switch(feedback) -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    danish = steward_outputs(feedback, pl.DataFrame(), settings=settings(), now=now,
                             sites=["aarhus", "odense", "randers"])
    assert {(b.site, b.language, b.restricted) for b in danish.workbooks} == {
        (s, "da", r) for s in ("aarhus", "odense") for r in (False, True)}  # randers is not in this world
    english = settings(staff_language="en", contact="x")
    staff = steward_outputs(feedback, pl.DataFrame(), settings=english, now=now,
                            sites=["aarhus", "odense"])
    assert {b.language for b in staff.workbooks} == {"da", "en"}
    assert "CTI data steward view" in staff.pages[False]
    book = next(b for b in staff.workbooks if (b.site, b.language, b.restricted) == ("aarhus", "da", False))
    sheet = load_workbook(io.BytesIO(book.xlsx))["Forside"]
    assert sheet["B4"].value == "01-12-2026 kl. 10.00" and book.csv_name == "aarhus_raekker.csv"
    assert book.rows_csv.startswith(b"\xef\xbb\xbfStatus;Udest\xc3\xa5ende siden;")
