"""Effect report and spreadsheet-safe exports on small synthetic tables (steward view: test_steward_view)."""

import csv
import io
import re

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from analysis.publish.effect_report import SECTIONS, ReportInputs, export_tables, render_effect_report
from analysis.publish.safe_export import DANGEROUS, csv_bytes, escape_formula, escape_frame, xlsx_bytes
from analysis.schema import EFFECT_ESTIMATES, EVENT_STUDY


def _inputs(**overrides) -> ReportInputs:
    est = pl.DataFrame([
        {"outcome": "self_support", "design": "matched_did", "dimension": "all", "level": "all", "estimate": 0.07, "se": 0.02,
         "ci_lower": 0.03, "ci_upper": 0.11, "n_treated": 120, "n_controls": 500, "mde": 0.056, "pretrend_p": 0.4, "window": "12..24"},
        {"outcome": "self_support", "design": "matched_did", "dimension": "site", "level": "<script>x</script>", "estimate": 0.5,
         "se": 0.3, "ci_lower": -0.1, "ci_upper": 1.1, "n_treated": 3, "n_controls": 12, "mde": 0.8, "pretrend_p": None, "window": "12..24"},
    ], schema=EFFECT_ESTIMATES)
    es = pl.DataFrame([{"outcome": "self_support", "event_time": e, "estimate": 0.01 * e, "se": 0.02, "ci_lower": 0.01 * e - 0.04,
                        "ci_upper": 0.01 * e + 0.04, "n_treated": 120, "n_controls": 500} for e in range(-3, 4)], schema=EVENT_STUDY)
    mm = pl.DataFrame({"outcome": ["self_support"] * 4, "group": ["participants", "participants", "comparisons", "comparisons"],
                       "event_time": [-1, 0, -1, 0], "mean": [0.2, 0.25, 0.2, 0.22], "n": [120, 4, 500, 500]})
    bal = pl.DataFrame({"covariate": ["age", "self_support -1"], "mean_treated": [40.0, 0.2], "mean_control_before": [45.0, 0.6],
                        "mean_control_after": [40.5, 0.21], "smd_before": [-0.4, -1.2], "smd_after": [-0.04, -0.02],
                        "var_ratio_before": [1.0, 0.5], "var_ratio_after": [1.0, 0.9]})
    gt = pl.DataFrame({"outcome": ["self_support"] * 2, "cohort": [8100, 8100], "period": [8099, 8101], "att": [0.0, 0.08],
                       "se": [0.02, 0.02], "ci_lower": [-0.04, 0.04], "ci_upper": [0.04, 0.12], "n_treated": [40, 40]})
    agg = pl.DataFrame({"outcome": ["self_support"], "aggregation": ["dynamic"], "key": [1], "att": [0.08], "se": [0.02],
                        "ci_lower": [0.04], "ci_upper": [0.12], "n_treated": [40]})
    ba = pl.DataFrame({"outcome": ["self_support"] * 2, "event_time": [-1, 0], "mean": [0.2, 0.25], "se": [0.01, 0.01],
                       "ci_lower": [0.18, 0.23], "ci_upper": [0.22, 0.27], "n": [120, 120]})
    prov = pl.DataFrame({"site": ["aarhus", "aarhus", "odense"], "quarter": ["2024Q1", "2024Q2", "2024Q1"],
                         "file_name": ["a.csv", "b.csv", None], "received_at": ["2024-04-02", "2024-07-01", None],
                         "rows_in": [3, 40, None], "rows_clean": [3, 38, None], "rows_quarantined": [0, 2, None],
                         "rows_duplicate": [0, 0, None], "status": ["ok", "ok", "missing"], "reason": [None, None, "no file received"]})
    values = dict(estimates=est, event_study=es, matched_means=mm, balance=bal, group_time=gt, aggregates=agg, before_after=ba,
                  provenance=prov, run_info={"key_id": "abc123", "run_id": "r1"}, truth={"self_support": {"att_months_12_24": 0.07}},
                  headline_outcomes=("self_support",))
    return ReportInputs(**{**values, **overrides})


def _cells(page: str) -> list[str]:
    return re.findall(r"<td>(.*?)</td>", page)


def test_report_has_every_section_plots_and_no_external_resources() -> None:
    page = render_effect_report(_inputs())
    for key in SECTIONS:
        assert f'<section id="{key}">' in page
    assert page.count("<svg") >= 6
    assert "http://" not in page and "https://" not in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "Real data" not in page and "covered" in page


def test_report_publishes_no_small_count_and_suppresses_small_n_estimates() -> None:
    page = render_effect_report(_inputs())
    for cell in _cells(page):
        assert not re.fullmatch(r"[1-4]", cell.strip()), cell
    assert "<td>0.500</td>" not in page  # the n=3 sub-group estimate is suppressed
    tables = export_tables(_inputs())
    assert tables["estimates"].filter(pl.col("n_treated").is_null())["estimate"].null_count() == 1
    # the "suppressed" column names the suppressed cells of each row (the participants' n of 4 and its mean)
    assert tables["matched_means"].filter(pl.col("suppressed").str.contains("mean"))["n"].to_list() == [None]
    assert "missing" in page  # odense sent no file: the report says so


def test_report_is_deterministic_and_survives_empty_inputs() -> None:
    assert render_effect_report(_inputs()) == render_effect_report(_inputs())
    empty = {k: pl.DataFrame() for k in ("estimates", "event_study", "matched_means", "balance", "group_time", "aggregates", "before_after", "provenance")}
    page = render_effect_report(_inputs(**empty, truth=None))
    assert "Not available" in page and "no planted truth" in page


def test_formula_cells_are_escaped_in_csv_and_xlsx(tmp_path) -> None:
    frame = pl.DataFrame({"text": ["=1+1", "+a", "-b", "@c", "safe"], "number": [-1.5, 2.0, 3.0, 4.0, 5.0]})
    content = csv_bytes(frame)
    assert content.startswith(b"\xef\xbb\xbf")  # Danish Excel needs the BOM to read UTF-8
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert [r[0] for r in rows[1:]] == ["'=1+1", "'+a", "'-b", "'@c", "safe"] and float(rows[1][1]) == -1.5
    first, second = xlsx_bytes({"s": frame}), xlsx_bytes({"s": frame})
    assert first == second
    sheet = load_workbook(io.BytesIO(first))["s"]
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    assert sheet["A2"].value == "'=1+1"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=12))
def test_no_escaped_string_starts_dangerously(text: str) -> None:
    assert not escape_formula(text).startswith(DANGEROUS)
    assert not escape_frame(pl.DataFrame({"t": [text]}))["t"][0].startswith(DANGEROUS)


def test_report_names_outcomes_without_current_estimates() -> None:
    status = pl.DataFrame({"outcome": ["bed_days"], "status": ["failed"], "reason": ["latest run 1a2b3c4d failed"]})
    page = render_effect_report(_inputs(outcome_status=status))
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    assert "Outcomes without current estimates" in summary and "bed_days" in summary and "failed" in summary
    assert "Outcomes without current estimates" not in render_effect_report(_inputs())
