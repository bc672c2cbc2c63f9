"""Difference-in-differences and event study on the stacked matched sample.

Model (weighted least squares, statsmodels): for stacked unit ``i`` (a person in one cohort's stack) at
event time ``e``

    y_ie = a_i + l_(cohort, e) + sum_{k != ref} b_k * treated_i * 1[e = k] + u_ie

with unit fixed effects ``a_i`` and stack x event-time fixed effects ``l`` (calendar-month effects within
each cohort's stack), absorbed by weighted alternating projections; standard errors are clustered by
person (a person can appear in several stacks). The pooled DiD replaces the event dummies by one
``treated x post`` term, comparing the post window with the whole pre-period. The pre-trend test is the
joint Wald test that every pre-period coefficient is zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats

from analysis.power import mde_from_se
from analysis.schema import EVENT_STUDY

_NEEDED = ("unit", "person_id", "stack_time", "event_time", "treated", "weight")


@dataclass(frozen=True, slots=True)
class EventStudyResult:
    """Coefficients by event time with the pre-trend test."""

    table: pl.DataFrame  # analysis.schema.EVENT_STUDY
    pretrend_stat: float  # Wald chi-squared of the pre-period coefficients
    pretrend_df: int
    pretrend_p: float
    n_obs: int


def _check(stacked: pl.DataFrame, outcome: str) -> None:
    missing = [c for c in (*_NEEDED, outcome) if c not in stacked.columns]
    if missing:
        raise ValueError(f"stacked panel lacks columns {missing} (see analysis.matching.stacked_panel)")
    if stacked.height == 0:
        raise ValueError("the stacked panel is empty")
    groups = stacked["treated"].unique().to_list()
    if sorted(groups) != [0, 1]:
        raise ValueError(f"the stacked panel needs treated and comparison units, has treated values {groups}")


def demean(columns: np.ndarray, fe1: np.ndarray, fe2: np.ndarray, w: np.ndarray, /, *, tol: float = 1e-10,
           max_iter: int = 10_000) -> np.ndarray:
    """Remove two sets of fixed effects from each column by weighted alternating projections.

    ``fe1``/``fe2`` are dense integer codes. Converges to the residual of the weighted two-way FE
    regression (Gauss-Seidel on the normal equations); stops when no value moves by more than ``tol``.
    """
    x = np.array(columns, dtype=float, copy=True)
    if x.ndim == 1:
        x = x[:, None]
    w1 = np.bincount(fe1, weights=w)
    w2 = np.bincount(fe2, weights=w)
    for _ in range(max_iter):
        delta = 0.0
        for codes, total in ((fe1, w1), (fe2, w2)):
            for j in range(x.shape[1]):
                means = np.bincount(codes, weights=w * x[:, j], minlength=total.size) / np.where(total > 0, total, 1)
                shift = means[codes]
                x[:, j] -= shift
                delta = max(delta, float(np.abs(shift).max()))
        if delta < tol:
            return x
    raise ValueError(f"fixed effects did not converge in {max_iter} iterations (tolerance {tol})")


def _fit(y: np.ndarray, x: np.ndarray, frame: pl.DataFrame) -> sm.regression.linear_model.RegressionResultsWrapper:
    unit = frame["unit"].to_numpy()
    cell = frame["stack_time"].to_numpy()
    w = frame["weight"].to_numpy().astype(float)
    data = demean(np.column_stack([y, x]), unit, cell, w)
    persons = frame["person_id"].rank("dense").cast(pl.Int64).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about the rank of absorbed designs
        return sm.WLS(data[:, 0], data[:, 1:], weights=w).fit(cov_type="cluster", cov_kwds={"groups": persons})


def _counts(frame: pl.DataFrame) -> tuple[int, int]:
    persons = frame.group_by("treated").agg(pl.col("person_id").n_unique())
    get = dict(zip(persons["treated"].to_list(), persons["person_id"].to_list(), strict=True))
    return int(get.get(1, 0)), int(get.get(0, 0))


def event_study(stacked: pl.DataFrame, outcome: str, /, *, reference: int = -1, alpha: float = 0.05) -> EventStudyResult:
    """Event-study coefficients of ``outcome`` relative to event time ``reference``.

    Returns one row per event time in the stacked window (the reference row has estimate 0, null se), with
    the number of treated and comparison persons observed at that event time.
    """
    _check(stacked, outcome)
    frame = stacked.filter(pl.col(outcome).is_not_null())
    times = np.sort(frame["event_time"].unique().to_numpy())
    if reference not in times:
        raise ValueError(f"reference event time {reference} is not in the panel's window {times.min()}..{times.max()}")
    coef_times = times[times != reference]
    e = frame["event_time"].to_numpy()
    d = frame["treated"].to_numpy().astype(float)
    x = (e[:, None] == coef_times[None, :]).astype(float) * d[:, None]
    result = _fit(frame[outcome].cast(pl.Float64).to_numpy(), x, frame)
    params, cov = np.asarray(result.params), np.asarray(result.cov_params())
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    z = float(stats.norm.ppf(1 - alpha / 2))
    pre = np.flatnonzero(coef_times < reference)
    if pre.size:
        b, v = params[pre], cov[np.ix_(pre, pre)]
        stat = float(b @ np.linalg.pinv(v) @ b)
        dof = int(np.linalg.matrix_rank(v))
        p = float(stats.chi2.sf(stat, dof)) if dof else float("nan")
    else:
        stat, dof, p = float("nan"), 0, float("nan")
    by_time = frame.group_by("event_time", "treated").agg(pl.col("person_id").n_unique().alias("n"))
    counts = by_time.pivot(on="treated", index="event_time", values="n")
    est = pl.DataFrame({"event_time": coef_times.astype(np.int32), "estimate": params, "se": se})
    ref = pl.DataFrame({"event_time": [reference], "estimate": [0.0], "se": [None]}, schema=est.schema)
    table = (
        pl.concat([est, ref]).join(
            counts.select(pl.col("event_time").cast(pl.Int32), n_treated=pl.col("1"), n_controls=pl.col("0")),
            on="event_time", how="left", validate="1:1",
        )
        .with_columns(outcome=pl.lit(outcome), ci_lower=pl.col("estimate") - z * pl.col("se"),
                      ci_upper=pl.col("estimate") + z * pl.col("se"))
        .select([pl.col(c).cast(t) for c, t in EVENT_STUDY.items()])
        .sort("event_time")
    )
    return EventStudyResult(table, stat, dof, p, frame.height)


def pooled_did(stacked: pl.DataFrame, outcome: str, /, *, post: tuple[int, int] = (12, 24),
               pre: tuple[int, int] | None = None, alpha: float = 0.05) -> dict:
    """One DiD: mean treated-minus-comparison gap in the ``post`` window minus the gap in the ``pre`` window.

    ``pre`` defaults to every event time before 0. Event times in neither window are left out (the ramp-up
    months 0..post[0]-1 by default). Returns estimate, se, CI, n_treated, n_controls (persons), mde, n_obs.
    """
    _check(stacked, outcome)
    pre = pre if pre is not None else (int(stacked["event_time"].min()), -1)
    frame = stacked.filter(
        pl.col(outcome).is_not_null() & (pl.col("event_time").is_between(*pre) | pl.col("event_time").is_between(*post))
    )
    in_post = frame.filter(pl.col("event_time").is_between(*post))
    n_treated, n_controls = _counts(in_post)
    empty = {"estimate": None, "se": None, "ci_lower": None, "ci_upper": None, "n_treated": n_treated,
             "n_controls": n_controls, "mde": None, "n_obs": frame.height}
    if n_treated == 0 or n_controls == 0 or not frame.filter(pl.col("event_time").is_between(*pre)).height:
        return empty
    # units must be seen in both windows to contribute within-unit contrasts; others only shift their FE
    x = ((frame["treated"] == 1) & frame["event_time"].is_between(*post)).cast(pl.Float64).to_numpy()[:, None]
    result = _fit(frame[outcome].cast(pl.Float64).to_numpy(), x, frame)
    estimate, se = float(result.params[0]), float(np.sqrt(result.cov_params()[0, 0]))
    z = float(stats.norm.ppf(1 - alpha / 2))
    if not np.isfinite(se) or se <= 0:
        return empty
    return {"estimate": estimate, "se": se, "ci_lower": estimate - z * se, "ci_upper": estimate + z * se,
            "n_treated": n_treated, "n_controls": n_controls, "mde": mde_from_se(se, alpha=alpha), "n_obs": frame.height}


def subgroup_did(stacked: pl.DataFrame, outcome: str, groups: pl.DataFrame, dimension: str, /, *,
                 post: tuple[int, int] = (12, 24), alpha: float = 0.05) -> list[dict]:
    """Pooled DiD within each level of ``dimension`` (a column of ``groups``, keyed by treated ``person_id``).

    A subgroup keeps its participants and the comparison units matched to them (same cohort stacks), so
    the comparison is the one the match built. Returns one dict per level with ``level`` added.
    """
    if dimension not in groups.columns or "person_id" not in groups.columns:
        raise ValueError(f"groups needs person_id and {dimension!r}")
    labels = groups.select("person_id", level=pl.col(dimension).cast(pl.String).fill_null("unknown")).unique("person_id")
    treated = stacked.filter(pl.col("treated") == 1).select("cohort", "person_id").unique().join(
        labels, on="person_id", how="inner", validate="m:1"
    )
    out = []
    for level in sorted(treated["level"].unique().to_list()):
        mine = treated.filter(pl.col("level") == level)
        cohorts = mine["cohort"].unique().implode()
        sub = stacked.filter(
            ((pl.col("treated") == 1) & pl.col("person_id").is_in(mine["person_id"].implode()))
            | ((pl.col("treated") == 0) & pl.col("cohort").is_in(cohorts))
        )
        row = pooled_did(sub, outcome, post=post, alpha=alpha) if sub["treated"].n_unique() == 2 else None
        out.append({"level": level, **(row or {"estimate": None, "se": None, "ci_lower": None, "ci_upper": None,
                                             "n_treated": mine.height, "n_controls": 0, "mde": None, "n_obs": 0})})
    return out


def event_window_counts(stacked: pl.DataFrame, /, outcomes: Sequence[str]) -> pl.DataFrame:
    """Raw weighted means by event time for participants and comparisons (analysis.schema.MATCHED_MEANS)."""
    frames = []
    for outcome in outcomes:
        y = pl.col(outcome).cast(pl.Float64)
        frames.append(
            stacked.group_by("treated", "event_time")
            .agg(mean=(y * pl.col("weight")).sum() / pl.col("weight").filter(y.is_not_null()).sum(),
                 n=pl.col("person_id").n_unique().cast(pl.Int64))
            .with_columns(outcome=pl.lit(outcome),
                          group=pl.when(pl.col("treated") == 1).then(pl.lit("participants")).otherwise(pl.lit("comparisons")))
        )
    return pl.concat(frames).select("outcome", "group", pl.col("event_time").cast(pl.Int32), "mean", "n").sort(
        "outcome", "group", "event_time"
    )
