"""The programme-monitoring page, in two variants, and its section of the effect report.

* **Public** (``reports/monitoring.html``): its tables are the effect report's jointly controlled ones
  (:func:`analysis.publish.monitoring_tables.public_tables`), so every count of persons or courses is
  disclosure-controlled together with everything else the report publishes; the report's asset writes it,
  and only when the attacker's audit of the whole publication passes. Anything withheld is listed on the
  page.
* **Internal** (``restricted/reports/monitoring.html``): exact counts for SBST, and says so on every screen.

Rendering is deterministic (the same monitoring gives the same bytes), self-contained and offline: inline
CSS and SVG, no script, no external reference.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from analysis.publish.monitoring import (  # noqa: E402
    PHASES,
    PROGRAMME,
    Monitoring,
    slipping_sites,
)
from analysis.publish.sdc import MIN_CELL, format_count  # noqa: E402

PUBLIC, INTERNAL = "public", "internal"
#: Section ids and titles, in page order (the table of contents).
SECTIONS = {
    "summary": "The programme at a glance",
    "flows": "Starts, active and ended courses",
    "phases": "Time in course and the three phases",
    "mix": "Sub-target groups (delmålgrupper)",
    "targets": "Targets",
    "delivery": "Delivery discipline",
    "definitions": "Definitions and configuration",
}
_SUPPRESSED = ("x", "<5")
_PHASE_LABEL = {
    "phase_1": "phase 1 (months 1-3)",
    "phase_2": "phase 2 (months 4-6)",
    "phase_3": "phase 3 (months 7-9)",
    "beyond_plan": "beyond the planned 9 months",
}
_RC = {"svg.hashsalt": "cti-monitoring", "svg.fonttype": "none", "font.size": 9, "figure.dpi": 72}
#: The sites' display names during one render (site id -> name, e.g. "aarhus" -> "Aarhus Kommune"): tables,
#: plot legends and the delivery grid show names; the exported tables keep the ids.
_SITE_NAMES: ContextVar[Mapping[str, str] | None] = ContextVar("site_names", default=None)


@contextmanager
def _site_names(names: Mapping[str, str] | None) -> Iterator[None]:
    token = _SITE_NAMES.set(dict(names or {}))
    try:
        yield
    finally:
        _SITE_NAMES.reset(token)


def _name(site: object) -> str:
    names = _SITE_NAMES.get() or {}
    return names.get(str(site), str(site))


@dataclass(frozen=True, slots=True)
class MonitoringTables:
    """What one variant of the page shows and exports: named tables and what was withheld, and why."""

    variant: str
    tables: dict[str, pl.DataFrame]
    withheld: tuple[str, ...]
    #: The smallest count of persons published (the disclosure rules the public tables were controlled by).
    min_persons: int = MIN_CELL

    def to_frame(self) -> pl.DataFrame:
        """Return the delivery table (one row per site and expected quarter)."""
        return self.tables["delivery"]


def _total_row(table: pl.DataFrame) -> dict:
    return table.filter(pl.col(table.columns[0]) == "Total").row(0, named=True)


def internal_tables(m: Monitoring, /) -> MonitoringTables:
    """Exact tables for SBST (never to be published or forwarded)."""
    return MonitoringTables(
        INTERNAL,
        {
            "flows": m.flows,
            "mix": m.mix,
            "endings": m.endings,
            "targets": m.targets,
            "delivery": m.delivery,
            "slipping": slipping_sites(m),
        },
        (),
    )


# --- rendering -----------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}".replace(",", " ")
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


def _table(
    frame: pl.DataFrame,
    columns: list[str] | None = None,
    headers: list[str] | None = None,
    row_class: str | None = None,
    files: bool = False,
) -> str:
    """Render a table; ``files`` marks one of facts about files and quarters, not counts of persons."""
    if not frame.height:
        return '<p class="na">Nothing to show.</p>'
    columns = columns or frame.columns
    head = "".join(f"<th>{_e(_name(h))}</th>" for h in (headers or columns))
    body = []
    classes = frame[row_class].to_list() if row_class else [None] * frame.height
    sites = {i for i, c in enumerate(columns) if c == "site"}
    for row, css in zip(frame.select(columns).iter_rows(), classes, strict=True):
        attr = f' class="{_e(css)}"' if css else ""
        cells = (_name(v) if i in sites and v is not None else _cell(v) for i, v in enumerate(row))
        body.append(f"<tr{attr}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    kind = ' class="files"' if files else ""
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\s(xmlns(:xlink)?)="[^"]*"', "", text)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return f'<figure class="plot">{text.replace("xlink:href", "href")}</figure>'


def _number(cell: object) -> float | None:
    if cell is None or str(cell) in _SUPPRESSED or str(cell) == "":
        return None
    if isinstance(cell, int | float):
        return float(cell)
    text = str(cell).replace(" ", "").replace("%", "")
    try:
        return float(text)
    except ValueError:
        return None


def _lines(
    series: dict[str, list[float | None]],
    quarters: tuple[str, ...],
    title: str,
    ylabel: str,
    target: float | None = None,
) -> str:
    """Draw one line per series over the quarters (gaps where withheld), with an optional target line."""
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.2, 2.6))
        xs = list(range(len(quarters)))
        for label, values in series.items():
            ax.plot(
                xs,
                [float("nan") if v is None else v for v in values],
                marker="o",
                ms=3,
                lw=1.2,
                label=_name(label),
            )
        if target is not None:
            ax.axhline(target, color="#c00", lw=0.8, ls="--", label="target")
        step = max(1, len(quarters) // 8)
        ax.set_xticks(xs[::step], list(quarters)[::step], fontsize=7)
        ax.set_title(title)
        ax.set_xlabel("quarter")
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.22))
        from analysis.publish.figures import svg

        return svg(fig, name=title)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222;
line-height:1.45}
h1{font-size:1.5rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.8rem}
td,th{border:1px solid #ccc;padding:.15rem .4rem;
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.na{color:#777;font-style:italic}
figure.plot{margin:.5rem 0}figure.plot svg{max-width:100%;height:auto}
.banner{padding:.6rem 1rem;border-radius:4px;margin:.8rem 0;font-weight:600}
.internal{background:#b00020;color:#fff;position:sticky;top:0;z-index:2}
.public{background:#e8f1fb;color:#123;border:1px solid #9cc2e5}
.warn{color:#a00}tr.bad td{background:#fde2e2}tr.note td{background:#fff4d6}
td.ok{background:#e3f4e1}td.late,td.missing,td.failed{background:#f8c9c9}td.note{background:#fff0c2}
nav ol{columns:2;font-size:.9rem}.legend span{display:inline-block;padding:0 .4rem;margin-right:.4rem}
@media print{section,figure,table{break-inside:avoid}.internal{position:static}}
"""


def _delivery_grid(m: Monitoring, delivery: pl.DataFrame) -> str:
    """Site x quarter grid: days after the quarter (coloured by status), with markers for the other flags."""
    cells = {(r["site"], r["quarter"]): r for r in delivery.iter_rows(named=True)}
    head = "<th>site</th>" + "".join(f"<th>{_e(q)}</th>" for q in m.quarters)
    rows = []
    for site in m.sites:
        tds = [f"<td>{_e(_name(site))}</td>"]
        for quarter in m.quarters:
            r = cells.get((site, quarter))
            if r is None:
                tds.append("<td></td>")
                continue
            status = r["status"]
            if status != "received":
                tds.append(f'<td class="{status}">{_e(status)}</td>')
                continue
            marks = (
                ("R" if r["resubmissions"] else "")
                + ("Q" if "quarantine" in r["flags"] else "")
                + ("L" if "link rate" in r["flags"] else "")
            )
            css = "late" if r["late"] else "note" if marks else "ok"
            tds.append(
                f'<td class="{css}">{_e(r["days_after_quarter"])}{(" " + marks) if marks else ""}</td>'
            )
        rows.append("<tr>" + "".join(tds) + "</tr>")
    legend = (
        '<p class="legend">Days from the quarter\'s end to the first file. <span class="ok">on time</span>'
        '<span class="late" style="background:#f8c9c9">late / missing / unreadable</span>'
        '<span style="background:#fff0c2">R resubmitted, Q quarantine above target, L link rate below '
        "target</span></p>"
    )
    return (
        legend + f'<table class="files"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def render_monitoring_page(
    m: Monitoring,
    tables: MonitoringTables,
    /,
    *,
    generated_at: str,
    reconciliation: tuple[str, ...] | list[str] = (),
    site_names: Mapping[str, str] | None = None,
) -> str:
    """Render the whole page of one variant (deterministic for a given ``generated_at``).

    ``site_names`` (site id -> name) labels the sites on the page; its tables' files keep the ids.
    """
    with _site_names(site_names):
        return _render_page(m, tables, generated_at=generated_at, reconciliation=reconciliation)


def _render_page(
    m: Monitoring,
    tables: MonitoringTables,
    /,
    *,
    generated_at: str,
    reconciliation: tuple[str, ...] | list[str],
) -> str:
    public = tables.variant == PUBLIC
    t = tables.tables
    parts: list[str] = []

    def section(key: str, title: str, body: str) -> None:
        parts.append(f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>')

    if public:
        banner = (
            '<div class="banner public">For publication: every count of citizens or courses is '
            "disclosure-controlled together with the effect report's tables (counts of "
            f"1-{tables.min_persons - 1} and cells that published totals would give away are shown as x)."
            "</div>"
        )
    else:
        banner = (
            '<div class="banner internal">INTERNAL – EXACT COUNTS, NOT DISCLOSURE-CONTROLLED. For SBST\'s '
            "programme monitoring only: do not publish, forward or copy into reports. The publishable page "
            "is "
            "reports/monitoring.html.</div>"
        )
    problems = ""
    if reconciliation:
        problems = (
            '<p class="warn"><b>The monitoring counts do not reconcile with the courses asset; do not use '
            "them until this is fixed:</b></p><ul>"
            + "".join(f"<li>{_e(p)}</li>" for p in reconciliation[:20])
            + "</ul>"
        )
    toc = (
        "<nav><ol>"
        + "".join(f'<li><a href="#{k}">{_e(v)}</a></li>' for k, v in SECTIONS.items())
        + "</ol></nav>"
    )

    programme = m.flows.filter(pl.col("site") == PROGRAMME)
    latest = programme.filter(pl.col("quarter") == m.through).row(0, named=True)
    ended = int(
        programme.select(pl.sum_horizontal("ended_completed", "ended_early", "ended_unknown")).sum().item()
    )
    completed = int(programme["ended_completed"].sum())
    share = f"{completed / ended:.0%}" if ended else "–"
    slipping = t["slipping"].filter(pl.col("slipping"))
    if public:
        total_starts = _total_row(t["new_starts"])["Total"]
        open_now = t["programme_stock"]["open_at_end"][-1]
        shown = [str(_total_row(t[c])["Total"]) for c in ("ended_completed", "ended_early")]
        ended_text = " + ".join(shown)
        if not all(v.isdigit() for v in shown) or int(programme["ended_unknown"].sum()):
            share = "x"  # a share of hidden counts would give them away (6 of 7: one ended early)
    else:
        total_starts, open_now = format_count(int(programme["new_starts"].sum())), latest["open_at_end"]
        ended_text = f"{completed} + {int(programme['ended_early'].sum())}"
    summary = (
        f"<p>{len(m.sites)} sites, {_e(m.quarters[0])}–{_e(m.through)}. "
        f"Courses started: <b>{_e(total_starts)}</b>; "
        f"open at the end of {_e(m.through)}: <b>{_e(open_now)}</b>; ended completed + ended early: "
        f"<b>{_e(ended_text)}</b> ({share} of ended courses completed).</p>"
    )
    summary += (
        "<p>Sites that slip (a missing, late or unreadable file, or a quality target missed, in the last "
        "two "
        f"quarters): <b>{_e(', '.join(map(_name, slipping['site'].to_list())) or 'none')}</b>.</p>"
    )
    summary += _table(
        t["slipping"],
        [
            "site",
            "expected",
            "late",
            "missing",
            "failed",
            "resubmitted",
            "quality_missed",
            "slipping",
            "recent_flags",
        ],
        [
            "site",
            "quarters expected",
            "late",
            "missing",
            "unreadable",
            "resubmitted",
            "quality target missed",
            "slipping",
            "flags of the last two quarters",
        ],
        files=True,
    )
    section("summary", SECTIONS["summary"], summary)

    flows_body = _flows_plot(m, t, public)
    if public:
        for name, title in (
            ("new_starts", "New starts"),
            ("ended_completed", "Courses ended, completed"),
            ("ended_early", "Courses ended early (not completed)"),
            ("ended_unknown", "Courses ended without a completion flag"),
        ):
            if name in t:
                flows_body += f"<h3>{_e(title)} by site and quarter</h3>" + _table(t[name])
        flows_body += "<h3>The programme's courses by quarter</h3>" + _table(
            t["programme_stock"], headers=["quarter", "active in the quarter", "open at the quarter's end"]
        )
    else:
        flows_body += _table(
            t["flows"],
            [
                "site",
                "quarter",
                "new_starts",
                "active",
                "ended_completed",
                "ended_early",
                "ended_unknown",
                "open_at_end",
                "cumulative_starts",
                "mean_months_ended",
            ],
            [
                "site",
                "quarter",
                "new starts",
                "active",
                "ended completed",
                "ended early",
                "ended, no flag",
                "open at end",
                "started so far",
                "mean months (ended)",
            ],
        )
    section("flows", SECTIONS["flows"], flows_body)

    section("phases", SECTIONS["phases"], _phases_body(m, t, public))
    section("mix", SECTIONS["mix"], _mix_body(m, t, public))
    section("targets", SECTIONS["targets"], _targets_body(m, t, public))
    section("delivery", SECTIONS["delivery"], _delivery_body(m, t, public))

    notes = ""
    if tables.withheld:
        notes = (
            "<p>Withheld from this page by disclosure control:</p><ul>"
            + "".join(f"<li>{_e(w)}</li>" for w in tables.withheld)
            + "</ul>"
        )
    plan = m.plan.table.select("measure", "scope", "delmaalgruppe", "min", "max", "unit", "source")
    section(
        "definitions",
        SECTIONS["definitions"],
        f"""
<p><b>New start</b>: a course whose start date falls in the quarter. <b>Active</b>: open on at least one
day of the quarter (= open at the end of the previous quarter + new starts). <b>Ended completed /
early</b>: the end date falls in the quarter and the site reported the course completed (ja) / not
completed (nej); a course that has ended without a completion flag is counted apart. <b>Open</b> at the
quarter's end: started and not yet ended (an ongoing course has no end date). Every count reconciles
exactly with the consolidated <code>courses</code> asset (an asset check).</p>
<p><b>Phases</b>: a course is in phase k while its date is at most start + k x {m.plan.phase_months}
months, and beyond plan after start + {m.plan.planned_months} months. <b>Targets</b> count distinct
citizens (pseudonyms) who started a course up to the quarter's end. <b>Delivery</b>: days from the
quarter's end to the first received file; a file after the deadline is late; resubmissions are versions
after the first; the quarantine rate is that of the current file, the link rate that of the quarter's
newly reported participants.</p>
{notes}<p>The targets and thresholds (<code>pipelines/config/monitoring_targets.csv</code>; a deployment's
configuration directory replaces it):</p>{_table(plan)}""",
    )
    variant = "for publication" if public else "INTERNAL"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CTI programme monitoring '
        f"({variant})</title><style>{_CSS}</style></head><body>{banner}<h1>Critical Time Intervention: "
        f"programme monitoring, {_e(m.quarters[0])}–{_e(m.through)}</h1><p>Generated {_e(generated_at)}.</p>"
        f"{problems}{toc}"
        f"{''.join(parts)}{banner if not public else ''}</body></html>\n"
    )


def _flows_plot(m: Monitoring, t: dict[str, pl.DataFrame], public: bool) -> str:
    if public:
        starts = [_number(_total_row(t["new_starts"])[q]) for q in m.quarters]
        ended = [
            None
            if any(_number(_total_row(t[c])[q]) is None for c in ("ended_completed", "ended_early"))
            else sum(_number(_total_row(t[c])[q]) for c in ("ended_completed", "ended_early"))
            for q in m.quarters
        ]
        open_now = [_number(v) for v in t["programme_stock"]["open_at_end"].to_list()]
    else:
        programme = m.flows.filter(pl.col("site") == PROGRAMME)
        starts = programme["new_starts"].to_list()
        ended = (
            programme["ended_completed"] + programme["ended_early"] + programme["ended_unknown"]
        ).to_list()
        open_now = programme["open_at_end"].to_list()
    return _lines(
        {"new starts": starts, "ended": ended, "open at the quarter's end": open_now},
        m.quarters,
        "The programme's courses by quarter",
        "courses",
    )


def _phases_body(m: Monitoring, t: dict[str, pl.DataFrame], public: bool) -> str:
    intro = (
        f"<p>Planned: {m.plan.planned_months} months in three phases of {m.plan.phase_months} months "
        "(planning and initiation, trial and adjustment, handover and anchoring).</p>"
    )
    if public:
        body = intro
        if "open_by_phase" in t:
            body += f"<h3>Open courses at the end of {_e(m.through)} by phase</h3>" + _table(
                t["open_by_phase"]
            )
        if "endings_by_phase" in t:
            body += (
                "<h3>Ended courses by the phase they ended in, and completion (all quarters)</h3>"
                + _table(t["endings_by_phase"])
            )
        return body
    open_cols = [f"open_{p}" for p in PHASES]
    latest = m.flows.filter(pl.col("quarter") == m.through).select("site", *open_cols, "mean_months_ended")
    ends = (
        m.endings.group_by("site", "phase", "completion")
        .agg(pl.col("courses").sum())
        .pivot(on="completion", index=["site", "phase"], values="courses")
        .sort("site", "phase")
    )
    return (
        intro
        + f"<h3>Open courses at the end of {_e(m.through)} by site and phase</h3>"
        + _table(latest, headers=["site", *[_PHASE_LABEL[p] for p in PHASES], "mean months of courses ended"])
        + "<h3>Ended courses by site, the phase they ended in, and completion (all quarters)</h3>"
        + _table(ends)
    )


def _mix_body(m: Monitoring, t: dict[str, pl.DataFrame], public: bool) -> str:
    if public:
        return (
            ("<p>New starts by delmålgruppe and site, all quarters:</p>" + _table(t["mix"]))
            if "mix" in t
            else ('<p class="na">Withheld by disclosure control (see Definitions).</p>')
        )
    starts = (
        m.mix.filter(pl.col("site") != PROGRAMME)
        .group_by("delmaalgruppe", "site")
        .agg(pl.col("new_starts").sum())
        .pivot(on="site", index="delmaalgruppe", values="new_starts")
        .sort("delmaalgruppe")
    )
    by_quarter = (
        m.mix.filter(pl.col("site") == PROGRAMME)
        .pivot(on="quarter", index="delmaalgruppe", values="new_starts")
        .sort("delmaalgruppe")
    )
    return (
        "<p>New starts by delmålgruppe and site, all quarters:</p>"
        + _table(starts)
        + "<p>The programme's new starts by delmålgruppe and quarter:</p>"
        + _table(by_quarter)
    )


def _goal() -> pl.Expr:
    """Write the target in words ("at least 40", "120-150"): no bare number reads like a count."""
    low, high = pl.col("min").cast(pl.Int64).cast(pl.String), pl.col("max").cast(pl.Int64).cast(pl.String)
    return (
        pl.when(pl.col("min").is_not_null() & pl.col("max").is_not_null())
        .then(low + pl.lit("–") + high)
        .when(pl.col("min").is_not_null())
        .then(pl.lit("at least ") + low)
        .otherwise(pl.lit("at most ") + high)
    )


def _targets_body(m: Monitoring, t: dict[str, pl.DataFrame], public: bool) -> str:
    if public:
        return (
            f"<p>Distinct citizens who started a course up to the end of {_e(m.through)} (the targets' "
            "sources are under Definitions):</p>"
            + _table(
                t["targets"].with_columns(goal=_goal()), ["target", "site", "citizens", "goal", "status"]
            )
        )
    latest = t["targets"].filter(pl.col("quarter") == m.through)
    body = f"<p>Distinct citizens who started a course up to the end of {_e(m.through)}:</p>" + _table(
        latest.with_columns(goal=_goal()), ["target", "site", "value", "goal", "status"]
    )
    for (target,), rows in t["targets"].partition_by("target", as_dict=True, maintain_order=True).items():
        series = {
            site: part.sort("quarter")["value"].to_list()
            for (site,), part in rows.partition_by("site", as_dict=True, maintain_order=True).items()
        }
        low = rows["min"].drop_nulls()
        body += _lines(series, m.quarters, f"Progress: {target}", "citizens", low[0] if low.len() else None)
    return body


def _delivery_body(m: Monitoring, t: dict[str, pl.DataFrame], public: bool) -> str:
    d = t["delivery"]
    body = _delivery_grid(m, d if public else m.delivery)  # public: the flags whose rates are published
    days = {s: [None] * len(m.quarters) for s in m.sites}
    quarantine = {s: [None] * len(m.quarters) for s in m.sites}
    link = {s: [None] * len(m.quarters) for s in m.sites}
    index = {q: i for i, q in enumerate(m.quarters)}
    for r in d.iter_rows(named=True):
        i = index[r["quarter"]]
        days[r["site"]][i] = r["days_after_quarter"]
        quarantine[r["site"]][i] = (
            _number(r["quarantine"])
            if public
            else (None if r["quarantine_rate"] is None else 100 * r["quarantine_rate"])
        )
        link[r["site"]][i] = (
            _number(r["link"]) if public else (None if r["link_rate"] is None else 100 * r["link_rate"])
        )
    first = m.sites[0]
    deadline = m.plan.bound("delivery_days", first)[1]
    q_target = m.plan.bound("quarantine_rate", first)[1]
    l_target = m.plan.bound("link_rate", first)[0]
    body += _lines(days, m.quarters, "Days from the quarter's end to the first file", "days", deadline)
    if public:  # most rates rest on 1-4 quarantined rows and are withheld: the grid's Q marks say enough
        body += (
            "<p>Quarantine rates are not plotted on the public page (most rest on fewer than 5 rows); the "
            "grid marks files above the target with Q where the rate is published (a withheld rate, x in "
            "the table below, is not marked either way).</p>"
        )
    else:
        body += _lines(
            quarantine,
            m.quarters,
            "Quarantined rows of the current file (%)",
            "%",
            None if q_target is None else 100 * q_target,
        )
    body += _lines(
        link,
        m.quarters,
        "Newly reported participants found in the register (%)",
        "%",
        None if l_target is None else 100 * l_target,
    )
    css = d.select(
        css=pl.when(pl.col("status") != "received")
        .then(pl.lit("bad"))
        .when(pl.col("late").fill_null(False))
        .then(pl.lit("bad"))
        .when(pl.col("flags") != "")
        .then(pl.lit("note"))
    )["css"]
    shown = d.with_columns(css)
    if public:
        columns = [
            "site",
            "quarter",
            "status",
            "first_received",
            "days_after_quarter",
            "deadline_days",
            "resubmissions",
            "quarantine",
            "link",
            "flags",
        ]
        headers = [
            "site",
            "quarter",
            "file",
            "first received",
            "days after quarter",
            "deadline (days)",
            "resubmissions",
            "quarantined rows",
            "linked",
            "flags",
        ]
    else:
        columns = [
            "site",
            "quarter",
            "status",
            "first_received",
            "days_after_quarter",
            "deadline_days",
            "resubmissions",
            "rows_in",
            "quarantined",
            "quarantine_rate",
            "participants",
            "linked",
            "link_rate",
            "flags",
        ]
        headers = [
            "site",
            "quarter",
            "file",
            "first received",
            "days after quarter",
            "deadline (days)",
            "resubmissions",
            "rows",
            "quarantined",
            "quarantine rate",
            "participants",
            "linked",
            "link rate",
            "flags",
        ]
    return (
        body
        + "<h3>Every expected delivery</h3>"
        + _table(shown, columns, headers, row_class="css", files=True)
    )


def render_monitoring_section(m: Monitoring, tables: MonitoringTables, /, *, labels=None) -> str:
    """Render the effect report's monitoring section (public): programme flows, sites that slip."""
    if tables.variant != PUBLIC:
        raise ValueError(
            "the effect report is published: give it public_tables(monitoring, controlled) "
            "(analysis.publish.monitoring_tables)"
        )
    t = tables.tables
    totals = {c: _total_row(t[c]) for c in ("new_starts", "ended_completed", "ended_early")}
    rows = [
        {
            "quarter": q,
            "new starts": totals["new_starts"][q],
            "ended completed": totals["ended_completed"][q],
            "ended early": totals["ended_early"][q],
            "open at end": s,
        }
        for q, s in zip(m.quarters, t["programme_stock"]["open_at_end"].to_list(), strict=True)
    ]
    slipping = t["slipping"].filter(pl.col("slipping"))
    names = {s: labels.site(s) for s in m.sites} if labels is not None else {}
    targets = t["targets"].with_columns(
        goal=_goal(), target=pl.col("target").str.replace_all("_", " "),
        site=pl.col("site").cast(pl.String).replace(names))
    return (
        f"<p>The programme, {_e(m.quarters[0])}–{_e(m.through)}, all {len(m.sites)} sites "
        "(disclosure-controlled together with the rest of this report; the per-site tables, phases, "
        "sub-target groups, targets and delivery discipline are on the monitoring "
        "page, <code>reports/monitoring.html</code>).</p>"
        + _table(pl.DataFrame(rows), headers=["Quarter", "New starts", "Ended, completed", "Ended early",
                                               "Open at the quarter's end"])
        + "<p>Sites that slip in the last two quarters: "
        + f"<b>{_e(', '.join(names.get(s, s) for s in slipping['site'].to_list()) or 'none')}"
        "</b>.</p>"
        + _table(targets, ["target", "site", "citizens", "goal", "status"],
                 ["Target", "Site", "Citizens", "Goal", "Status"])
    )


def export_tables(tables: MonitoringTables, /) -> dict[str, pl.DataFrame]:
    """Return the variant's tables for CSV/parquet export (``monitoring_<name>``)."""
    return {f"monitoring_{name}": frame for name, frame in tables.tables.items()}


def render_unavailable(problems: list[str], /, *, generated_at: str, internal: bool) -> str:
    """Render the page that stands in when the monitoring could not be computed, saying why."""
    items = "".join(f"<li>{_e(p)}</li>" for p in problems) or "<li>no monitoring tables in this run</li>"
    banner = (
        '<div class="banner internal">INTERNAL – EXACT COUNTS, NOT DISCLOSURE-CONTROLLED.</div>'
        if internal
        else '<div class="banner public">For publication.</div>'
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CTI programme monitoring</title>'
        f"<style>{_CSS}</style></head><body>{banner}<h1>Critical Time Intervention: programme monitoring</h1>"
        f'<p>Generated {_e(generated_at)}.</p><section id="summary"><h2>Not computed</h2><p class="warn">The '
        "monitoring could not be computed in this run. Correct the configuration (<code>cti config "
        "check</code>) "
        f"and rerun:</p><ul>{items}</ul></section></body></html>\n"
    )
