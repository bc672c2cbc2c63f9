"""Group-time average treatment effects ATT(g, t) (R ``did::att_gt``) and the panel they are estimated on.

The panel is prepared once: periods mapped to ranks, units sorted by cohort so that every treated group
and every control group is a contiguous slice of a periods x units outcome matrix. Each ATT(g, t) is then
a 2x2 DiD between cohort ``g`` and its control group, closed-form without covariates and one of the
:mod:`analysis.estimate.staggered.drdid` estimators with them; its influence function is one row of a
(cells x units) matrix, which :mod:`analysis.estimate.staggered.aggte` aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl

from analysis.estimate.inference import check_alpha
from analysis.estimate.staggered import drdid
from analysis.estimate.staggered.aggte import AggregateResult, Aggregation, aggte
from analysis.estimate.staggered.bootstrap import check_bootstrap, standard_errors
from analysis.estimate.staggered.influence import Block, Influence

ControlGroup = Literal["never_treated", "not_yet_treated"]
Method = Literal["dr", "ipw", "reg"]
BasePeriod = Literal["varying", "universal"]


@dataclass(frozen=True, slots=True)
class GroupTimeResult:
    """Group-time ATTs with their influence functions and the options they were estimated with (R's ``MP``).

    ``group_time`` has one row per (cohort, period): ``cohort``, ``period``, ``base_period``,
    ``event_time`` (in period ranks), ``post``, ``att``, ``se``, ``ci_lower``, ``ci_upper``,
    ``n_treated``, ``n_control``. ``crit_value`` is the normal quantile, or the bootstrap uniform
    critical value when ``cband=True``. :meth:`aggregate` summarises the cells as R ``aggte``.
    """

    group_time: pl.DataFrame
    n_units: int
    outcome: str
    covariates: tuple[str, ...]
    control_group: str
    method: str
    anticipation: int
    base_period: str
    base_window: int
    alpha: float
    bootstrap: int
    seed: int | None
    cband: bool
    crit_value: float
    notes: tuple[str, ...]
    periods: np.ndarray = field(repr=False)  # original period values, by rank
    influence: Influence = field(repr=False)  # cells x units, factored; scaled as R (n/n1 * IF)
    cell_cohort: np.ndarray = field(repr=False)  # cohort rank per cell
    cell_period: np.ndarray = field(repr=False)  # period rank per cell
    cohort_slices: dict = field(repr=False)  # cohort rank -> (start, stop) in unit order
    weights: np.ndarray = field(repr=False)  # unit weights, mean 1
    unit_ids: np.ndarray | None = field(default=None, repr=False)  # unit identifier per influence column
    clusters: np.ndarray | None = field(default=None, repr=False)  # cluster index per column (stack_results)

    def to_frame(self) -> pl.DataFrame:
        """Return the group-time table."""
        return self.group_time

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
        """Aggregate the group-time ATTs as R ``aggte``: see :func:`analysis.estimate.staggered.aggte`."""
        return aggte(self, kind, min_e=min_e, max_e=max_e, balance_e=balance_e, alpha=alpha,
                     bootstrap=bootstrap, seed=seed, cband=cband)


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
    base_window: int = 1,
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
    base_window
        With ``base_period="universal"``: the base outcome is each unit's mean over the ``base_window``
        periods ending at g - 1 - anticipation (1, the default, is that period alone, as R ``did``), so every
        ATT(g, t) compares period t with the same pre-period average; parallel trends are then assumed from
        that window on. A cohort without ``base_window`` periods before its base is dropped with a note.
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
    if not isinstance(base_window, (int, np.integer)) or isinstance(base_window, bool) or base_window < 1:
        raise ValueError(f"base_window must be a positive integer, not {base_window!r}")
    if base_window > 1 and base_period != "universal":
        raise ValueError("base_window > 1 needs base_period='universal' (one base average per cohort)")
    check_alpha(alpha)
    check_bootstrap(bootstrap)
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
        base_window=int(base_window),
    )
    cells = _cells(
        panel, control_group=control_group, base_period=base_period, anticipation=int(anticipation)
    )
    n = panel.n
    att = np.full(len(cells), np.nan)
    n_treated = np.zeros(len(cells), np.int64)
    n_control = np.zeros(len(cells), np.int64)
    if base_window == 1:
        base_matrix, base_row = panel.y, {}
    else:  # universal base: one window mean per cohort
        bases = sorted({base for _, _, base, _ in cells})
        base_matrix = np.vstack([panel.y[b - base_window + 1 : b + 1].mean(axis=0) for b in bases])
        base_row = {b: i for i, b in enumerate(bases)}
    groups: dict = {}  # cells sharing a subsample, covariates and propensity fit: one block
    for k, (g, t, base, controls) in enumerate(cells):
        a, b = panel.slices[g]
        n_treated[k] = b - a
        n_control[k] = sum(stop - start for start, stop in controls)
        if t == base and base_window == 1:  # universal base period: the reference cell is 0 by construction
            att[k] = 0.0
            continue
        if n_control[k] == 0:
            continue
        # covariates of the earlier period (R's panel2cs); time-invariant ones are kept once
        xp = 0 if panel.x is None or panel.x.shape[0] == 1 else min(t, base)
        groups.setdefault((g, tuple(controls), xp), []).append((k, t, base))
    blocks = []
    for (g, controls, xp), members in groups.items():
        rows = np.array([m[0] for m in members], dtype=np.int64)
        t_rows = np.array([m[1] for m in members], dtype=np.int64)
        b_rows = np.array([m[2] if base_window == 1 else base_row[m[2]] for m in members], dtype=np.int64)
        slices = (panel.slices[g], *controls)
        att[rows], block = _block(panel, slices, rows, t_rows, b_rows, base_matrix, xp, method, covariates)
        blocks.append(block)
    influence = Influence(n_rows=len(cells), n_cols=n, blocks=tuple(blocks))
    ses, crit = standard_errors(influence, n, alpha=alpha, bootstrap=bootstrap, seed=seed, cband=cband)
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
        outcome=outcome,
        covariates=tuple(covariates),
        control_group=control_group,
        method=method,
        anticipation=int(anticipation),
        base_period=base_period,
        base_window=int(base_window),
        alpha=alpha,
        bootstrap=int(bootstrap),
        seed=seed,
        cband=cband,
        crit_value=float(crit),
        notes=tuple(panel.notes),
        periods=periods,
        influence=influence,
        cell_cohort=cell_g,
        cell_period=cell_t,
        cohort_slices=dict(panel.slices),
        weights=panel.w,
        unit_ids=panel.unit_ids,
    )



@dataclass(frozen=True, slots=True)
class _Panel:
    periods: np.ndarray  # original period values by rank
    y: np.ndarray  # periods x units, units sorted by cohort rank (never treated last)
    x: np.ndarray | None  # periods (or 1 when time-invariant) x units x covariates
    w: np.ndarray  # unit weights, mean 1
    slices: dict  # treated cohort rank -> (start, stop)
    never: tuple[int, int]  # slice of never-treated units
    cohort_rank: np.ndarray  # per unit (sorted), NEVER for never treated
    unit_ids: np.ndarray  # unit identifier per unit (sorted order)
    n: int
    notes: list


def _prepare(
    frame, /, *, unit, period, cohort, outcome, covariates, weights, control_group, anticipation,
    base_window=1,
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
    early = (grank < never_rank) & (grank - anticipation - base_window < 0)
    unit_keep = ~early
    if early.any():
        notes.append(
            f"dropped {int(early.sum())} units treated in (or within anticipation"
            f"{' and base window' if base_window > 1 else ''} of) the first period: "
            "they have no pre-treatment period"
        )
    if not (unit_keep & (grank < never_rank) & (grank < keep_periods.sum())).any():
        raise ValueError(
            "no treated cohort has a pre-treatment period inside the panel: nothing to estimate "
            "(every treated unit is treated in the first period, or after the last kept period)"
        )

    y = frame[outcome].cast(pl.Float64).to_numpy().reshape(n, n_periods)
    x_columns = [frame[c].cast(pl.Float64).to_numpy().reshape(n, n_periods) for c in covariates]
    # time-invariant covariates (the usual case) are kept once: every period's design is the same
    static = all((c == c[:, :1]).all() for c in x_columns)
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
    x = None  # periods x units x covariates, or 1 x units x covariates when they do not vary
    if x_columns and static:
        x = np.stack([c[order, 0] for c in x_columns], axis=-1)[None]
    elif x_columns:
        x = np.stack([np.ascontiguousarray(c[order][:, keep_periods].T) for c in x_columns], axis=-1)
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


def _block(panel: _Panel, slices, rows, t_rows, b_rows, base_matrix, xp, method, covariates):
    """Every cell of one block (one subsample): the ATTs and the factored, R-scaled influence functions."""
    tmp = Block(rows=rows, t_rows=t_rows, b_rows=b_rows, y=panel.y, base=base_matrix, slices=slices,
                a=np.empty(0), factors=np.empty((0, 0)), coefficients=np.empty((0, 0)))
    dy = (tmp._gather(panel.y, t_rows) - tmp._gather(base_matrix, b_rows)).T  # units x cells
    n1 = dy.shape[0]
    treated = slices[0][1] - slices[0][0]
    d = np.zeros(n1)
    d[:treated] = 1.0
    w = np.concatenate([panel.w[s:e] for s, e in slices])
    w = w / w.mean()
    if not covariates:
        att, a, factors, coefficients = drdid.unconditional_block(dy, d, w)
    else:
        x = np.concatenate([panel.x[xp, s:e, :] for s, e in slices], axis=0)
        x = np.column_stack([np.ones(n1), x])
        if method == "reg":
            att, a, factors, coefficients = drdid.reg_block(dy, d, x, w)
        else:
            estimator = drdid.ipw_block if method == "ipw" else drdid.dr_block
            att, a, factors, coefficients = estimator(dy, d, x, w, *drdid.logit(x, d, w))
    scale = panel.n / n1
    return att, replace(tmp, a=a * scale, factors=factors * scale, coefficients=coefficients)
