"""The researchers' effect report: one self-contained, deterministic HTML file with inline SVG plots.

Nothing here reads an uncontrolled number: :func:`publish` declares the run's tables (analysis.publish.
cti_tables, analysis.publish.monitoring_tables) and controls them jointly (analysis.publish.disclosure);
every table, plot, sentence with a number, export and metadata value is taken from that one
:class:`Controlled` publication. Suppressed cells print as "x" and are left out of the plots.

The page reads as a paper's results section: a Danish summary for SBST, a table of contents, the headline
(one preferred design per outcome in a sentence with its estimate, 95 % CI, n and what was compared, and
what the study can detect), who is in the estimates (the sample flow), the event study relative to months
before the dip, effects by CTI phase, sensitivity (honest-DiD bounds, a placebo in time), raw means,
balance, the staggered design, sub-groups, the naive before/after as the warning it is, the public budget,
programme monitoring, provenance, methods, the mock world's truth and the run. Words, units and number
formats come from :mod:`analysis.publish.labels` (one format per unit); long tables are folded into
``<details>`` with their key rows visible; the print stylesheet lays it out on A4.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from analysis.publish import figures, report_tables
from analysis.publish.cti_tables import ReportInputs, declare
from analysis.publish.disclosure import Controlled, Rules, control
from analysis.publish.labels import UNITS, Labels, format_interval, format_number, quarter_label, span
from analysis.publish.report_tables import PHASES, TESTS, format_cell
from analysis.publish.workbook import CSV_CONVENTION

__all__ = ["SECTIONS", "ReportInputs", "export_tables", "publish", "render_effect_report"]

#: Section ids and titles, in page order (the table of contents).
TITLES = {
    "resume": "Resumé for Social- og Boligstyrelsen",
    "summary": "Headline effects",
    "sample-flow": "Who is in the estimates: the sample flow",
    "event-study": "Event study",
    "phases": "Effects by CTI phase",
    "sensitivity": "Sensitivity: honest DiD bounds and a placebo",
    "raw-means": "Participants and matched comparison persons by month",
    "balance": "Covariate balance",
    "staggered": "Staggered adoption (Callaway & Sant'Anna)",
    "heterogeneity": "Effects by sub-target group, site, completion and year of start",
    "naive": "Before/after without a comparison group: why it misleads",
    "public-budget": "What the effects are worth to the public purse (SØM)",
    "monitoring": "Programme monitoring",
    "provenance": "Data provenance",
    "methods": "Methods",
    "truth": "Mock world: estimates against the planted effect",
    "run": "Run information",
}
SECTIONS = tuple(TITLES)
#: The design a headline sentence reports, unless ReportInputs.preferred says otherwise.
PREFERRED = "matched_did"
#: What each design compares (said next to its number).
COMPARES = {
    "matched_did": "participants against matched comparison persons who went through the same transition "
    "in the same month; the post-period months against the whole pre-period (months −36 "
    "to −1)",
    "staggered_att": "each start month's participants against its own never-treated matched comparison "
    "persons, every month against the mean of months −13 to −2 (the year before the "
    "transition month), pooled over months 12 to 24 after the start",
    "naive_before_after": "participants only, after the start against the dip before it: no comparison group",
}


def publish(inputs: ReportInputs, /, *, rules: Rules | None = None) -> Controlled:
    """Return the run's published cells after joint disclosure control (with the audit result attached).

    The monitoring's delivery flags follow their rates (``monitoring_tables.flags_after_control``).
    """
    from analysis.publish.monitoring_tables import flags_after_control

    controlled = control(declare(inputs), rules=rules or Rules())
    return flags_after_control(controlled, inputs.monitoring) if inputs.monitoring is not None else controlled


def export_tables(published: Controlled, labels: Labels, /) -> dict[str, pl.DataFrame]:
    """Return the published tables as exported (labelled, in their units, suppressed cells null and named)."""
    return report_tables.export_tables(published, labels)


# --- small helpers ---------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


class _View:
    """A controlled table with its suppression mask: rows as dicts, and whether a cell was suppressed."""

    def __init__(self, published: Controlled, name: str, rows: pl.Expr | None = None) -> None:
        frame = published.frames.get(name, pl.DataFrame())
        mask = published.masks.get(name, pl.DataFrame())
        if frame.height and mask.width:
            both = pl.concat([frame, mask.rename({c: f"{c}__x" for c in mask.columns})], how="horizontal")
        else:
            both = frame
        if rows is not None and both.height:
            both = both.filter(rows)
        self.name, self.frame = name, both
        self.columns = frame.columns

    @property
    def height(self) -> int:
        return self.frame.height

    def rows(self) -> list[dict]:
        return self.frame.to_dicts()

    def where(self, rows: pl.Expr) -> _View:
        view = object.__new__(_View)
        view.name, view.columns = self.name, self.columns
        view.frame = self.frame.filter(rows) if self.frame.height else self.frame
        return view

    def value(self, row: dict, column: str) -> object:
        """Return the published value, None when suppressed or missing."""
        return None if row.get(f"{column}__x") else row.get(column)


#: column, header, unit token (or None: as it is) or a function giving the cell's text
Column = tuple[str, str, str | Callable[[dict], str] | None]
_NUM = ' class="num"'


def _table(
    view: _View, columns: Sequence[Column], labels: Labels, *, caption: str = "", css: str = ""
) -> str:
    """Return an HTML table: text through its function, numbers in their unit, "x" where suppressed."""
    if not view.height:
        return '<p class="na">Not available for this run.</p>'
    numeric = [not callable(f) and f is not None for _, _, f in columns]
    head = "".join(
        f"<th{_NUM if n else ''}>{_e(h)}</th>" for (_, h, _), n in zip(columns, numeric, strict=True)
    )
    body = []
    for row in view.rows():
        cells = []
        for (column, _, fmt), is_number in zip(columns, numeric, strict=True):
            if callable(fmt):
                text = fmt(row)
            else:
                text = format_cell(
                    row.get(column), fmt, row, labels, suppressed=bool(row.get(f"{column}__x"))
                )
            klass = ' class="num count"' if fmt == "count" else _NUM if is_number else ""  # persons: count
            cells.append(f"<td{klass}>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fold(summary: str, body: str) -> str:
    return f"<details><summary>{_e(summary)}</summary>{body}</details>"


def _interval(row: dict, view: _View, unit: str, lower: str = "ci_lower", upper: str = "ci_upper") -> str:
    lo, hi = view.value(row, lower), view.value(row, upper)
    return format_interval(lo, hi, unit) or "x"


def _n(value: object) -> str:
    return "x" if value is None else format_number(value, "count")


def _sentence_number(value: float | None, unit: str) -> str:
    return _with_unit(value, unit)


def _months(first: int, last: int) -> str:
    return f"month {_signed(first)}" if first == last else f"months {span(first, last)}"


def _signed(n: int) -> str:
    return f"\u2212{abs(int(n))}" if int(n) < 0 else str(int(n))


#: Designs in a table cell (the full words are in the headline sentences and the methods).
SHORT = {
    "matched_did": "Matched DiD",
    "staggered_att": "Staggered DiD (Callaway & Sant'Anna)",
    "naive_before_after": "Naive before/after",
}


def _with_unit(value: float | None, unit: str) -> str:
    """Return a number in a sentence with its unit ("8.3 pp", "−0.093 per person-month")."""
    if value is None:
        return "x"
    u = UNITS[unit]
    return f"{format_number(value, unit)} {u.symbol or u.label}"


# --- sections ----------------------------------------------------------------------------------------------


class _Report:
    def __init__(self, inputs: ReportInputs, published: Controlled) -> None:
        if inputs.labels is None:
            raise ValueError("the report needs labels: ReportInputs(labels=Labels.from_tables(...))")
        self.inputs, self.published = inputs, published
        self.labels: Labels = inputs.labels  # type: ignore[assignment]
        self.heads = [o for o in inputs.headline_outcomes]
        self.parts: list[str] = []

    def view(self, name: str, rows: pl.Expr | None = None) -> _View:
        return _View(self.published, name, rows)

    def section(self, key: str, body: str) -> None:
        self.parts.append(f'<section id="{key}"><h2>{_e(TITLES[key])}</h2>{body}</section>')

    def outcome(self, code: str) -> str:
        return self.labels.outcome(code)

    def preferred(self, outcome: str) -> str:
        return self.inputs.preferred.get(outcome, PREFERRED)

    def headline_row(self, outcome: str, design: str | None = None) -> tuple[dict | None, _View]:
        est = self.view("estimates")
        if not est.height:
            return None, est
        rows = est.where(
            (pl.col("dimension") == "all")
            & (pl.col("outcome") == outcome)
            & (pl.col("design") == (design or self.preferred(outcome)))
        ).rows()
        return (rows[0] if rows else None), est

    def text(self, column: str) -> Callable[[dict], str]:
        """Return a text column's words (codes through the labels)."""
        L = self.labels

        def fn(row: dict) -> str:
            value = row.get(column)
            if value is None:
                return "–"
            if column == "outcome":
                return L.outcome(value)
            if column == "design":
                return SHORT.get(value, L.design(value))
            if column == "level":
                return L.level(row["dimension"], value) if row.get("dimension") else str(value)
            if column == "dimension":
                return L.dimension(value)
            if column == "covariate":
                return L.covariate(value)
            if column == "site":
                return L.site(value) if value != "Total" else "Total"
            if column == "window":
                return _window_words(str(value))
            if column == "test":
                return TESTS.get(value, value)
            if column == "phase":
                return PHASES.get(value, value)
            return str(value)

        return fn

    # --- the Danish summary ---------------------------------------------------------------------------

    def resume(self) -> None:
        L = self.labels
        items = []
        for o in self.heads:
            row, est = self.headline_row(o)
            if row is None:
                continue
            unit = L.effect_unit(o)
            value, lo, hi = (est.value(row, c) for c in ("estimate", "ci_lower", "ci_upper"))
            if value is None:
                items.append(
                    f"<li>{_e(L.danish_label('outcome', o))}: ikke offentliggjort (for få personer).</li>"
                )
                continue
            direction = "steg" if value > 0 else "faldt"
            sure = (
                "Forskellen er statistisk sikker (konfidensintervallet indeholder ikke 0)."
                if lo is not None and hi is not None and (lo > 0 or hi < 0)
                else "Forskellen er ikke statistisk sikker (konfidensintervallet indeholder 0)."
            )
            mde = est.value(row, "mde")
            power = (
                f" Designet kan med 80 % styrke påvise en effekt på mindst {_da(mde, unit)}."
                if mde is not None
                else ""
            )
            items.append(
                f"<li><b>{_e(L.danish_label('outcome', o))}</b> {direction} med "
                f"<b>{_e(_da(abs(value), unit))}"
                f"</b> (95 %-konfidensinterval {_e(_da(lo, unit, bare=True))} til "
                f"{_e(_da(hi, unit))}) i måned {_e(_window_da(row.get('window')))} efter "
                f"start, sammenlignet med matchede personer i samme overgang samme måned "
                f"({_e(_n(est.value(row, 'n_treated')))} deltagere, {_e(_n(est.value(row, 'n_controls')))} "
                f"sammenligningspersoner). {_e(sure)}{_e(power)}</li>"
            )
        mock = (
            "<p><b>Bemærk:</b> tallene kommer fra en simuleret verden (mock world) med en kendt, "
            "plantet effekt; de viser metoden, ikke CTI's virkning.</p>"
            if self.inputs.truth
            else ""
        )
        body = (
            "<p>Hovedresultater (matchet difference-in-differences: deltagere sammenlignet med personer, der "
            "gik igennem samme overgang, fx udskrivning fra herberg, psykiatri eller fængsel, i samme "
            "måned):</p>"
            + (f"<ul>{''.join(items)}</ul>" if items else '<p class="na">Ingen estimater i denne kørsel.</p>')
            + mock
            + "<p>En simpel før/efter-sammenligning af deltagerne alene overvurderer effekten, fordi "
            "borgerne starter i et lavpunkt og delvist ville være kommet sig alligevel (se afsnittet "
            '<a href="#naive">Before/after</a>). Alle tal er diskretioneret: ingen celle bygger på færre '
            "end 5 personer, heller ikke via summer på tværs af tabeller. Resten af rapporten er på "
            "engelsk.</p>"
        )
        self.section("resume", body)

    # --- the headline ---------------------------------------------------------------------------------

    def summary(self) -> None:
        L = self.labels
        est = self.view("estimates")
        status = self.inputs.outcome_status
        body = ""
        if status.height:
            body += (
                '<p class="warn">Outcomes without current estimates in this run (their partition failed '
                "or never ran; rerun them from the Dagster UI): "
                + _e(
                    "; ".join(
                        f"{self.outcome(r['outcome'])} ({r['status']}: {r.get('reason') or ''})"
                        for r in status.iter_rows(named=True)
                    )
                )
                + "</p>"
            )
        sentences, designs = [], []
        for o in self.heads:
            row, _ = self.headline_row(o)
            if row is None:
                continue
            unit = L.effect_unit(o)
            value = est.value(row, "estimate")
            design = self.preferred(o)
            designs.append(design)
            sentences.append(
                f'<p class="headline"><b>{_e(self.outcome(o))}</b>: '
                + (
                    f"<b>{_e(_sentence_number(value, unit))}</b> (95 % CI {_e(_interval(row, est, unit))} "
                    f"{_e(UNITS[unit].symbol or UNITS[unit].label)}) over "
                    f"{_e(_window_words(row.get('window') or ''))} after the start, "
                    f"{_e(_n(est.value(row, 'n_treated')))} participants compared with "
                    f"{_e(_n(est.value(row, 'n_controls')))} matched comparison persons "
                    f"({_e(SHORT.get(design, design))})."
                    if value is not None
                    else "not published (too few persons behind the estimate)."
                )
                + "</p>"
            )
        for design in dict.fromkeys(designs):
            body += (
                f"<p>Preferred design: <b>{_e(L.design(design))}</b>: {_e(COMPARES.get(design, ''))}. "
                "Positive estimates mean more of the outcome among participants than the comparison "
                "persons would predict.</p>"
            )
        body += "".join(sentences) or '<p class="na">No headline estimates in this run.</p>'
        body += self._power()
        comparison = (
            est.where(
                (pl.col("dimension") == "all")
                & pl.col("outcome").is_in(self.heads)
                & (pl.col("design") != "naive_before_after")
            )
            if est.height
            else est
        )
        if comparison.height:
            order = {o: i for i, o in enumerate(self.heads)}
            comparison.frame = comparison.frame.sort(
                pl.col("outcome").replace_strict(order, default=99, return_dtype=pl.Int32), "design"
            )
        columns: list[Column] = [
            ("outcome", "Outcome", self.text("outcome")),
            ("design", "Design", self.text("design")),
            ("window", "Post-period", self.text("window")),
            ("estimate", "Estimate", "effect"),
            ("ci_lower", "95 % CI, lower", "effect"),
            ("ci_upper", "95 % CI, upper", "effect"),
            ("unit", "Unit", lambda r: UNITS[L.effect_unit(r["outcome"])].label),
            ("n_treated", "Participants", "count"),
            ("n_controls", "Comparison persons", "count"),
            ("mde", "Minimum detectable effect", "effect"),
            ("pretrend_p", "Pre-trend p (before the dip, yearly means)", "p_value"),
        ]
        body += "<h3>The designs with a comparison group, side by side</h3>" + _table(comparison, columns, L)
        body += self._windows_note(comparison)
        everything = (
            est.where((pl.col("dimension") == "all") & (pl.col("design") != "naive_before_after"))
            if est.height
            else est
        )
        body += _fold(
            f"All {len(set(everything.frame['outcome'].to_list())) if everything.height else 0} "
            "outcomes, both designs",
            _table(everything, columns, L),
        )
        body += (
            "<p>The naive before/after contrast is not an effect estimate: it is shown, with why it "
            'misleads, in <a href="#naive">its own section</a>.</p>'
        )
        self.section("summary", body)

    def _windows_note(self, view: _View) -> str:
        if not view.height:
            return ""
        windows = {r["design"]: _window_words(r["window"] or "") for r in view.rows()}
        if len(set(windows.values())) <= 1:
            return "<p>Both designs pool the same post-period months.</p>"
        said = "; ".join(f"{self.labels.design(d).split(' (')[0]}: {w}" for d, w in windows.items())
        return (
            f'<p class="note"><b>Not the same post-period:</b> {_e(said)}. The designs pool different '
            "post-period months; compare them with that in mind.</p>"
        )

    def _power(self) -> str:
        """Return what the study can detect (analysis.estimate.power.power_statement), plainly when it cannot.

        The MDE and the power against the planted effect come from the published standard error and n of
        the headline estimate; the sentence is written here in the outcome's words and unit.
        """
        from analysis.estimate.power import power_statement

        L = self.labels
        lines = []
        for o in self.heads:
            row, est = self.headline_row(o)
            if row is None:
                continue
            se, n = est.value(row, "se"), est.value(row, "n_treated")
            if se is None or n is None or not se > 0:
                continue
            unit = L.effect_unit(o)
            planted = (self.inputs.truth or {}).get(o, {}).get("att_months_12_24")
            stated = power_statement(o, float(se), int(n), design=self.preferred(o), effect=planted)
            text = (
                f"{_e(self.outcome(o))}: with {_n(n)} participants the "
                f"{_e(L.design(self.preferred(o)).split(' (')[0].lower())} detects an effect of "
                f"{_e(_sentence_number(stated.mde, unit))} or larger with 80 % power (5 % two-sided test)"
            )
            if stated.detectable is None:
                text += "."
            elif stated.detectable:
                text += (
                    f"; the planted effect ({_e(_sentence_number(planted, unit))}) is larger, so the study "
                    f"can detect it (it is significant with probability {stated.power_at_effect:.2f})."
                )
            else:
                text += (
                    f"; <b>it cannot reliably detect the planted effect</b> "
                    f"({_e(_sentence_number(planted, unit))}): a study this size finds an effect that size "
                    f"significant with probability {stated.power_at_effect:.2f} only."
                )
            lines.append(f"<li>{text}</li>")
        if not lines:
            return ""
        return "<h3>What the study can detect</h3><ul>" + "".join(lines) + "</ul>"

    # --- sample flow -----------------------------------------------------------------------------------

    def sample_flow(self) -> None:
        from analysis.publish.sample_flow import render_sample_flow_svg

        L = self.labels
        flow = self.view("sample_flow")
        if not flow.height:
            self.section("sample-flow", '<p class="na">Not available for this run.</p>')
            return
        shown = flow.frame.with_columns(
            [
                pl.when(pl.col(f"{c}__x")).then(pl.lit("x")).otherwise(pl.col(c).cast(pl.String)).alias(c)
                if f"{c}__x" in flow.frame.columns
                else pl.col(c)
                for c in ("n", "excluded", "n_controls")
            ]
        )
        full = self.inputs.sample_flow
        structure = full.select("step", "kind", "parent") if full.height else None
        if structure is not None and "step" not in shown.columns:
            shown = pl.concat([shown, structure], how="horizontal")
        title = "From the rows received to the persons behind each estimate"
        figure = f'<figure class="flow">{render_sample_flow_svg(shown, title=title)}</figure>'
        columns: list[Column] = [
            ("stage", "Stage", self.text("stage")),
            ("n", "Kept", "count"),
            ("excluded", "Left out", "count"),
            ("reason", "Why", lambda r: r.get("reason") or ""),
            ("unit", "Counted in", self.text("unit")),
            ("n_controls", "Comparison persons", "count"),
        ]
        body = figure + _fold("The flow as a table", _table(flow, columns, L))
        body += self._comparison()
        self.section("sample-flow", body)

    def _comparison(self) -> str:
        L = self.labels
        view = self.view("flow_comparison")
        if not view.height:
            return ""
        rows = view.rows()
        persons = next((r for r in rows if r["attribute"] == "Persons"), None)
        size = {g: view.value(persons, f"{g}_n") if persons else None for g in ("matched", "unmatched")}

        def cell(r: dict, group: str) -> str:
            n = view.value(r, f"{group}_n")
            if r["attribute"] == "Persons":
                return _n(n)
            value = view.value(r, f"{group}_value")
            if (
                r.get("matched_value") is None
                and r.get("unmatched_value") is None
                and r["attribute"] != "Persons"
                and not r.get("outcome")
                and not str(r["attribute"]).startswith("Age")
            ):
                # a share, from the published counts (nothing the counts do not already say)
                total = size[group]
                if n is None or total is None or not total:
                    return "x"
                return f"{_n(n)} ({format_number(n / total, 'percent')} %)"
            unit = report_tables.row_unit("cmp", r, L)
            return "x" if value is None else format_number(value, unit, with_unit=unit in ("years",))

        def what(r: dict) -> str:
            if r.get("dimension") and r.get("level") is not None:
                return f"{r['attribute']}: {L.level(r['dimension'], r['level'])}"
            if r.get("outcome"):
                return f"{L.outcome(r['outcome'])}, {r['attribute'][0].lower()}{r['attribute'][1:]}"
            return r["attribute"]

        columns: list[Column] = [
            ("attribute", "", what),
            ("matched_n", "Matched participants", lambda r: cell(r, "matched")),
            ("unmatched_n", "Participants without a comparison", lambda r: cell(r, "unmatched")),
        ]
        key = view.where(pl.col("dimension").is_null()) if "dimension" in view.columns else view
        rest = view.where(pl.col("dimension").is_not_null()) if "dimension" in view.columns else None
        body = (
            "<h3>Who the unmatched are</h3><p>The matched design estimates the effect on the "
            "participants it found comparison persons for. The others differ: the table sets them side by "
            "side (counts with the share of the group; means over the persons with a value).</p>"
            + _table(key, columns, L)
        )
        if rest is not None and rest.height:
            body += _fold("By sub-target group, site and year of start", _table(rest, columns, L))
        return body

    # --- event study -------------------------------------------------------------------------------------

    def event_study(self) -> None:
        L = self.labels
        es = self.view("event_study")
        tests = self.view("pretrend_tests")
        if not es.height:
            self.section("event-study", '<p class="na">Not available for this run.</p>')
            return
        reference, transition = (-15, -13), -1
        if tests.height:
            first = tests.rows()[0]
            reference = (first["reference_first"], first["reference_last"])
        body = (
            f"<p>Coefficients of participation by month since the start, on the stacked matched sample "
            f"(person and stack × month fixed effects, standard errors clustered by person), relative to "
            f"the <b>mean of months {span(*reference)}</b>, before the dip that precedes entry (shaded). "
            f"Month {format_number(transition, 'count')} is the transition itself (the discharge that "
            "defines "
            f"the matched comparison: its register trace differs by design, not by trend): it is marked and "
            f"left out of the pre-trend tests, which cover the months before the dip and, separately, the "
            f"dip.</p>"
        )
        for o in self.heads:
            rows = es.where(pl.col("outcome") == o).rows()
            if not rows:
                continue
            unit = L.effect_unit(o)
            values = [
                (r["event_time"], es.value(r, "estimate"), es.value(r, "ci_lower"), es.value(r, "ci_upper"))
                for r in rows
            ]
            months, est, lo, hi = zip(*values, strict=True)
            body += f"<h3>{_e(self.outcome(o))}</h3>" + figures.event_study(
                months,
                est,
                lo,
                hi,
                name=f"event-study-{o}",
                scale=UNITS[unit].scale,
                title=f"Effect by month since the start, relative to months {span(*reference)}",
                ylabel=f"effect, {UNITS[unit].label}",
                reference=reference,
                transition=transition,
            )
            part = tests.where(pl.col("outcome") == o)
            if part.height:
                part.frame = part.frame.sort(
                    pl.col("test").replace_strict(
                        {t: i for i, t in enumerate(TESTS)}, default=9, return_dtype=pl.Int32
                    )
                )
            body += _table(
                part,
                self._test_columns(),
                L,
                caption="Pre-trend tests: joint Wald tests that the coefficients are 0 "
                "(clustered covariance, rank-aware, small-sample F reference: see Methods)",
            )
        body += _fold(
            "Pre-trend tests of every outcome",
            _table(tests, [("outcome", "Outcome", self.text("outcome")), *self._test_columns()], L),
        )
        body += _fold(
            "Every coefficient (all outcomes)",
            _table(
                es,
                [
                    ("outcome", "Outcome", self.text("outcome")),
                    ("event_time", "Month since start", None),
                    ("estimate", "Estimate", "effect"),
                    ("ci_lower", "95 % CI, lower", "effect"),
                    ("ci_upper", "95 % CI, upper", "effect"),
                    ("n_treated", "Participants", "count"),
                    ("n_controls", "Comparison persons", "count"),
                ],
                L,
            ),
        )
        self.section("event-study", body)

    def _test_columns(self) -> list[Column]:
        def months(r: dict) -> str:
            text = _months(r["first_month"], r["last_month"])
            left_out = r.get("excluded")
            return text + (
                f" without month {_signed(int(left_out))} (the transition)"
                if left_out and left_out.lstrip("-").isdigit()
                else ""
            )

        return [
            ("test", "Test", self.text("test")),
            ("first_month", "Months tested", months),
            ("chi2", "Chi-squared", "ratio"),
            ("df", "Degrees of freedom", "count"),
            ("p_value", "p-value", "p_value"),
        ]

    # --- phases ------------------------------------------------------------------------------------------

    def phases(self) -> None:
        L = self.labels
        view = self.view("phase_effects")
        if not view.height:
            self.section("phases", '<p class="na">Not available for this run.</p>')
            return
        body = (
            "<p>CTI runs for nine months in three phases of three months. Each phase's effect is the mean "
            "event-study coefficient over its months (so it is relative to the same reference as the "
            "figure above, with the clustered covariance of the coefficients); the last row is the "
            "follow-up after the course.</p>"
        )
        columns: list[Column] = [
            ("phase", "Phase", self.text("phase")),
            ("estimate", "Estimate", "effect"),
            ("ci_lower", "95 % CI, lower", "effect"),
            ("ci_upper", "95 % CI, upper", "effect"),
            ("n_treated", "Participants at the phase's first month", "count"),
        ]
        for o in self.heads:
            part = view.where(pl.col("outcome") == o)
            if not part.height:
                continue
            unit = L.effect_unit(o)
            rows = part.rows()
            body += (
                f"<h3>{_e(self.outcome(o))}</h3>"
                + figures.forest(
                    [PHASES.get(r["phase"], r["phase"]) for r in rows],
                    [part.value(r, "estimate") for r in rows],
                    [part.value(r, "ci_lower") for r in rows],
                    [part.value(r, "ci_upper") for r in rows],
                    name=f"phases-{o}",
                    title=f"{self.outcome(o)} by CTI phase",
                    scale=UNITS[unit].scale,
                    xlabel=f"effect, {UNITS[unit].label}",
                    ylabel="phase",
                )
                + _table(part, columns, L)
            )
        body += _fold(
            "Every outcome by phase",
            _table(view, [("outcome", "Outcome", self.text("outcome")), *columns], L),
        )
        self.section("phases", body)

    # --- sensitivity ---------------------------------------------------------------------------------------

    def sensitivity(self) -> None:
        L = self.labels
        honest = self.view("honest_did")
        body = ""
        if honest.height:
            first = honest.rows()[0]
            body += (
                "<h3>Honest DiD (Rambachan &amp; Roth 2023): how large a violation of parallel trends the "
                "conclusion survives</h3>"
                f"<p>The pooled effect over months {span(first['first_month'], first['last_month'])} "
                "(the mean "
                "of the event study's quarterly bins, relative to months "
                f"{span(first['reference_first'], first['reference_last'])}) "
                "is bounded under <i>relative magnitudes</i>: in every quarter after the reference the "
                "difference in trends between participants and comparison persons may change by at most M̄ "
                "times the largest quarter-to-quarter change seen before the reference. M̄ = 0 is parallel "
                "trends exactly; M̄ = 1 allows post-period changes as large as the worst pre-period one. The "
                "robust interval is HonestDiD's conditional least-favourable (C-LF) confidence set. The "
                "<b>breakdown M̄</b> is the smallest M̄ at which the robust interval includes 0. With the "
                "reference a year before the start, the bounds accumulate the allowed change over every "
                "quarter "
                "of the dip and the follow-up: they widen fast with M̄.</p>"
            )
            columns: list[Column] = [
                (
                    "m_bar",
                    "M̄",
                    lambda r: (
                        "conventional (M̄ = 0, exact parallel trends)"
                        if r["m_bar"] is None
                        else format_number(r["m_bar"], "ratio")
                    ),
                ),
                ("id_lower", "Identified set, lower", "effect"),
                ("id_upper", "Identified set, upper", "effect"),
                ("ci_lower", "Robust 95 % CI, lower", "effect"),
                ("ci_upper", "Robust 95 % CI, upper", "effect"),
            ]
            for o in self.heads:
                part = honest.where(pl.col("outcome") == o)
                if not part.height:
                    continue
                unit = L.effect_unit(o)
                rows = part.rows()
                breakdown = part.value(rows[0], "breakdown_m_bar")
                said = (
                    "the conventional interval already includes 0"
                    if breakdown == 0
                    else f"breakdown M̄ = {format_number(breakdown, 'ratio')}"
                    if breakdown is not None
                    else "the effect survives every M̄ searched"
                )
                body += (
                    f"<h4>{_e(self.outcome(o))}: {_e(said)}</h4>"
                    + figures.honest(
                        [r["m_bar"] for r in rows],
                        [part.value(r, "ci_lower") for r in rows],
                        [part.value(r, "ci_upper") for r in rows],
                        name=f"honest-{o}",
                        scale=UNITS[unit].scale,
                        title=f"{self.outcome(o)}: robust 95 % intervals of the effect over months "
                        f"{span(rows[0]['first_month'], rows[0]['last_month'])}",
                        ylabel=f"effect, {UNITS[unit].label}",
                    )
                    + _table(part, columns, L)
                )
        placebo = self.view("placebo")
        if placebo.height:
            first = placebo.rows()[0]
            real = (first["post_first"] - first["shift"], first["post_last"] - first["shift"])
            body += (
                "<h3>Placebo in time: every start moved 12 months earlier</h3>"
                f"<p>The pooled DiD as if everyone had started {first['shift']} months earlier, on "
                "months before "
                f"the real start only: placebo months {span(first['post_first'], first['post_last'])} (real "
                f"months {span(*real)}) against placebo months "
                f"{span(first['pre_first'], first['pre_last'])}. "
                "Nobody had started, so an estimate away from 0 is a difference the design would report "
                "without any effect.</p>"
            )
            columns = [
                ("outcome", "Outcome", self.text("outcome")),
                ("estimate", "Placebo estimate", "effect"),
                ("ci_lower", "95 % CI, lower", "effect"),
                ("ci_upper", "95 % CI, upper", "effect"),
                ("n_treated", "Participants", "count"),
                ("n_controls", "Comparison persons", "count"),
            ]
            body += _table(placebo.where(pl.col("outcome").is_in(self.heads)), columns, L)
            body += _fold("Every outcome's placebo", _table(placebo, columns, L))
        body += (
            '<h3>Results split by completion</h3><p class="note">Whether a course was completed is '
            "decided after the start (a post-treatment variable): participants who complete differ from "
            "those who leave early in ways the comparison persons are not matched on, so the split by "
            'completion in <a href="#heterogeneity">the sub-group section</a> describes the participants; '
            "it is not the effect of completing.</p>"
        )
        self.section("sensitivity", body or '<p class="na">Not available for this run.</p>')

    # --- raw means, balance, staggered, heterogeneity, naive -------------------------------------------

    def raw_means(self) -> None:
        L = self.labels
        mm = self.view("matched_means")
        body = (
            "<p>Unadjusted means by month since the start (comparison persons weighted by their matching "
            "weights). The comparison persons went through the same transition in the same month, so they "
            "share the dip before it.</p>"
        )
        for o in self.heads:
            part = mm.where(pl.col("outcome") == o) if mm.height else mm
            if not part.height:
                continue
            unit = L.level_unit(o)
            series = {}
            for group, label in (
                ("participants", "participants"),
                ("comparisons", "matched comparison persons"),
            ):
                rows = sorted((r for r in part.rows() if r["group"] == group), key=lambda r: r["event_time"])
                series[label] = ([r["event_time"] for r in rows], [part.value(r, "mean") for r in rows])
            body += figures.lines(
                series,
                name=f"raw-{o}",
                title=self.outcome(o),
                scale=UNITS[unit].scale,
                xlabel="months since the start of the course",
                ylabel=f"mean, {UNITS[unit].label}",
            )
        body += _fold(
            "The means as a table (all outcomes)",
            _table(
                mm,
                [
                    ("outcome", "Outcome", self.text("outcome")),
                    ("group", "Group", lambda r: self.labels.group(r["group"])),
                    ("event_time", "Month since start", None),
                    ("mean", "Mean", "level"),
                    ("n", "Persons", "count"),
                ],
                L,
            ),
        )
        self.section("raw-means", body)

    def balance(self) -> None:
        L = self.labels
        bal = self.view("balance")
        if not bal.height:
            self.section("balance", '<p class="na">Not available for this run.</p>')
            return
        rows = bal.rows()
        shown = [r for r in rows if bal.value(r, "smd_after") is not None]
        worst = max((abs(bal.value(r, "smd_after")) for r in shown), default=None)
        note = (
            ""
            if worst is None
            else (
                f'<p class="{"warn" if worst >= 0.1 else ""}">Largest |standardised mean difference| after '
                f"matching: {format_number(worst, 'ratio')} ({'above' if worst >= 0.1 else 'below'} the "
                "usual 0.1 "
                "threshold).</p>"
            )
        )
        columns: list[Column] = [
            ("covariate", "Covariate", self.text("covariate")),
            ("mean_treated", "Participants' mean", "cov"),
            ("mean_control_before", "Comparison mean, before matching", "cov"),
            ("mean_control_after", "Comparison mean, after matching", "cov"),
            ("smd_before", "SMD before", "ratio"),
            ("smd_after", "SMD after", "ratio"),
            ("var_ratio_after", "Variance ratio after", "ratio"),
        ]
        ranked = sorted(shown, key=lambda r: -abs(bal.value(r, "smd_after")))[:8]
        worst_view = bal.where(pl.col("covariate").is_in([r["covariate"] for r in ranked]))
        body = (
            note
            + figures.love(
                [L.covariate(r["covariate"]) for r in shown],
                [bal.value(r, "smd_before") for r in shown],
                [bal.value(r, "smd_after") for r in shown],
                name="love-plot",
            )
            + "<p>The covariates least balanced after matching:</p>"
            + _table(worst_view, columns, L)
            + _fold(f"All {bal.height} covariates", _table(bal, columns, L))
        )
        self.section("balance", body)

    def staggered(self) -> None:
        L = self.labels
        gt, agg = self.view("group_time"), self.view("aggregates")
        body = ""
        for o in self.heads:
            part = gt.where(pl.col("outcome") == o) if gt.height else gt
            unit = L.effect_unit(o)
            if part.height:
                rows = [r for r in part.rows() if part.value(r, "att") is not None]
                if rows and min(r["cohort"] for r in rows) >= 1999 * 12:  # by month: the event window only
                    rows = [r for r in rows if -36 <= r["period"] - r["cohort"] <= 24]
                cohorts = sorted({r["cohort"] for r in rows})
                periods = sorted({r["period"] for r in rows})
                grid = np.full((len(cohorts), len(periods)), np.nan)
                for r in rows:
                    grid[cohorts.index(r["cohort"]), periods.index(r["period"])] = part.value(r, "att")
                if rows:
                    body += f"<h3>{_e(self.outcome(o))}</h3>" + figures.heatmap(
                        [_period(c) for c in cohorts],
                        [_period(p) for p in periods],
                        grid,
                        name=f"group-time-{o}",
                        scale=UNITS[unit].scale,
                        title="ATT(g, t) by start group (rows) and calendar period (months −36 to 24 "
                        "around each start)",
                        xlabel="calendar period",
                        ylabel="start (cohort)",
                        colour_label=f"effect, {UNITS[unit].label}",
                    )
            dyn = (
                agg.where((pl.col("outcome") == o) & (pl.col("aggregation") == "dynamic"))
                if agg.height
                else agg
            )
            if dyn.height:
                rows = sorted(dyn.rows(), key=lambda r: r["key"])
                monthly = max(abs(r["key"]) for r in rows) > 12
                if monthly:  # the event study's window (every key stays in the folded table)
                    rows = [r for r in rows if -36 <= r["key"] <= 24]
                body += figures.coefficients(
                    [r["key"] for r in rows],
                    [dyn.value(r, "att") for r in rows],
                    [dyn.value(r, "ci_lower") for r in rows],
                    [dyn.value(r, "ci_upper") for r in rows],
                    name=f"dynamic-{o}",
                    scale=UNITS[unit].scale,
                    ylabel=f"effect, {UNITS[unit].label}",
                    xlabel=("months" if monthly else "quarters")
                    + " since the start (0 = the start "
                    + ("month)" if monthly else "quarter)"),
                    marked=-1,
                    marked_label="the transition "
                    + ("month" if monthly else "quarter")
                    + " (anticipation: not a pre-period)",
                    title="Dynamic aggregation: the effect by time since the start",
                )
        simple = agg.where(pl.col("aggregation") == "simple") if agg.height else agg
        body += (
            "<p><b>Reconciling the aggregations.</b> The headline staggered estimate is the dynamic "
            "aggregation over its post-period window (the table in the headline section); the "
            "<i>simple</i> aggregation averages every post-start ATT(g, t), weighted by the size of the "
            "start group, including the first months when the course is still running and late months "
            "that only the earliest starters reach, so the two differ by design.</p>"
        )
        columns: list[Column] = [
            ("outcome", "Outcome", self.text("outcome")),
            ("aggregation", "Aggregation", lambda r: L.aggregation(r["aggregation"])),
            ("key", "Period", lambda r: L.aggregation_key(r["aggregation"], r["key"])),
            ("att", "Effect (ATT)", "effect"),
            ("ci_lower", "95 % CI, lower", "effect"),
            ("ci_upper", "95 % CI, upper", "effect"),
            ("n_treated", "Participants", "count"),
        ]
        body += _table(
            simple,
            [columns[0], *columns[3:]],
            L,
            caption="The simple aggregation (every post-start ATT(g, t), weighted by group size)",
        )
        body += _fold("Every aggregation (all outcomes)", _table(agg, columns, L))
        self.section("staggered", body or '<p class="na">Not available for this run.</p>')

    def heterogeneity(self) -> None:
        L = self.labels
        est = self.view("estimates")
        het = (
            est.where((pl.col("dimension") != "all") & (pl.col("design") == "matched_did"))
            if est.height
            else est
        )
        body = (
            "<p>The pooled matched DiD for each level of a sub-group (one interacted regression per "
            "dimension; each level's participants against the comparison persons of their own start "
            "months). Sub-groups are small: read the intervals, not the points.</p>"
        )
        columns: list[Column] = [
            ("level", "Group", self.text("level")),
            ("estimate", "Estimate", "effect"),
            ("ci_lower", "95 % CI, lower", "effect"),
            ("ci_upper", "95 % CI, upper", "effect"),
            ("n_treated", "Participants", "count"),
            ("n_controls", "Comparison persons", "count"),
            ("mde", "Minimum detectable effect", "effect"),
        ]
        for dim in ("delmaalgruppe", "site", "completed", "start_cohort"):
            part = het.where(pl.col("dimension") == dim) if het.height else het
            if not part.height:
                continue
            body += f"<h3>{_e(L.dimension(dim))}</h3>"
            if dim == "completed":
                body += (
                    '<p class="note">Completion is decided after the start (post-treatment): this split '
                    "describes who completed, it does not estimate the effect of completing.</p>"
                )
            levels = sorted(set(part.frame["level"].to_list()))
            panels = []
            for o in self.heads:
                by_level = {r["level"]: r for r in part.where(pl.col("outcome") == o).rows()}
                if not by_level:
                    continue
                unit = L.effect_unit(o)
                def pick(c, rows=by_level, part=part, levels=levels):
                    return [part.value(rows[lv], c) if lv in rows else None for lv in levels]

                panels.append(
                    (
                        self.outcome(o),
                        pick("estimate"),
                        pick("ci_lower"),
                        pick("ci_upper"),
                        f"effect, {UNITS[unit].label}",
                        UNITS[unit].scale,
                    )
                )
            if panels:
                body += figures.forest_panels(
                    [L.level(dim, lv) for lv in levels],
                    panels,
                    name=f"het-{dim}",
                    ylabel=L.dimension(dim).split(" (")[0].lower(),
                )
            body += _fold(
                f"{L.dimension(dim)}: the estimates of every outcome",
                _table(part, [("outcome", "Outcome", self.text("outcome")), *columns], L),
            )
        self.section("heterogeneity", body)

    def naive(self) -> None:
        L = self.labels
        ba = self.view("before_after")
        est = self.view("estimates")
        body = (
            '<p class="warn"><b>A warning, not an estimate.</b> Participants enter CTI at a low point: their '
            "outcomes worsen over the months before a critical transition and partly recover afterwards "
            "whatever happens (the Ashenfelter dip). Comparing their months after the start with the dip "
            "before it counts that recovery as an effect. The matched comparison persons went through the "
            "same transition: the difference between the two columns below is the bias the comparison group "
            "removes.</p>"
        )
        for o in self.heads:
            part = ba.where(pl.col("outcome") == o) if ba.height else ba
            if not part.height:
                continue
            unit = L.level_unit(o)
            rows = sorted(part.rows(), key=lambda r: r["event_time"])
            x = [r["event_time"] for r in rows]
            body += figures.lines(
                {"all linked participants": (x, [part.value(r, "mean") for r in rows])},
                band={
                    "all linked participants": (
                        [part.value(r, "ci_lower") for r in rows],
                        [part.value(r, "ci_upper") for r in rows],
                    )
                },
                name=f"naive-{o}",
                title=f"{self.outcome(o)}: participants only (the dip before the start)",
                scale=UNITS[unit].scale,
                xlabel="months since the start of the course",
                ylabel=f"mean, {UNITS[unit].label}",
            )
        if est.height:
            rows = []
            for o in self.heads:
                naive, _ = self.headline_row(o, "naive_before_after")
                matched, _ = self.headline_row(o, "matched_did")
                if naive is None:
                    continue
                unit = L.effect_unit(o)
                rows.append(
                    f'<tr><td>{_e(self.outcome(o))}</td><td '
                    f'class="num">{_e(_sentence_number(est.value(naive, "estimate"), unit))}'
                    f'</td><td class="num">'
                    f'{_e(_sentence_number(est.value(matched, "estimate") if matched else None, unit))}'
                    f'</td><td class="num">{_e(_n(est.value(naive, "n_treated")))}</td></tr>'
                )
            if rows:
                body += (
                    '<table><thead><tr><th>Outcome</th><th class="num">Naive: months 12–24 against the dip '
                    '(months −3 to −1)</th><th class="num">Matched DiD (the headline)</th><th class="num">'
                    "Participants (naive)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                )
        self.section("naive", body)

    # --- public budget and monitoring -------------------------------------------------------------------

    def public_budget(self) -> None:
        from analysis.publish.som_report import SomTables, render_public_budget_section

        p = self.published
        if self.inputs.som_problem:
            self.section("public-budget", render_public_budget_section(None, problem=self.inputs.som_problem))
            return
        if "som_budget" not in p.frames:
            self.section("public-budget", render_public_budget_section(None))
            return
        tables = SomTables(
            p.frames["som_budget"],
            p.frames.get("som_effects", pl.DataFrame()),
            p.frames.get("som_sensitivity", pl.DataFrame()),
            p.frames.get("som_prices", pl.DataFrame()),
        )
        self.section("public-budget", render_public_budget_section(tables, labels=self.labels))

    def monitoring(self) -> None:
        from analysis.publish.monitoring_page import render_monitoring_section
        from analysis.publish.monitoring_tables import public_tables

        problems = self.inputs.monitoring_problems
        warning = (
            (
                '<p class="warn">The monitoring has problems in this run (details on the monitoring page): '
                + _e("; ".join(problems[:5]))
                + "</p>"
            )
            if problems
            else ""
        )
        m = self.inputs.monitoring
        if m is None or "monitoring_stock" not in self.published.frames:
            self.section("monitoring", warning + '<p class="na">Not available for this run.</p>')
            return
        self.section(
            "monitoring",
            warning + render_monitoring_section(m, public_tables(m, self.published), labels=self.labels),
        )

    # --- provenance, methods, truth, run --------------------------------------------------------------

    def provenance(self) -> None:
        L = self.labels
        p = self.published
        body = ""
        files = self.view("submissions")
        if files.height and "status" in files.columns:
            bad = files.where(pl.col("status") != "ok")
            columns: list[Column] = [
                ("site", "Site", self.text("site")),
                ("quarter", "Quarter", None),
                ("file_name", "File", None),
                ("status", "Status", None),
                ("reason", "Reason", lambda r: r.get("reason") or ""),
            ]
            if bad.height:
                body += (
                    '<p class="warn">Submissions missing or failed (estimates exclude them):</p>'
                    + _table(bad, columns, L)
                )
            body += _fold(
                f"All {files.height} submissions",
                _table(files, [*columns[:3], ("received_at", "Received", None), columns[3]], L),
            )
        for name in ("rows_by_quarter", "rows_by_year", "rows_by_status"):
            if name in p.frames:
                view = self.view(name)
                columns = [
                    (c, _header(c), self.text("site") if c == "site" else "count") for c in view.columns
                ]
                body += f"<h3>{_e(p.titles[name])}</h3>" + _table(view, columns, L, css="wide")
        self.section("provenance", body or '<p class="na">Not available.</p>')

    def methods(self) -> None:
        p = self.published
        audit = p.audit
        loss = pl.DataFrame(
            [
                {"table": t.table, "cells": t.cells, "suppressed": t.suppressed, "primary": t.primary}
                for t in p.loss
                if t.cells
            ],
            schema={"table": pl.String, "cells": pl.Int64, "suppressed": pl.Int64, "primary": pl.Int64},
        )
        rows = "".join(
            f'<tr><td>{_e(p.titles.get(r["table"], r["table"]))}</td><td '
            f'class="num">{_e(_n(r["cells"]))}</td>'
            f'<td class="num">{_e(_n(r["suppressed"]) if r["suppressed"] else "0")}</td><td class="num">'
            f"{_e(format_number(r['suppressed'] / r['cells'], 'percent'))}</td></tr>"
            for r in loss.iter_rows(named=True)
        )
        table = (
            '<table><thead><tr><th>Table</th><th class="num">Cells</th><th class="num">Suppressed</th>'
            f'<th class="num">Share suppressed, %</th></tr></thead><tbody>{rows}</tbody></table>'
        )
        choices = "".join(f"<li>{_e(c)}</li>" for c in p.choices)
        body = (
            _METHODS
            + f"""
<p><b>Disclosure control.</b> Every number on this page and in the exported tables is a published cell of one
controlled publication: the tables are declared with the role of each cell (person counts, shares and means
with
their n and numerator, magnitudes with their contributors, estimates with the persons behind them) and with
the
identities that tie them together within and across tables (margins, rows in = clean + quarantined +
duplicates,
overall n = the sum of the sub-groups, the naive and the matched samples month by month, each stage of the
sample
flow = the one above it less its exclusions, the monitoring's stock = the stock before + starts − ended, the
participants of a site = matched + unmatched + others). Suppressed: {_e(p.rules.describe())}; then, jointly
over
all tables (the monitoring's included), further cells so that no small quantity can be derived (linear and
integer programming over all published cells). Suppressed cells print as x and are left out of the plots; a
mean
is shown only with its n; shares in the sample flow's comparison are computed from the published counts.</p>
<p><b>Audit.</b> {_e(audit.summary())}.</p>
{"<ul>" + choices + "</ul>" if choices else ""}
{_fold("Cells suppressed per table", table)}
<p><b>Numbers and exports.</b> One format per unit on the page and in the exports: shares and their
differences
in per cent and percentage points with one decimal, kroner and counts as whole numbers, rates per person-month
with three decimals, p-values with three decimals. Every published table is in
<code>reports/tables/&lt;table&gt;.csv</code> and <code>.parquet</code> and, with numeric cells and an About
sheet, in <code>reports/effect_report_tables.xlsx</code>; codes are replaced by their labels (the codes stay
beside them in <code>*_code</code> columns), numbers are in the unit named in each row's <code>unit</code>
column, suppressed cells are empty and named in the <code>suppressed</code> column.
{_e(CSV_CONVENTION)}</p>"""
        )
        self.section("methods", body)

    def truth(self) -> None:
        L = self.labels
        est = self.view("estimates")
        truth = self.inputs.truth
        if not truth:
            self.section("truth", "<p>Real data: there is no planted truth to compare with.</p>")
            return
        rows = []
        for o, facts in truth.items():
            planted = facts.get("att_months_12_24")
            for r in (
                est.where(
                    (pl.col("outcome") == o)
                    & (pl.col("dimension") == "all")
                    & (pl.col("design") != "naive_before_after")
                ).rows()
                if est.height
                else []
            ):
                lo, hi, value = est.value(r, "ci_lower"), est.value(r, "ci_upper"), est.value(r, "estimate")
                covered = None if lo is None or hi is None or planted is None else lo <= planted <= hi
                unit = L.effect_unit(o)
                rows.append(
                    f"<tr><td>{_e(L.outcome(o))}</td><td>{_e(L.design(r['design']).split(' (')[0])}</td>"
                    f'<td class="num">{_e(format_number(planted, unit) if planted is not None else "–")}</td>'
                    f'<td class="num">{_e(format_number(value, unit) if value is not None else "x")}</td>'
                    f'<td class="num">{_e(format_interval(lo, hi, unit) or "x")}</td>'
                    f"<td>{_e(UNITS[unit].label)}</td>"
                    f"<td>{ {True: 'yes', False: '<b>no</b>', None: '–'}[covered] }</td></tr>"
                )
        body = (
            "<p>The mock world plants a known effect; its truth is the realised average effect on the "
            "participants over months 12–24 (<code>world/truth.json</code>). An interval that covers it is "
            "what a valid design does 95 times in 100.</p>"
        )
        body += (
            (
                '<table><thead><tr><th>Outcome</th><th>Design</th><th class="num">Planted</th><th '
                'class="num">'
                'Estimate</th><th class="num">95 % CI</th><th>Unit</th><th>Covered</th></tr></thead><tbody>'
                + "".join(rows)
                + "</tbody></table>"
            )
            if rows
            else '<p class="na">Not available.</p>'
        )
        self.section("truth", body)

    def run(self) -> None:
        items = "".join(
            f"<dt>{_e(k.replace('_', ' '))}</dt><dd>{_e(v)}</dd>"
            for k, v in sorted(self.inputs.run_info.items())
        )
        self.section("run", f"<dl>{items}</dl>")

    def page(self) -> str:
        toc = (
            '<nav class="toc"><h2>Contents</h2><ol>'
            + "".join(f'<li><a href="#{k}">{_e(v)}</a></li>' for k, v in TITLES.items())
            + "</ol></nav>"
        )
        resume, rest = self.parts[0], self.parts[1:]
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            'content="width=device-width, initial-scale=1"><title>CTI effect report</title>'
            f"<style>{_CSS}</style></head><body><header><h1>Critical Time Intervention: effect report</h1>"
            f'<p class="sub">Register-based evaluation for Social- og Boligstyrelsen · generated '
            f"{_e(self.inputs.run_info.get('generated_at', ''))}</p></header>"
            f"{resume.replace('<section ', _DANISH, 1)}{toc}{''.join(rest)}</body></html>\n"
        )


def render_effect_report(
    inputs: ReportInputs, /, *, published: Controlled | None = None, rules: Rules | None = None
) -> str:
    """Render the report from the controlled publication (deterministic: same inputs, same bytes).

    ``inputs`` gives only what is not a number of the run (headline outcomes, labels, run information,
    outcome status, the mock world's planted truth, the monitoring's structure); every count and estimate
    comes from ``published``.
    """
    if published is None:
        published = publish(inputs, rules=rules)
    report = _Report(inputs, published)
    for step in (
        report.resume,
        report.summary,
        report.sample_flow,
        report.event_study,
        report.phases,
        report.sensitivity,
        report.raw_means,
        report.balance,
        report.staggered,
        report.heterogeneity,
        report.naive,
        report.public_budget,
        report.monitoring,
        report.provenance,
        report.methods,
        report.truth,
        report.run,
    ):
        step()
    return report.page()


# --- words -----------------------------------------------------------------------------------------------


def _window_words(window: str) -> str:
    """``"12..24"`` -> ``"months 12–24"``; ``"quarters 4..8 (...)"`` -> ``"quarters 4–8 (months 12–26)"``."""
    return report_tables.window_words(window)


def _window_da(window: str | None) -> str:
    base = (window or "").split(" (")[0]
    lo, _, hi = base.replace("quarters ", "").partition("..")
    if "quarters" in base and lo and hi:
        return f"{3 * int(lo)}–{3 * int(hi) + 2}"
    return f"{lo}–{hi}" if lo and hi else base


def _da(value: float | None, unit: str, *, bare: bool = False) -> str:
    """Return a number the Danish way (decimal comma) in the unit's format, with the unit unless ``bare``."""
    if value is None:
        return "x"
    text = format_number(value, unit).replace(".", ",")
    symbol = {
        "pp": "procentpoint",
        "percent": "%",
        "dkk": "kr.",
        "rate": "pr. person pr. måned",
        "level": "niveauer",
    }.get(unit, "")
    return text if bare else f"{text} {symbol}".strip()


def _period(index: int) -> str:
    return quarter_label(int(index)) if index < 1999 * 12 else f"{index // 12}-{index % 12 + 1:02d}"


def _header(column: str) -> str:
    return {
        "site": "Site",
        "rows_in": "Rows received",
        "rows_clean": "Valid",
        "rows_quarantined": "Quarantined",
        "rows_duplicate": "Duplicates",
    }.get(column, column)


_DANISH = '<section lang="da" '
_CSS = """
:root{--ink:#1d1d1f;--muted:#5f6368;--rule:#d0d4d9;--accent:#1f4e79;--bg-soft:#f4f6f8}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:68rem;margin:1.5rem auto;
padding:0 1.2rem;color:var(--ink);line-height:1.5;font-size:15px}
header h1{font-size:1.7rem;margin:.2rem 0}.sub{color:var(--muted);margin:0 0 1rem}
h2{font-size:1.3rem;border-bottom:2px solid var(--accent);padding-bottom:.2rem;margin-top:2.4rem}
h3{font-size:1.08rem;margin:1.6rem 0 .4rem}h4{font-size:1rem;margin:1.2rem 0 .3rem}
nav.toc{background:var(--bg-soft);border:1px solid var(--rule);border-radius:6px;padding:.4rem
1.2rem;margin:1rem 0}
nav.toc h2{border:0;margin:.4rem 0;font-size:1.05rem}nav.toc ol{columns:2;margin:.2rem 0
.6rem;padding-left:1.4rem}
nav.toc a{color:var(--accent);text-decoration:none}
section[lang=da]{background:#eef4fa;border:1px solid #b8cfe6;border-radius:6px;padding:.2rem 1.2rem .6rem}
section[lang=da] h2{border:0}
p.headline{font-size:1.02rem;margin:.5rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem;width:auto;max-width:100%}
caption{text-align:left;color:var(--muted);font-size:.85rem;padding:.2rem 0}
td,th{border-bottom:1px solid var(--rule);padding:.2rem .55rem;text-align:left;vertical-align:top}
th{background:var(--bg-soft);font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.wide{display:block;overflow-x:auto}
details{margin:.6rem 0;border:1px solid var(--rule);border-radius:5px;padding:.3rem .7rem}
details summary{cursor:pointer;color:var(--accent);font-weight:600}
figure{margin:.8rem 0}figure.plot svg,figure.flow svg{width:100%;height:auto;display:block}
figcaption{color:var(--muted);font-size:.85rem}
.na{color:var(--muted);font-style:italic}.warn{color:#a00}.note{background:#fff8e1;padding:.4rem .7rem;
border-left:3px solid #e0a800}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
@page{size:A4;margin:16mm 14mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:10pt}nav.toc{break-after:page}
section{break-before:auto}h2,h3,h4{break-after:avoid}figure,table,tr{break-inside:avoid}
details{border:0;padding:0}details::details-content{content-visibility:visible;display:block}
details summary{color:var(--ink)}a{color:inherit;text-decoration:none}
}
"""

_METHODS = """
<p><b>Naive before/after.</b> Participants' outcomes by month relative to their first CTI start. Outcomes
fall in
the months before a critical transition and partly recover afterwards whatever happens (the Ashenfelter
dip), so
the naive post-minus-dip contrast overstates the effect; it is shown only to motivate the comparison
group.</p>
<p><b>Matched comparison.</b> At each participant's start month, candidates are persons not (yet) in CTI.
Matching is exact on start month, sex and the critical transition: a discharge from an institution stay
(shelter/residential, psychiatric ward, prison) in month −1, so participants are compared with persons who
went
through the same transition in the same month. Within that split the score and the distance use age, sex,
origin, municipality type and education; participants without a recorded transition are matched on their
outcome
history as well. A logit propensity score defines a caliper of 0.2 standard deviations; within it the five
nearest candidates are matched, with replacement, each weighted 1/5. Balance is shown as standardised mean
differences before and after matching.</p>
<p><b>Difference-in-differences and event study.</b> On the stacked matched sample (a control stops being a
control when it starts CTI), weighted least squares with person-stack and stack-by-month fixed effects;
standard
errors clustered by person. The event study is relative to the mean of months −15 to −13 (before the dip; the
study is fitted with one of those months omitted and re-normalised exactly, covariance included). Its
pre-trend
tests are joint Wald tests over the months before the dip (−36 to −13) and over the dip (−12 to −1), the
transition month (−1) left out; the binned variants test yearly and half-yearly means. The Wald tests are
rank-aware: the clustered covariance is inverted over its eigenvalues above 10⁻¹⁰ of the largest (a
pseudo-inverse)
and the degrees of freedom are that rank, so a near-constant outcome, whose coefficients have variances of
rounding
size, neither inflates the statistic nor counts directions without information. Their p-values use
Hotelling's small-sample reference, F(q, G − q) of χ²/q × (G − q)/(G − 1), with q the degrees of freedom and
G the fewest participants in the tested months: a covariance of many months estimated from a few hundred
participants is noisy, and against the χ² the monthly test rejects a true null too often. The pre-trend p of
the estimates table is the binned test before the dip (the yearly means); the monthly tests are in the
pre-trend table. The Monte Carlo validation (README, "Validity") measures the size of both. The pooled DiD
compares
months 12 to 24 with the whole pre-period. Effects by CTI phase are means of the event-study coefficients
over the
phase's months.</p>
<p><b>Sensitivity.</b> Honest DiD (Rambachan &amp; Roth 2023, relative magnitudes) on the event study
averaged into
quarters from the reference (a port of HonestDiD, checked against moderndid), for the pooled effect over
months 12
to 23; the placebo moves every start 12 months earlier and estimates the pooled DiD on months before the real
start only.</p>
<p><b>Staggered adoption.</b> Callaway &amp; Sant'Anna (2021) group-time ATTs by month, stacked by start
month:
each start month is compared with its own never-treated matched comparisons only (matching weights, doubly
robust), every month with the mean of the 12 months before the transition month (months −13 to −2; month
-1, the
transition itself, is anticipation), and the stacks are aggregated together with standard errors clustered by
person; the pooled effect is the dynamic aggregation over months 12 to 24 after start, the matched DiD's
window.</p>
<p><b>Power.</b> Minimum detectable effect = 2.80 × standard error (80 % power, 5 % two-sided test).</p>"""
