"""Effect report and spreadsheet-safe exports on small synthetic tables (steward view: test_steward_view)."""

import csv
import io
import re
from html.parser import HTMLParser

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from analysis.publish import report_tables
from analysis.publish.effect_report import SECTIONS, ReportInputs, publish, render_effect_report
from analysis.publish.labels import Labels, check_labelled
from analysis.publish.safe_export import DANGEROUS, csv_bytes, escape_formula, escape_frame, xlsx_bytes
from analysis.publish.workbook import read_published_csv
from analysis.schema import EFFECT_ESTIMATES, EVENT_STUDY
from pipelines.configuration import ConfigDir

_CONFIG = ConfigDir()
LABELS = Labels.from_tables(
    _CONFIG.table("report_labels"),
    delmaalgrupper=_CONFIG.table("delmaalgrupper"),
    sites=_CONFIG.table("sites"),
)


def export_tables(inputs: ReportInputs) -> dict[str, pl.DataFrame]:
    """The tables as the report asset writes them (labelled, in their units)."""
    return report_tables.export_tables(publish(inputs), inputs.labels)


def _inputs(**overrides) -> ReportInputs:
    est = pl.DataFrame(
        [
            {
                "outcome": "self_support",
                "design": "matched_did",
                "dimension": "all",
                "level": "all",
                "estimate": 0.07,
                "se": 0.02,
                "ci_lower": 0.03,
                "ci_upper": 0.11,
                "n_treated": 120,
                "n_controls": 500,
                "mde": 0.056,
                "pretrend_p": 0.4,
                "window": "12..24",
            },
            {
                "outcome": "self_support",
                "design": "matched_did",
                "dimension": "site",
                "level": "<script>x</script>",
                "estimate": 0.5,
                "se": 0.3,
                "ci_lower": -0.1,
                "ci_upper": 1.1,
                "n_treated": 3,
                "n_controls": 12,
                "mde": 0.8,
                "pretrend_p": None,
                "window": "12..24",
            },
        ],
        schema=EFFECT_ESTIMATES,
    )
    es = pl.DataFrame(
        [
            {
                "outcome": "self_support",
                "event_time": e,
                "estimate": 0.01 * e,
                "se": 0.02,
                "ci_lower": 0.01 * e - 0.04,
                "ci_upper": 0.01 * e + 0.04,
                "n_treated": 120,
                "n_controls": 500,
            }
            for e in range(-3, 4)
        ],
        schema=EVENT_STUDY,
    )
    mm = pl.DataFrame(
        {
            "outcome": ["self_support"] * 4,
            "group": ["participants", "participants", "comparisons", "comparisons"],
            "event_time": [-1, 0, -1, 0],
            "mean": [0.2, 0.25, 0.2, 0.22],
            "n": [120, 4, 500, 500],
        }
    )
    bal = pl.DataFrame(
        {
            "covariate": ["age", "self_support -1"],
            "mean_treated": [40.0, 0.2],
            "mean_control_before": [45.0, 0.6],
            "mean_control_after": [40.5, 0.21],
            "smd_before": [-0.4, -1.2],
            "smd_after": [-0.04, -0.02],
            "var_ratio_before": [1.0, 0.5],
            "var_ratio_after": [1.0, 0.9],
        }
    )
    gt = pl.DataFrame(
        {
            "outcome": ["self_support"] * 2,
            "cohort": [8100, 8100],
            "period": [8099, 8101],
            "att": [0.0, 0.08],
            "se": [0.02, 0.02],
            "ci_lower": [-0.04, 0.04],
            "ci_upper": [0.04, 0.12],
            "n_treated": [40, 40],
        }
    )
    agg = pl.DataFrame(
        {
            "outcome": ["self_support"],
            "aggregation": ["dynamic"],
            "key": [1],
            "att": [0.08],
            "se": [0.02],
            "ci_lower": [0.04],
            "ci_upper": [0.12],
            "n_treated": [40],
        }
    )
    ba = pl.DataFrame(
        {
            "outcome": ["self_support"] * 2,
            "event_time": [-1, 0],
            "mean": [0.2, 0.25],
            "se": [0.01, 0.01],
            "ci_lower": [0.18, 0.23],
            "ci_upper": [0.22, 0.27],
            "n": [120, 120],
        }
    )
    prov = pl.DataFrame(
        {
            "site": ["aarhus", "aarhus", "odense"],
            "quarter": ["2024Q1", "2024Q2", "2024Q1"],
            "file_name": ["a.csv", "b.csv", None],
            "received_at": ["2024-04-02", "2024-07-01", None],
            "rows_in": [3, 40, None],
            "rows_clean": [3, 38, None],
            "rows_quarantined": [0, 2, None],
            "rows_duplicate": [0, 0, None],
            "status": ["ok", "ok", "missing"],
            "reason": [None, None, "no file received"],
        }
    )
    values = dict(
        estimates=est,
        event_study=es,
        matched_means=mm,
        balance=bal,
        group_time=gt,
        aggregates=agg,
        before_after=ba,
        provenance=prov,
        run_info={"key_id": "abc123", "run_id": "r1"},
        truth={"self_support": {"att_months_12_24": 0.07}},
        headline_outcomes=("self_support",),
        labels=LABELS,
    )
    return ReportInputs(**{**values, **overrides})


def _cells(page: str, klass: str = "") -> list[str]:
    """The text of every table cell (``klass``: only cells of that class, e.g. "count": person counts)."""
    pattern = r"<td[^>]*>(.*?)</td>" if not klass else rf'<td class="[^"]*\b{klass}\b[^"]*">(.*?)</td>'
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(pattern, page, flags=re.S)]


def test_report_has_every_section_plots_and_no_external_resources() -> None:
    page = render_effect_report(_inputs())
    for key in SECTIONS:
        assert re.search(rf'<section[^>]* id="{key}">', page), key
    assert page.count("<svg") >= 6
    assert "http://" not in page and "https://" not in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "Real data" not in page and "<th>Covered</th>" in page  # the truth table


def test_report_publishes_no_small_count_and_suppresses_small_n_estimates() -> None:
    page = render_effect_report(_inputs())
    assert _cells(page, "count")  # person counts are marked as such
    for cell in _cells(page, "count"):
        assert not re.fullmatch(r"[1-4]", cell.strip()), cell
    assert "50.0" not in _cells(page)  # the n=3 sub-group estimate (0.5 = 50.0 pp) is suppressed
    tables = export_tables(_inputs())
    assert tables["estimates"].filter(pl.col("n_treated").is_null())["estimate"].null_count() == 1
    # the "suppressed" column names the suppressed cells of each row (the participants' n of 4 and its mean)
    assert tables["matched_means"].filter(pl.col("suppressed").str.contains("mean"))["n"].to_list() == [None]
    assert "missing" in page  # odense sent no file: the report says so


def test_report_is_deterministic_and_survives_empty_inputs() -> None:
    assert render_effect_report(_inputs()) == render_effect_report(_inputs())
    empty = {
        k: pl.DataFrame()
        for k in (
            "estimates",
            "event_study",
            "matched_means",
            "balance",
            "group_time",
            "aggregates",
            "before_after",
            "provenance",
        )
    }
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
    status = pl.DataFrame(
        {"outcome": ["bed_days"], "status": ["failed"], "reason": ["latest run 1a2b3c4d failed"]}
    )
    page = render_effect_report(_inputs(outcome_status=status))
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    assert "Outcomes without current estimates" in summary and "Hospital bed days" in summary, summary
    assert "failed" in summary
    assert "Outcomes without current estimates" not in render_effect_report(_inputs())


class _Tables(HTMLParser):
    """Every <table> of a page as (headers, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(("th:" if tag == "th" else "") + "".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            headers, rows = self.tables[-1]
            if self._row and all(c.startswith("th:") for c in self._row) and not headers:
                headers.extend(c[3:] for c in self._row)
            elif self._row:
                rows.append([c.removeprefix("th:") for c in self._row])
            self._row = None

    def handle_data(self, data) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _html_tables(page: str) -> list[pl.DataFrame]:
    parser = _Tables()
    parser.feed(page)
    frames = []
    for headers, rows in parser.tables:
        width = max([len(headers), *map(len, rows)]) if rows else len(headers)
        names = [h or f"column {i + 1}" for i, h in enumerate(headers + [""] * (width - len(headers)))]
        names = [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]
        body = [r + [""] * (width - len(r)) for r in rows]
        frames.append(pl.DataFrame(body, schema={n: pl.String for n in names}, orient="row"))
    return frames


def _monthly_inputs() -> ReportInputs:
    """The staggered tables as the pipeline now writes them: start months and months (month indices)."""
    gt = pl.DataFrame(
        {
            "outcome": ["self_support"] * 2,
            "cohort": [24290, 24290],
            "period": [24289, 24303],
            "att": [0.0, 0.08],
            "se": [0.02, 0.02],
            "ci_lower": [-0.04, 0.04],
            "ci_upper": [0.04, 0.12],
            "n_treated": [40, 40],
        }
    )
    agg = pl.DataFrame(
        {
            "outcome": ["self_support"] * 3,
            "aggregation": ["dynamic", "group", "simple"],
            "key": [12, 24290, None],
            "att": [0.08, 0.07, 0.06],
            "se": [0.02] * 3,
            "ci_lower": [0.04, 0.03, 0.02],
            "ci_upper": [0.12, 0.11, 0.1],
            "n_treated": [40] * 3,
        },
        schema_overrides={"key": pl.Int64},
    )
    return _inputs(group_time=gt, aggregates=agg)


def test_no_published_table_carries_an_encoded_period_or_an_identifier() -> None:
    """Every table of the page (display) and every export (numbers stay numbers) speaks in labels."""
    inputs = _monthly_inputs()
    page = render_effect_report(inputs)
    tables = _html_tables(page)
    assert len(tables) >= 5
    for frame in tables:
        check_labelled(frame, labels=LABELS)
    for frame in export_tables(inputs).values():
        # ``suppressed`` names the exported columns whose cell is suppressed (machine-readable, by design)
        check_labelled(frame, labels=LABELS, exported=True, allow=("suppressed",))
    assert "24290" not in page and "6072Q3" not in page and "2024-03" in page


def test_the_guard_catches_an_encoded_period_and_a_code_in_a_report_table() -> None:
    """The HTML check above would fail on a table that kept a month index or an outcome code."""
    page = render_effect_report(_monthly_inputs())
    assert "<td>starting 2024-03</td>" in page and "<td>Share of months self-supporting</td>" in page
    broken = page.replace("<td>starting 2024-03</td>", "<td>24290</td>", 1).replace(
        "<td>Share of months self-supporting</td>", "<td>self_support</td>", 1
    )
    problems = []
    for frame in _html_tables(broken):
        try:
            check_labelled(frame, labels=LABELS)
        except ValueError as error:
            problems.append(str(error))
    assert any("encoded period" in p for p in problems) and any("'self_support'" in p for p in problems)


def test_headline_is_one_sentence_per_outcome_and_the_naive_contrast_is_a_warning_elsewhere() -> None:
    page = render_effect_report(_inputs())
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    sentence = re.sub(r"<[^>]+>", "", summary)
    assert "Share of months self-supporting: 7.0 pp (95 % CI 3.0 to 11.0 pp)" in sentence
    assert "120 participants compared with 500 matched comparison persons" in sentence
    assert "naive" not in sentence.lower().split("the naive before/after contrast is not an effect")[0]
    assert '<section id="naive">' in page and 'lang="da"' in page.split('id="summary"')[0]


def test_layout_toc_folds_print_sheet_and_offline() -> None:
    page = render_effect_report(_inputs())
    toc = page.split('<nav class="toc">')[1].split("</nav>")[0]
    assert all(f'href="#{key}"' in toc for key in SECTIONS)
    assert "<details>" in page and "@page{size:A4" in page and "@media print" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_csv_export_uses_semicolons_and_decimal_commas_and_the_workbook_numbers() -> None:
    from analysis.publish.workbook import published_csv_bytes

    inputs = _inputs()
    published = publish(inputs)
    tables = report_tables.export_tables(published, LABELS)
    content = published_csv_bytes(tables["estimates"])
    first = content.decode("utf-8-sig").splitlines()[1]
    assert ";" in first and re.search(r";7,0+;", first)  # 0.07 -> 7.0 pp, written 7,0
    assert read_published_csv(content)["estimate"].to_list()[0] == 7.0
    book = load_workbook(io.BytesIO(report_tables.workbook(tables, published)))
    sheet = book["estimates"]
    header = [c.value for c in sheet[1]]
    cell = sheet.cell(2, header.index("estimate") + 1)
    # a number, not text (Excel stores a whole 7.0 as 7; openpyxl reads it back as int)
    assert cell.data_type == "n" and cell.value == 7.0
    assert "About" in book.sheetnames


def test_the_report_says_plainly_when_the_study_cannot_detect_the_planted_effect() -> None:
    from analysis.estimate.power import power_statement

    small = _inputs(truth={"self_support": {"att_months_12_24": 0.02}})  # MDE 2.8 x 0.02 = 5.6 pp > 2 pp
    text = re.sub(r"<[^>]+>", "", render_effect_report(small))
    stated = power_statement("self_support", 0.02, 120, design="matched_did", effect=0.02)
    assert not stated.detectable
    assert "it cannot reliably detect the planted effect (2.0 pp)" in text
    assert f"significant with probability {stated.power_at_effect:.2f} only" in text
    large = re.sub(r"<[^>]+>", "", render_effect_report(_inputs()))  # planted 7 pp > MDE 5.6 pp
    assert "so the study can detect it" in large and "cannot reliably detect" not in large
