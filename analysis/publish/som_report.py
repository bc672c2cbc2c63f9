"""The effect report's public-budget (SØM) section and its published tables.

The section is rendered from the frames the ``public_budget`` asset persists (:func:`som_tables` builds
them from a :class:`analysis.estimate.som.SomResult`), so a report can be rebuilt without re-estimating.
Every figure is an estimate on the matched participants: it is published only when at least
``MIN_CELL`` participants and comparison persons stand behind every effect estimate it uses.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from analysis.estimate.som import ALL_PURSES, PURSES, PriceTable, SomResult  # noqa: E402
from analysis.publish.sdc import MIN_CELL  # noqa: E402

_RC = {"svg.hashsalt": "cti-som", "svg.fonttype": "none", "font.size": 9, "figure.dpi": 72}
_PURSE_LABEL = {
    "municipality": "municipality",
    "region": "region",
    "state": "state",
    ALL_PURSES: "all purses",
}


@dataclass(frozen=True, slots=True)
class SomTables:
    """What the section shows: the budget (with its options as columns), SØM's input, sensitivity, prices."""

    budget: pl.DataFrame
    effects: pl.DataFrame
    sensitivity: pl.DataFrame
    prices: pl.DataFrame

    def to_frame(self) -> pl.DataFrame:
        """Return the budget table."""
        return self.budget

    def option(self, name: str, /) -> str:
        """Return one of the options the budget was computed with (a constant column)."""
        return str(self.budget[name][0]) if self.budget.height and name in self.budget.columns else ""

    @property
    def publishable(self) -> bool:
        """Whether enough persons stand behind every estimate used (else nothing but the reason is shown).

        On the asset's frames: at least ``MIN_CELL`` participants and comparison persons; on the controlled
        publication's frames (the persons are internal there): the estimates survived disclosure control.
        """
        if not self.budget.height:
            return False
        if "n_treated" not in self.budget.columns:
            return self.budget["estimate"].null_count() < self.budget.height
        return int(self.budget["n_treated"][0]) >= MIN_CELL and int(self.budget["n_controls"][0]) >= MIN_CELL


def som_tables(
    result: SomResult, prices: PriceTable, /, *, sensitivity: pl.DataFrame, not_valued: dict[str, str]
) -> SomTables:
    """Return the frames the ``public_budget`` asset persists (the options become constant columns)."""
    options = {
        "discount_rate": result.discount_rate,
        "persistence": result.persistence_text,
        "n_treated": result.n_treated,
        "n_controls": result.n_controls,
        "price_years": ", ".join(str(y) for y in result.price_years),
        "outcomes_valued": ", ".join(sorted(result.last_months)),
        "not_valued": "; ".join(f"{o}: {why}" for o, why in sorted(not_valued.items())),
    }
    budget = result.budget.with_columns(**{k: pl.lit(v) for k, v in options.items()})
    return SomTables(budget, result.som_frame(), sensitivity, prices.table)


def export_tables(tables: SomTables, /) -> dict[str, pl.DataFrame]:
    """Return the published tables (``som_*``): empty frames when the figures may not be published."""
    if not tables.publishable:
        return {}
    return {
        "som_budget": tables.budget,
        "som_effects": tables.effects,
        "som_sensitivity": tables.sensitivity,
        "som_prices": tables.prices,
    }


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _kr(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}".replace(",", " ") + " kr."


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\s(xmlns(:xlink)?)="[^"]*"', "", text)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return f'<figure class="plot">{text.replace("xlink:href", "href")}</figure>'


def _plot(budget: pl.DataFrame) -> str:
    from analysis.publish import figures

    net = budget.filter(pl.col("measure") == "net")
    horizons = sorted(net["horizon_years"].unique().to_list())
    series = {}
    for purse in [*PURSES, ALL_PURSES]:
        rows = {r["horizon_years"]: r for r in net.filter(pl.col("purse") == purse).iter_rows(named=True)}
        pick = lambda c: [rows[h][c] if h in rows else None for h in horizons]  # noqa: E731
        series[_PURSE_LABEL[purse]] = (pick("estimate"), pick("ci_lower"), pick("ci_upper"))
    return figures.bars([f"{h} year{'s' if h > 1 else ''}" for h in horizons], series, name="public-budget",
                        title="Net result for the public purse per participant (95 % CI)",
                        xlabel="horizon after the start", ylabel="kr. per participant")


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{_e(summary)}</summary>{body}</details>"


def _years(column: str) -> pl.Expr:
    """``1`` -> ``"1 year"`` (a bare small number in a table cell reads like a count)."""
    return pl.format("{} year", pl.col(column)) + pl.when(pl.col(column) > 1).then(pl.lit("s")).otherwise(
        pl.lit("")
    )


def _table(frame: pl.DataFrame, columns: list[str], headers: list[str], money: tuple[str, ...] = (),
           labels=None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in frame.select(columns).iter_rows(named=True):
        cells = []
        for c in columns:
            v = row[c]
            if c in money:
                cells.append(_kr(v))
            elif isinstance(v, float):
                cells.append(f"{v:.2f}".replace("-", "\u2212") if round(v, 2) != 0 else "0.00")
            elif c == "outcome" and labels is not None and v is not None:
                cells.append(labels.outcome(v))
            else:
                cells.append("" if v is None else str(v))
        body.append("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_public_budget_section(tables: SomTables | None, /, *, problem: str = "", labels=None) -> str:
    """Render the section body: headline kroner figure with its interval, purses, SØM's input, the prices."""
    illustrative = (
        '<p class="warn"><b>ILLUSTRATIVE prices.</b> The kroner figures use the packaged illustrative '
        "price table (<code>pipelines/config/som_prices.csv</code>: public satser for 2024, a derived tax "
        "figure, a proxy and a placeholder). SBST's current SØM prices belong there (a deployment's "
        "configuration directory replaces the table); until then the figures show the method, not the "
        "value of CTI.</p>"
    )
    if problem:
        return illustrative + f'<p class="warn">Not computed: {_e(problem)}</p>'
    if tables is None or not tables.budget.height:
        return illustrative + '<p class="na">Not available for this run (no effect estimates to value).</p>'
    if not tables.publishable:
        return illustrative + (
            f'<p class="na">Not published: fewer than {MIN_CELL} participants or comparison persons '
            "stand behind an effect estimate it uses.</p>"
        )
    b = tables.budget
    net = b.filter((pl.col("purse") == ALL_PURSES) & (pl.col("measure") == "net")).sort("horizon_years")
    lines = []
    for r in net.iter_rows(named=True):
        basis = "" if r["basis"] == "observed" else " (uses the persistence assumption below)"
        lines.append(
            f"<li>after <b>{r['horizon_years']} year{'s' if r['horizon_years'] > 1 else ''}</b>: "
            f"<b>{_e(_kr(r['estimate']))}</b> per participant, 95 % CI {_e(_kr(r['ci_lower']))} to "
            f"{_e(_kr(r['ci_upper']))}{_e(basis)}</li>"
        )
    rate = float(tables.option("discount_rate"))
    head = (
        "<p>Change in public income minus change in public expenditure per participant (positive: the "
        "public "
        f"purse gains), discounted at {rate:.1%} a year (year 1 undiscounted), priced at "
        f"{_e(tables.option('price_years'))}"
        f" prices (not indexed to one year):</p><ul>{''.join(lines)}</ul>"
        "<p>This is also the <b>break-even cost per course</b>: a course that costs less pays for itself "
        "for the public purse within that horizon (SØM's budgetøkonomisk nettoresultat is this net result "
        "minus the course's cost). The interval applies to it too: at its lower end, a negative figure, no "
        "course cost would pay for itself.</p>"
    )
    not_valued = tables.option("not_valued")
    if not_valued:
        head += f'<p class="warn">Outcomes not valued in this run: {_e(not_valued)}.</p>'
    head += (
        f"<p><b>Persistence:</b> {_e(tables.option('persistence'))}. Outcomes valued: "
        f"{_e(tables.option('outcomes_valued'))}.</p>"
    )
    purses = b.sort("horizon_years", "purse", "measure").with_columns(
        pl.col("purse").replace_strict(_PURSE_LABEL), horizon=_years("horizon_years")
    )
    columns = ["horizon", "purse", "measure", "estimate", "ci_lower", "ci_upper", "basis"]
    headers = ["years", "purse", "change in", "kr. per participant", "95% CI low", "95% CI high", "basis"]
    body = (
        head
        + _plot(b)
        + "<p>By purse, the net result:</p>"
        + _table(purses.filter(pl.col("measure") == "net"), columns, headers,
                 money=("estimate", "ci_lower", "ci_upper"))
        + _details("Expenditure and income by purse and horizon",
                   _table(purses, columns, headers, money=("estimate", "ci_lower", "ci_upper")))
    )
    if tables.sensitivity.height:
        body += (
            "<p>How much of the longest horizon is assumption: the net result under other persistence "
            "assumptions.</p>"
            + _table(
                tables.sensitivity.with_columns(
                    horizon=_years("horizon_years"),
                    kept=pl.format("{}%", (pl.col("retention") * 100).round(0)),
                ),
                ["horizon", "kept", "estimate", "ci_lower", "ci_upper"],
                [
                    "years",
                    "share of the effect kept per further year",
                    "kr. per participant",
                    "95% CI low",
                    "95% CI high",
                ],
                money=("estimate", "ci_lower", "ci_upper"),
            )
        )
    body += _details(
        "The effect paths in SØM's form (per participant and year; type them into SØM's beregningsramme as "
        "consequences; also in reports/tables/som_effects.csv and reports/som_effects.xlsx)",
        _table(
            tables.effects.with_columns(year=pl.format("year {}", pl.col("year"))),
            ["outcome", "item", "year", "effect", "unit", "ci_lower", "ci_upper", "basis"],
            [
                "outcome",
                "item",
                "year",
                "change per participant",
                "unit",
                "95% CI low",
                "95% CI high",
                "basis",
            ],
            labels=labels,
        )
    )
    body += _details("The prices used", _table(
        tables.prices,
        ["item", "outcome", "direction", "purse", "dkk_per_unit", "unit", "price_year", "status", "source"],
        ["item", "outcome", "direction", "purse", "kr. per unit", "unit", "price year", "status", "source"],
        money=("dkk_per_unit",),
        labels=labels,
    ))
    body += (
        "<p><b>Method.</b> A year's change in a quantity is the sum of the twelve monthly event-study "
        "effects "
        "(matched DiD, months from the start); the kroner figures are these changes times the prices, summed "
        "over outcomes and years. Every figure is a linear combination of the effect estimates, so its "
        "interval "
        "comes from their <i>joint</i> covariance: each matched person's influence on every outcome's "
        "coefficients, stacked by person across outcomes (the person-clustered covariance of the joint "
        "estimation). Savings that rise and fall together widen the interval; a saving that moves with a "
        "cost "
        "narrows it. Prices are gross of the tax paid on benefits, and a month in employment is priced by "
        "the "
        "direct taxes of an illustrative wage.</p>"
    )
    return illustrative + body
