"""Aggregations of group-time ATTs (R ``did::aggte``) and the stacking of separately estimated results.

An aggregation is a weighted mean of ATT(g, t) cells; its influence function is the same weighted mean of
the cells' influence functions plus, where the weights are estimated cohort shares, the influence of
those shares (R's ``wif``), so its standard error comes from :mod:`analysis.estimate.staggered.bootstrap`
like any cell's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from analysis.estimate.inference import z_critical
from analysis.estimate.staggered.bootstrap import check_bootstrap, standard_errors
from analysis.estimate.staggered.influence import Influence

if TYPE_CHECKING:
    from collections.abc import Iterable

    from analysis.estimate.staggered.att_gt import GroupTimeResult

Aggregation = Literal["simple", "dynamic", "group", "calendar"]


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """An aggregation of group-time ATTs (R ``aggte``) with the options it was computed with.

    An overall effect (``att``, ``se``, ``ci_lower``, ``ci_upper``, normal intervals) and, except for
    ``simple``, one effect per key (``keys``/``atts``/``ses``; event time, cohort or period) whose
    intervals use ``crit_value`` (the normal quantile, or the uniform bootstrap value with ``cband``).
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
    alpha: float
    n_units: int
    min_e: float
    max_e: float
    balance_e: int | None
    bootstrap: int
    cband: bool
    notes: tuple[str, ...]

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


def _share_influence(result: GroupTimeResult, values: np.ndarray, groups: np.ndarray,
                     shares: np.ndarray) -> np.ndarray:
    """Influence of the estimated cohort shares on a share-weighted mean of ``values`` (R's ``wif``).

    R's ``wif() %*% att`` collapses to ``w_i / S * sum_{k: g_k = G_i} (att_k - theta)``.
    """
    s = shares.sum()
    theta = (values * shares).sum() / s
    out = np.zeros(result.n_units)
    for h in np.unique(groups):
        a, b = result.cohort_slices[int(h)]
        out[a:b] = result.weights[a:b] * (values[groups == h] - theta).sum() / s
    return out


def _combine_all(result: GroupTimeResult, att: np.ndarray, pg: np.ndarray,
                 keeps: list[np.ndarray]) -> list[tuple[float, np.ndarray]]:
    """Cohort-share weighted means of the cells of each ``keeps`` entry with their influence functions.

    The shares are estimated (their influence is added); the cells' influence functions are combined in
    one pass over the factored influence.
    """
    weights = np.zeros((len(keeps), len(att)))
    values = []
    for i, keep in enumerate(keeps):
        share = pg[keep] / pg[keep].sum()
        weights[i, keep] = share
        values.append(float((att[keep] * share).sum()))
    combined = result.influence.rows(weights)
    return [(value, combined[i] + _share_influence(result, att[keep], result.cell_cohort[keep], pg[keep]))
            for i, (value, keep) in enumerate(zip(values, keeps, strict=True))]


def aggte(
    result: GroupTimeResult,
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
    """Aggregate the group-time ATTs of ``result`` as R ``aggte``.

    Parameters
    ----------
    result
        Group-time ATTs of :func:`analysis.estimate.staggered.att_gt` (or :func:`stack_results`).
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
        Default to the values ``result`` was estimated with.
    cband
        With a bootstrap, use the uniform (simultaneous) critical value for the per-key intervals.

    Returns
    -------
    AggregateResult
        Standard errors include the estimation of the cohort-share weights (R's ``wif``).
    """
    alpha = result.alpha if alpha is None else alpha
    bootstrap = result.bootstrap if bootstrap is None else bootstrap
    seed = result.seed if seed is None else seed
    z = z_critical(alpha)
    check_bootstrap(bootstrap)
    if kind not in ("simple", "dynamic", "group", "calendar"):
        raise ValueError(f"kind must be 'simple', 'dynamic', 'group' or 'calendar', not {kind!r}")
    if balance_e is not None and kind != "dynamic":
        raise ValueError("balance_e only applies to kind='dynamic'")
    att = result.group_time["att"].to_numpy()
    notes: list[str] = []
    ok = np.isfinite(att)
    if not ok.all():
        notes.append(f"{int((~ok).sum())} group-time cells with a missing ATT were left out")
    g, t = result.cell_cohort, result.cell_period
    e = t - g
    n = result.n_units
    cohorts = np.array(sorted(result.cohort_slices))
    pg_cohort = {h: result.weights[a:b].sum() / n for h, (a, b) in result.cohort_slices.items()}
    pg = np.array([pg_cohort[h] for h in g])
    post = (g <= t) & (t <= g + max_e) & ok
    inference = {"alpha": alpha, "bootstrap": bootstrap, "seed": seed, "clusters": result.clusters}
    options = {"alpha": alpha, "n_units": n, "min_e": min_e, "max_e": max_e, "balance_e": balance_e,
               "bootstrap": bootstrap}

    if kind == "simple":
        if not post.any():
            raise ValueError("no post-treatment group-time cells to aggregate")
        ((value, inf),) = _combine_all(result, att, pg, [np.flatnonzero(post)])
        ses, _ = standard_errors(inf[None, :], n, cband=False, **inference)
        se = ses[0]
        return AggregateResult(kind=kind, att=value, se=float(se), ci_lower=value - z * se,
                               ci_upper=value + z * se, key=None, keys=np.array([]),
                               atts=np.array([], dtype=float), ses=np.array([], dtype=float), crit_value=z,
                               cband=False, notes=tuple(notes), **options)

    if kind == "dynamic":
        include = ok.copy()
        eseq = np.unique(e[include])
        if balance_e is not None:
            include &= (len(result.periods) - 1 - g) >= balance_e
            eseq = np.unique(e[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - (len(result.periods) - 1))]
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        if eseq.size == 0:
            raise ValueError("no event times left after min_e/max_e/balance_e; widen the window")
        parts = _combine_all(result, att, pg, [np.flatnonzero((e == k) & include) for k in eseq])
        keys, key = eseq, "event_time"
        overall = eseq >= 0
        overall_shares = None
    elif kind == "group":
        keys_rank = np.array([h for h in cohorts if (post & (g == h)).any()])
        if keys_rank.size == 0:
            raise ValueError("no post-treatment group-time cells to aggregate")
        weights = np.zeros((len(keys_rank), len(att)))
        values = []
        for i, h in enumerate(keys_rank):
            keep = np.flatnonzero(post & (g == h))
            weights[i, keep] = 1 / keep.size
            values.append(float(att[keep].mean()))
        parts = list(zip(values, result.influence.rows(weights), strict=True))
        keys, key = result.periods[keys_rank], "cohort"
        overall = np.ones(len(keys_rank), bool)
        overall_shares = (keys_rank, np.array([pg_cohort[h] for h in keys_rank]))
    else:  # calendar
        keys_rank = np.array([s for s in np.unique(t) if s >= g.min() and (post & (t == s)).any()])
        if keys_rank.size == 0:
            raise ValueError("no post-treatment group-time cells to aggregate")
        parts = _combine_all(result, att, pg, [np.flatnonzero(post & (t == s)) for s in keys_rank])
        keys, key = result.periods[keys_rank], "period"
        overall = np.ones(len(keys_rank), bool)
        overall_shares = None

    atts = np.array([p[0] for p in parts])
    infs = np.vstack([p[1] for p in parts])
    if not overall.any():
        value, inf_overall = np.nan, np.zeros(n)
        notes.append("no post-treatment event times: the overall effect is missing")
    elif overall_shares is None:
        value = float(atts[overall].mean())
        inf_overall = infs[overall].mean(axis=0)
    else:  # cohorts weighted by their estimated shares
        groups, shares = overall_shares
        value = float((atts * shares).sum() / shares.sum())
        inf_overall = (shares / shares.sum()) @ infs + _share_influence(result, atts, groups, shares)
    ses, crit = standard_errors(np.vstack([infs, inf_overall[None, :]]), n, cband=cband,
                                uniform_rows=len(parts), **inference)
    se = ses[-1]
    return AggregateResult(kind=kind, att=value, se=float(se), ci_lower=value - z * se,
                           ci_upper=value + z * se, key=key, keys=np.asarray(keys),
                           atts=np.asarray(atts, dtype=float), ses=np.asarray(ses[:-1], dtype=float),
                           crit_value=float(crit), cband=cband, notes=tuple(notes), **options)


#: Settings every stack of :func:`stack_results` must share.
_STACK_SETTINGS = ("outcome", "covariates", "control_group", "method", "anticipation", "base_period",
                   "base_window", "alpha", "bootstrap")


def stack_results(results: Iterable[GroupTimeResult], /, *, cluster: bool = True,
                  cband: bool = False) -> GroupTimeResult:
    """Combine group-time results estimated on separate samples ("stacks") into one result to aggregate.

    The stacked design of matched comparisons: each cohort (or set of cohorts) gets its own ``att_gt`` with
    only its own comparison units as controls, and the stacks are then aggregated together as if one
    ``att_gt`` had produced every cell. Influence functions are placed side by side, each rescaled by
    ``n_total / n_stack`` so that a cell's standard error is unchanged; cohort shares for the aggregations
    are the stacks' treated weights (each stack's treated units keep weight 1 relative to each other).

    Parameters
    ----------
    results
        ``att_gt`` results on the same periods, with disjoint cohorts and the same settings (outcome,
        covariates, control group, method, anticipation, base period and window, alpha, bootstrap).
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
        a bootstrap draws one multiplier per cluster for all cells), aggregable with ``aggregate``; the
        settings are the stacks' own.
    """
    results = list(results)
    if not results:
        raise ValueError("stack_results needs at least one att_gt result")
    first = results[0]
    for r in results[1:]:
        if not np.array_equal(r.periods, first.periods):
            raise ValueError(
                "stacked results must share the same periods; build every stack on the same panel periods"
            )
        differ = [k for k in _STACK_SETTINGS if getattr(r, k) != getattr(first, k)]
        if differ:
            raise ValueError(
                f"stacked results differ in {differ}; estimate every stack with the same settings"
            )
    cohorts = [h for r in results for h in r.cohort_slices]
    if len(cohorts) != len(set(cohorts)):
        raise ValueError("a cohort appears in more than one stack; give each cohort to exactly one stack")
    if cluster and any(r.unit_ids is None for r in results):
        raise ValueError("cluster=True needs results from att_gt (they carry unit ids)")
    n_total = sum(r.n_units for r in results)
    # each stack's blocks on its own units' columns (zero elsewhere), rescaled; nothing dense is formed
    n_cells = sum(r.influence.shape[0] for r in results)
    parts, weights, slices, ids, offset, row = [], [], {}, [], 0, 0
    for r in results:
        cells = r.influence.shape[0]
        parts.append(r.influence.shifted(row_offset=row, col_offset=offset, scale=n_total / r.n_units,
                                         n_rows=n_cells, n_cols=n_total))
        row += cells
        treated = np.concatenate([r.weights[a:b] for a, b in r.cohort_slices.values()])
        weights.append(r.weights / (treated.mean() if treated.size else 1.0))
        slices |= {h: (a + offset, b + offset) for h, (a, b) in r.cohort_slices.items()}
        if r.unit_ids is not None:
            ids.append(np.asarray(r.unit_ids))
        offset += r.n_units
    influence = Influence.stack(parts, n_rows=n_cells, n_cols=n_total)
    weights = np.concatenate(weights)
    clusters = None
    if cluster:
        _, clusters = np.unique(np.concatenate(ids), return_inverse=True)
    att = np.concatenate([r.group_time["att"].to_numpy() for r in results])
    ses, crit = standard_errors(influence, n_total, alpha=first.alpha, bootstrap=first.bootstrap,
                                seed=first.seed, cband=cband, clusters=clusters)
    ses[~np.isfinite(att)] = np.nan
    group_time = pl.concat([r.group_time for r in results], how="vertical_relaxed").with_columns(
        se=pl.Series(ses), ci_lower=pl.Series(att - crit * ses), ci_upper=pl.Series(att + crit * ses)
    )
    notes = list(dict.fromkeys(n for r in results for n in r.notes))
    if cluster and clusters is not None and clusters.max(initial=-1) + 1 < n_total:
        notes.append(f"{n_total - int(clusters.max()) - 1} unit appearances repeat a unit of another stack: "
                     "standard errors are clustered by unit")
    return replace(
        first,
        group_time=group_time,
        n_units=n_total,
        cband=cband,
        crit_value=float(crit),
        notes=tuple(notes),
        influence=influence,
        cell_cohort=np.concatenate([r.cell_cohort for r in results]),
        cell_period=np.concatenate([r.cell_period for r in results]),
        cohort_slices=slices,
        weights=weights / weights.mean(),
        unit_ids=np.concatenate(ids) if len(ids) == len(results) else None,
        clusters=clusters,
    )
