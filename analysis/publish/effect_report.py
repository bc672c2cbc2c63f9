"""The researchers' effect report: one self-contained, deterministic HTML file with inline SVG plots.

Nothing here reads an uncontrolled number: :func:`publish` declares the run's tables
(analysis.publish.cti_tables) and controls them jointly (analysis.publish.disclosure); every table, plot,
export (:func:`export_tables`) and metadata value is taken from that one :class:`Controlled` publication.
Suppressed cells print as "x" and are left out of the plots.
"""

from __future__ import annotations

import html
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from analysis.publish.cti_tables import ReportInputs, declare  # noqa: E402
from analysis.publish.disclosure import Controlled, Rules, control  # noqa: E402

__all__ = ["SECTIONS", "ReportInputs", "export_tables", "publish", "render_effect_report"]

_RC = {"svg.hashsalt": "cti", "svg.fonttype": "none", "font.size": 9, "figure.dpi": 72}
SECTIONS = (
    "summary",
    "event-study",
    "raw-means",
    "balance",
    "staggered",
    "heterogeneity",
    "public-budget",
    "monitoring",
    "provenance",
    "methods",
    "truth",
    "run",
)
#: Count columns printed with a thousands separator.
_COUNTS = ("n", "n_treated", "n_controls", "rows_in", "rows_clean", "rows_quarantined", "rows_duplicate")


def publish(inputs: ReportInputs, /, *, rules: Rules | None = None) -> Controlled:
    """Return the run's published cells after joint disclosure control (with the audit result attached)."""
    return control(declare(inputs), rules=rules or Rules())


def export_tables(
    published: Controlled | ReportInputs, /, *, rules: Rules | None = None
) -> dict[str, pl.DataFrame]:
    """Return the published tables as the report shows them (suppressed cells null and named)."""
    if isinstance(published, ReportInputs):
        published = publish(published, rules=rules)
    out = {name: published.export(name) for name in published.frames}
    out["disclosure_control"] = published.to_frame()
    return out


# --- rendering helpers -----------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\s(xmlns(:xlink)?)="[^"]*"', "", text)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = text.replace("xlink:href", "href")
    return f'<figure class="plot">{text}</figure>'


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _count(value: object) -> str:
    return f"{int(value):,}".replace(",", " ")


def _view(published: Controlled, name: str, rows: pl.Expr | None = None) -> pl.DataFrame:
    """Return a published table with a ``<column>__x`` flag column per controlled column (to print "x")."""
    frame, mask = published.frames.get(name, pl.DataFrame()), published.masks.get(name, pl.DataFrame())
    if not frame.height:
        return frame
    both = pl.concat([frame, mask.rename({c: f"{c}__x" for c in mask.columns})], how="horizontal")
    return both.filter(rows) if rows is not None else both


def _table(frame: pl.DataFrame, columns: list[str], headers: list[str] | None = None) -> str:
    if not frame.height:
        return '<p class="na">Not available for this run.</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in (headers or columns))
    body = []
    for row in frame.iter_rows(named=True):
        cells = []
        for c in columns:
            v = row.get(c)
            if row.get(f"{c}__x"):
                cells.append("x")
            elif v is None:
                cells.append("–")
            elif c in _COUNTS or isinstance(v, int) and not isinstance(v, bool):
                cells.append(_count(v))
            elif isinstance(v, float):
                cells.append(_num(v))
            else:
                cells.append(str(v))
        body.append("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _ci_plot(frame: pl.DataFrame, x: str, title: str, xlabel: str) -> str:
    shown = frame.drop_nulls("estimate") if "estimate" in frame.columns else frame
    if not shown.height:
        return '<p class="na">Not available (no publishable estimates).</p>'
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
        xs, ys = shown[x].to_list(), shown["estimate"].to_list()
        lo, hi = shown["ci_lower"].to_list(), shown["ci_upper"].to_list()
        err = [
            [y - (a if a is not None else y) for y, a in zip(ys, lo, strict=True)],
            [(b if b is not None else y) - y for y, b in zip(ys, hi, strict=True)],
        ]
        ax.errorbar(xs, ys, yerr=err, fmt="o", ms=3, lw=0.8, color="#1f4e79")
        ax.axhline(0, color="#888", lw=0.6)
        if x == "event_time":
            ax.axvline(-0.5, color="#c00", lw=0.6, ls="--")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        return _svg(fig)


def _lines_plot(frame: pl.DataFrame, groups: dict[str, str], title: str) -> str:
    if not frame.height:
        return '<p class="na">Not available.</p>'
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
        for group, label in groups.items():
            part = frame.filter((pl.col("group") == group) & pl.col("mean").is_not_null()).sort("event_time")
            ax.plot(part["event_time"].to_list(), part["mean"].to_list(), label=label, lw=1.2)
        ax.axvline(0, color="#c00", lw=0.6, ls="--")
        ax.set_title(title)
        ax.set_xlabel("months from start")
        ax.legend(frameon=False)
        return _svg(fig)


def _love_plot(balance: pl.DataFrame) -> str:
    if not balance.height:
        return '<p class="na">Not available.</p>'
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.18 * balance.height + 1))
        ys = list(range(balance.height))
        ax.scatter(balance["smd_before"].abs().to_list(), ys, s=10, label="before matching", color="#999")
        ax.scatter(balance["smd_after"].abs().to_list(), ys, s=10, label="after matching", color="#1f4e79")
        ax.axvline(0.1, color="#c00", lw=0.6, ls="--")
        ax.set_yticks(ys, balance["covariate"].to_list(), fontsize=7)
        ax.set_xlabel("|standardised mean difference|")
        ax.legend(frameon=False, fontsize=7)
        return _svg(fig)


def _heatmap(gt: pl.DataFrame, title: str) -> str:
    shown = gt.drop_nulls("att")
    if not shown.height:
        return '<p class="na">Not available.</p>'
    cohorts, periods = sorted(shown["cohort"].unique()), sorted(shown["period"].unique())
    grid = [[None] * len(periods) for _ in cohorts]
    for r in shown.iter_rows(named=True):
        grid[cohorts.index(r["cohort"])][periods.index(r["period"])] = r["att"]
    import numpy as np

    values = np.array([[np.nan if v is None else v for v in row] for row in grid])
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.25 * len(cohorts) + 1.2))
        bound = float(np.nanmax(np.abs(values))) or 1.0
        im = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
        label = lambda q: f"{q // 4}Q{q % 4 + 1}"  # noqa: E731
        ax.set_yticks(range(len(cohorts)), [label(c) for c in cohorts], fontsize=7)
        step = max(1, len(periods) // 8)
        ax.set_xticks(range(0, len(periods), step), [label(p) for p in periods[::step]], fontsize=7)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
        return _svg(fig)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}td,th{border:1px solid #ccc;padding:.15rem .4rem;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.na{color:#777;font-style:italic}
figure.plot{margin:.5rem 0}figure.plot svg{max-width:100%;height:auto}.warn{color:#a00}
@media print{section,figure,table{break-inside:avoid}body{margin:0}}
"""


def render_effect_report(
    inputs: ReportInputs, /, *, published: Controlled | None = None, rules: Rules | None = None
) -> str:
    """Render the report from the controlled publication (deterministic: same inputs, same bytes).

    ``inputs`` gives only what is not a number of the run (headline outcomes, run information, outcome
    status, the mock world's planted truth); every count and estimate comes from ``published``.
    """
    if published is None:
        published = publish(inputs, rules=rules)
    t = published.frames
    parts: list[str] = []

    def section(key: str, title: str, body: str) -> None:
        parts.append(f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>')

    def frame(name: str) -> pl.DataFrame:
        return t.get(name, pl.DataFrame())

    heads = list(inputs.headline_outcomes)
    est = _view(published, "estimates")
    overall = est.filter(pl.col("dimension") == "all") if est.height else est
    headline = overall.filter(pl.col("outcome").is_in(heads)) if overall.height else overall
    status = inputs.outcome_status
    failed = ""
    if status.height:
        failed = (
            '<p class="warn">Outcomes without current estimates in this run (their partition failed or never '
            "ran; rerun them from the Dagster UI):</p>" + _table(status, ["outcome", "status", "reason"])
        )
    section(
        "summary",
        "Headline effects",
        failed
        + _table(
            headline,
            [
                "outcome",
                "design",
                "window",
                "estimate",
                "ci_lower",
                "ci_upper",
                "n_treated",
                "n_controls",
                "mde",
                "pretrend_p",
            ],
            [
                "outcome",
                "design",
                "window (months)",
                "estimate",
                "95% CI low",
                "95% CI high",
                "n treated",
                "n controls",
                "MDE",
                "pre-trend p",
            ],
        )
        + "<p>All outcomes:</p>"
        + _table(
            overall,
            ["outcome", "design", "estimate", "ci_lower", "ci_upper", "n_treated", "n_controls", "mde"],
        ),
    )

    es = frame("event_study")
    section(
        "event-study",
        "Event study on the matched sample",
        "".join(
            _ci_plot(
                es.filter(pl.col("outcome") == o),
                "event_time",
                f"{o}: effect by month from start (ref. -1)",
                "months from start",
            )
            for o in heads
        )
        if es.height
        else '<p class="na">Not available.</p>',
    )

    mm, ba = frame("matched_means"), frame("before_after")
    raw = []
    for o in heads:
        raw.append(
            _lines_plot(
                mm.filter(pl.col("outcome") == o) if mm.height else mm,
                {"participants": "participants", "comparisons": "matched comparisons"},
                f"{o}: raw means",
            )
        )
        naive = (
            ba.filter(pl.col("outcome") == o).select(
                pl.lit("participants").alias("group"), "event_time", "mean"
            )
            if ba.height
            else ba
        )
        raw.append(
            _lines_plot(
                naive,
                {"participants": "participants (naive before/after)"},
                f"{o}: naive before/after (the Ashenfelter dip)",
            )
        )
    section("raw-means", "Participants vs matched comparisons by month from start", "".join(raw))

    bal = _view(published, "balance")
    shown = bal.drop_nulls("smd_after") if bal.height else bal
    worst = float(shown["smd_after"].abs().max()) if shown.height else None
    note = (
        ""
        if worst is None
        else (
            f'<p class="{"warn" if worst >= 0.1 else ""}">Largest |SMD| after matching: {worst:.3f} '
            f"({'above' if worst >= 0.1 else 'below'} the 0.1 threshold).</p>"
        )
    )
    section(
        "balance",
        "Covariate balance (love plot)",
        note
        + _love_plot(shown)
        + _table(
            bal,
            [
                "covariate",
                "n_treated",
                "mean_treated",
                "mean_control_before",
                "mean_control_after",
                "smd_before",
                "smd_after",
                "var_ratio_after",
            ],
        ),
    )

    gt, agg = frame("group_time"), _view(published, "aggregates")
    stag = []
    for o in heads:
        stag.append(
            _heatmap(
                gt.filter(pl.col("outcome") == o) if gt.height else gt,
                f"{o}: ATT(g, t) by start month (rows) and month",
            )
        )
        dyn = (
            agg.filter((pl.col("outcome") == o) & (pl.col("aggregation") == "dynamic")).rename(
                {"att": "estimate"}
            )
            if agg.height
            else agg
        )
        stag.append(
            _ci_plot(dyn, "key", f"{o}: dynamic aggregation (months from start)", "months from start")
        )
    stag.append(
        _table(
            agg.filter(pl.col("aggregation") != "dynamic") if agg.height else agg,
            ["outcome", "aggregation", "key", "att", "ci_lower", "ci_upper", "n_treated"],
        )
    )
    section("staggered", "Staggered adoption (Callaway & Sant'Anna)", "".join(stag))

    het = est.filter(pl.col("dimension") != "all") if est.height else est
    body = []
    for dim in ("delmaalgruppe", "site", "completed", "start_cohort"):
        for o in heads:
            rows = het.filter((pl.col("dimension") == dim) & (pl.col("outcome") == o)) if het.height else het
            if rows.height:
                body.append(
                    f"<h3>{_e(o)} by {_e(dim)}</h3>"
                    + _ci_plot(rows.with_columns(pl.col("level").alias("x")), "x", f"{o} by {dim}", dim)
                    + _table(
                        rows, ["level", "estimate", "ci_lower", "ci_upper", "n_treated", "n_controls", "mde"]
                    )
                )
    section(
        "heterogeneity",
        "Effects by sub-target-group, site, completion and start cohort",
        "".join(body) or '<p class="na">Not available.</p>',
    )

    # public budget (SØM) and programme monitoring: rendered by their own modules
    na = '<p class="na">Not available for this run.</p>'
    section("public-budget", "What the effects are worth to the public purse (SØM)",
            inputs.public_budget_section or na)
    section("monitoring", "Programme monitoring", inputs.monitoring_section or na)

    files = frame("submissions")
    prov_body = ""
    if files.height and "status" in files.columns:
        missing = files.filter(pl.col("status") != "ok")
        if missing.height:
            prov_body += (
                '<p class="warn">Submissions missing or failed (estimates exclude them):</p>'
                + _table(
                    missing,
                    [c for c in ("site", "quarter", "file_name", "status", "reason") if c in files.columns],
                )
            )
        prov_body += "<p>Submissions received:</p>" + _table(
            files,
            [c for c in ("site", "quarter", "file_name", "received_at", "status") if c in files.columns],
        )
    for name in ("rows_by_quarter", "rows_by_year", "rows_by_status"):
        if name in t:
            view = _view(published, name)
            prov_body += f"<p>{_e(published.titles[name])}:</p>" + _table(view, t[name].columns)
    section("provenance", "Data provenance", prov_body or '<p class="na">Not available.</p>')

    audit = published.audit
    loss = (
        published.to_frame()
        .filter(pl.col("cells") > 0)
        .select(
            "table",
            text=pl.format(
                "{} of {} cells ({} %), {} of them by their own rule",
                pl.col("suppressed"),
                pl.col("cells"),
                (pl.col("share_suppressed") * 100).round(1),
                pl.col("primary"),
            ),
        )
    )
    choices = "".join(f"<li>{_e(c)}</li>" for c in published.choices)
    section(
        "methods",
        "Methods",
        _METHODS
        + f"""
<p><b>Disclosure control.</b> Every number on this page and in the exported tables is a published cell of one
controlled publication: the tables are declared with the role of each cell (person counts, shares and means with
their n and numerator, magnitudes with their contributors, estimates with the persons behind them) and with the
identities that tie them together within and across tables (margins, rows in = clean + quarantined + duplicates,
overall n = the sum of the sub-groups, the naive and the matched samples month by month, mean x n = numerator).
Suppressed: {_e(published.rules.describe())}; then, jointly over all tables, further cells so that no small
quantity can be derived (linear and integer programming over all published cells). Suppressed cells print as x
and are left out of the plots; a mean is shown only with its n.</p>
<p><b>Audit.</b> {_e(audit.summary())}.</p>
{"<ul>" + choices + "</ul>" if choices else ""}
<p>Cells suppressed per table:</p>{_table(loss, ["table", "text"], ["table", "suppressed"])}""",
    )

    if inputs.truth:
        rows = []
        for o, facts in inputs.truth.items():
            planted = facts.get("att_months_12_24")
            for r in (
                overall.filter(
                    (pl.col("outcome") == o) & (pl.col("design") != "naive_before_after")
                ).iter_rows(named=True)
                if overall.height
                else []
            ):
                covered = (
                    None
                    if r["ci_lower"] is None or planted is None
                    else r["ci_lower"] <= planted <= r["ci_upper"]
                )
                rows.append(
                    {
                        "outcome": o,
                        "design": r["design"],
                        "planted": planted,
                        "estimate": r["estimate"],
                        "ci_lower": r["ci_lower"],
                        "ci_upper": r["ci_upper"],
                        "covered": {True: "yes", False: "no", None: "-"}[covered],
                    }
                )
        section(
            "truth",
            "Mock world: estimates vs the planted effect",
            _table(
                pl.DataFrame(rows),
                ["outcome", "design", "planted", "estimate", "ci_lower", "ci_upper", "covered"],
            )
            if rows
            else '<p class="na">Not available.</p>',
        )
    else:
        section("truth", "Planted truth", "<p>Real data: there is no planted truth to compare with.</p>")

    section(
        "run",
        "Run information",
        "<dl>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in sorted(inputs.run_info.items()))
        + "</dl>",
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CTI effect report</title>'
        f"<style>{_CSS}</style></head><body><h1>Critical Time Intervention: effect report</h1>{''.join(parts)}</body></html>\n"
    )


_METHODS = """
<p><b>Naive before/after.</b> Participants' outcomes by month relative to their first CTI start. Outcomes fall in
the months before a critical transition and partly recover afterwards whatever happens (the Ashenfelter dip), so
the naive post-minus-dip contrast overstates the effect; it is shown only to motivate the comparison group.</p>
<p><b>Matched comparison.</b> At each participant's start month, candidates are persons not (yet) in CTI. Both
are described by their outcome history (means over months -36..-25, -24..-13, -12..-4 and each of the dip months
-3..-1), age, sex, origin, municipality type and education. Matching is exact on start month, sex and the
critical transition: a discharge from an institution stay (shelter/residential, psychiatric ward, prison) in month
-1, so participants are compared with persons who went through the same transition in the same month (everyone
with such a discharge enters the comparison pool). Within that split the score and the distance use age, sex,
origin, municipality type and education only: the candidates already share the dip, and matching again on noisy
pre-period outcomes would regress to their mean after the start (Daw &amp; Hatfield 2018); participants without a
recorded transition are matched on the history as well. A logit propensity score of take-up (fitted within the
split when it has at least 10 events per parameter) defines a caliper of 0.2 standard deviations of the split's
scores; within it the five nearest candidates on the standardised features are matched, with replacement, each
weighted 1/5. Balance is shown as standardised mean differences before and after matching, history included.</p>
<p><b>Difference-in-differences and event study.</b> On the stacked matched sample (a control stops being a
control when it starts CTI), weighted least squares with person-stack and stack-by-month fixed effects; standard
errors clustered by person. The event study is relative to month -1; the pre-trend test is the joint Wald test of
all pre-period coefficients. The pooled DiD compares months 12..24 with the whole pre-period.</p>
<p><b>Staggered adoption.</b> Callaway &amp; Sant'Anna (2021) group-time ATTs by month, stacked by start month:
each start month is compared with its own never-treated matched comparisons only (matching weights, doubly
robust), every month with the mean of the 12 months before the transition month (months -13..-2; month -1, the
transition itself, is anticipation), and the stacks are aggregated together with standard errors clustered by
person; the pooled effect is the dynamic aggregation over months 12..24 after start, the matched DiD's window.</p>
<p><b>Power.</b> MDE = 2.80 x standard error (80% power, 5% two-sided test).</p>"""
