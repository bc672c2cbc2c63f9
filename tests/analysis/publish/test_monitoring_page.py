"""The monitoring page: the public variant publishes no small count and nothing that gives one away."""

import re
from datetime import date, timedelta

import polars as pl
import pytest

from analysis.publish.monitoring import PROGRAMME, Targets, monitor
from analysis.publish.monitoring_page import (
    INTERNAL,
    PUBLIC,
    SECTIONS,
    export_tables,
    internal_tables,
    render_monitoring_page,
    render_monitoring_section,
)
from analysis.publish.monitoring_tables import controlled_alone, public_tables
from analysis.publish.sdc import audit, with_margins
from analysis.schema import COURSES

SITES = pl.DataFrame(
    {
        "site": ["a", "b", "c"],
        "name": ["A", "B", "C"],
        "kom": ["101", "751", "461"],
        "joined": ["2024-01-01"] * 3,
    }
)
TARGETS = pl.DataFrame(
    [
        ("planned_months", "programme", "*", "", "9", "months", "seed"),
        ("phase_months", "programme", "*", "3", "3", "months", "seed"),
        ("participants", "each_site", "GRL", "5", "", "citizens", "test"),
        ("delivery_days", "each_site", "*", "", "30", "days", "test"),
        ("quarantine_rate", "each_site", "*", "", "0.1", "share", "test"),
        ("link_rate", "each_site", "*", "0.98", "", "share", "test"),
    ],
    schema=["measure", "scope", "delmaalgruppe", "min", "max", "unit", "source"],
    orient="row",
)
QUARTERS = ("2024Q1", "2024Q2", "2024Q3", "2024Q4")


def _programme() -> pl.DataFrame:
    """Ten starts per site and quarter; completions in Q4; exactly two early ends in the programme in Q2."""
    rows, n = [], 0
    starts = [date(2024, 1, 10), date(2024, 4, 10), date(2024, 7, 10), date(2024, 10, 10)]
    for site in ("a", "b", "c"):
        for q, start in enumerate(starts):
            for k in range(10):
                n += 1
                end, done = None, None
                if q == 0 and k < 6:  # completed after nine months, in Q4
                    end, done = start + timedelta(days=268), True
                if q == 1 and k < 3:  # early ends in Q3 (nine of them)
                    end, done = start + timedelta(days=100), False
                if q == 0 and k == 9 and site == "a":  # the two early ends of Q2
                    end, done = date(2024, 5, 1), False
                if q == 0 and k == 9 and site == "b":
                    end, done = date(2024, 6, 1), False
                rows.append((f"p{n}", site, start, end, "GRL" if k == 0 else "OVG", done))
    frame = pl.DataFrame(
        rows,
        schema=["pseudonym", "site", "start_date", "end_date", "delmaalgruppe", "completed"],
        orient="row",
    )
    return frame.with_columns(
        course_id=pl.format("c{}", pl.int_range(pl.len())),
        key_id=pl.lit("k"),
        sex=pl.lit(1, pl.Int8),
        birth_date=pl.lit(date(1980, 1, 1)),
        first_reported=pl.lit("2024Q1"),
        last_reported=pl.lit("2024Q4"),
    ).select([pl.col(c).cast(t) for c, t in COURSES.items()])


def _monitoring(quarantined=lambda site, quarter: 2 if site == "a" else 0, rows_in: int = 40):
    log = pl.DataFrame(
        [
            (s, q, f"{2024 + (i == 3)}-{(3 * i + 4) % 12:02d}-15T00:00:00+00:00", 1, False, True)
            for s in ("a", "b", "c")
            for i, q in enumerate(QUARTERS)
        ],
        schema=["site", "quarter", "received", "version", "superseded", "readable"],
        orient="row",
    )
    stats = pl.DataFrame(
        [(s, q, False, rows_in, quarantined(s, q)) for s in ("a", "b", "c") for q in QUARTERS],
        schema=["site", "quarter", "superseded", "rows_in", "quarantined"],
        orient="row",
    )
    links = pl.DataFrame(
        [(s, q, 10, 10) for s in ("a", "b", "c") for q in QUARTERS],
        schema=["site", "quarter", "participants", "linked"],
        orient="row",
    )
    return monitor(
        _programme(),
        submissions=log,
        stats=stats,
        link_rate=links,
        sites=SITES,
        targets=Targets.from_table(TARGETS, sites=("a", "b", "c")),
    )


@pytest.fixture(scope="module")
def pages():
    m = _monitoring()
    public, internal = public_tables(m, controlled_alone(m)), internal_tables(m)
    return (
        m,
        public,
        internal,
        render_monitoring_page(m, public, generated_at="2026-12-01 10:00 UTC"),
        render_monitoring_page(m, internal, generated_at="2026-12-01 10:00 UTC"),
    )


def test_the_public_flow_tables_pass_the_linear_programming_audit(pages) -> None:
    m, public, *_ = pages
    assert public.variant == PUBLIC and controlled_alone(m).audit.passed
    for column in ("new_starts", "ended_completed", "ended_early"):
        frame = m.flows.filter(pl.col("site") != PROGRAMME)
        _, _, counts = with_margins(frame, rows="site", columns="quarter", count=column)
        shown = public.tables[column].drop("site").to_numpy()
        assert audit(counts, shown == "x") == [], column  # each table alone, too
    early = {r["site"]: r["2024Q2"] for r in public.tables["ended_early"].iter_rows(named=True)}
    assert early == {"a": "x", "b": "x", "c": "0", "Total": "x"}


def test_the_programme_stock_is_withheld_where_it_would_give_a_small_flow_away(pages) -> None:
    m, public, *_ = pages
    stock = {r["quarter"]: r for r in public.tables["programme_stock"].iter_rows(named=True)}
    exact = {r["quarter"]: r for r in m.flows.filter(pl.col("site") == PROGRAMME).iter_rows(named=True)}
    # open(Q2) - open(Q1) - starts(Q2) = -2 early ends in Q2: open(Q2) must not be shown,
    # nor active(Q3) = open(Q2) + starts(Q3)
    assert stock["2024Q2"]["open_at_end"] == "x" and stock["2024Q3"]["active"] == "x"
    # the last quarter's stock follows from the published totals and open courses by phase: shown exactly
    last = exact["2024Q4"]
    assert (stock["2024Q4"]["active"], stock["2024Q4"]["open_at_end"]) == (
        str(last["active"]),
        str(last["open_at_end"]),
    )
    assert any("active or open courses" in w for w in public.withheld)


def test_the_public_page_has_no_small_count_and_is_self_contained(pages) -> None:
    *_, page, internal = pages
    # tables of facts about files and quarters (days late, resubmissions) are marked;
    # every other cell counts persons
    persons = re.sub(r'<table class="files">.*?</table>', "", page, flags=re.S)
    assert persons.count("<table") >= 6
    cells = re.findall(r"<td[^>]*>(.*?)</td>", persons)
    assert cells and not [c for c in cells if re.fullmatch(r"[1-4]", c.strip())]
    for html in (page, internal):
        assert (
            "http://" not in html and "https://" not in html and "<script" not in html and " src=" not in html
        )
        assert all(f'<section id="{key}">' in html for key in SECTIONS)
        assert html.count("<svg") >= 3
    assert "INTERNAL" not in page and "disclosure-controlled" in page
    assert (
        internal.count("INTERNAL – EXACT COUNTS, NOT DISCLOSURE-CONTROLLED") == 2
    )  # top and bottom of the page


def test_the_internal_page_shows_exact_counts(pages) -> None:
    m, _, internal_frames, _, internal = pages
    assert internal_frames.variant == INTERNAL
    flows = internal_frames.tables["flows"]
    assert (
        flows.filter((pl.col("site") == PROGRAMME) & (pl.col("quarter") == "2024Q2"))["ended_early"].item()
        == 2
    )
    assert "<td>2</td>" in internal


def test_rendering_is_deterministic_and_reconciliation_problems_are_shown(pages) -> None:
    m, public, *_ = pages
    once = render_monitoring_page(m, public, generated_at="t")
    assert once == render_monitoring_page(m, public, generated_at="t")
    flagged = render_monitoring_page(
        m, public, generated_at="t", reconciliation=["a 2024Q1: new starts 9, courses say 10"]
    )
    assert "do not reconcile" in flagged and "new starts 9, courses say 10" in flagged


def test_the_effect_report_section_is_the_public_variant_only(pages) -> None:
    m, public, internal, *_ = pages
    section = render_monitoring_section(m, public)
    assert "reports/monitoring.html" in section and "<table>" in section
    assert not [c for c in re.findall(r"<td[^>]*>(.*?)</td>", section) if re.fullmatch(r"[1-4]", c.strip())]
    with pytest.raises(ValueError, match="give it public_tables"):
        render_monitoring_section(m, internal)
    assert set(export_tables(public)) >= {
        "monitoring_new_starts",
        "monitoring_delivery",
        "monitoring_programme_stock",
    }


def test_rates_resting_on_few_rows_are_withheld(pages) -> None:
    _, public, *_ = pages
    delivery = public.tables["delivery"]
    assert set(delivery.filter(pl.col("site") == "a")["quarantine"]) == {"x"}  # 2 of 40 rows
    assert set(delivery.filter(pl.col("site") == "b")["quarantine"]) == {"0.0%"}
    assert set(delivery["link"]) <= {"100.0%", "x"}


def test_the_page_names_the_sites_and_its_tables_keep_their_ids(pages) -> None:
    m, public, internal, *_ = pages
    names = {"a": "Alpha Kommune", "b": "Beta Kommune", "c": "Gamma socialt tilbud"}
    for tables in (public, internal):
        page = render_monitoring_page(m, tables, generated_at="t", site_names=names)
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", page)
        assert {"Alpha Kommune", "Beta Kommune", "Gamma socialt tilbud"} <= set(cells)
        assert not {"a", "b", "c"} & set(cells), tables.variant  # no id left in a table, header or grid
        assert "Alpha Kommune" in re.sub(r"<table.*?</table>", "", page, flags=re.S)  # plot legends too
    assert set(export_tables(public)["monitoring_new_starts"]["site"]) == {"a", "b", "c", "Total"}
    # the names hold for one render only
    assert "Alpha Kommune" not in render_monitoring_page(m, public, generated_at="t")


def test_the_share_completed_is_withheld_when_its_counts_are(pages) -> None:
    from dataclasses import replace

    m, public, *_ = pages
    shown = render_monitoring_page(m, public, generated_at="t")
    assert "ended completed + ended early: <b>18 + 11</b> (62% of ended courses completed)" in shown
    early = public.tables["ended_early"].with_columns(
        pl.when(pl.col("site") == "Total").then(pl.lit("x")).otherwise(pl.col("Total")).alias("Total")
    )
    hidden = replace(public, tables={**public.tables, "ended_early": early})
    page = render_monitoring_page(m, hidden, generated_at="t")
    assert "<b>18 + x</b> (x of ended courses completed)" in page  # 18 of 29 would give the 11 away


def test_a_quality_flag_is_withheld_with_its_rate_and_the_slipping_table_counts_only_published_ones() -> None:
    # site a: 3 of 20 rows quarantined every quarter (15 %, above the 10 % target; 3 is a small count);
    # site b: 8 of 20 (40 %, published, above target too)
    m = _monitoring(lambda site, quarter: {"a": 3, "b": 8}.get(site, 0), rows_in=20)
    exact = m.delivery.filter(pl.col("site") == "a")
    assert exact["quarantine_above"].all() and exact["flags"].str.contains("quarantine above").all()
    controlled = controlled_alone(m)
    public = public_tables(m, controlled)
    delivery = public.tables["delivery"]
    a, b = delivery.filter(pl.col("site") == "a"), delivery.filter(pl.col("site") == "b")
    assert set(a["quarantine"]) == {"x"}
    assert set(a["quarantine_above"]) == {"x"} and not a["flags"].str.contains("quarantine").any()
    assert set(b["quarantine_above"]) == {"yes"} and set(delivery["rows_in"]) == {"20"}
    assert controlled.masks["monitoring_delivery"].filter(pl.col("quarantine_rate"))["quarantine_above"].all()
    assert set(b["quarantine"]) == {"40.0%"} and b["flags"].str.contains("quarantine above target").all()
    slipping = {r["site"]: r for r in public.tables["slipping"].iter_rows(named=True)}
    assert slipping["a"]["quality_missed"] == 0 and "quarantine" not in (slipping["a"]["recent_flags"] or "")
    assert slipping["b"]["quality_missed"] == 4 and slipping["b"]["slipping"]
    page = render_monitoring_page(m, public, generated_at="2026-12-01 10:00 UTC")
    def grid(html: str) -> dict[str, str]:  # the delivery grid's rows by site
        table = html.split("Days from the quarter's end to the first file.", 1)[1].split("</table>", 1)[0]
        return {row.split("</td>", 1)[0].split(">")[-1]: row for row in table.split("<tr>")[2:]}

    public_grid = grid(page)
    assert " Q" not in public_grid["a"] and public_grid["b"].count(" Q") == len(QUARTERS)
    internal = grid(render_monitoring_page(m, internal_tables(m), generated_at="2026-12-01 10:00 UTC"))
    assert internal["a"].count(" Q") == internal["b"].count(" Q") == len(QUARTERS)
