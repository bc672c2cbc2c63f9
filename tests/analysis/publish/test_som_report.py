"""The effect report's public-budget section: kroner with their interval, illustrative prices said, n rule."""

import numpy as np
import polars as pl
import pytest

from analysis.estimate.som import EffectPaths, PriceTable, persistence_sensitivity, public_budget
from analysis.publish.som_report import export_tables, render_public_budget_section, som_tables

PRICES = pl.DataFrame(
    [
        (
            "kontanthjælp",
            "social_assistance",
            "expenditure",
            "municipality",
            "10000",
            "month on benefit",
            "2024",
            "official rate",
            "test",
            "",
        ),
        ("skat", "employed", "income", "state", "5000", "month in employment", "2024", "derived", "test", ""),
    ],
    schema=[
        "item",
        "outcome",
        "direction",
        "purse",
        "dkk_per_unit",
        "unit",
        "price_year",
        "status",
        "source",
        "basis",
    ],
    orient="row",
)


def _tables(n_treated: int):
    rows = [
        (o, m, e, n_treated, 300)
        for o, e in (("employed", 0.05), ("social_assistance", -0.1))
        for m in range(25)
    ]
    frame = pl.DataFrame(
        rows, schema=["outcome", "event_time", "estimate", "n_treated", "n_controls"], orient="row"
    )
    paths = EffectPaths(frame, np.eye(frame.height) * 0.02**2)
    prices = PriceTable.from_table(PRICES)
    from analysis.estimate.som import Persistence

    result = public_budget(paths, prices, horizons=(1, 2, 5), persistence=Persistence(0.5))
    sensitivity = persistence_sensitivity(paths, prices, horizon=5)
    return som_tables(
        result, prices, sensitivity=sensitivity, not_valued={"bed_days": "no estimates in this run"}
    )


def test_the_section_shows_the_kroner_figure_with_its_interval_and_says_the_prices_are_illustrative() -> None:
    tables = _tables(60)
    page = render_public_budget_section(tables)
    net2 = tables.budget.filter(
        (pl.col("purse") == "all") & (pl.col("measure") == "net") & (pl.col("horizon_years") == 2)
    )
    low = f"{net2['ci_lower'][0]:,.0f}".replace(",", " ")
    assert "ILLUSTRATIVE prices" in page and "SBST's current SØM prices belong there" in page
    assert "after <b>2 years</b>" in page and low in page and "break-even cost per course" in page
    assert "uses the persistence assumption" in page and "keeps 50% of it for each further year" in page
    assert "bed_days: no estimates in this run" in page and page.count("<svg") == 1
    assert set(export_tables(tables)) == {"som_budget", "som_effects", "som_sensitivity", "som_prices"}
    assert tables.option("discount_rate") == "0.035"
    import re

    # the effect report publishes no bare count of 1..4: years and horizons are labelled, not bare numbers
    assert not [c for c in re.findall(r"<td>(.*?)</td>", page) if re.fullmatch(r"[1-4]", c.strip())]
    assert "<td>year 2</td>" in page and "<td>5 years</td>" in page


@pytest.mark.parametrize("n_treated", [0, 4])
def test_figures_on_fewer_than_five_participants_are_not_published(n_treated: int) -> None:
    tables = _tables(n_treated)
    page = render_public_budget_section(tables)
    assert "Not published" in page and " kr." not in page
    assert export_tables(tables) == {}


def test_a_problem_is_shown_instead_of_figures() -> None:
    page = render_public_budget_section(None, problem="no price for outcome 'employed'")
    assert "Not computed: no price for outcome" in page and "ILLUSTRATIVE" in page
