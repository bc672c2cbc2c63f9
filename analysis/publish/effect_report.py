"""The researchers' effect report: one self-contained, deterministic HTML file with inline SVG plots.

Every count and estimate passes disclosure control (analysis.publish.sdc) before it is drawn or printed; the same
controlled tables are returned by :func:`export_tables` for the CSV/parquet files beside the HTML.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from analysis.publish.sdc import MIN_CELL, display_table, format_count, suppress_estimates  # noqa: E402

_RC = {"svg.hashsalt": "cti", "svg.fonttype": "none", "font.size": 9, "figure.dpi": 72}
SECTIONS = ("summary", "event-study", "raw-means", "balance", "staggered", "heterogeneity", "public-budget",
            "monitoring", "provenance", "methods", "truth", "run")


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Tables of one run (analysis.schema effect contracts); any may be empty."""

    estimates: pl.DataFrame
    event_study: pl.DataFrame
    matched_means: pl.DataFrame
    balance: pl.DataFrame
    group_time: pl.DataFrame
    aggregates: pl.DataFrame
    before_after: pl.DataFrame
    provenance: pl.DataFrame  # site, quarter, file_name, received_at, rows_in, rows_clean, rows_quarantined, rows_duplicate, status, reason
    run_info: dict[str, str] = field(default_factory=dict)
    truth: dict | None = None
    #: One row per planned outcome that is not current: outcome, status ("failed"/"missing"), reason.
    outcome_status: pl.DataFrame = field(default_factory=pl.DataFrame)
    headline_outcomes: tuple[str, ...] = ("self_support", "employed", "emergency_contacts")
    #: Pre-rendered bodies of the public-budget (SØM) and monitoring sections (analysis.publish.som_report,
    #: analysis.publish.monitoring_page); empty: the section says it is not available.
    public_budget_section: str = ""
    monitoring_section: str = ""


_BEFORE_AFTER = pl.Schema({"outcome": pl.String, "event_time": pl.Int32, "mean": pl.Float64, "se": pl.Float64,
                           "ci_lower": pl.Float64, "ci_upper": pl.Float64, "n": pl.Int64})


def _or_empty(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """A missing table (no columns) becomes an empty frame of its contract, so every section can filter it."""
    return frame if frame.width else pl.DataFrame(schema=schema)


def export_tables(inputs: ReportInputs) -> dict[str, pl.DataFrame]:
    """The disclosure-controlled tables exactly as the report shows them (suppressed values are null)."""
    from analysis.schema import (
        BALANCE,
        EFFECT_ESTIMATES,
        EVENT_STUDY,
        GROUP_TIME_ATT,
        MATCHED_MEANS,
        STAGGERED_AGGREGATES,
    )

    inputs = ReportInputs(
        estimates=_or_empty(inputs.estimates, EFFECT_ESTIMATES), event_study=_or_empty(inputs.event_study, EVENT_STUDY),
        matched_means=_or_empty(inputs.matched_means, MATCHED_MEANS), balance=_or_empty(inputs.balance, BALANCE),
        group_time=_or_empty(inputs.group_time, GROUP_TIME_ATT), aggregates=_or_empty(inputs.aggregates, STAGGERED_AGGREGATES),
        before_after=_or_empty(inputs.before_after, _BEFORE_AFTER), provenance=inputs.provenance,
    )
    est = ("estimate", "se", "ci_lower", "ci_upper")
    out = {
        "estimates": suppress_estimates(inputs.estimates, n_columns=["n_treated", "n_controls"], value_columns=[*est, "mde"],
                                        optional=["n_controls"]),
        "event_study": suppress_estimates(inputs.event_study, n_columns=["n_treated", "n_controls"], value_columns=est),
        "matched_means": suppress_estimates(inputs.matched_means, n_columns=["n"], value_columns=["mean"]),
        "group_time": suppress_estimates(inputs.group_time, n_columns=["n_treated"], value_columns=["att", "se", "ci_lower", "ci_upper"]),
        "aggregates": suppress_estimates(inputs.aggregates, n_columns=["n_treated"], value_columns=["att", "se", "ci_lower", "ci_upper"]),
        "before_after": suppress_estimates(inputs.before_after, n_columns=["n"], value_columns=["mean", "se", "ci_lower", "ci_upper"]),
        "balance": inputs.balance,
    }
    if inputs.provenance.height and "rows_in" in inputs.provenance.columns:
        out["provenance"] = display_table(
            inputs.provenance.with_columns(pl.col("rows_in").fill_null(0)), rows="site", columns="quarter", count="rows_in"
        )
    return out


# --- rendering helpers -----------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\s(xmlns(:xlink)?)="[^"]*"', "", text)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = text.replace("xlink:href", "href")
    return f'<figure class="plot">{text}</figure>'


def _num(value: float | None, digits: int = 3) -> str:
    return "<5" if value is None else f"{value:.{digits}f}"


def _table(frame: pl.DataFrame, columns: list[str], headers: list[str] | None = None, counts: tuple[str, ...] = ()) -> str:
    if not frame.height:
        return '<p class="na">Not available for this run.</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in (headers or columns))
    body = []
    flags = frame["suppressed"].to_list() if "suppressed" in frame.columns else [False] * frame.height
    for row, hidden in zip(frame.select(columns).iter_rows(named=True), flags, strict=True):
        cells = []
        for c in columns:
            v = row[c]
            if hidden and (v is None or c in counts):
                cells.append("<5")
            elif c in counts:
                cells.append("" if v is None else format_count(v))
            elif isinstance(v, float):
                cells.append(_num(v))
            elif v is None:
                cells.append("–")
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
        err = [[y - (a if a is not None else y) for y, a in zip(ys, lo, strict=True)],
               [(b if b is not None else y) - y for y, b in zip(ys, hi, strict=True)]]
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


def render_effect_report(inputs: ReportInputs) -> str:
    """Render the report (deterministic: the same inputs give the same bytes)."""
    t = export_tables(inputs)
    est = t["estimates"]
    parts: list[str] = []

    def section(key: str, title: str, body: str) -> None:
        parts.append(f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>')

    overall = est.filter(pl.col("dimension") == "all") if est.height else est
    headline = overall.filter(pl.col("outcome").is_in(list(inputs.headline_outcomes))) if overall.height else overall
    status = inputs.outcome_status
    failed = ""
    if status.height:
        failed = ('<p class="warn">Outcomes without current estimates in this run (their partition failed or never '
                  'ran; rerun them from the Dagster UI):</p>' + _table(status, ["outcome", "status", "reason"]))
    section("summary", "Headline effects", failed + _table(
        headline, ["outcome", "design", "window", "estimate", "ci_lower", "ci_upper", "n_treated", "n_controls", "mde", "pretrend_p"],
        ["outcome", "design", "window (months)", "estimate", "95% CI low", "95% CI high", "n treated", "n controls", "MDE", "pre-trend p"],
        counts=("n_treated", "n_controls"),
    ) + "<p>All outcomes:</p>" + _table(overall, ["outcome", "design", "estimate", "ci_lower", "ci_upper", "n_treated", "n_controls", "mde"],
                                        counts=("n_treated", "n_controls")))

    es = t["event_study"]
    section("event-study", "Event study on the matched sample", "".join(
        _ci_plot(es.filter(pl.col("outcome") == o), "event_time", f"{o}: effect by month from start (ref. -1)", "months from start")
        for o in inputs.headline_outcomes) if es.height else '<p class="na">Not available.</p>')

    mm, ba = t["matched_means"], t["before_after"]
    raw = []
    for o in inputs.headline_outcomes:
        frame = mm.filter(pl.col("outcome") == o)
        raw.append(_lines_plot(frame, {"participants": "participants", "comparisons": "matched comparisons"}, f"{o}: raw means"))
        naive = ba.filter(pl.col("outcome") == o).select(pl.lit("participants").alias("group"), "event_time", "mean")
        raw.append(_lines_plot(naive, {"participants": "participants (naive before/after)"}, f"{o}: naive before/after (the Ashenfelter dip)"))
    section("raw-means", "Participants vs matched comparisons by month from start", "".join(raw))

    bal = t["balance"]
    worst = float(bal["smd_after"].abs().max()) if bal.height else None
    note = "" if worst is None else (f'<p class="{"warn" if worst >= 0.1 else ""}">Largest |SMD| after matching: {worst:.3f} '
                                     f'({"above" if worst >= 0.1 else "below"} the 0.1 threshold).</p>')
    section("balance", "Covariate balance (love plot)", note + _love_plot(bal) + _table(
        bal, ["covariate", "mean_treated", "mean_control_before", "mean_control_after", "smd_before", "smd_after", "var_ratio_after"]))

    gt, agg = t["group_time"], t["aggregates"]
    stag = []
    for o in inputs.headline_outcomes:
        stag.append(_heatmap(gt.filter(pl.col("outcome") == o), f"{o}: ATT(g, t) by start month (rows) and month"))
        dyn = agg.filter((pl.col("outcome") == o) & (pl.col("aggregation") == "dynamic")).rename({"att": "estimate"})
        stag.append(_ci_plot(dyn, "key", f"{o}: dynamic aggregation (months from start)", "months from start"))
    stag.append(_table(agg.filter(pl.col("aggregation") != "dynamic") if agg.height else agg,
                       ["outcome", "aggregation", "key", "att", "ci_lower", "ci_upper", "n_treated"], counts=("n_treated",)))
    section("staggered", "Staggered adoption (Callaway & Sant'Anna)", "".join(stag))

    het = est.filter(pl.col("dimension") != "all") if est.height else est
    body = []
    for dim in ("delmaalgruppe", "site", "completed", "start_cohort"):
        for o in inputs.headline_outcomes:
            rows = het.filter((pl.col("dimension") == dim) & (pl.col("outcome") == o)) if het.height else het
            if rows.height:
                body.append(f"<h3>{_e(o)} by {_e(dim)}</h3>" + _ci_plot(rows.with_columns(pl.col("level").alias("x")), "x", f"{o} by {dim}", dim)
                            + _table(rows, ["level", "estimate", "ci_lower", "ci_upper", "n_treated", "n_controls", "mde"], counts=("n_treated", "n_controls")))
    section("heterogeneity", "Effects by sub-target-group, site, completion and start cohort",
            "".join(body) or '<p class="na">Not available.</p>')

    # public budget (SØM) and programme monitoring: rendered by their own modules
    na = '<p class="na">Not available for this run.</p>'
    section("public-budget", "What the effects are worth to the public purse (SØM)",
            inputs.public_budget_section or na)
    section("monitoring", "Programme monitoring", inputs.monitoring_section or na)

    prov = inputs.provenance if "status" in inputs.provenance.columns else pl.DataFrame()
    missing = prov.filter(pl.col("status") != "ok") if prov.height else prov
    prov_body = ""
    if missing.height:
        prov_body += '<p class="warn">Submissions missing or failed (estimates exclude them):</p>' + _table(
            missing, ["site", "quarter", "file_name", "status", "reason"])
    if prov.height:
        detail = prov.with_columns([pl.col(c).map_elements(format_count, return_dtype=pl.String)
                                    for c in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate")])
        prov_body += "<p>Rows received by site and quarter:</p>" + _table(t["provenance"], t["provenance"].columns)
        prov_body += "<p>Each submission:</p>" + _table(detail, ["site", "quarter", "file_name", "received_at", "rows_in", "rows_clean",
                                                                 "rows_quarantined", "rows_duplicate", "status"])
    section("provenance", "Data provenance", prov_body or '<p class="na">Not available.</p>')

    section("methods", "Methods", f"""
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
<p><b>Power.</b> MDE = 2.80 x standard error (80% power, 5% two-sided test).</p>
<p><b>Disclosure control.</b> Counts of 1..{MIN_CELL - 1} persons are shown as &lt;5 and estimates on fewer than
{MIN_CELL} persons are removed; in two-way tables further cells are suppressed (x) so that no small cell can be
derived from the totals (checked by linear programming).</p>""")

    if inputs.truth:
        rows = []
        for o, facts in inputs.truth.items():
            planted = facts.get("att_months_12_24")
            for r in overall.filter((pl.col("outcome") == o) & (pl.col("design") != "naive_before_after")).iter_rows(named=True) if overall.height else []:
                covered = None if r["ci_lower"] is None or planted is None else r["ci_lower"] <= planted <= r["ci_upper"]
                rows.append({"outcome": o, "design": r["design"], "planted": planted, "estimate": r["estimate"],
                             "ci_lower": r["ci_lower"], "ci_upper": r["ci_upper"],
                             "covered": {True: "yes", False: "no", None: "-"}[covered]})
        section("truth", "Mock world: estimates vs the planted effect", _table(pl.DataFrame(rows), ["outcome", "design", "planted", "estimate", "ci_lower", "ci_upper", "covered"]) if rows else '<p class="na">Not available.</p>')
    else:
        section("truth", "Planted truth", "<p>Real data: there is no planted truth to compare with.</p>")

    section("run", "Run information", "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in sorted(inputs.run_info.items())) + "</dl>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CTI effect report</title>'
            f"<style>{_CSS}</style></head><body><h1>Critical Time Intervention: effect report</h1>{''.join(parts)}</body></html>\n")
