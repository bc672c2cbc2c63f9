"""Callaway & Sant'Anna (2021) group-time average treatment effects for balanced panels.

A vectorised port of R ``did::att_gt`` / ``did::aggte`` (panel data): every ATT(g, t) is a 2x2
difference-in-differences between cohort ``g`` and a control group (never treated, or not yet
treated), with standard errors from influence functions (analytic) or a multiplier bootstrap.

Periods are mapped to ranks 0..T-1 internally (as R ``did`` does), so any integer spacing works;
anticipation and event times are measured in ranks. Cohort values must be periods of the panel
(units first treated after the last period count as never treated); a null or 0 cohort is never treated.

Units are sorted once by cohort so that every treated group and every control group is a contiguous
slice of a periods x units outcome matrix; the unconditional 2x2s are closed-form array operations
and the influence functions are stored as one (cells x units) matrix, so aggregation is matrix algebra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from scipy.special import expit
from scipy.stats import norm

ControlGroup = Literal["never_treated", "not_yet_treated"]
Method = Literal["dr", "ipw", "reg"]
BasePeriod = Literal["varying", "universal"]
Aggregation = Literal["simple", "dynamic", "group", "calendar"]

#: Propensity scores of control units at or above this are trimmed (DRDID's ``trim.level``).
_TRIM_LEVEL = 0.995
#: Standard errors at or below this are reported as missing (R ``did``: sqrt(eps) * 10).
_SE_FLOOR = np.sqrt(np.finfo(float).eps) * 10
#: Upper bound on doubles held by one block of bootstrap draws.
_BOOT_BLOCK = 2**23


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """An aggregation of group-time ATTs (R ``aggte``).

    An overall effect and, except for ``simple``, one effect per key (event time, cohort or period).
    """

    kind: str
    att: float
    se: float
    ci_lower: float
    ci_upper: float
    key: str | None  # "event_time" | "cohort" | "period" | None (simple)
    keys: np.ndarray = field(repr=False)
    atts: np.ndarray = field(repr=False)
    ses: np.ndarray = field(repr=False)
    crit_value: float = field(repr=False)
    alpha: float = 0.05
    n_units: int = 0
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pl.DataFrame:
        """Return one row per key (``event_time``/``cohort``/``period``) with att, se and CI.

        For ``simple`` a single row without a key column.
        """
        if self.key is None:
            return pl.DataFrame(
                {"att": [self.att], "se": [self.se], "ci_lower": [self.ci_lower], "ci_upper": [self.ci_upper]}
            )
        half = self.crit_value * self.ses
        return pl.DataFrame(
            {
                self.key: self.keys,
                "att": self.atts,
                "se": self.ses,
                "ci_lower": self.atts - half,
                "ci_upper": self.atts + half,
            }
        )


@dataclass(frozen=True, slots=True)
class GroupTimeResult:
    """Group-time ATTs with their influence functions; ``aggregate`` summarises them as R ``aggte``.

    ``group_time`` has one row per (cohort, period): ``cohort``, ``period``, ``base_period``,
    ``event_time`` (in period ranks), ``post``, ``att``, ``se``, ``ci_lower``, ``ci_upper``,
    ``n_treated``, ``n_control``. ``crit_value`` is the normal quantile, or the bootstrap uniform
    critical value when ``cband=True``.
    """

    group_time: pl.DataFrame
    n_units: int
    control_group: str
    method: str
    anticipation: int
    base_period: str
    alpha: float
    bootstrap: int
    seed: int | None
    crit_value: float
    notes: tuple[str, ...]
    periods: np.ndarray = field(repr=False)  # original period values, by rank
    _influence: np.ndarray = field(repr=False)  # cells x units, scaled as R (n/n1 * IF)
    _cell_cohort: np.ndarray = field(repr=False)  # cohort rank per cell
    _cell_period: np.ndarray = field(repr=False)  # period rank per cell
    _cohort_slices: dict = field(repr=False)  # cohort rank -> (start, stop) in unit order
    _weights: np.ndarray = field(repr=False)  # unit weights, mean 1
    _unit_ids: np.ndarray | None = field(default=None, repr=False)  # unit identifier per influence column
    _clusters: np.ndarray | None = field(default=None, repr=False)  # cluster index per column (stack_results)

    def to_frame(self) -> pl.DataFrame:
        """Return the group-time table."""
        return self.group_time

    def _errors(self, influence: np.ndarray, alpha: float, bootstrap: int, seed, cband: bool,
                uniform_rows: int | None = None) -> tuple[np.ndarray, float]:
        """Standard errors of influence rows; clustered (columns summed per cluster) after ``stack_results``."""
        return _standard_errors(_collapse(influence, self._clusters), self.n_units, alpha, bootstrap, seed, cband,
                                uniform_rows=uniform_rows)

    def aggregate(
        self,
        kind: Aggregation = "simple",
        /,
        *,
        min_e: float = -np.inf,
        max_e: float = np.inf,
        balance_e: int | None = None,
        alpha: float | None = None,
        bootstrap: int | None = None,
        seed: int | None = None,
        cband: bool = False,
    ) -> AggregateResult:
        """Aggregate the group-time ATTs as R ``aggte``.

        Parameters
        ----------
        kind
            ``"simple"`` (post-treatment cells weighted by cohort size), ``"dynamic"`` (by event time
            e = t - g; overall = mean over e >= 0), ``"group"`` (by cohort; overall weighted by cohort
            size) or ``"calendar"`` (by period; overall = mean over periods).
        min_e, max_e
            Event-time window (``min_e`` only for ``dynamic``; ``max_e`` also trims post-treatment
            cells in the other aggregations, as R).
        balance_e
            ``dynamic`` only: keep cohorts observed for at least ``balance_e`` periods after treatment.
        alpha, bootstrap, seed
            Default to the values used in :func:`att_gt`.
        cband
            With a bootstrap, use the uniform (simultaneous) critical value for the per-key intervals.

        Returns
        -------
        AggregateResult
            Standard errors include the estimation of the cohort-share weights (R's ``wif``).
        """
        alpha = self.alpha if alpha is None else alpha
        bootstrap = self.bootstrap if bootstrap is None else bootstrap
        seed = self.seed if seed is None else seed
        _check_alpha_boot(alpha, bootstrap)
        if kind not in ("simple", "dynamic", "group", "calendar"):
            raise ValueError(f"kind must be 'simple', 'dynamic', 'group' or 'calendar', not {kind!r}")
        if balance_e is not None and kind != "dynamic":
            raise ValueError("balance_e only applies to kind='dynamic'")
        att = self.group_time["att"].to_numpy()
        notes: list[str] = []
        ok = np.isfinite(att)
        if not ok.all():
            notes.append(f"{int((~ok).sum())} group-time cells with a missing ATT were left out")
        g, t = self._cell_cohort, self._cell_period
        e = t - g
        n = self.n_units
        cohorts = np.array(sorted(self._cohort_slices))
        pg_cohort = {h: self._weights[a:b].sum() / n for h, (a, b) in self._cohort_slices.items()}
        pg = np.array([pg_cohort[h] for h in g])
        post = (g <= t) & (t <= g + max_e) & ok

        def wif(keep: np.ndarray, values: np.ndarray, groups: np.ndarray, shares: np.ndarray) -> np.ndarray:
            # R's wif() %*% att collapses to w_i / S * sum_{k: g_k = G_i} (att_k - theta)
            s = shares.sum()
            theta = (values * shares).sum() / s
            out = np.zeros(n)
            for h in np.unique(groups):
                a, b = self._cohort_slices[int(h)]
                out[a:b] = self._weights[a:b] * (values[groups == h] - theta).sum() / s
            return out

        def combine(keep: np.ndarray, with_wif: bool) -> tuple[float, np.ndarray]:
            share = pg[keep] / pg[keep].sum()
            value = float((att[keep] * share).sum())
            inf = share @ self._influence[keep]
            if with_wif:
                inf = inf + wif(keep, att[keep], g[keep], pg[keep])
            return value, inf

        if kind == "simple":
            if not post.any():
                raise ValueError("no post-treatment group-time cells to aggregate")
            value, inf = combine(np.flatnonzero(post), True)
            ses, crit = self._errors(inf[None, :], alpha, bootstrap, seed, False)
            return _aggregate_result(
                kind,
                None,
                np.array([]),
                np.array([]),
                np.array([]),
                value,
                ses[0],
                crit,
                alpha,
                n,
                notes,
                scalar=True,
            )

        if kind == "dynamic":
            include = ok.copy()
            eseq = np.unique(e[include])
            if balance_e is not None:
                include &= (len(self.periods) - 1 - g) >= balance_e
                eseq = np.unique(e[include])
                eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - (len(self.periods) - 1))]
            eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
            if eseq.size == 0:
                raise ValueError("no event times left after min_e/max_e/balance_e; widen the window")
            parts = [combine(np.flatnonzero((e == k) & include), True) for k in eseq]
            keys, key = eseq, "event_time"
            overall = eseq >= 0
            overall_wif = None
        elif kind == "group":
            keys_rank = np.array([h for h in cohorts if (post & (g == h)).any()])
            if keys_rank.size == 0:
                raise ValueError("no post-treatment group-time cells to aggregate")
            parts = []
            for h in keys_rank:
                keep = np.flatnonzero(post & (g == h))
                parts.append((float(att[keep].mean()), self._influence[keep].mean(axis=0)))
            keys, key = self.periods[keys_rank], "cohort"
            overall = np.ones(len(keys_rank), bool)
            overall_wif = (keys_rank, np.array([pg_cohort[h] for h in keys_rank]))
        else:  # calendar
            keys_rank = np.array([s for s in np.unique(t) if s >= g.min() and (post & (t == s)).any()])
            if keys_rank.size == 0:
                raise ValueError("no post-treatment group-time cells to aggregate")
            parts = [combine(np.flatnonzero(post & (t == s)), True) for s in keys_rank]
            keys, key = self.periods[keys_rank], "period"
            overall = np.ones(len(keys_rank), bool)
            overall_wif = None

        atts = np.array([p[0] for p in parts])
        infs = np.vstack([p[1] for p in parts])
        if not overall.any():
            value, inf_overall = np.nan, np.zeros(n)
            notes.append("no post-treatment event times: the overall effect is missing")
        elif overall_wif is None:
            value = float(atts[overall].mean())
            inf_overall = infs[overall].mean(axis=0)
        else:
            groups, shares = overall_wif
            value = float((atts * shares).sum() / shares.sum())
            inf_overall = (shares / shares.sum()) @ infs + wif(overall, atts, groups, shares)
        ses, crit = self._errors(np.vstack([infs, inf_overall[None, :]]), alpha, bootstrap, seed, cband,
                                 uniform_rows=len(parts))
        return _aggregate_result(kind, key, keys, atts, ses[:-1], value, ses[-1], crit, alpha, n, notes)


def _aggregate_result(
    kind, key, keys, atts, ses, value, se, crit, alpha, n, notes, scalar=False
) -> AggregateResult:
    z = norm.ppf(1 - alpha / 2)
    return AggregateResult(
        kind=kind,
        att=value,
        se=float(se),
        ci_lower=value - z * se,
        ci_upper=value + z * se,
        key=key,
        keys=np.asarray(keys),
        atts=np.asarray(atts, dtype=float),
        ses=np.asarray(ses, dtype=float),
        crit_value=float(z if scalar else crit),
        alpha=alpha,
        n_units=n,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------------
# estimation
# --------------------------------------------------------------------------------------------------


def att_gt(
    frame: pl.DataFrame,
    /,
    *,
    unit: str,
    period: str,
    cohort: str,
    outcome: str,
    control_group: ControlGroup = "never_treated",
    covariates: list[str] | tuple[str, ...] | None = None,
    method: Method = "dr",
    anticipation: int = 0,
    base_period: BasePeriod = "varying",
    weights: str | None = None,
    alpha: float = 0.05,
    bootstrap: int = 0,
    seed: int | None = 0,
    cband: bool = False,
) -> GroupTimeResult:
    """Group-time average treatment effects ATT(g, t) of Callaway & Sant'Anna (2021), as R ``did::att_gt``.

    Parameters
    ----------
    frame
        Balanced panel (polars, or pandas which is converted), one row per unit and period.
    unit, period, cohort, outcome
        Column names. ``period`` holds integers; ``cohort`` the first treated period, null or 0 for
        never treated units, constant within unit.
    control_group
        ``"never_treated"`` or ``"not_yet_treated"`` (never treated plus units first treated after
        max(t, base period) + anticipation).
    covariates
        Numeric columns to condition on, taken from the earlier of the base and current period (as R
        ``did`` for panels; use time-invariant covariates). None: unconditional, where all methods
        coincide with the 2x2 difference of mean changes.
    method
        ``"dr"`` (doubly robust, DRDID ``drdid_panel``, R ``did``'s default), ``"ipw"`` (normalised
        inverse probability weighting, ``std_ipw_did_panel``) or ``"reg"`` (outcome regression).
    anticipation
        Number of periods before treatment in which units may anticipate it.
    base_period
        ``"varying"`` (pre-treatment cells compare t with t - 1) or ``"universal"`` (always
        g - 1 - anticipation).
    weights
        Optional column of positive sampling weights (time-invariant; the first period's value is used).
    alpha
        Significance level of the intervals.
    bootstrap
        Number of multiplier-bootstrap draws (Mammen weights); 0 for analytic standard errors.
    seed
        Seed of ``np.random.default_rng`` for the bootstrap.
    cband
        With a bootstrap, report simultaneous (uniform) bands instead of pointwise intervals.

    Returns
    -------
    GroupTimeResult
        ``group_time`` frame, influence functions and ``aggregate``.

    Raises
    ------
    ValueError
        On missing or non-numeric columns, missing values, unbalanced panels, no never-treated units
        with ``control_group="never_treated"``, or no cohort with a pre-treatment period.
    """
    if control_group not in ("never_treated", "not_yet_treated"):
        raise ValueError(f"control_group must be 'never_treated' or 'not_yet_treated', not {control_group!r}")
    if method not in ("dr", "ipw", "reg"):
        raise ValueError(f"method must be 'dr', 'ipw' or 'reg', not {method!r}")
    if base_period not in ("varying", "universal"):
        raise ValueError(f"base_period must be 'varying' or 'universal', not {base_period!r}")
    if not isinstance(anticipation, (int, np.integer)) or isinstance(anticipation, bool) or anticipation < 0:
        raise ValueError(f"anticipation must be a non-negative integer, not {anticipation!r}")
    _check_alpha_boot(alpha, bootstrap)
    covariates = list(covariates or [])
    panel = _prepare(
        frame,
        unit=unit,
        period=period,
        cohort=cohort,
        outcome=outcome,
        covariates=covariates,
        weights=weights,
        control_group=control_group,
        anticipation=int(anticipation),
    )
    cells = _cells(
        panel, control_group=control_group, base_period=base_period, anticipation=int(anticipation)
    )
    n = panel.n
    influence = np.zeros((len(cells), n))
    att = np.full(len(cells), np.nan)
    n_treated = np.zeros(len(cells), np.int64)
    n_control = np.zeros(len(cells), np.int64)
    ps_cache: dict = {}
    for k, (g, t, base, controls) in enumerate(cells):
        a, b = panel.slices[g]
        n_treated[k] = b - a
        n_control[k] = sum(stop - start for start, stop in controls)
        if t == base:  # universal base period: the reference cell is 0 by construction
            att[k] = 0.0
            continue
        if n_control[k] == 0:
            continue
        if not covariates:
            att[k] = _unconditional(panel, influence[k], (a, b), controls, t, base)
        else:
            att[k] = _conditional(panel, influence[k], (a, b), controls, t, base, method, ps_cache, g)
    ses, crit = _standard_errors(influence, n, alpha, bootstrap, seed, cband)
    ses[~np.isfinite(att)] = np.nan
    cell_g = np.array([c[0] for c in cells], dtype=np.int64)
    cell_t = np.array([c[1] for c in cells], dtype=np.int64)
    cell_b = np.array([c[2] for c in cells], dtype=np.int64)
    periods = panel.periods
    group_time = pl.DataFrame(
        {
            "cohort": periods[cell_g],
            "period": periods[cell_t],
            "base_period": periods[cell_b],
            "event_time": cell_t - cell_g,
            "post": cell_g <= cell_t,
            "att": att,
            "se": ses,
            "ci_lower": att - crit * ses,
            "ci_upper": att + crit * ses,
            "n_treated": n_treated,
            "n_control": n_control,
        }
    )
    return GroupTimeResult(
        group_time=group_time,
        n_units=n,
        control_group=control_group,
        method=method,
        anticipation=int(anticipation),
        base_period=base_period,
        alpha=alpha,
        bootstrap=int(bootstrap),
        seed=seed,
        crit_value=float(crit),
        notes=tuple(panel.notes),
        periods=periods,
        _influence=influence,
        _cell_cohort=cell_g,
        _cell_period=cell_t,
        _cohort_slices=dict(panel.slices),
        _weights=panel.w,
        _unit_ids=panel.unit_ids,
    )


def stack_results(results, /, *, cluster: bool = True, cband: bool = False) -> GroupTimeResult:
    """Combine group-time results estimated on separate samples ("stacks") into one result to aggregate.

    The stacked design of matched comparisons: each cohort (or set of cohorts) gets its own ``att_gt`` with
    only its own comparison units as controls, and the stacks are then aggregated together as if one
    ``att_gt`` had produced every cell. Influence functions are placed side by side, each rescaled by
    ``n_total / n_stack`` so that a cell's standard error is unchanged; cohort shares for the aggregations
    are the stacks' treated weights (each stack's treated units keep weight 1 relative to each other).

    Parameters
    ----------
    results
        ``att_gt`` results on the same periods, with disjoint cohorts and the same settings (control group,
        method, anticipation, base period, alpha, bootstrap).
    cluster
        Sum influence functions over appearances of the same unit id in several stacks (a comparison
        person matched to participants of two cohorts), i.e. cluster by unit. With False, appearances are
        treated as independent units.
    cband
        With a bootstrap, report simultaneous (uniform) bands over all stacked cells.

    Returns
    -------
    GroupTimeResult
        ``group_time`` of every stack (standard errors recomputed on the combined influence functions, so
        a bootstrap draws one multiplier per cluster for all cells), aggregable with ``aggregate``.
    """
    results = list(results)
    if not results:
        raise ValueError("stack_results needs at least one att_gt result")
    first = results[0]
    for r in results[1:]:
        if not np.array_equal(r.periods, first.periods):
            raise ValueError("stacked results must share the same periods; build every stack on the same panel periods")
        settings = ("control_group", "method", "anticipation", "base_period", "alpha", "bootstrap")
        differ = [k for k in settings if getattr(r, k) != getattr(first, k)]
        if differ:
            raise ValueError(f"stacked results differ in {differ}; estimate every stack with the same settings")
    cohorts = [h for r in results for h in r._cohort_slices]
    if len(cohorts) != len(set(cohorts)):
        raise ValueError("a cohort appears in more than one stack; give each cohort to exactly one stack")
    if cluster and any(r._unit_ids is None for r in results):
        raise ValueError("cluster=True needs results from att_gt (they carry unit ids)")
    n_total = sum(r.n_units for r in results)
    influence, weights, slices, ids, offset = [], [], {}, [], 0
    for r in results:
        block = np.zeros((r._influence.shape[0], n_total))
        block[:, offset : offset + r.n_units] = r._influence * (n_total / r.n_units)
        influence.append(block)
        treated = np.concatenate([r._weights[a:b] for a, b in r._cohort_slices.values()])
        weights.append(r._weights / (treated.mean() if treated.size else 1.0))
        slices |= {h: (a + offset, b + offset) for h, (a, b) in r._cohort_slices.items()}
        if r._unit_ids is not None:
            ids.append(np.asarray(r._unit_ids))
        offset += r.n_units
    influence = np.vstack(influence)
    weights = np.concatenate(weights)
    clusters = None
    if cluster:
        _, clusters = np.unique(np.concatenate(ids), return_inverse=True)
    att = np.concatenate([r.group_time["att"].to_numpy() for r in results])
    ses, crit = _standard_errors(_collapse(influence, clusters), n_total, first.alpha, first.bootstrap, first.seed, cband)
    ses[~np.isfinite(att)] = np.nan
    group_time = pl.concat([r.group_time for r in results], how="vertical_relaxed").with_columns(
        se=pl.Series(ses), ci_lower=pl.Series(att - crit * ses), ci_upper=pl.Series(att + crit * ses)
    )
    notes = list(dict.fromkeys(n for r in results for n in r.notes))
    if cluster and clusters is not None and clusters.max(initial=-1) + 1 < n_total:
        notes.append(f"{n_total - int(clusters.max()) - 1} unit appearances repeat a unit of another stack: "
                     "standard errors are clustered by unit")
    return GroupTimeResult(
        group_time=group_time,
        n_units=n_total,
        control_group=first.control_group,
        method=first.method,
        anticipation=first.anticipation,
        base_period=first.base_period,
        alpha=first.alpha,
        bootstrap=first.bootstrap,
        seed=first.seed,
        crit_value=float(crit),
        notes=tuple(notes),
        periods=first.periods,
        _influence=influence,
        _cell_cohort=np.concatenate([r._cell_cohort for r in results]),
        _cell_period=np.concatenate([r._cell_period for r in results]),
        _cohort_slices=slices,
        _weights=weights / weights.mean(),
        _unit_ids=np.concatenate(ids) if len(ids) == len(results) else None,
        _clusters=clusters,
    )


def _collapse(influence: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
    """Sum influence columns within clusters (identity without clusters)."""
    if clusters is None:
        return influence
    size = int(clusters.max()) + 1
    return np.vstack([np.bincount(clusters, weights=row, minlength=size) for row in influence])


def _check_alpha_boot(alpha: float, bootstrap: int) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if not isinstance(bootstrap, (int, np.integer)) or isinstance(bootstrap, bool) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative number of draws, not {bootstrap!r}")


@dataclass(frozen=True, slots=True)
class _Panel:
    periods: np.ndarray  # original period values by rank
    y: np.ndarray  # periods x units, units sorted by cohort rank (never treated last)
    x: np.ndarray | None  # periods x units x covariates
    w: np.ndarray  # unit weights, mean 1
    slices: dict  # treated cohort rank -> (start, stop)
    never: tuple[int, int]  # slice of never-treated units
    cohort_rank: np.ndarray  # per unit (sorted), NEVER for never treated
    unit_ids: np.ndarray  # unit identifier per unit (sorted order)
    n: int
    notes: list


def _prepare(
    frame, /, *, unit, period, cohort, outcome, covariates, weights, control_group, anticipation
) -> _Panel:
    if not isinstance(frame, pl.DataFrame):
        if type(frame).__module__.split(".")[0] == "pandas":
            frame = pl.from_pandas(frame)
        else:
            raise ValueError(f"frame must be a polars (or pandas) DataFrame, not {type(frame).__name__}")
    needed = [unit, period, cohort, outcome, *covariates] + ([weights] if weights else [])
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}; it has {frame.columns}")
    schema = frame.schema
    for name, role in [
        (outcome, "outcome"),
        *((c, "covariate") for c in covariates),
        *([(weights, "weights")] if weights else []),
    ]:
        if not schema[name].is_numeric():
            raise ValueError(
                f"{role} column {name!r} must be numeric, not {schema[name]}; cast or encode it first"
            )
    if not schema[period].is_integer():
        raise ValueError(f"period column {period!r} must hold integers, not {schema[period]}")
    if not (schema[cohort].is_numeric() or schema[cohort] == pl.Null):
        raise ValueError(
            f"cohort column {cohort!r} must be numeric (first treated period), not {schema[cohort]}"
        )
    for name in [outcome, *covariates]:
        col = frame[name]
        bad = col.null_count() + (int(col.is_nan().sum()) if col.dtype.is_float() else 0)
        if bad:
            raise ValueError(f"column {name!r} has {bad} null/NaN values; drop or impute them before att_gt")
    if frame[unit].null_count() or frame[period].null_count():
        raise ValueError(f"{unit!r} and {period!r} must not contain nulls")
    notes: list[str] = []

    frame = frame.sort([unit, period])
    periods = np.sort(frame[period].unique().to_numpy())
    n_periods = len(periods)
    counts = frame.group_by(unit).agg(pl.len().alias("n"), pl.col(period).n_unique().alias("k"))
    if (counts["k"] != counts["n"]).any():
        dup = int((counts["k"] != counts["n"]).sum())
        raise ValueError(
            f"{dup} units have duplicated ({unit}, {period}) rows; keep one row per unit and period"
        )
    unbalanced = int((counts["n"] != n_periods).sum())
    if unbalanced:
        raise ValueError(
            f"unbalanced panel: {unbalanced} of {counts.height} units are not observed in all "
            f"{n_periods} periods; "
            "att_gt needs a balanced panel (keep units observed in every period, e.g. "
            f"frame.filter(pl.len().over({unit!r}) == {n_periods}))"
        )
    if n_periods < 2:
        raise ValueError("the panel needs at least two periods")
    n = counts.height
    first = frame.gather_every(n_periods)
    coh = frame[cohort].cast(pl.Float64).fill_null(0.0).to_numpy().reshape(n, n_periods)
    if (coh != coh[:, :1]).any():
        raise ValueError(
            f"cohort column {cohort!r} varies within unit; it must be each unit's first treated period"
        )
    coh = coh[:, 0]
    if np.isnan(coh).any():
        coh = np.where(np.isnan(coh), 0.0, coh)
    treated = coh != 0
    late = treated & (coh > periods[-1])
    if late.any():
        notes.append(f"{int(late.sum())} units first treated after the last period are used as never treated")
        treated &= ~late
    rank = np.searchsorted(periods, coh)
    inside = treated & ((rank >= n_periods) | (periods[np.minimum(rank, n_periods - 1)] != coh))
    if inside.any():
        raise ValueError(
            f"{int(inside.sum())} units have a cohort value that is not one of the periods "
            f"{periods.tolist()[:10]}...; cohort must be the first treated period"
        )
    never_rank = n_periods + anticipation + 1
    grank = np.where(treated, rank, never_rank)

    if control_group == "never_treated" and not (~treated).any():
        raise ValueError(
            "no never-treated units: use control_group='not_yet_treated' or add never-treated units"
        )
    keep_periods = np.ones(n_periods, bool)
    if control_group == "not_yet_treated" and not (~treated).any():
        # R did: the last cohort becomes the control group and periods from its treatment on are dropped
        last = grank[treated].max()
        keep_periods = np.arange(n_periods) < last - anticipation
        grank = np.where(grank == last, never_rank, grank)
        notes.append(
            f"no never-treated units: cohort {periods[last]} is used as never treated and periods "
            f">= {periods[max(last - anticipation, 0)]} are dropped (as R did)"
        )
    # cohorts with no pre-treatment period (R drops these units with a warning)
    early = (grank < never_rank) & (grank - 1 - anticipation < 0)
    unit_keep = ~early
    if early.any():
        notes.append(
            f"dropped {int(early.sum())} units treated in (or within anticipation of) the first period: "
            "they have no pre-treatment period"
        )
    if not (unit_keep & (grank < never_rank) & (grank < keep_periods.sum())).any():
        raise ValueError(
            "no treated cohort has a pre-treatment period inside the panel: nothing to estimate "
            "(every treated unit is treated in the first period, or after the last kept period)"
        )

    y = frame[outcome].cast(pl.Float64).to_numpy().reshape(n, n_periods)
    x = None
    if covariates:
        x = np.stack(
            [frame[c].cast(pl.Float64).to_numpy().reshape(n, n_periods) for c in covariates], axis=-1
        )
    if weights:
        w = first[weights].cast(pl.Float64).to_numpy()
        if np.isnan(w).any() or (w <= 0).any() or first[weights].null_count():
            raise ValueError(f"weights column {weights!r} must be positive and non-missing")
    else:
        w = np.ones(n)
    # sort units by cohort rank (never treated last) so groups are contiguous slices
    sel = np.flatnonzero(unit_keep)
    order = sel[np.argsort(grank[sel], kind="stable")]
    grank = grank[order]
    y = np.ascontiguousarray(y[order][:, keep_periods].T)
    if x is not None:
        x = np.ascontiguousarray(x[order][:, keep_periods, :].transpose(1, 0, 2))
    w = w[order]
    w = w / w.mean()
    periods = periods[keep_periods]
    n_kept = len(periods)
    slices = {}
    for h in np.unique(grank):
        if h < n_kept:
            slices[int(h)] = (int(np.searchsorted(grank, h, "left")), int(np.searchsorted(grank, h, "right")))
    # cohorts treated only after the kept periods act as not-yet-treated / never treated controls
    start_never = int(np.searchsorted(grank, n_kept, "left"))
    return _Panel(
        periods=periods,
        y=y,
        x=x,
        w=w,
        slices=slices,
        never=(start_never, len(grank)),
        cohort_rank=grank,
        unit_ids=first[unit].to_numpy()[order],
        n=len(grank),
        notes=notes,
    )


def _cells(panel: _Panel, /, *, control_group, base_period, anticipation) -> list:
    """(cohort rank, period rank, base rank, control slices) for every ATT(g, t), in R's order."""
    n_t = len(panel.periods)
    out = []
    for g in sorted(panel.slices):
        for t in range(1 if base_period == "varying" else 0, n_t):
            if base_period == "universal" or g <= t:
                base = g - 1 - anticipation
            else:
                base = t - 1
            if control_group == "never_treated":
                controls = [panel.never] if panel.never[1] > panel.never[0] else []
            else:
                threshold = max(t, base) + anticipation
                start = int(np.searchsorted(panel.cohort_rank, threshold, "right"))
                a, b = panel.slices[g]
                controls = [(start, a), (b, panel.n)] if start <= a else [(start, panel.n)]
                controls = [(s, e) for s, e in controls if e > s]
            out.append((g, t, base, controls))
    return out


def _unconditional(panel: _Panel, inf: np.ndarray, treated, controls, t, base) -> float:
    """Closed-form 2x2 (all estimators coincide); writes the R-scaled influence function into ``inf``."""
    y, w, n = panel.y, panel.w, panel.n
    a, b = treated
    dy1 = y[t, a:b] - y[base, a:b]
    w1 = w[a:b]
    s1 = w1.sum()
    m1 = (w1 * dy1).sum() / s1
    inf[a:b] = n * w1 * (dy1 - m1) / s1
    s0 = sum(w[s:e].sum() for s, e in controls)
    m0 = sum((w[s:e] * (y[t, s:e] - y[base, s:e])).sum() for s, e in controls) / s0
    for s, e in controls:
        inf[s:e] = -n * w[s:e] * ((y[t, s:e] - y[base, s:e]) - m0) / s0
    return float(m1 - m0)


def _conditional(panel: _Panel, inf: np.ndarray, treated, controls, t, base, method, ps_cache, g) -> float:
    """DRDID panel estimators (drdid_panel / std_ipw_did_panel / reg_did_panel) on the 2x2 subsample."""
    idx = np.concatenate([np.arange(*treated)] + [np.arange(s, e) for s, e in controls])
    n1 = len(idx)
    d = np.zeros(n1)
    d[: treated[1] - treated[0]] = 1.0
    xp = min(t, base)  # R's panel2cs keeps the earlier period's covariates
    x = np.column_stack([np.ones(n1), panel.x[xp, idx, :]])
    dy = panel.y[t, idx] - panel.y[base, idx]
    w = panel.w[idx]
    w = w / w.mean()
    if method in ("dr", "ipw"):
        key = (g, tuple(controls), xp)
        if key not in ps_cache:
            ps_cache[key] = _logit(x, d, w)
        ps, hess_inv = ps_cache[key]
    if method == "reg":
        att, inf_sub = _reg_panel(dy, d, x, w)
    elif method == "ipw":
        att, inf_sub = _ipw_panel(dy, d, x, w, ps, hess_inv)
    else:
        att, inf_sub = _dr_panel(dy, d, x, w, ps, hess_inv)
    inf[idx] = (panel.n / n1) * inf_sub
    return att


def _logit(x: np.ndarray, d: np.ndarray, w: np.ndarray, /, *, max_iter: int = 100, tol: float = 1e-10):
    """Weighted logit by Newton-Raphson; fitted probabilities (capped as DRDID) and n * (X'WX)^-1."""
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        p = expit(x @ beta)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, x.T @ (w * (d - p)))
        except np.linalg.LinAlgError:
            raise ValueError(
                "the propensity model is singular for a cohort (too few treated units or collinear covariates); "
                "drop constant/collinear covariates or use method='reg' or no covariates"
            ) from None
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    p = expit(x @ beta)
    hess = (x * (w * p * (1 - p))[:, None]).T @ x
    return np.minimum(p, 1 - 1e-6), len(d) * np.linalg.pinv(hess)


def _wls(dy, d, x, w):
    """Outcome regression on controls: fitted changes and the asymptotic linear representation."""
    wc = w * (1 - d)
    xtx = (x * wc[:, None]).T @ x
    beta = np.linalg.solve(xtx, (x * wc[:, None]).T @ dy)
    fit = x @ beta
    alr = (x * (wc * (dy - fit))[:, None]) @ np.linalg.inv(xtx / len(d))
    return fit, alr


def _dr_panel(dy, d, x, w, ps, hess_inv):
    fit, alr_ols = _wls(dy, d, x, w)
    trim = np.where(d == 1, True, ps < _TRIM_LEVEL)
    w_t = trim * w * d
    w_c = trim * w * ps * (1 - d) / (1 - ps)
    r_t = w_t * (dy - fit)
    r_c = w_c * (dy - fit)
    eta_t = r_t.mean() / w_t.mean()
    eta_c = r_c.mean() / w_c.mean()
    alr_ps = (x * (w * (d - ps))[:, None]) @ hess_inv
    inf_t = (r_t - w_t * eta_t - alr_ols @ (w_t[:, None] * x).mean(0)) / w_t.mean()
    inf_c = (
        r_c
        - w_c * eta_c
        + alr_ps @ ((w_c * (dy - fit - eta_c))[:, None] * x).mean(0)
        - alr_ols @ (w_c[:, None] * x).mean(0)
    ) / w_c.mean()
    return float(eta_t - eta_c), inf_t - inf_c


def _ipw_panel(dy, d, x, w, ps, hess_inv):
    trim = np.where(d == 1, True, ps < _TRIM_LEVEL)
    w_t = trim * w * d
    w_c = trim * w * ps * (1 - d) / (1 - ps)
    eta_t = (w_t * dy).mean() / w_t.mean()
    eta_c = (w_c * dy).mean() / w_c.mean()
    alr_ps = (x * (w * (d - ps))[:, None]) @ hess_inv
    inf_t = (w_t * dy - w_t * eta_t) / w_t.mean()
    inf_c = (w_c * dy - w_c * eta_c + alr_ps @ ((w_c * (dy - eta_c))[:, None] * x).mean(0)) / w_c.mean()
    return float(eta_t - eta_c), inf_t - inf_c


def _reg_panel(dy, d, x, w):
    fit, alr_ols = _wls(dy, d, x, w)
    w_t = w * d
    eta_t = (w_t * dy).mean() / w_t.mean()
    eta_c = (w_t * fit).mean() / w_t.mean()
    inf_t = (w_t * dy - w_t * eta_t) / w_t.mean()
    inf_c = (w_t * fit - w_t * eta_c + alr_ols @ (w_t[:, None] * x).mean(0)) / w_t.mean()
    return float(eta_t - eta_c), inf_t - inf_c


# --------------------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------------------


def _standard_errors(
    influence: np.ndarray,
    n: int,
    alpha: float,
    bootstrap: int,
    seed,
    cband: bool,
    uniform_rows: int | None = None,
) -> tuple[np.ndarray, float]:
    """Return standard errors of each row's estimate and the critical value for its intervals.

    Analytic: sqrt(mean(IF^2) / n) (R ``did``). Bootstrap: R's ``mboot`` -- Mammen multipliers,
    interquartile-range standard errors and, with ``cband``, the uniform critical value over the first
    ``uniform_rows`` rows.
    """
    z = float(norm.ppf(1 - alpha / 2))
    if bootstrap == 0:
        se = np.sqrt(np.einsum("ij,ij->i", influence, influence) / n / n)
        se[se <= _SE_FLOOR] = np.nan
        return se, z
    rng = np.random.default_rng(seed)
    s5 = np.sqrt(5.0)
    low, high, p_low = (1 - s5) / 2, (1 + s5) / 2, (s5 + 1) / (2 * s5)
    cols = influence.shape[1]  # units, or clusters of units (then n still scales: n / n_clusters != 1)
    block = max(1, _BOOT_BLOCK // cols)
    draws = []
    done = 0
    while done < bootstrap:
        m = min(block, bootstrap - done)
        v = np.where(rng.random((m, cols)) < p_low, low, high)
        draws.append(v @ influence.T / np.sqrt(n))
        done += m
    bres = np.vstack(draws)  # bootstrap x rows
    q75, q25 = np.quantile(bres, [0.75, 0.25], axis=0)
    sigma = (q75 - q25) / (norm.ppf(0.75) - norm.ppf(0.25))
    sigma[sigma <= _SE_FLOOR] = np.nan
    se = sigma / np.sqrt(n)
    if not cband:
        return se, z
    rows = slice(None) if uniform_rows is None else slice(0, uniform_rows)
    with np.errstate(invalid="ignore"):
        tstat = np.abs(bres[:, rows] / sigma[rows])
    tstat = np.where(np.isnan(tstat), -np.inf, tstat).max(axis=1)
    crit = float(np.quantile(tstat, 1 - alpha, method="inverted_cdf"))
    return se, crit if np.isfinite(crit) else z
