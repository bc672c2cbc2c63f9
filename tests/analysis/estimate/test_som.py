"""Public-budget valuation (SØM): a hand-computed case, joint covariance, persistence, missing prices."""

import numpy as np
import polars as pl
import pytest

from analysis.estimate.som import EffectPaths, Persistence, PriceTable, price_problems, public_budget

PRICE_COLUMNS = [
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
]


def _prices(*rows: tuple) -> PriceTable:
    return PriceTable.from_table(pl.DataFrame(list(rows), schema=PRICE_COLUMNS, orient="row"))


SA = (
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
)
EMPLOYED = (
    "skat",
    "employed",
    "income",
    "state",
    "5000",
    "month in employment",
    "2024",
    "derived",
    "test",
    "",
)
EMERGENCY = (
    "akut kontakt",
    "emergency_contacts",
    "expenditure",
    "region",
    "2000",
    "contact",
    "2024",
    "placeholder",
    "test",
    "",
)


def _paths(
    effects: dict[str, float],
    *,
    months: int = 24,
    sigma: dict[str, float],
    rho_within: float = 0.0,
    cross: dict[tuple[str, str], float] | None = None,
) -> EffectPaths:
    """Constant effects over months 0..months-1; sd ``sigma``; correlations within and across outcomes."""
    outcomes = sorted(effects)
    rows = [(o, m, effects[o], 50, 200) for o in outcomes for m in range(months)]
    frame = pl.DataFrame(
        rows, schema=["outcome", "event_time", "estimate", "n_treated", "n_controls"], orient="row"
    )
    k = len(rows)
    cov = np.zeros((k, k))
    for i, (oi, mi, *_) in enumerate(rows):
        for j, (oj, mj, *_) in enumerate(rows):
            if oi == oj:
                cov[i, j] = sigma[oi] ** 2 * (1.0 if mi == mj else rho_within)
            elif cross and mi == mj:
                rho = cross.get((oi, oj), cross.get((oj, oi), 0.0))
                cov[i, j] = rho * sigma[oi] * sigma[oj]
    return EffectPaths(frame, cov)


def _row(result, horizon: int, purse: str, measure: str) -> dict:
    return result.budget.filter(
        (pl.col("horizon_years") == horizon) & (pl.col("purse") == purse) & (pl.col("measure") == measure)
    ).row(0, named=True)


def test_two_outcomes_two_years_discounted_as_computed_by_hand() -> None:
    paths = _paths(
        {"social_assistance": -0.1, "employed": 0.05}, sigma={"social_assistance": 0.02, "employed": 0.01}
    )
    result = public_budget(paths, _prices(SA, EMPLOYED), horizons=(1, 2), discount_rate=0.04)
    # year 1: 12 x -0.1 = -1.2 months of kontanthjælp (-12,000 kr. for the municipality), 0.6 months employed
    # (3,000 kr. of tax for the state); year 2 the same, discounted by 1/1.04
    assert _row(result, 1, "municipality", "expenditure")["estimate"] == pytest.approx(-12_000)
    assert _row(result, 1, "state", "income")["estimate"] == pytest.approx(3_000)
    assert _row(result, 1, "all", "net")["estimate"] == pytest.approx(15_000)
    assert _row(result, 2, "municipality", "expenditure")["estimate"] == pytest.approx(
        -12_000 * (1 + 1 / 1.04)
    )
    assert _row(result, 2, "state", "net")["estimate"] == pytest.approx(3_000 * (1 + 1 / 1.04))
    assert _row(result, 2, "municipality", "net")["estimate"] == pytest.approx(12_000 * (1 + 1 / 1.04))
    assert _row(result, 2, "region", "net")["estimate"] == 0.0
    net = _row(result, 2, "all", "net")
    assert net["estimate"] == pytest.approx(15_000 * (1 + 1 / 1.04))  # 29,423.08 kr. per participant
    # independent months and outcomes: var = sum of (price x discount)^2 x sigma^2 over the 48 estimates
    hand = 12 * (1 + 1 / 1.04**2) * (10_000**2 * 0.02**2 + 5_000**2 * 0.01**2)
    assert net["se"] == pytest.approx(np.sqrt(hand), rel=1e-12)
    assert net["ci_lower"] == pytest.approx(net["estimate"] - 1.959963984540054 * np.sqrt(hand))
    assert result.break_even.filter(pl.col("horizon_years") == 2)["estimate"][0] == pytest.approx(
        net["estimate"]
    )
    effects = {(r["outcome"], r["year"]): r for r in result.effects.iter_rows(named=True)}
    assert effects[("social_assistance", 1)]["effect"] == pytest.approx(-1.2)
    assert effects[("social_assistance", 2)]["se"] == pytest.approx(np.sqrt(12) * 0.02)
    assert effects[("employed", 2)]["unit"] == "month in employment"
    assert set(result.effects["basis"]) == {"observed"} and result.persistence is None
    assert result.som_frame().columns[:5] == ["outcome", "item", "year", "effect", "unit"]


def test_positive_covariance_within_an_outcome_widens_the_interval() -> None:
    prices = _prices(SA, EMPLOYED)
    sigma = {"social_assistance": 0.02, "employed": 0.01}
    effects = {"social_assistance": -0.1, "employed": 0.05}
    independent = _row(public_budget(_paths(effects, sigma=sigma), prices, horizons=(2,)), 2, "all", "net")
    correlated = _row(
        public_budget(_paths(effects, sigma=sigma, rho_within=0.5), prices, horizons=(2,)), 2, "all", "net"
    )
    assert correlated["estimate"] == pytest.approx(independent["estimate"])
    assert correlated["se"] > 2 * independent["se"]  # 24 months that move together, not 24 independent draws


def test_covariance_across_outcomes_widens_or_narrows_by_the_sign_of_the_prices() -> None:
    sigma = {"social_assistance": 0.02, "employed": 0.01, "emergency_contacts": 0.01}
    two_costs = {"social_assistance": -0.1, "emergency_contacts": -0.05}
    prices = _prices(SA, EMERGENCY, EMPLOYED)
    base = _row(
        public_budget(_paths(two_costs, sigma=sigma), prices, outcomes=list(two_costs), horizons=(2,)),
        2,
        "all",
        "net",
    )
    together = _row(
        public_budget(
            _paths(two_costs, sigma=sigma, cross={("social_assistance", "emergency_contacts"): 0.6}),
            prices,
            outcomes=list(two_costs),
            horizons=(2,),
        ),
        2,
        "all",
        "net",
    )
    assert together["se"] > base["se"]  # two savings that rise and fall together
    cost_and_income = {"social_assistance": -0.1, "employed": 0.05}
    base = _row(
        public_budget(
            _paths(cost_and_income, sigma=sigma), prices, outcomes=list(cost_and_income), horizons=(2,)
        ),
        2,
        "all",
        "net",
    )
    offset = _row(
        public_budget(
            _paths(cost_and_income, sigma=sigma, cross={("social_assistance", "employed"): 0.6}),
            prices,
            outcomes=list(cost_and_income),
            horizons=(2,),
        ),
        2,
        "all",
        "net",
    )
    assert offset["se"] < base["se"]  # net = income - expenditure: the covariance enters with a minus


def test_a_missing_price_is_a_clear_error() -> None:
    paths = _paths(
        {"social_assistance": -0.1, "employed": 0.05}, sigma={"social_assistance": 0.02, "employed": 0.01}
    )
    with pytest.raises(
        ValueError, match="no price for outcome 'social_assistance': add a row to som_prices.csv"
    ):
        public_budget(paths, _prices(EMPLOYED), outcomes=["employed", "social_assistance"], horizons=(1,))
    empty = (*SA[:4], "", *SA[5:])
    with pytest.raises(
        ValueError, match=r"the price \(dkk_per_unit\) is missing; give DKK per month on benefit"
    ):
        _prices(empty, EMPLOYED)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((*SA[:6], "", *SA[7:]), "is not a year (the price must be dated)"),
        ((*SA[:3], "county", *SA[4:]), "purse 'county' is not municipality, region or state"),
        ((*SA[:2], "spending", *SA[3:]), "direction 'spending' is not expenditure or income"),
        ((*SA[:4], "-5", *SA[5:]), "is not a non-negative number"),
        ((*SA[:8], "", SA[9]), "source is empty"),
        ((*SA[:7], "guess", *SA[8:]), "status 'guess'"),
    ],
)
def test_an_incomplete_price_row_is_named(row: tuple, message: str) -> None:
    frame = pl.DataFrame([row, EMPLOYED], schema=PRICE_COLUMNS, orient="row")
    assert any(message in p for p in price_problems(frame)), price_problems(frame)


def test_a_price_twice_for_one_purse_or_an_unknown_outcome_is_refused() -> None:
    frame = pl.DataFrame([SA, SA], schema=PRICE_COLUMNS, orient="row")
    assert any("kontanthjælp is priced twice for the municipality" in p for p in price_problems(frame))
    assert any("is not an estimated outcome" in p for p in price_problems(frame, outcomes=("employed",)))


def test_beyond_the_observed_window_only_with_a_stated_persistence() -> None:
    paths = _paths({"social_assistance": -0.1}, months=25, sigma={"social_assistance": 0.02})  # months 0..24
    prices = _prices(SA)
    with pytest.raises(ValueError, match="estimated only to month 24: give a persistence assumption"):
        public_budget(paths, prices, horizons=(1, 2, 5))
    result = public_budget(paths, prices, horizons=(1, 2, 5), persistence=Persistence(retention=0.5))
    effects = {r["year"]: r for r in result.effects.iter_rows(named=True)}
    # year 3: month 24 observed (-0.1) and months 25..35 at the mean of months 13..24 (-0.1) x 0.5
    assert (
        effects[3]["effect"] == pytest.approx(-0.1 - 11 * 0.05)
        and effects[3]["basis"] == "observed + persistence"
    )
    assert (
        effects[4]["effect"] == pytest.approx(-0.1 * (0.5 + 11 * 0.25))
        and effects[4]["basis"] == "persistence"
    )
    basis = {r["horizon_years"]: r["basis"] for r in result.budget.iter_rows(named=True)}
    assert basis == {1: "observed", 2: "observed", 5: "observed + persistence"}
    assert "keeps 50% of it for each further year" in result.persistence_text
    assert effects[4]["se"] > 0  # extrapolated years carry the uncertainty of the months they copy
    stopped = public_budget(paths, prices, horizons=(5,), persistence=Persistence(retention=0.0))
    assert stopped.effects.filter(pl.col("year") == 4)["effect"][0] == 0.0


def test_joint_covariance_from_influence_functions_stacked_by_person() -> None:
    rng = np.random.default_rng(4)
    influence = rng.normal(size=(30, 4)) * 0.01
    influence[:5, 2:] = 0.0  # five persons are not in the second outcome
    keys = [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    long = pl.DataFrame(
        [
            (o, p, m, float(influence[p, j]))
            for j, (o, m) in enumerate(keys)
            for p in range(30)
            if influence[p, j] != 0
        ],
        schema=["outcome", "person_id", "event_time", "influence"],
        orient="row",
    )
    study = pl.DataFrame(
        [(o, m, 0.1, 0.01, 20, 80) for o, m in keys] + [("a", -1, 0.0, None, 20, 80)],
        schema=["outcome", "event_time", "estimate", "se", "n_treated", "n_controls"],
        orient="row",
    )
    paths = EffectPaths.from_influence(study, long)
    assert paths.estimates.select("outcome", "event_time").rows() == keys  # the reference month is left out
    assert paths.cov == pytest.approx(influence.T @ influence, rel=1e-12)
    with pytest.raises(ValueError, match="no influence functions for 1 estimate"):
        EffectPaths.from_influence(
            study, long.filter((pl.col("outcome") != "b") | (pl.col("event_time") != 1))
        )


def test_persistence_sensitivity_orders_the_long_horizon_by_the_assumption() -> None:
    from analysis.estimate.som import persistence_sensitivity

    paths = _paths({"social_assistance": -0.1}, months=25, sigma={"social_assistance": 0.02})
    table = persistence_sensitivity(
        paths, _prices(SA), horizon=5, retentions=(0.0, 0.5, 1.0), discount_rate=0.0
    )
    net = dict(zip(table["retention"].to_list(), table["estimate"].to_list(), strict=True))
    # undiscounted: 2 years + month 24 observed = 25 months x 0.1 x 10,000; retention 1 adds 35 more months
    assert net[0.0] == pytest.approx(25 * 1_000)
    assert net[1.0] == pytest.approx(60 * 1_000)
    assert net[0.0] < net[0.5] < net[1.0]
