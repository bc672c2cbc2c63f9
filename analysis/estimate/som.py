"""What the estimated effects are worth to the public purse, the way SBST's SØM counts it.

SØM (Den Socialøkonomiske Investeringsmodel) values the consequences of a social intervention as the change
in public expenditure and income over time, split by municipality, region and state. This module does that
for the estimated effect paths:

* **Effects** are the matched event-study coefficients by event month (month 0 = the start month) per
  outcome, in the outcome's unit per participant and month: a share of the month's weeks on a benefit (so
  twelve months of a 0.1 effect is 1.2 months of benefit a year), an employed month, a count of emergency
  contacts, a count of bed days. A year's change in quantity is the sum of its twelve monthly effects.
* **Prices** (:class:`PriceTable`, ``pipelines/config/som_prices.csv``) give DKK per unit, which purse pays
  or receives it and whether it is expenditure (benefits, hospital contacts) or income (tax and
  contributions from a month in employment), each with its source and price year.
* **Beyond the observed window** (the last event month the event study estimates) nothing is assumed unless
  a :class:`Persistence` is given: then each outcome's effect stays at its mean over the last observed
  ``base_months`` months times ``retention`` per further year. It is reported with every horizon that uses it.
* **Discounting**: year k (k = 1 for the course's first twelve months) is discounted by ``(1 + r)^-(k-1)``.
* **Uncertainty**: every figure is a linear combination ``w'b`` of the effect estimates ``b``, so its
  variance is ``w' V w`` with ``V`` the *joint* covariance of all outcomes' coefficients: within an outcome
  across months and across outcomes. :meth:`EffectPaths.from_influence` builds ``V`` from the person-level
  influence functions stacked by person (the ``effect_influence`` asset), which is what a person-clustered
  covariance of the joint estimation is; treating outcomes or months as independent would be wrong in both
  directions (positively correlated savings widen the interval, a saving correlated with a cost narrows it).
* **Net result and break-even**: net = change in income - change in expenditure (positive: the public
  purse gains). The break-even cost per course is the net result per participant at a horizon: a course
  that costs less than it pays for itself within that horizon (SØM's "budgetøkonomisk nettoresultat" is this
  net minus the course cost).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse, stats

PURSES = ("municipality", "region", "state")
DIRECTIONS = ("expenditure", "income")
STATUSES = ("official rate", "derived", "proxy", "placeholder")
PRICE_COLUMNS = (
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
)
ALL_PURSES = "all"


# --- prices --------------------------------------------------------------------------------------------


def price_problems(table: pl.DataFrame, /, *, outcomes: Sequence[str] | None = None) -> list[str]:
    """Everything wrong with a price table (empty: complete and dated).

    Every row needs an outcome (one of ``outcomes`` when given), a direction, a purse, a non-negative DKK
    amount, a unit, a four-digit price year, a status and a source; an item is priced once per purse, and
    all rows of an outcome share its unit.
    """
    missing = [c for c in PRICE_COLUMNS if c not in table.columns]
    if missing:
        return [f"the price table lacks column(s) {', '.join(missing)} (expected {', '.join(PRICE_COLUMNS)})"]
    if not table.height:
        return ["the price table has no rows"]
    problems, seen, units = [], set(), {}
    for number, row in enumerate(table.iter_rows(named=True), start=1):
        where = f"row {number} ({row['item'] or 'no item'})"
        text = {c: (row[c] or "").strip() for c in PRICE_COLUMNS}
        if not text["item"]:
            problems.append(f"{where}: item is empty")
        if not text["outcome"]:
            problems.append(f"{where}: outcome is empty (name the panel outcome the price multiplies)")
        elif outcomes is not None and text["outcome"] not in outcomes:
            problems.append(
                f"{where}: outcome {text['outcome']!r} is not an estimated outcome ({', '.join(outcomes)})"
            )
        if text["direction"] not in DIRECTIONS:
            problems.append(f"{where}: direction {text['direction']!r} is not expenditure or income")
        if text["purse"] not in PURSES:
            problems.append(f"{where}: purse {text['purse']!r} is not municipality, region or state")
        if not text["dkk_per_unit"]:
            problems.append(
                f"{where}: the price (dkk_per_unit) is missing; give DKK per {text['unit'] or 'unit'}"
            )
        else:
            try:
                value = float(text["dkk_per_unit"].replace(",", "."))
                if not math.isfinite(value) or value < 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    f"{where}: dkk_per_unit {text['dkk_per_unit']!r} is not a non-negative number"
                )
        if not text["unit"]:
            problems.append(f"{where}: unit is empty")
        if not re.fullmatch(r"(19|20)\d\d", text["price_year"]):
            problems.append(
                f"{where}: price_year {text['price_year']!r} is not a year (the price must be dated)"
            )
        if text["status"] not in STATUSES:
            problems.append(f"{where}: status {text['status']!r} is not one of {', '.join(STATUSES)}")
        if not text["source"]:
            problems.append(f"{where}: source is empty (say where the price comes from)")
        key = (text["item"], text["purse"])
        if key in seen:
            problems.append(f"{where}: {text['item']} is priced twice for the {text['purse']}")
        seen.add(key)
        if text["outcome"] and text["unit"]:
            if units.setdefault(text["outcome"], text["unit"]) != text["unit"]:
                problems.append(
                    f"{where}: outcome {text['outcome']} has two units "
                    f"({units[text['outcome']]!r} and {text['unit']!r})"
                )
    return problems


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices per unit of each outcome, by purse and direction, each with its source and year."""

    table: pl.DataFrame  # PRICE_COLUMNS, dkk_per_unit Float64, price_year Int32

    @classmethod
    def from_table(cls, table: pl.DataFrame, /, *, outcomes: Sequence[str] | None = None) -> PriceTable:
        """Parse a price table read as text; a ValueError lists every problem (a missing price among them)."""
        problems = price_problems(table, outcomes=outcomes)
        if problems:
            raise ValueError("som_prices.csv is not usable: " + "; ".join(problems))
        parsed = table.select(
            *[pl.col(c).str.strip_chars() for c in PRICE_COLUMNS if c not in ("dkk_per_unit", "price_year")],
            pl.col("dkk_per_unit").str.strip_chars().str.replace(",", ".").cast(pl.Float64),
            pl.col("price_year").str.strip_chars().cast(pl.Int32),
        )
        return cls(parsed.select(PRICE_COLUMNS))

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcomes the table prices, in name order."""
        return tuple(sorted(self.table["outcome"].unique().to_list()))

    def unit(self, outcome: str, /) -> str:
        """Return the unit ``outcome``'s effect is counted in (one month of benefit, one contact, ...)."""
        return str(self.rows(outcome)["unit"][0])

    def rows(self, outcome: str, /) -> pl.DataFrame:
        """Price rows of ``outcome``; ValueError when it has none."""
        rows = self.table.filter(pl.col("outcome") == outcome)
        if not rows.height:
            raise ValueError(
                f"no price for outcome {outcome!r}: add a row to som_prices.csv (item, outcome, "
                "direction, purse, dkk_per_unit, unit, price_year, status, source, basis) or leave "
                "the outcome out of the valuation"
            )
        return rows

    def years(self) -> tuple[int, ...]:
        """Return the price years in the table."""
        return tuple(sorted(self.table["price_year"].unique().to_list()))


# --- effect paths and their joint covariance ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectPaths:
    """Effect estimates by outcome and event month (>= 0) with their joint covariance (in row order)."""

    #: outcome, event_time, estimate, n_treated, n_controls; sorted by outcome, event_time
    estimates: pl.DataFrame
    cov: np.ndarray

    def __post_init__(self) -> None:
        k = self.estimates.height
        if self.cov.shape != (k, k):
            raise ValueError(f"cov must be {k} x {k} (one row per estimate), got {self.cov.shape}")
        if not np.allclose(self.cov, self.cov.T, rtol=1e-9, atol=1e-15):
            raise ValueError("cov must be symmetric")

    @classmethod
    def from_influence(
        cls, event_study: pl.DataFrame, influence: pl.DataFrame, /, *, outcomes: Sequence[str] | None = None
    ) -> EffectPaths:
        """Return event-study estimates of months >= 0, with covariance from influence stacked by person.

        ``event_study`` has the ``analysis.schema.EVENT_STUDY`` columns (every outcome wanted);
        ``influence`` the ``EFFECT_INFLUENCE`` columns. A person absent from an outcome's influence rows
        has influence 0 there. ``V = A'A`` with ``A`` the persons x coefficients influence matrix, so its
        diagonal is each coefficient's clustered variance and the rest their covariances.
        """
        est = event_study.filter((pl.col("event_time") >= 0) & pl.col("se").is_not_null())
        if outcomes is not None:
            est = est.filter(pl.col("outcome").is_in(list(outcomes)))
        est = est.select("outcome", "event_time", "estimate", "n_treated", "n_controls").sort(
            "outcome", "event_time"
        )
        if not est.height:
            raise ValueError("no event-study estimates for months >= 0 of the outcomes asked for")
        index = est.select("outcome", "event_time").with_row_index("column")
        rows = influence.join(index, on=["outcome", "event_time"], how="inner", validate="m:1")
        persons = rows.select(pl.col("person_id").rank("dense").cast(pl.Int64) - 1).to_series().to_numpy()
        lacking = index.join(
            rows.select("outcome", "event_time").unique(), on=["outcome", "event_time"], how="anti"
        )
        if lacking.height:
            first = lacking.row(0, named=True)
            raise ValueError(
                f"no influence functions for {lacking.height} estimate(s), e.g. {first['outcome']} month "
                f"{first['event_time']}: rerun the outcome partitions so effect_influence is written"
            )
        matrix = sparse.csr_matrix(
            (rows["influence"].to_numpy(), (persons, rows["column"].to_numpy())),
            shape=(int(persons.max()) + 1, est.height),
        )
        cov = np.asarray((matrix.T @ matrix).todense())
        return cls(est, (cov + cov.T) / 2)

    @property
    def se(self) -> np.ndarray:
        """Standard error of every estimate (square root of the covariance's diagonal)."""
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))

    def last_month(self, outcome: str, /) -> int:
        """Return the last event month estimated for ``outcome`` (months 0..last must all be there)."""
        months = self.estimates.filter(pl.col("outcome") == outcome)["event_time"].to_list()
        if not months:
            raise ValueError(f"no effect estimates for outcome {outcome!r} (its partition may have failed)")
        if months != list(range(len(months))) or months[0] != 0:
            gaps = sorted(set(range(max(months) + 1)) - set(months))
            raise ValueError(f"{outcome}: event months {gaps} are not estimated; the path must run 0..last")
        return months[-1]


@dataclass(frozen=True, slots=True)
class Persistence:
    """The assumption used beyond the observed window (always reported with the figures that use it)."""

    retention: float  # share of the effect kept for each further year: 1 = persists unchanged, 0 = stops
    base_months: int = 12  # the effect carried forward: mean of the last observed base_months months

    def __post_init__(self) -> None:
        if not 0 <= self.retention <= 1:
            raise ValueError(
                f"retention {self.retention} must be between 0 (the effect stops) and 1 (it persists)"
            )
        if self.base_months < 1:
            raise ValueError("base_months must be at least 1")

    def describe(self, last_months: dict[str, int]) -> str:
        """One sentence for the report."""
        last = sorted(set(last_months.values()))
        window = "month " + "/".join(str(m) for m in last)
        kept = (
            "stays at that level"
            if self.retention == 1
            else "stops"
            if self.retention == 0
            else f"keeps {self.retention:.0%} of it for each further year"
        )
        return (
            f"beyond the last estimated event {window}, each outcome's effect is assumed to equal its mean "
            "over "
            f"the last {self.base_months} estimated months, and then {kept}"
        )


# --- the valuation -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SomResult:
    """Changes in public expenditure and income per participant, by purse and horizon, with 95 % intervals."""

    #: horizon_years, purse (municipality/region/state/all), measure (expenditure/income/net), estimate, se,
    #: ci_lower, ci_upper, basis ("observed" or "observed + persistence")
    budget: pl.DataFrame
    break_even: pl.DataFrame  # horizon_years, estimate, se, ci_lower, ci_upper, basis (net per participant)
    effects: pl.DataFrame  # outcome, item, year, effect, se, ci_lower, ci_upper, unit, basis: SØM's input
    #: item, outcome, direction, purse, year, quantity, dkk, dkk_discounted (point estimates)
    by_item: pl.DataFrame
    horizons: tuple[int, ...]
    discount_rate: float
    persistence: Persistence | None  # None when no figure needed it
    last_months: dict[str, int]
    alpha: float
    n_treated: int  # fewest participants behind any effect estimate used
    n_controls: int
    price_years: tuple[int, ...]

    def to_frame(self) -> pl.DataFrame:
        """Return the budget table (one row per horizon, purse and measure)."""
        return self.budget

    def som_frame(self) -> pl.DataFrame:
        """Return the effect paths as SØM's calculation frame wants them: outcome, year, effect, unit."""
        return self.effects.select(
            "outcome", "item", "year", "effect", "unit", "ci_lower", "ci_upper", "basis"
        )

    @property
    def persistence_text(self) -> str:
        """The persistence assumption as a sentence (or that none was needed)."""
        if self.persistence is None:
            return "no persistence assumption: every figure is inside the observed window"
        return self.persistence.describe(self.last_months)


def _year_operator(
    paths: EffectPaths,
    outcome: str,
    years: int,
    persistence: Persistence | None,
) -> tuple[np.ndarray, list[str]]:
    """Rows: the outcome's change in quantity in years 1..``years`` as weights on the estimates; and bases."""
    last = paths.last_month(outcome)
    columns = np.flatnonzero((paths.estimates["outcome"] == outcome).to_numpy())  # months 0..last, in order
    operator = np.zeros((years, paths.estimates.height))
    basis = []
    for year in range(years):
        observed = extrapolated = 0
        for month in range(12 * year, 12 * year + 12):
            if month <= last:
                operator[year, columns[month]] += 1.0
                observed += 1
                continue
            if persistence is None:
                raise ValueError(
                    f"a {years}-year horizon reaches event month {month}, but {outcome} is estimated only "
                    f"to month {last}: give a persistence assumption (Persistence) or a shorter horizon"
                )
            span = min(persistence.base_months, last + 1)
            factor = persistence.retention ** math.ceil((month - last) / 12)
            operator[year, columns[last - span + 1 : last + 1]] += factor / span
            extrapolated += 1
        basis.append(
            "observed" if not extrapolated else "persistence" if not observed else "observed + persistence"
        )
    return operator, basis


def public_budget(
    paths: EffectPaths,
    prices: PriceTable,
    /,
    *,
    horizons: Sequence[int] = (1, 2, 5),
    discount_rate: float = 0.035,
    persistence: Persistence | None = None,
    outcomes: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> SomResult:
    """Value the effect paths with ``prices`` per horizon and purse, with intervals from the joint covariance.

    Parameters
    ----------
    paths
        Effect estimates by outcome and event month with their joint covariance.
    prices
        The price table; every outcome valued must have a price (else ValueError naming it).
    horizons
        Years from the start (whole years; the first year is months 0..11).
    discount_rate
        Annual rate; year k is discounted by ``(1 + rate)^-(k-1)`` (default 3.5 %: Finansministeriet's
        samfundsøkonomiske diskonteringsrente for years 0-35 since 2021).
    persistence
        Needed only when a horizon reaches past an outcome's last estimated month.
    outcomes
        Outcomes to value (default: every outcome the price table prices).
    alpha
        Intervals are ``1 - alpha`` (normal, from the covariance).
    """
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or horizons[0] < 1:
        raise ValueError("horizons must be whole years, at least 1")
    if not 0 <= discount_rate < 1:
        raise ValueError(f"discount_rate {discount_rate} must be a yearly rate in [0, 1), e.g. 0.035")
    chosen = tuple(outcomes) if outcomes is not None else prices.outcomes
    if not chosen:
        raise ValueError("nothing to value: give at least one outcome")
    for outcome in chosen:
        prices.rows(outcome)  # a missing price is a clear error before anything is computed
    years = horizons[-1]
    z = float(stats.norm.ppf(1 - alpha / 2))
    discount = np.array([(1 + discount_rate) ** -k for k in range(years)])
    operators, effect_rows, item_rows, last_months = {}, [], [], {}
    for outcome in chosen:
        operator, basis = _year_operator(paths, outcome, years, persistence)
        operators[outcome] = operator
        last_months[outcome] = paths.last_month(outcome)
        values = operator @ paths.estimates["estimate"].to_numpy()
        ses = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", operator, paths.cov, operator), 0, None))
        label = " / ".join(sorted(prices.rows(outcome)["item"].unique().to_list()))
        for year in range(years):
            effect_rows.append(
                {
                    "outcome": outcome,
                    "item": label,
                    "year": year + 1,
                    "effect": float(values[year]),
                    "se": float(ses[year]),
                    "ci_lower": float(values[year] - z * ses[year]),
                    "ci_upper": float(values[year] + z * ses[year]),
                    "unit": prices.unit(outcome),
                    "basis": basis[year],
                }
            )
        for price in prices.rows(outcome).iter_rows(named=True):
            for year in range(years):
                dkk = price["dkk_per_unit"] * float(values[year])
                item_rows.append(
                    {
                        "item": price["item"],
                        "outcome": outcome,
                        "direction": price["direction"],
                        "purse": price["purse"],
                        "year": year + 1,
                        "quantity": float(values[year]),
                        "dkk": dkk,
                        "dkk_discounted": dkk * discount[year],
                    }
                )
    budget_rows, break_even = [], []
    for horizon in horizons:
        weights: dict[tuple[str, str], np.ndarray] = {}
        for purse in (*PURSES, ALL_PURSES):
            for direction in DIRECTIONS:
                w = np.zeros(paths.estimates.height)
                for outcome in chosen:
                    rows = prices.rows(outcome).filter(pl.col("direction") == direction)
                    if purse != ALL_PURSES:
                        rows = rows.filter(pl.col("purse") == purse)
                    price = float(rows["dkk_per_unit"].sum())
                    w += price * (discount[:horizon] @ operators[outcome][:horizon])
                weights[(purse, direction)] = w
            weights[(purse, "net")] = weights[(purse, "income")] - weights[(purse, "expenditure")]
        extrapolated = any(r["basis"] != "observed" for r in effect_rows if r["year"] <= horizon)
        basis = "observed + persistence" if extrapolated else "observed"
        for (purse, measure), w in weights.items():
            estimate = float(w @ paths.estimates["estimate"].to_numpy())
            se = float(np.sqrt(max(w @ paths.cov @ w, 0.0)))
            row = {
                "horizon_years": horizon,
                "purse": purse,
                "measure": measure,
                "estimate": estimate,
                "se": se,
                "ci_lower": estimate - z * se,
                "ci_upper": estimate + z * se,
                "basis": basis,
            }
            budget_rows.append(row)
            if purse == ALL_PURSES and measure == "net":
                break_even.append({k: v for k, v in row.items() if k not in ("purse", "measure")})
    used = paths.estimates.filter(pl.col("outcome").is_in(list(chosen)))
    needed = any(r["basis"] != "observed" for r in effect_rows)
    return SomResult(
        budget=pl.DataFrame(budget_rows).sort("horizon_years", "purse", "measure"),
        break_even=pl.DataFrame(break_even),
        effects=pl.DataFrame(effect_rows),
        by_item=pl.DataFrame(item_rows),
        horizons=horizons,
        discount_rate=discount_rate,
        persistence=persistence if needed else None,
        last_months=last_months,
        alpha=alpha,
        n_treated=int(used["n_treated"].min()),
        n_controls=int(used["n_controls"].min()),
        price_years=prices.years(),
    )


def persistence_sensitivity(
    paths: EffectPaths,
    prices: PriceTable,
    /,
    *,
    horizon: int,
    retentions: Sequence[float] = (0.0, 0.5, 1.0),
    discount_rate: float = 0.035,
    base_months: int = 12,
    outcomes: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """Return the net result per participant at ``horizon`` years for several persistence assumptions.

    One row per retention (the share of the effect kept per year beyond the observed window): estimate, se,
    ci_lower, ci_upper, and the assumption as a sentence, so a reader sees how much of a long-horizon figure
    is assumption rather than estimate.
    """
    rows = []
    for retention in retentions:
        persistence = Persistence(retention=retention, base_months=base_months)
        result = public_budget(
            paths,
            prices,
            horizons=(horizon,),
            discount_rate=discount_rate,
            persistence=persistence,
            outcomes=outcomes,
            alpha=alpha,
        )
        net = result.break_even.row(0, named=True)
        rows.append(
            {
                "horizon_years": horizon,
                "retention": retention,
                "estimate": net["estimate"],
                "se": net["se"],
                "ci_lower": net["ci_lower"],
                "ci_upper": net["ci_upper"],
                "assumption": persistence.describe(result.last_months),
            }
        )
    return pl.DataFrame(rows)
