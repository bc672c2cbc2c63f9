"""Matched comparison group: at each participant's start month, persons not (yet) in CTI with the same history.

Design (a stacked, cohort-by-cohort match):

* A *cohort* is a start month ``m``. Its candidates are every person in the panel who has not started CTI by
  ``m`` (never-treated, or not yet treated: their rows from their own start on are censored later).
* Features at ``m`` (for participants at their own start month, for candidates at the cohort's month):
  means of the history outcomes over event-month windows (default -36..-25, -24..-13, -12..-4), each of the
  dip months -3, -2, -1, age, sex, origin, municipality type and education level in month -1.
* Transition: participants and candidates are split by whether they had a critical transition in month -1
  (an institution stay discharge; see ``MatchConfig.exact_transition``) and matched only within that split.
* Propensity: a logit (statsmodels) of participation on the standardised features and start-year dummies,
  fitted on the participants and candidate rows (every candidate with a transition, a seeded sample of the
  others per cohort); it is used on the logit scale. A transition split with at least 10 events per
  parameter gets its own model (take-up *among persons in the same transition*), a smaller split is
  scored by a model fitted on everyone; the caliper is in SDs of the split's own scores, since pooled with
  the whole population the transition dominates the score's spread. Inside the transition split the score
  and the distance use the attributes only (``history_in_transition``): persons in the same transition in
  the same month already share the dip, and matching on noisy pre-period outcomes as well makes the
  comparisons regress to their mean after the start (Daw & Hatfield 2018; measured on the 5.9 M mock world:
  emergency contacts DiD -0.068 [-0.072, -0.063] with history vs -0.062 [-0.067, -0.057] without, truth
  -0.059). The history features stay in the balance table.
* Matching: within cohort, transition split and exact strata (default sex), the ``neighbours`` nearest
  candidates (standardised features, or the score) within a caliper of ``caliper`` SDs of the logit (Austin 2011), with
  replacement by default. Participants without a candidate inside the caliper are reported, not matched.
  A matched control carries weight 1/k for each participant it serves, so every participant weighs 1.

Everything is arrays over a balanced person x month panel (cumulative sums give every window mean in
O(1)), one cohort at a time, so memory is one cohort's candidate features at most.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import statsmodels.api as sm

from analysis.schema import BALANCE

#: Municipality types for the coarse urbanity covariate; any other code is "other".
CAPITAL_KOM = frozenset({101, 147})
LARGE_CITY_KOM = frozenset({751, 461, 851})


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Knobs of the match; the defaults are the report's design."""

    neighbours: int = 5
    caliper: float = 0.2  # in standard deviations of the logit propensity score
    replacement: bool = True
    #: "mahalanobis": nearest on standardised features among candidates inside the propensity caliper
    #: (Rubin & Thomas 2000; tracks the shape of the dip, not only its summary); "propensity": nearest score.
    metric: str = "mahalanobis"
    exact: tuple[str, ...] = ("sex",)
    #: Exact match on "any of these counts > 0 in event month -1" (the *transition split*): a discharge from
    #: an institution stay in the month before the start is the critical transition itself (shelter exit,
    #: psychiatric discharge, prison release), so comparisons are persons in a transition at the same time.
    exact_transition: tuple[str, ...] = ("shelter_exits", "psych_ward_exits", "prison_exits")
    #: Used instead when the panel lacks the ``exact_transition`` columns or no participant has one at month
    #: -1 (extracts without a stays register): a hospital contact in the month before the start.
    transition_fallback: tuple[str, ...] = ("emergency_contacts", "psych_admissions")
    #: Also match on the outcome history inside the transition split (default: attributes only there; the
    #: history is always matched on for participants without a transition, and always in the balance table).
    history_in_transition: bool = False
    history_outcomes: tuple[str, ...] = (
        "self_support",
        "employed",
        "social_assistance",
        "sickness_benefit",
        "disability_pension",
        "emergency_contacts",
        "psych_admissions",
    )
    windows: tuple[tuple[int, int], ...] = ((-36, -25), (-24, -13), (-12, -4))
    dip_outcomes: tuple[str, ...] = (
        "self_support", "employed", "social_assistance", "sickness_benefit", "emergency_contacts", "psych_admissions"
    )
    dip_months: tuple[int, ...] = (-3, -2, -1)
    max_fit_controls: int = 200_000  # candidate rows in the propensity fit, over all cohorts
    seed: int = 0

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if self.metric not in ("mahalanobis", "propensity"):
            raise ValueError(f"metric must be 'mahalanobis' or 'propensity', not {self.metric!r}")
        if not self.caliper > 0:
            raise ValueError(f"caliper must be > 0 standard deviations, got {self.caliper}")
        if any(a > b or b >= 0 for a, b in self.windows) or any(d >= 0 for d in self.dip_months):
            raise ValueError("history windows and dip months must lie before the start month (event time < 0)")

    @property
    def history_months(self) -> int:
        """How many months of history before the start month the features need."""
        return -min([a for a, _ in self.windows] + list(self.dip_months))


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Matched units, pairs, balance and what could not be matched."""

    units: pl.DataFrame  # person_id, cohort (start month), treated, weight: one row per stacked unit
    pairs: pl.DataFrame  # cohort, treated_id, control_id, distance, weight
    balance: pl.DataFrame  # analysis.schema.BALANCE
    unmatched: pl.DataFrame  # person_id, cohort, reason
    n_treated: int
    n_controls: int
    notes: tuple[str, ...] = field(default=())


def kom_type(kom: pl.Expr) -> pl.Expr:
    """Coarse municipality type: 0 capital (København, Frederiksberg), 1 large city, 2 other."""
    return (
        pl.when(kom.is_in(list(CAPITAL_KOM))).then(0).when(kom.is_in(list(LARGE_CITY_KOM))).then(1).otherwise(2)
    ).cast(pl.Int8)


def person_attributes(population: pl.LazyFrame, persons: pl.DataFrame, /) -> pl.DataFrame:
    """Time-invariant attributes per person from the population register's latest snapshot.

    Returns person_id, sex (1/2), birth_date, greenlandic, immigrant (immigrant or descendant, not
    Greenlandic), kom_type. ``persons`` holds the ``person_id`` set to keep (semi-joined before anything).
    """
    ids = persons.select(pl.col("person_id").cast(pl.Int64)).unique().lazy()
    return (
        population.join(ids, left_on="PNR", right_on="person_id", how="semi")
        .sort("PNR", "AAR")
        .group_by("PNR")
        .agg(pl.all().last())
        .select(
            person_id=pl.col("PNR").cast(pl.Int64),
            sex=pl.col("KOEN").cast(pl.Int8),
            birth_date=pl.col("FOED_DAG"),
            greenlandic=(pl.col("OPR_LAND") == "GRL").cast(pl.Int8),
            immigrant=((pl.col("IE_TYPE") > 1) & (pl.col("OPR_LAND") != "GRL")).cast(pl.Int8),
            kom_type=kom_type(pl.col("KOM").cast(pl.Int64)),
        )
        .sort("person_id")
        .collect(engine="streaming")
    )


# --------------------------------------------------------------------------------------------------
# the balanced panel as arrays
# --------------------------------------------------------------------------------------------------


def month_index(column: str) -> pl.Expr:
    """Months since year 0 (a month's integer position): ``year * 12 + month - 1``."""
    return (pl.col(column).dt.year().cast(pl.Int64) * 12 + pl.col(column).dt.month().cast(pl.Int64) - 1)


@dataclass(frozen=True, slots=True)
class PanelArrays:
    """A balanced person x month panel as arrays: ``values[outcome][row, month - first]``."""

    ids: np.ndarray  # sorted person ids (row order)
    first: int  # month index of column 0
    values: dict[str, np.ndarray]
    cumsum: dict[str, np.ndarray]  # with a leading zero column: window sums in O(1)

    @classmethod
    def from_panel(cls, panel: pl.DataFrame, outcomes: Sequence[str]) -> PanelArrays:
        missing = [c for c in ("person_id", "month", *outcomes) if c not in panel.columns]
        if missing:
            raise ValueError(f"panel lacks columns {missing}")
        frame = panel.select("person_id", m=month_index("month"), *outcomes)
        person, m = frame["person_id"].to_numpy(), frame["m"].to_numpy()
        step_p, step_m = np.diff(person), np.diff(m)
        ordered = bool(((step_p > 0) | ((step_p == 0) & (step_m > 0))).all())  # strictly by person, month
        if not ordered:  # the linkage writes it sorted; anything else is sorted here
            frame = frame.sort("person_id", "m")
            person, m = frame["person_id"].to_numpy(), frame["m"].to_numpy()
            step_p, step_m = np.diff(person), np.diff(m)
        ids = np.concatenate([person[:1], person[1:][step_p != 0]])
        first, last = int(m.min()), int(m.max())
        months = last - first + 1
        if frame.height != ids.size * months or bool(((step_p == 0) & (step_m == 0)).any()):
            raise ValueError(
                f"the panel must be balanced (every person in every month {first}..{last}); it has "
                f"{frame.height} rows for {ids.size} persons x {months} months"
            )
        values, sums = {}, {}
        for outcome in outcomes:
            matrix = frame[outcome].cast(pl.Float64).to_numpy().reshape(ids.size, months)
            values[outcome] = matrix
            sums[outcome] = np.concatenate([np.zeros((ids.size, 1)), np.cumsum(matrix, axis=1)], axis=1)
        return cls(ids, first, values, sums)

    @property
    def months(self) -> int:
        return next(iter(self.values.values())).shape[1]

    def window_mean(self, outcome: str, rows: np.ndarray, at: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Mean of ``outcome`` over months ``at + lo .. at + hi`` (column positions) for each row."""
        c = self.cumsum[outcome]
        return (c[rows, at + hi + 1] - c[rows, at + lo]) / (hi - lo + 1)


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------


def _history_count(config: MatchConfig) -> int:
    """Number of leading feature columns that describe outcome history (the rest are attributes)."""
    return len(config.history_outcomes) * len(config.windows) + len(config.dip_outcomes) * len(config.dip_months)


def _feature_names(config: MatchConfig) -> list[str]:
    names = [f"{o} {a}..{b}" for o in config.history_outcomes for a, b in config.windows]
    names += [f"{o} {d}" for o in config.dip_outcomes for d in config.dip_months]
    return names + ["age", "age squared", "sex", "greenlandic", "immigrant", "capital", "large city", "education level -1"]


def _features(arrays: PanelArrays, attrs: dict[str, np.ndarray], rows: np.ndarray, at: np.ndarray, config: MatchConfig) -> np.ndarray:
    cols = [arrays.window_mean(o, rows, at, a, b) for o in config.history_outcomes for a, b in config.windows]
    cols += [arrays.values[o][rows, at + d] for o in config.dip_outcomes for d in config.dip_months]
    age = (arrays.first + at - attrs["birth_month"][rows]) / 12.0
    edu = arrays.values["edu_level"][rows, at - 1] if "edu_level" in arrays.values else np.zeros(rows.size)
    cols += [age, age**2 / 100.0, (attrs["sex"][rows] == 2).astype(float), attrs["greenlandic"][rows],
             attrs["immigrant"][rows], (attrs["kom_type"][rows] == 0).astype(float),
             (attrs["kom_type"][rows] == 1).astype(float), edu]
    return np.column_stack(cols).astype(float)


def _attribute_arrays(arrays: PanelArrays, persons: pl.DataFrame) -> dict[str, np.ndarray]:
    need = ["person_id", "sex", "birth_date", "greenlandic", "immigrant", "kom_type"]
    missing = [c for c in need if c not in persons.columns]
    if missing:
        raise ValueError(f"persons lacks columns {missing} (see analysis.estimate.matching.person_attributes)")
    frame = pl.DataFrame({"person_id": arrays.ids}).join(
        persons.select(need).unique("person_id"), on="person_id", how="left", validate="1:1"
    )
    if frame["sex"].null_count():
        raise ValueError(f"{frame['sex'].null_count()} panel persons have no attributes in persons")
    out = {c: frame[c].cast(pl.Float64).to_numpy() for c in ("sex", "greenlandic", "immigrant", "kom_type")}
    out["birth_month"] = frame.select(month_index("birth_date"))["birth_date"].to_numpy().astype(float)
    return out


# --------------------------------------------------------------------------------------------------
# the match
# --------------------------------------------------------------------------------------------------


def match(panel: pl.DataFrame, participants: pl.DataFrame, persons: pl.DataFrame, /, *, config: MatchConfig = MatchConfig()) -> MatchResult:
    """Match each participant to comparison persons at the participant's start month.

    Parameters
    ----------
    panel
        Balanced person x month outcome panel (``analysis.schema.OUTCOME_PANEL``) of participants and
        candidates.
    participants
        ``person_id``, ``start_month`` (each person's first CTI start): the treated.
    persons
        Attributes of every panel person (:func:`person_attributes`).
    """
    for name, frame, columns in (("participants", participants, ("person_id", "start_month")),):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    if participants["person_id"].n_unique() != participants.height:
        raise ValueError("participants must have one row per person (each person's first start month)")
    notes: list[str] = []
    exact = config.exact_transition if all(c in panel.columns for c in config.exact_transition) else ()
    fallback = tuple(c for c in config.transition_fallback if c in panel.columns) if config.exact_transition else ()
    outcomes = tuple(dict.fromkeys((*config.history_outcomes, *config.dip_outcomes, *exact, *fallback, "edu_level")))
    arrays = PanelArrays.from_panel(panel, [o for o in outcomes if o in panel.columns or o != "edu_level"])
    attrs = _attribute_arrays(arrays, persons)
    rng = np.random.default_rng(config.seed)

    starts = participants.select(pl.col("person_id").cast(pl.Int64), s=month_index("start_month") - arrays.first)
    pos = np.searchsorted(arrays.ids, starts["person_id"].to_numpy())
    if (pos >= arrays.ids.size).any() or (arrays.ids[np.minimum(pos, arrays.ids.size - 1)] != starts["person_id"].to_numpy()).any():
        raise ValueError("some participants are not in the panel; link them first (analysis.linkage.panel.link_participants)")
    start_col = starts["s"].to_numpy()
    person_start = np.full(arrays.ids.size, np.iinfo(np.int64).max)
    person_start[pos] = start_col

    has_history = (start_col - config.history_months >= 0) & (start_col < arrays.months)
    unmatched = [
        {"person_id": int(arrays.ids[p]), "cohort": int(s), "reason": "start outside the panel or without full pre-period history"}
        for p, s in zip(pos[~has_history], start_col[~has_history], strict=True)
    ]
    pos, start_col = pos[has_history], start_col[has_history]
    if not pos.size:
        raise ValueError(
            f"no participant has {config.history_months} months of history inside the panel before the start month"
        )
    cohorts = np.unique(start_col)

    def marked(rows: np.ndarray, at: np.ndarray, columns: tuple[str, ...]) -> np.ndarray:
        """Any of ``columns`` > 0 in the month before ``at`` (all False without columns)."""
        return sum((arrays.values[o][rows, at - 1] for o in columns), np.zeros(rows.size)) > 0

    # The transition: ``exact_transition`` when it marks some participant, else the fallback (no stays register).
    transition = exact
    if config.exact_transition and not (exact and marked(pos, start_col, exact).any()):
        transition = fallback
        notes.append(f"no participant has {'/'.join(config.exact_transition)} in the month before the start "
                     f"(no stays register?): exact transition stratum on {'/'.join(fallback) or 'nothing'} instead")

    # 1. propensity model per transition split: its participants + its candidate rows per cohort (every
    #    candidate with a transition, a seeded sample of the others)
    x_treated = _features(arrays, attrs, pos, start_col, config)
    m_treated = marked(pos, start_col, transition)
    per_cohort = max(1, config.max_fit_controls // cohorts.size)
    fit_rows, fit_at, fit_weight = [], [], []
    for c in cohorts:
        eligible = np.flatnonzero(person_start > c)
        m_eligible = marked(eligible, np.full(eligible.size, c), transition)
        flagged, others = eligible[m_eligible], eligible[~m_eligible]
        take = others if others.size <= per_cohort else rng.choice(others, per_cohort, replace=False)
        fit_rows += [flagged, take]
        fit_at += [np.full(flagged.size, c), np.full(take.size, c)]
        fit_weight += [np.ones(flagged.size), np.full(take.size, others.size / max(take.size, 1))]
    fit_rows, fit_at, fit_weight = np.concatenate(fit_rows), np.concatenate(fit_at), np.concatenate(fit_weight)
    x_pool = _features(arrays, attrs, fit_rows, fit_at, config)
    m_pool = marked(fit_rows, fit_at, transition)
    names = _feature_names(config)
    mean, sd = x_pool.mean(axis=0), x_pool.std(axis=0)
    sd[sd == 0] = 1.0
    year_of = lambda at: (arrays.first + at) // 12  # noqa: E731
    years = np.unique(year_of(cohorts))

    def design(x: np.ndarray, at: np.ndarray, cols: np.ndarray) -> np.ndarray:
        dummies = [(year_of(at) == y).astype(float) for y in years[1:]]
        return np.column_stack([np.ones(len(x)), ((x - mean) / sd)[:, cols], *dummies])

    def fit(t_rows: np.ndarray, p_rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        d = np.concatenate([np.ones(int(t_rows.sum())), np.zeros(int(p_rows.sum()))])
        return _logit(np.vstack([design(x_treated[t_rows], start_col[t_rows], cols),
                                 design(x_pool[p_rows], fit_at[p_rows], cols)]), d, notes)

    # Within the transition split the score and the distance use the attributes only (unless
    # ``history_in_transition``): candidates in the same transition in the same month already share the
    # dip, and matching again on noisy pre-period outcomes regresses to their population mean after the
    # start (Daw & Hatfield 2018). The history stays in the balance table as a diagnostic. A split with at
    # least 10 events per parameter (Peduzzi et al. 1996) gets its own model, a smaller one the model fitted
    # on everyone; the caliper is always in SDs of the split's own scores.
    all_cols = np.arange(len(names))
    attribute_cols = all_cols[_history_count(config):]
    models: dict[bool, tuple[np.ndarray, float, np.ndarray]] = {}  # split -> (coefficients, caliper, columns)
    for split in (False, True):
        t_rows, p_rows = m_treated == split, m_pool == split
        if not t_rows.any():
            continue
        cols = attribute_cols if split and not config.history_in_transition else all_cols
        own = bool(transition) and min(t_rows.sum(), p_rows.sum()) >= _EVENTS_PER_PARAMETER * (cols.size + years.size)
        beta = fit(t_rows, p_rows, cols) if own else fit(np.ones(m_treated.size, bool), np.ones(m_pool.size, bool), cols)
        scores = np.concatenate([design(x_treated[t_rows], start_col[t_rows], cols) @ beta,
                                 design(x_pool[p_rows], fit_at[p_rows], cols) @ beta])
        models[split] = (beta, config.caliper * float(scores.std()) or np.inf, cols)
    if transition:
        notes.append(f"{int(m_treated.sum())} of {m_treated.size} participants had a transition "
                     f"({'/'.join(transition)}) in month -1; matched within that split")

    def score(x: np.ndarray, at: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """Logit propensity from the model of each row's transition split (NaN where no participant is)."""
        out = np.full(len(x), np.nan)
        for split, (beta, _, cols) in models.items():
            rows = flags == split
            if rows.any():
                out[rows] = design(x[rows], at[rows], cols) @ beta
        return out

    ps_treated = score(x_treated, start_col, m_treated)

    # 2. cohort by cohort nearest neighbours on the logit propensity, within exact strata
    exact_cols = [attrs[c] for c in config.exact]
    pair_rows: list[dict] = []
    matched_x, matched_w = [], []
    for c in cohorts:
        t_idx = np.flatnonzero(start_col == c)
        eligible = np.flatnonzero(person_start > c)
        x_c = _features(arrays, attrs, eligible, np.full(eligible.size, c), config)
        m_c = marked(eligible, np.full(eligible.size, c), transition)
        ps_c = score(x_c, np.full(eligible.size, c), m_c)
        strata = [np.concatenate([col[pos[t_idx]], col[eligible]]) for col in exact_cols]
        if transition:
            # any transition in month -1 (not its kind: per kind, the month x sex cells of a small world hold
            # too few candidates; the kind mix then shows as imbalance in the month -1 hospital markers)
            strata.append(np.concatenate([m_treated[t_idx], m_c]))
        keys = _stratum_codes(strata, t_idx.size + eligible.size)
        t_key, c_key = keys[: t_idx.size], keys[t_idx.size :]
        for key in np.unique(t_key):
            ti, ci = t_idx[t_key == key], np.flatnonzero(c_key == key)
            _, caliper, cols = models[bool(m_treated[ti[0]])]
            if config.metric == "mahalanobis":
                found = _nearest_features(((x_treated[ti] - mean) / sd)[:, cols], ((x_c[ci] - mean) / sd)[:, cols], ps_treated[ti], ps_c[ci],
                                          k=config.neighbours, caliper=caliper, replacement=config.replacement, rng=rng)
            else:
                found = _nearest(ps_treated[ti], ps_c[ci], k=config.neighbours, caliper=caliper,
                                 replacement=config.replacement, rng=rng)
            for i, (chosen, dist) in zip(ti, found, strict=True):
                if not chosen.size:
                    unmatched.append({"person_id": int(arrays.ids[pos[i]]), "cohort": int(c),
                                      "reason": "no comparison person within the caliper"})
                    continue
                k = chosen.size
                controls = arrays.ids[eligible[ci[chosen]]]
                pair_rows.extend(
                    {"cohort": int(c), "treated_id": int(arrays.ids[pos[i]]), "control_id": int(j), "distance": float(dj), "weight": 1.0 / k}
                    for j, dj in zip(controls, dist, strict=True)
                )
                matched_x.append(x_c[ci[chosen]])
                matched_w.append(np.full(k, 1.0 / k))

    pairs = pl.DataFrame(pair_rows, schema={"cohort": pl.Int64, "treated_id": pl.Int64, "control_id": pl.Int64, "distance": pl.Float64, "weight": pl.Float64})
    if not pairs.height:
        raise ValueError("no participant found a comparison person within the caliper; widen MatchConfig.caliper")
    matched_treated = pairs["treated_id"].unique()
    treated_units = pl.DataFrame({"person_id": arrays.ids[pos], "cohort": start_col.astype(np.int64)}).filter(
        pl.col("person_id").is_in(matched_treated.implode())
    ).with_columns(treated=pl.lit(1, pl.Int8), weight=pl.lit(1.0))
    control_units = pairs.group_by("control_id", "cohort").agg(pl.col("weight").sum()).select(
        person_id="control_id", cohort="cohort", treated=pl.lit(0, pl.Int8), weight="weight"
    )
    units = pl.concat([treated_units, control_units]).with_columns(
        cohort=(pl.col("cohort") + arrays.first), person_start=pl.lit(None, pl.Int64)
    )
    ever = person_start < arrays.months + 10**6  # never-treated persons carry the int64 maximum
    starts_all = pl.DataFrame({"person_id": arrays.ids[ever], "person_start": person_start[ever] + arrays.first})
    units = units.drop("person_start").join(starts_all, on="person_id", how="left", validate="m:1").sort("cohort", "treated", "person_id", descending=[False, True, False])
    keep_treated = np.isin(arrays.ids[pos], matched_treated.to_numpy())
    balance = balance_table(
        names, x_treated[keep_treated], x_pool, fit_weight, np.vstack(matched_x), np.concatenate(matched_w)
    )
    if unmatched:
        notes.append(f"{len(unmatched)} participants could not be matched (see unmatched)")
    return MatchResult(
        units=units,
        pairs=pairs.with_columns(cohort=pl.col("cohort") + arrays.first),
        balance=balance,
        unmatched=pl.DataFrame(unmatched, schema={"person_id": pl.Int64, "cohort": pl.Int64, "reason": pl.String}),
        n_treated=int(treated_units.height),
        n_controls=int(pairs["control_id"].n_unique()),
        notes=tuple(notes),
    )


#: Events (the smaller of participants and candidates) per parameter a transition split needs for its own
#: propensity model; below it the pooled model scores the split.
_EVENTS_PER_PARAMETER = 10


def _stratum_codes(columns: list[np.ndarray], n: int) -> np.ndarray:
    """One integer code per combination of exact-matching values (all zero without exact columns)."""
    if not columns or not n:
        return np.zeros(n, dtype=np.int64)
    # Mixed-radix code of each column's sorted-value rank: the lexicographic order of np.unique(axis=0) on the
    # stacked columns (so strata are visited in the same order), without its slow row-wise sort.
    code = np.zeros(n, dtype=np.int64)
    for column in columns:
        values, rank = np.unique(np.asarray(column), return_inverse=True)
        code = code * values.size + rank.reshape(-1)
    return np.unique(code, return_inverse=True)[1].reshape(-1)


def _nearest(treated: np.ndarray, controls: np.ndarray, /, *, k: int, caliper: float, replacement: bool,
             rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each treated score, up to ``k`` nearest control positions within ``caliper`` and their distances.

    With replacement every treated unit looks at the 2k sorted controls around its score (the k nearest are
    among them); without, treated units are served one at a time in random order and chosen controls are
    used up (greedy).
    """
    if not controls.size:
        return [(np.zeros(0, dtype=np.int64), np.zeros(0))] * treated.size
    order = np.argsort(controls, kind="stable")
    sorted_c = controls[order]
    if replacement:
        at = np.searchsorted(sorted_c, treated)
        offsets = np.arange(-k, k)
        window = np.clip(at[:, None] + offsets[None, :], 0, sorted_c.size - 1)
        out = []
        for row, t in zip(window, treated, strict=True):
            cand = np.unique(row)
            dist = np.abs(sorted_c[cand] - t)
            best = np.argsort(dist, kind="stable")[:k]
            best = best[dist[best] <= caliper]
            out.append((order[cand[best]], dist[best]))
        return out
    used = np.zeros(controls.size, dtype=bool)
    out: list = [None] * treated.size
    for i in rng.permutation(treated.size):
        free = np.flatnonzero(~used)
        dist = np.abs(controls[free] - treated[i])
        best = np.argsort(dist, kind="stable")[:k]
        best = best[dist[best] <= caliper]
        used[free[best]] = True
        out[i] = (free[best], dist[best])
    return out


def _nearest_features(xt: np.ndarray, xc: np.ndarray, pt: np.ndarray, pc: np.ndarray, /, *, k: int, caliper: float,
                      replacement: bool, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``k`` controls nearest in standardised features among those within ``caliper`` on the score.

    Returns control positions and their *score* distances (what the caliper bounds).
    """
    order = np.argsort(pc, kind="stable")
    sorted_p = pc[order]
    used = np.zeros(pc.size, dtype=bool)
    out: list = [None] * pt.size
    for i in (rng.permutation(pt.size) if not replacement else range(pt.size)):
        lo, hi = np.searchsorted(sorted_p, [pt[i] - caliper, pt[i] + caliper], side="left")
        cand = order[lo:hi]
        if not replacement:
            cand = cand[~used[cand]]
        if not cand.size:
            out[i] = (cand, np.zeros(0))
            continue
        dist = ((xc[cand] - xt[i]) ** 2).sum(axis=1)
        best = cand[_k_smallest(dist, k)]
        used[best] = True
        out[i] = (best, np.abs(pc[best] - pt[i]))
    return out


def _k_smallest(values: np.ndarray, k: int, /) -> np.ndarray:
    """Positions of the ``k`` smallest values, ties to the earlier position: ``argsort(kind="stable")[:k]``.

    A partition finds the k-th value in linear time; only the values up to it are sorted.
    """
    if values.size <= k:
        return np.argsort(values, kind="stable")
    kth = np.partition(values, k - 1)[k - 1]
    near = np.flatnonzero(values <= kth)
    return near[np.argsort(values[near], kind="stable")[:k]]


def _logit(x: np.ndarray, d: np.ndarray, notes: list[str]) -> np.ndarray:
    """Logit coefficients; a lightly ridge-penalised fit when the plain one separates or does not converge."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = sm.Logit(d, x).fit(method="newton", maxiter=100, disp=0)
            if result.mle_retvals.get("converged", False) and np.all(np.isfinite(result.params)):
                return np.asarray(result.params)
        except (np.linalg.LinAlgError, ValueError, sm.tools.sm_exceptions.PerfectSeparationError):
            pass
        notes.append("propensity logit did not converge unpenalised; used a ridge-penalised fit")
        glm = sm.GLM(d, x, family=sm.families.Binomial()).fit_regularized(alpha=1e-4, L1_wt=0.0)
        return np.asarray(glm.params)


def balance_table(names: Sequence[str], x_t: np.ndarray, x_before: np.ndarray, w_before: np.ndarray,
                  x_after: np.ndarray, w_after: np.ndarray) -> pl.DataFrame:
    """Standardised mean differences and variance ratios before and after matching.

    The SMD denominator is the pooled standard deviation *before* matching, sqrt((s_t^2 + s_c^2) / 2), for
    both columns, so the after column moves only with the means (Stuart 2010).
    """
    def wmean_var(x, w):
        m = np.average(x, axis=0, weights=w)
        return m, np.average((x - m) ** 2, axis=0, weights=w)

    mt, vt = x_t.mean(axis=0), x_t.var(axis=0)
    mb, vb = wmean_var(x_before, w_before)
    ma, va = wmean_var(x_after, w_after)
    pooled = np.sqrt((vt + vb) / 2)
    safe = np.where(pooled > 0, pooled, np.nan)
    ratio = lambda a, b: np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)  # noqa: E731
    frame = pl.DataFrame({
        "covariate": list(names), "mean_treated": mt, "mean_control_before": mb, "mean_control_after": ma,
        "smd_before": np.nan_to_num((mt - mb) / safe), "smd_after": np.nan_to_num((mt - ma) / safe),
        "var_ratio_before": ratio(vt, vb), "var_ratio_after": ratio(vt, va),
    })
    return frame.select([pl.col(c).cast(t) for c, t in BALANCE.items()])


def stacked_panel(panel: pl.DataFrame, units: pl.DataFrame, /, *, window: tuple[int, int] = (-36, 24),
                  outcomes: Sequence[str] | None = None) -> pl.DataFrame:
    """Matched units' panel rows around their cohort month, with ``event_time``, ``treated`` and ``weight``.

    A unit is (person, cohort); the same person can be a control in several cohorts. Controls are censored
    from their own CTI start month on (a not-yet-treated control stops being a control when it starts).
    ``unit`` numbers the stacked units; ``stack_time`` numbers the (cohort, event time) cells.
    """
    cols = list(outcomes) if outcomes is not None else [c for c in panel.columns if c not in ("person_id", "month")]
    numbered = units.with_row_index("unit").with_columns(pl.col("unit").cast(pl.Int64))
    rows = (
        panel.select("person_id", m=month_index("month"), *cols)
        .join(numbered, on="person_id", how="inner", validate="m:m")
        .with_columns(event_time=(pl.col("m") - pl.col("cohort")).cast(pl.Int32))
        .filter(pl.col("event_time").is_between(*window))
        .filter(pl.col("person_start").is_null() | (pl.col("treated") == 1) | (pl.col("m") < pl.col("person_start")))
    )
    return rows.with_columns(
        stack_time=pl.struct("cohort", "event_time").rank("dense").cast(pl.Int64) - 1
    ).drop("person_start").sort("unit", "event_time")
