"""Sensitivity of a pooled post-period effect to violations of parallel trends ("honest DiD").

Rambachan & Roth (2023, *Review of Economic Studies* 90(5)) replace "the pre-trend test passed, so parallel
trends hold" by a bound on how far the post-period violation may go relative to what the pre-period shows.
Under relative magnitudes

    Δ^RM(M̄) = {δ : |δ_{t+1} - δ_t| <= M̄ · max_{s<0} |δ_{s+1} - δ_s|  for every post-period step t >= 0},

a post-period step of the differential trend is at most M̄ times the largest step seen before the reference
period. The estimand is θ = l'τ_post (here: the mean of the post-period effects in a target window).

What this module computes, for each M̄:

* the **identified set** at the point estimates: Lemma 2.1 of the paper, two linear programs per polyhedron
  of the finite union Δ^RM(M̄) = ∪_{s, ±} Δ^RM_{s,±}(M̄) (footnote 9), and their union;
* a **robust 95 % confidence interval**: the union over the polyhedra of the confidence sets of the
  Andrews, Roth & Pakes (2023) conditional-least-favourable hybrid test ("C-LF", first-stage size
  κ = α/10, least-favourable critical value from ``sims`` simulated draws), inverted on a grid of
  ``grid_points`` values of θ; only the moments that involve post-period coefficients enter the test
  (HonestDiD's ``postPeriodMomentsOnly``). This is the method HonestDiD uses by default for Δ^RM
  (``createSensitivityResults_relativeMagnitudes(method = "C-LF")``);
* the **breakdown M̄**: the smallest M̄ at which the robust test no longer rejects θ = 0, i.e. 0 is in the
  robust confidence set (bisection on M̄ to ``tolerance``, assuming, as the nesting of Δ^RM(M̄) suggests,
  that a larger M̄ never rejects what a smaller one accepts). It equals the M̄ where the reported interval
  first covers 0 whenever the confidence set is an interval; a note says so when it is not.

The code is a port of the R package HonestDiD 0.2.8 (asheshrambachan/HonestDiD, ``R/deltarm.R`` and
``R/arp-nuisance.R``), checked against moderndid 0.4.1's Python port (PyPI), whose numbers it reproduces
(``tests/analysis/estimate/test_honest.py``); linear programs are solved with ``scipy.optimize.linprog``
(HiGHS). Where the two differ this module follows moderndid 0.4.1: the θ grid is its
``relative_magnitudes_grid_bounds`` (R centres ±20 standard errors on 0, which cuts the interval when the
identified set lies far from 0 or M̄ is large). What is computed differently, with the same result:

* HonestDiD tests every grid point with every polyhedron; only the smallest and largest accepted θ are
  reported, so a polyhedron is tested only outside the interval the others already accept, and only where
  its statistic η*(θ) lies between 0 (never rejected) and a Bonferroni bound on every least-favourable
  critical value (always rejected): both regions are intervals of θ, since η* is convex in θ;
* the truncation points HonestDiD finds by bisection on the dual program are each one linear program
  (see :func:`_dual_truncations`);
* the programs of one step (the least-favourable simulations, the grid of θ) are solved as one
  block-diagonal program: the blocks share no variable, so its optimum is the optimum of every block.

The event-study coefficients must be on consecutive periods (months, quarters, or bins of months; see
:func:`bin_event_study`) with one reference period normalised to 0 and left out: periods before it are the
pre-periods, periods after it the post-periods (months between a reference set before an anticipation dip and
the start are post-periods, as HonestDiD treats anticipation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import optimize, sparse, stats

#: Relative-magnitude bounds reported by default.
DEFAULT_M_BARS: tuple[float, ...] = (0.5, 1.0, 2.0)

_TOL_LAMBDA = 1e-6  # a Lagrange multiplier above this marks a binding moment (HonestDiD's tol_lambda)
#: How far the dual program's value may exceed c and c still count as a solution (HonestDiD's tol_equality).
_TOL_DUAL = 1e-6


@dataclass(frozen=True, slots=True)
class EventStudy:
    """Event-study coefficients relative to one reference period, with their covariance matrix.

    Parameters
    ----------
    times
        The period of each coefficient (event month, quarter or bin index), increasing, without the reference.
    estimates
        One coefficient per period.
    vcov
        Their covariance matrix (symmetric, positive semi-definite; singular is fine).
    reference
        The period normalised to 0 and left out of ``times``. ``None`` for a study normalised otherwise (e.g.
        to the mean of months -15..-13, every month with a coefficient): such a study can only be binned
        (:func:`bin_event_study` with ``reference_bin``), which gives it a reference.
    labels
        How the report names each period (defaults to the period number).
    """

    times: tuple[int, ...]
    estimates: np.ndarray
    vcov: np.ndarray
    reference: int | None
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        times = tuple(int(t) for t in self.times)
        object.__setattr__(self, "times", times)
        estimates = np.asarray(self.estimates, dtype=float).reshape(-1)
        vcov = np.asarray(self.vcov, dtype=float)
        object.__setattr__(self, "estimates", estimates)
        object.__setattr__(self, "vcov", vcov)
        if not self.labels:
            object.__setattr__(self, "labels", tuple(str(t) for t in times))
        if len(times) != estimates.size or vcov.shape != (estimates.size, estimates.size):
            raise ValueError(
                f"{len(times)} periods, {estimates.size} estimates and a {vcov.shape} covariance "
                "matrix: give one estimate per period and a square covariance matrix of that size"
            )
        if len(self.labels) != len(times):
            raise ValueError("give one label per period (or none)")
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("event-study periods must be strictly increasing")
        if self.reference is not None and self.reference in times:
            raise ValueError(
                f"the reference period {self.reference} is normalised to 0: leave it out of the coefficients"
            )
        if not (np.isfinite(estimates).all() and np.isfinite(vcov).all()):
            raise ValueError(
                "estimates and covariance must be finite (drop periods without an estimate first)"
            )
        if not np.allclose(
            vcov, vcov.T, rtol=1e-8, atol=1e-12 * max(1.0, float(np.abs(vcov).max(initial=0)))
        ):
            raise ValueError("the covariance matrix is not symmetric")
        if estimates.size and np.linalg.eigvalsh((vcov + vcov.T) / 2).min() < -1e-10 * max(
            1.0, float(np.abs(vcov).max())
        ):
            raise ValueError("the covariance matrix is not positive semi-definite")

    @property
    def pre(self) -> np.ndarray:
        """Positions of the pre-periods (before the reference)."""
        return np.flatnonzero(np.asarray(self.times) < self._reference())

    @property
    def post(self) -> np.ndarray:
        """Positions of the post-periods (after the reference)."""
        return np.flatnonzero(np.asarray(self.times) > self._reference())

    def _reference(self) -> int:
        if self.reference is None:
            raise ValueError("the study has no reference period: bin it (bin_event_study with reference_bin)")
        return self.reference

    def to_frame(self) -> pl.DataFrame:
        """One row per coefficient: period, label, estimate, standard error."""
        return pl.DataFrame(
            {
                "time": list(self.times),
                "label": list(self.labels),
                "estimate": self.estimates,
                "se": np.sqrt(np.clip(np.diag(self.vcov), 0, None)),
            },
            schema={"time": pl.Int64, "label": pl.String, "estimate": pl.Float64, "se": pl.Float64},
        )


def bin_event_study(
    study: EventStudy,
    /,
    *,
    width: int,
    origin: int = 0,
    reference_bin: int | None = None,
) -> EventStudy:
    """Average consecutive periods into bins and re-reference to one bin (an exact linear transform).

    Bin ``b`` holds periods ``origin + b*width .. origin + (b+1)*width - 1``; its coefficient is the mean of
    those periods' coefficients (the original reference period counts as 0), minus the mean of the
    ``reference_bin``, so the binned study is relative to that bin's average (e.g. the mean of months
    -15..-13 before an Ashenfelter dip). Subtracting the reference bin removes any constant the original
    normalisation added, so the result does not depend on it (a study normalised to a mean of months, with
    ``reference=None``, bins the same way). Bins with a period missing are dropped: they are never averaged
    over fewer periods than the others. Labels are the bins' month ranges (``"12..14"``).

    Parameters
    ----------
    study
        A monthly (or finer) event study.
    width
        Periods per bin (3 turns months into quarters).
    origin
        A period where a bin starts (0: bins ..., -3..-1, 0..2, 3..5, ...).
    reference_bin
        The bin normalised to 0; default the bin holding ``study.reference`` (required without one).

    Returns
    -------
    EventStudy
        Coefficients per bin (bin indices as periods, ``reference_bin`` left out) with labels.
    """
    if width < 1:
        raise ValueError("width must be a positive number of periods")
    extra = () if study.reference is None else (study.reference,)
    times = np.array((*study.times, *extra))
    values = np.concatenate([study.estimates, np.zeros(len(extra))])
    cov = np.zeros((values.size, values.size))
    cov[: len(study.times), : len(study.times)] = study.vcov
    bins = np.floor_divide(times - origin, width)
    if reference_bin is None:
        if study.reference is None:
            raise ValueError("a study without a reference period needs reference_bin")
        reference_bin = int(np.floor_divide(study.reference - origin, width))
    complete = [int(b) for b in np.unique(bins) if (bins == b).sum() == width]
    if reference_bin not in complete:
        raise ValueError(
            f"the reference bin {reference_bin} (periods {origin + reference_bin * width}.."
            f"{origin + (reference_bin + 1) * width - 1}) lacks coefficients; choose a complete bin"
        )
    weights = np.zeros((len(complete), values.size))
    for row, b in enumerate(complete):
        weights[row, bins == b] = 1.0 / width
    weights -= weights[complete.index(reference_bin)]
    keep = [i for i, b in enumerate(complete) if b != reference_bin]
    weights = weights[keep]
    out = [complete[i] for i in keep]
    labels = tuple(f"{origin + b * width}..{origin + (b + 1) * width - 1}" for b in out)
    return EventStudy(tuple(out), weights @ values, weights @ cov @ weights.T, reference_bin, labels)


@dataclass(frozen=True, slots=True)
class RelativeMagnitudeBound:
    """Identified set and robust confidence interval of θ for one M̄ (``nan`` bounds: empty set)."""

    m_bar: float
    id_lower: float
    id_upper: float
    ci_lower: float
    ci_upper: float

    @property
    def includes_zero(self) -> bool:
        """Whether the robust interval contains 0 (the effect is not robust at this M̄)."""
        return bool(self.ci_lower <= 0.0 <= self.ci_upper)


@dataclass(frozen=True, slots=True)
class HonestDiD:
    """Rambachan & Roth relative-magnitude sensitivity of a pooled post-period effect.

    ``estimate``, ``se``, ``ci_lower``/``ci_upper`` are the conventional estimate of θ = l'β_post and its
    95 % interval (parallel trends exact). ``breakdown_m_bar`` is the smallest M̄ at which the robust test
    no longer rejects θ = 0 (to the search's tolerance): 0.0 when the conventional interval already covers 0;
    ``None`` when even M̄ = ``breakdown_searched_to`` rejects.
    """

    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    bounds: tuple[RelativeMagnitudeBound, ...]
    breakdown_m_bar: float | None
    breakdown_searched_to: float
    max_pre_step: float  # the largest |β_{s+1} - β_s| before the reference: what M̄ = 1 allows per post step
    pre_periods: tuple[int, ...]
    post_periods: tuple[int, ...]
    target: tuple[int, ...]
    alpha: float
    grid_points: int
    sims: int
    seed: int
    method: str = "C-LF (Andrews, Roth & Pakes 2023 conditional-least-favourable hybrid), relative magnitudes"
    notes: tuple[str, ...] = field(default=())

    def to_frame(self) -> pl.DataFrame:
        """One row for the conventional interval (``m_bar`` null) and one per M̄."""
        rows = [
            {
                "m_bar": None,
                "kind": "conventional",
                "id_lower": self.estimate,
                "id_upper": self.estimate,
                "ci_lower": self.ci_lower,
                "ci_upper": self.ci_upper,
            }
        ]
        rows += [
            {
                "m_bar": b.m_bar,
                "kind": "relative magnitudes",
                "id_lower": b.id_lower,
                "id_upper": b.id_upper,
                "ci_lower": b.ci_lower,
                "ci_upper": b.ci_upper,
            }
            for b in self.bounds
        ]
        schema = {
            "m_bar": pl.Float64,
            "kind": pl.String,
            "id_lower": pl.Float64,
            "id_upper": pl.Float64,
            "ci_lower": pl.Float64,
            "ci_upper": pl.Float64,
        }
        return pl.DataFrame(rows, schema=schema).with_columns(estimate=pl.lit(self.estimate))


# --- the restriction set -------------------------------------------------------------------------------


def _rm_constraints(n_pre: int, n_post: int, m_bar: float, step: int, positive: bool) -> np.ndarray:
    """Return ``A`` with ``A δ <= 0`` iff δ is in Δ^RM_{step,±}(M̄) (HonestDiD's ``.create_A_RM``).

    ``step`` (0..n_pre-1) is the pre-period step taken as the largest: between positions ``step`` and
    ``step + 1`` of (δ_pre, δ_ref = 0, δ_post); ``positive`` says that step is an increase. Columns are the
    coefficients without the reference.
    """
    total = n_pre + n_post + 1
    diff = np.zeros((n_pre + n_post, total))
    rows = np.arange(n_pre + n_post)
    diff[rows, rows], diff[rows, rows + 1] = -1.0, 1.0
    largest = np.zeros(total)
    largest[step], largest[step + 1] = -1.0, 1.0
    if not positive:
        largest = -largest
    bound = np.vstack([np.tile(largest, (n_pre, 1)), np.tile(m_bar * largest, (n_post, 1))])
    a = np.vstack([diff - bound, -diff - bound])
    a = a[(a**2).sum(axis=1) > 1e-10]
    return np.delete(a, n_pre, axis=1)


def _polyhedra(n_pre: int, n_post: int, m_bar: float) -> list[np.ndarray]:
    """Δ^RM(M̄) as the union of its 2 x n_pre polyhedra (footnote 9 of Rambachan & Roth)."""
    return [
        _rm_constraints(n_pre, n_post, m_bar, step, positive)
        for step in range(n_pre)
        for positive in (True, False)
    ]


def _identified_set(
    beta: np.ndarray, l_post: np.ndarray, n_pre: int, n_post: int, m_bar: float
) -> tuple[float, float]:
    """Union over the polyhedra of [l'β_post - max l'δ_post, l'β_post - min l'δ_post] with δ_pre = β_pre."""
    theta = float(l_post @ beta[n_pre:])
    objective = np.concatenate([np.zeros(n_pre), l_post])
    equality = np.hstack([np.eye(n_pre), np.zeros((n_pre, n_post))])
    free = [(None, None)] * (n_pre + n_post)
    lower, upper = math.inf, -math.inf
    for a in _polyhedra(n_pre, n_post, m_bar):
        low = optimize.linprog(
            objective,
            A_ub=a,
            b_ub=np.zeros(a.shape[0]),
            A_eq=equality,
            b_eq=beta[:n_pre],
            bounds=free,
            method="highs",
        )
        high = optimize.linprog(
            -objective,
            A_ub=a,
            b_ub=np.zeros(a.shape[0]),
            A_eq=equality,
            b_eq=beta[:n_pre],
            bounds=free,
            method="highs",
        )
        if low.status == 0 and high.status == 0:  # infeasible: β_pre's largest step is not this one
            lower, upper = min(lower, theta + high.fun), max(upper, theta - low.fun)
    return lower, upper


# --- the ARP conditional / least-favourable hybrid test ------------------------------------------------


def _gamma(l_post: np.ndarray) -> np.ndarray:
    """Build an invertible matrix with first row l' (other rows unit vectors, the largest |l_i| left out)."""
    n = l_post.size
    drop = int(np.argmax(np.abs(l_post)))
    gamma = np.zeros((n, n))
    gamma[0] = l_post
    others = [i for i in range(n) if i != drop]
    gamma[np.arange(1, n), others] = 1.0
    return gamma


def _min_eta(ys: np.ndarray, x: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every row y of ``ys``: η* = min over (η, ξ) of η s.t. y - X ξ <= sd η, and its multipliers λ.

    The rows are independent programs; they are solved as one block-diagonal program (sparse), with a
    program-by-program fallback when the joint solve fails.
    """
    n, m = ys.shape
    k = x.shape[1]
    block = -np.column_stack([sd, x])
    cost = np.zeros(k + 1)
    cost[0] = 1.0
    joint = optimize.linprog(
        np.tile(cost, n),
        A_ub=sparse.kron(sparse.eye(n, format="csr"), sparse.csr_matrix(block), format="csr"),
        b_ub=-ys.reshape(-1),
        bounds=[(None, None)] * (n * (k + 1)),
        method="highs-ds",
    )
    if joint.status == 0:
        eta = joint.x.reshape(n, k + 1)[:, 0]
        return eta, (-joint.ineqlin.marginals).reshape(n, m)
    eta, lam = np.full(n, np.nan), np.zeros((n, m))
    for i in range(n):
        one = optimize.linprog(
            cost, A_ub=block, b_ub=-ys[i], bounds=[(None, None)] * (k + 1), method="highs-ds"
        )
        if one.status == 0:
            eta[i], lam[i] = one.x[0], -one.ineqlin.marginals
    return eta, lam


def _upper_quantile(draws: np.ndarray, x: np.ndarray, sd: np.ndarray, p: float) -> float:
    """``np.quantile(η*(draws), p)`` for a high ``p``, solving only the programs that can reach the top.

    η*(ξ) <= max_i (ξ - X τ)_i / sd_i for any nuisance τ (here 0 and the weighted least-squares fit), so the
    programs are solved in decreasing order of that bound until no unsolved draw can enter the order
    statistics the quantile interpolates: the result is that of solving all of them, as HonestDiD does.
    """
    n = draws.shape[0]
    position = (n - 1) * p
    floor = int(math.floor(position))
    top = n - floor  # the quantile needs the `top` largest values
    # two valid bounds (nuisance at 0, and at its weighted least-squares fit); the smaller one prunes more
    weights = 1.0 / sd**2
    fit = np.linalg.lstsq(x * np.sqrt(weights)[:, None], (draws * np.sqrt(weights)).T, rcond=None)[0]
    bound = np.minimum((draws / sd).max(axis=1), ((draws - (x @ fit).T) / sd).max(axis=1))
    order = np.argsort(-bound, kind="stable")
    exact = np.empty(0)
    solved, batch = 0, max(4 * top, 32)
    while True:
        take = order[solved : solved + batch]
        eta, _ = _min_eta(draws[take], x, sd)
        if not np.isfinite(eta).all():  # a failed program: fall back to HonestDiD's way (drop failures)
            every, _ = _min_eta(draws, x, sd)
            every = every[np.isfinite(every)]
            if not every.size:
                raise ValueError("the least-favourable simulations failed: check the covariance matrix")
            return float(np.quantile(every, p))
        exact = np.sort(np.concatenate([exact, eta]))[::-1][:top]
        solved += take.size
        if solved == n or (exact.size == top and exact[-1] >= bound[order[solved]]):
            break
        batch *= 2
    low = exact[n - 1 - floor]
    high = exact[n - 2 - floor] if floor + 1 <= n - 1 else low
    return float(low + (position - floor) * (high - low))


def _truncated_normal_quantile(p: float, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Return the ``p`` quantile of N(0, 1) truncated to [lower, upper] (R: ``TruncatedNormal::norminvp``)."""
    degenerate = upper - lower < 1e-12
    out = np.array(lower, dtype=float, copy=True)
    if (~degenerate).any():
        out[~degenerate] = stats.truncnorm.ppf(p, lower[~degenerate], upper[~degenerate])
    return out


def _dual_truncations(
    etas: np.ndarray, ys: np.ndarray, gammas: np.ndarray, sigma: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Find the truncation points [v_lo, v_up] of the statistic while γ stays an optimal dual vertex.

    HonestDiD (``.vlo_vup_dual_fn``) bisects for the ends of {c : g(c) <= c + tol}, where
    g(c) = max over x >= 0 with W'x = e1 of (s + b c)'x, b = Σγ / γ'Σγ and s = y - b γ'y. By duality
    g(c) <= c + tol iff some u has W u >= s + b c and u_1 <= c + tol, so each end is a linear program over
    (u, c): the same set without the bisection's error. As in HonestDiD, c is searched within
    [min(-100, η - 20 σ), max(100, η + 20 σ)], an end on that range's edge is infinite, and when η itself is
    not in the set the truncation is (η, ∞). One row of ``etas``/``ys``/``gammas`` per test; the programs are
    solved jointly (block-diagonal), one by one when the joint program fails.
    """
    n, width = etas.size, w.shape[1]
    variance = np.einsum("ij,jk,ik->i", gammas, sigma, gammas)
    b = (gammas @ sigma) / variance[:, None]
    s_t = ys - b * np.einsum("ij,ij->i", gammas, ys)[:, None]
    sigma_b = np.sqrt(variance)
    low, high = np.minimum(-100.0, etas - 20 * sigma_b), np.maximum(100.0, etas + 20 * sigma_b)
    first = np.zeros(width + 1)
    first[0], first[-1] = 1.0, -1.0

    def block(i: int) -> np.ndarray:
        return np.vstack([np.column_stack([-w, b[i]]), first])

    def rhs(i: int) -> np.ndarray:
        return np.concatenate([-s_t[i], [_TOL_DUAL]])

    def solve(indices: list[int], sign: float) -> np.ndarray | None:
        cost = np.tile(np.concatenate([np.zeros(width), [sign]]), len(indices))
        bounds = [bound for i in indices for bound in [(None, None)] * width + [(low[i], high[i])]]
        result = optimize.linprog(
            cost,
            A_ub=sparse.block_diag([block(i) for i in indices], format="csr"),
            b_ub=np.concatenate([rhs(i) for i in indices]),
            bounds=bounds,
            method="highs",
        )
        return result.x.reshape(len(indices), width + 1)[:, -1] if result.status == 0 else None

    v_lo, v_up = np.full(n, np.nan), np.full(n, np.nan)
    everyone = list(range(n))
    joint_lo, joint_up = solve(everyone, 1.0), solve(everyone, -1.0)
    if joint_lo is not None and joint_up is not None:
        v_lo[:], v_up[:] = joint_lo, joint_up
    else:
        for i in everyone:
            one_lo, one_up = solve([i], 1.0), solve([i], -1.0)
            if one_lo is not None and one_up is not None:
                v_lo[i], v_up[i] = one_lo[0], one_up[0]
    outside = ~((v_lo - _TOL_DUAL <= etas) & (etas <= v_up + _TOL_DUAL))  # includes the failed (nan) programs
    v_lo = np.where(v_lo <= low + _TOL_DUAL, -np.inf, v_lo)
    v_up = np.where(v_up >= high - _TOL_DUAL, np.inf, v_up)
    return np.where(outside, etas, v_lo), np.where(outside, np.inf, v_up)


def _binding_truncation(
    y: np.ndarray, x: np.ndarray, sigma: np.ndarray, sd: np.ndarray, binding: np.ndarray
) -> tuple[float, float, float]:
    """(v_lo, v_up, σ) of the statistic from the binding moments when they determine the vertex (LICQ)."""
    w_b, w_bc = np.column_stack([sd[binding], x[binding]]), np.column_stack([sd[~binding], x[~binding]])
    eye = np.eye(y.size)
    s_b, s_bc = eye[binding], eye[~binding]
    w_b_inv = np.linalg.inv(w_b)
    gamma_b = w_bc @ w_b_inv @ s_b - s_bc
    v_b = s_b.T @ w_b_inv[0]
    sigma2_b = float(v_b @ sigma @ v_b)
    rho = gamma_b @ sigma @ v_b / sigma2_b
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -gamma_b @ y / rho + float(v_b @ y)
    v_lo = float(bound[rho > 0].max()) if (rho > 0).any() else -math.inf
    v_up = float(bound[rho < 0].min()) if (rho < 0).any() else math.inf
    return v_lo, v_up, math.sqrt(sigma2_b)


def _conditional_rejects(
    etas: np.ndarray,
    ys: np.ndarray,
    lams: np.ndarray,
    x: np.ndarray,
    sigma: np.ndarray,
    sd: np.ndarray,
    *,
    lf_cv: float,
    alpha: float,
    kappa: float,
) -> np.ndarray:
    """Second stage of HonestDiD's ``.lp_conditional_test_fn`` (hybrid "LF") for tests with 0 < η* <= lf_cv.

    The statistic η*/σ is compared with the 1 - (α - κ)/(1 - κ) quantile of a standard normal truncated to
    [v_lo/σ, min(v_up, lf_cv)/σ], the values the statistic can take while the same moments bind.
    """
    size = (alpha - kappa) / (1 - kappa)
    n, k = etas.size, x.shape[1]
    v_lo, v_up, sigma_b = np.zeros(n), np.zeros(n), np.zeros(n)
    dual: list[int] = []
    reject = np.zeros(n, dtype=bool)
    settled = np.zeros(n, dtype=bool)
    for i in range(n):
        binding = lams[i] > _TOL_LAMBDA
        x_b = x[binding]
        full_rank = min(x_b.shape) > 0 and np.linalg.matrix_rank(x_b) == min(x_b.shape)
        if binding.sum() == k + 1 and full_rank:
            v_lo[i], v_up[i], sigma_b[i] = _binding_truncation(ys[i], x, sigma, sd, binding)
            continue
        variance = float(lams[i] @ sigma @ lams[i])
        if abs(variance) < np.finfo(float).eps:
            reject[i], settled[i] = etas[i] > 0, True
            continue
        sigma_b[i] = math.sqrt(variance)
        dual.append(i)
    if dual:
        v_lo[dual], v_up[dual] = _dual_truncations(
            etas[dual], ys[dual], lams[dual], sigma, np.column_stack([sd, x])
        )
    todo = np.flatnonzero(~settled)
    z_lo, z_up = v_lo[todo] / sigma_b[todo], np.minimum(v_up[todo], lf_cv) / sigma_b[todo]
    statistic = etas[todo] / sigma_b[todo]
    inside = (z_lo <= statistic) & (statistic <= z_up)  # outside: the conditioning event fails, no rejection
    critical = np.maximum(0.0, _truncated_normal_quantile(1 - size, z_lo[inside], z_up[inside]))
    reject[todo[inside]] = statistic[inside] > critical
    return reject


class _Polyhedron:
    """One polyhedron's test problem: moments Y(θ) = y - a1 θ, nuisance design X and their covariance.

    The least-favourable critical value is simulated only when a test needs it (many polyhedra never do:
    their statistic is far above any critical value at every θ outside the interval found so far).
    """

    def __init__(
        self,
        a: np.ndarray,
        beta: np.ndarray,
        vcov: np.ndarray,
        l_post: np.ndarray,
        n_pre: int,
        *,
        alpha: float,
        sims: int,
        seed: int,
    ) -> None:
        post = slice(n_pre, None)
        rows = np.flatnonzero((a[:, post] != 0).any(axis=1))  # post-period moments only
        a = a[rows]
        a_gamma = a[:, post] @ np.linalg.inv(_gamma(l_post))
        sigma = a @ vcov @ a.T
        self.sigma = (sigma + sigma.T) / 2
        self.sd = np.sqrt(np.clip(np.diag(self.sigma), 0, None))
        if (self.sd <= 0).any():
            raise ValueError(
                "a post-period moment has zero variance: the covariance matrix of the post-period "
                "coefficients must be positive definite"
            )
        self.y, self.a1, self.x = a @ beta, a_gamma[:, 0], a_gamma[:, 1:]
        self.alpha, self.kappa, self.sims, self.seed = alpha, alpha / 10, sims, seed
        # η(ξ) = max over γ >= 0, γ'sd = 1 of γ'ξ <= max_i ξ_i / sd_i: its 1 - κ quantile is below
        # Bonferroni's
        self.cv_ceiling = float(stats.norm.ppf(1 - self.kappa / rows.size))
        self._cv: float | None = None

    @property
    def lf_cv(self) -> float:
        """The (1 - κ) quantile of η under μ = 0 (HonestDiD's ``.compute_least_favorable_cv``)."""
        if self._cv is None:
            draws = np.random.default_rng(self.seed).multivariate_normal(
                np.zeros(self.y.size), self.sigma, size=self.sims, check_valid="ignore"
            )
            self._cv = _upper_quantile(draws, self.x, self.sd, 1 - self.kappa)
        return self._cv

    def reach(self, level: float) -> tuple[float, float] | None:
        """Return the θ with η*(θ) <= ``level`` (an interval: η* is convex in θ), None when there is none."""
        a_ub = -np.column_stack([self.a1, self.x])
        b_ub = self.sd * level - self.y
        ends = []
        for sign in (1.0, -1.0):
            cost = np.zeros(a_ub.shape[1])
            cost[0] = sign
            result = optimize.linprog(
                cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * cost.size, method="highs"
            )
            if result.status == 2:
                return None
            ends.append(-sign * math.inf if result.status == 3 else float(result.x[0]))
        return ends[0], ends[1]

    def accepts(self, thetas: np.ndarray) -> np.ndarray:
        """Run the hybrid test of each θ: True where it does not reject (η* from one joint program)."""
        ys = self.y[None, :] - thetas[:, None] * self.a1[None, :]
        eta, lam = _min_eta(ys, self.x, self.sd)
        finite = np.isfinite(eta)
        out = ~finite | (eta <= 0)  # a failed program is not a rejection (HonestDiD); η* <= 0 never rejects
        open_ = np.flatnonzero(
            finite & (eta > 0) & (eta <= self.cv_ceiling)
        )  # above it the first stage rejects
        if open_.size:
            open_ = open_[eta[open_] <= self.lf_cv]
        if open_.size:
            out[open_] = ~_conditional_rejects(
                eta[open_],
                ys[open_],
                lam[open_],
                self.x,
                self.sigma,
                self.sd,
                lf_cv=self.lf_cv,
                alpha=self.alpha,
                kappa=self.kappa,
            )
        return out


def _grid_ends(study: EventStudy, l_post: np.ndarray, m_bar: float) -> tuple[float, float]:
    """Return the ends of the θ grid (moderndid 0.4.1's ``relative_magnitudes_grid_bounds``).

    Centred on l'β̂_post; the identified set lies within M̄ Σ_t t|l_t| x (largest pre-period step) of the
    centre, and the margin for sampling error is the larger of 20 standard errors of θ̂ and 6 standard
    errors of the noisiest pre-period step times M̄ Σ_t t|l_t| (which dominates for long post-periods).
    """
    n_pre = study.pre.size
    beta, vcov = study.estimates, study.vcov
    steps = np.diff(np.eye(n_pre + 1)[:, :n_pre], axis=0)
    largest = float(np.abs(steps @ beta[:n_pre]).max())
    largest_sd = float(np.sqrt(np.diag(steps @ vcov[:n_pre, :n_pre] @ steps.T)).max())
    sd_theta = math.sqrt(float(l_post @ vcov[n_pre:, n_pre:] @ l_post))
    reach = m_bar * float(np.arange(1, l_post.size + 1) @ np.abs(l_post))
    half = reach * largest + max(20 * sd_theta, 6 * reach * largest_sd)
    centre = float(l_post @ beta[n_pre:])
    return centre - half, centre + half


def _scan_inwards(poly: _Polyhedron, grid: np.ndarray, index: np.ndarray, accepted: np.ndarray) -> bool:
    """Test ``grid[index]`` in order, in growing chunks, until a chunk has an accepted θ (marked in place).

    Only the outermost accepted θ on each side matters for the hull, so the points behind it need no test.
    """
    start, size = 0, 32
    while start < index.size:
        chunk = index[start : start + size]
        result = poly.accepts(grid[chunk])
        if result.any():
            accepted[chunk[result]] = True
            return True
        start, size = start + size, 2 * size
    return False


def _accepts_zero(
    study: EventStudy, l_post: np.ndarray, m_bar: float, *, alpha: float, sims: int, seed: int
) -> bool:
    """Whether some polyhedron's test accepts θ = 0 at ``m_bar`` (0 is in the robust confidence set)."""
    beta, vcov = study.estimates, study.vcov
    n_pre, n_post = study.pre.size, study.post.size
    for step, positive in _likely_first(beta, n_pre):
        poly = _Polyhedron(
            _rm_constraints(n_pre, n_post, m_bar, step, positive),
            beta,
            vcov,
            l_post,
            n_pre,
            alpha=alpha,
            sims=sims,
            seed=seed,
        )
        reach = poly.reach(poly.cv_ceiling)
        if reach is None or not reach[0] <= 0.0 <= reach[1]:
            continue
        sure = poly.reach(0.0)
        if (sure is not None and sure[0] < 0.0 < sure[1]) or poly.accepts(np.zeros(1))[0]:
            return True
    return False


def _likely_first(beta: np.ndarray, n_pre: int) -> list[tuple[int, bool]]:
    """Order the (step, sign) polyhedra: the ones whose step is largest in β̂ first (they accept most)."""
    steps = np.diff(np.concatenate([beta[:n_pre], [0.0]]))
    pairs = [(step, positive) for step in range(n_pre) for positive in (True, False)]
    return sorted(pairs, key=lambda p: -steps[p[0]] if p[1] else steps[p[0]])


def _robust_bound(
    study: EventStudy,
    l_post: np.ndarray,
    m_bar: float,
    *,
    alpha: float,
    grid_points: int,
    sims: int,
    seed: int,
) -> tuple[RelativeMagnitudeBound, bool]:
    """Compute the identified set and robust interval at one M̄: the hull of θ any polyhedron accepts.

    HonestDiD tests every grid point with every polyhedron and reports the smallest and the largest accepted
    θ. The same two numbers follow from fewer tests: per polyhedron only the grid points outside the hull
    found so far matter; of those, the ones where η*(θ) <= 0 are accepted and the ones where η*(θ) exceeds a
    bound on every critical value are rejected whatever the test (both sets are intervals of θ found by
    linear programs), so only the points in between are tested.
    """
    beta, vcov = study.estimates, study.vcov
    n_pre, n_post = study.pre.size, study.post.size
    id_lower, id_upper = _identified_set(beta, l_post, n_pre, n_post, m_bar)
    low_end, high_end = _grid_ends(study, l_post, m_bar)
    grid = np.linspace(low_end, high_end, grid_points)
    margin = 1e-9 * (high_end - low_end)
    accepted = np.zeros(grid_points, dtype=bool)
    for step, positive in _likely_first(beta, n_pre):
        hull = np.zeros(grid_points, dtype=bool)
        if accepted.any():
            hit = np.flatnonzero(accepted)
            hull[hit[0] : hit[-1] + 1] = True
        poly = _Polyhedron(
            _rm_constraints(n_pre, n_post, m_bar, step, positive),
            beta,
            vcov,
            l_post,
            n_pre,
            alpha=alpha,
            sims=sims,
            seed=seed,
        )
        reach = poly.reach(poly.cv_ceiling)
        if reach is None:
            continue
        todo = ~hull & (grid >= reach[0] - margin) & (grid <= reach[1] + margin)
        if not todo.any():
            continue
        sure = poly.reach(0.0)
        if sure is not None:
            inside = todo & (grid > sure[0] + margin) & (grid < sure[1] - margin)
            accepted |= inside
            todo &= ~inside
        index = np.flatnonzero(todo)
        if not index.size:
            continue
        if accepted.any():
            hit = np.flatnonzero(accepted)
            _scan_inwards(poly, grid, index[index < hit[0]], accepted)
            _scan_inwards(poly, grid, index[index > hit[-1]][::-1], accepted)
        elif _scan_inwards(poly, grid, index, accepted):
            hit = np.flatnonzero(accepted)
            _scan_inwards(poly, grid, index[index > hit[-1]][::-1], accepted)
    if not accepted.any():
        return RelativeMagnitudeBound(m_bar, id_lower, id_upper, math.nan, math.nan), False
    hit = np.flatnonzero(accepted)
    edge = bool(hit[0] == 0 or hit[-1] == grid_points - 1)
    return RelativeMagnitudeBound(m_bar, id_lower, id_upper, float(grid[hit[0]]), float(grid[hit[-1]])), edge


def relative_magnitudes(
    study: EventStudy,
    /,
    *,
    target: Sequence[int] | None = None,
    m_bars: Sequence[float] = DEFAULT_M_BARS,
    alpha: float = 0.05,
    grid_points: int = 1000,
    sims: int = 1000,
    seed: int = 0,
    breakdown: bool = True,
    breakdown_max: float = 10.0,
    tolerance: float = 0.01,
) -> HonestDiD:
    """Honest-DiD sensitivity of the mean post-period effect over ``target`` under Δ^RM(M̄).

    Parameters
    ----------
    study
        Event-study coefficients and covariance (at least two pre- and two post-periods; bin months first
        with :func:`bin_event_study` when there are many: the cost grows with pre-periods x post-periods).
    target
        The post-periods averaged into θ (equal weights); default every post-period.
    m_bars
        The M̄ values reported.
    alpha
        1 - confidence level.
    grid_points
        Values of θ tested per M̄ (HonestDiD's default 1000; the interval ends are exact to one grid step).
    sims
        Simulated draws for each least-favourable critical value (HonestDiD's default 1000).
    seed
        Seed of those draws (the same for every polyhedron, as in HonestDiD).
    breakdown
        Also search the breakdown M̄ (about ``log2(1 / tolerance)`` tests of θ = 0, each far cheaper than an
        interval).
    breakdown_max
        Largest M̄ searched.
    tolerance
        Precision of the breakdown M̄.

    Returns
    -------
    HonestDiD
        Conventional estimate and interval, identified set and robust interval per M̄, breakdown M̄.
    """
    pre, post = study.pre, study.post
    times = np.asarray(study.times)
    if pre.size < 2 or post.size < 2:
        raise ValueError(
            f"relative magnitudes need at least two pre- and two post-period coefficients (have "
            f"{pre.size} and {post.size}); the reference must lie between them"
        )
    if not (
        np.array_equal(times[pre], np.arange(study.reference - pre.size, study.reference))
        and np.array_equal(times[post], np.arange(study.reference + 1, study.reference + 1 + post.size))
    ):
        raise ValueError(
            "the coefficients must cover consecutive periods on both sides of the reference "
            "(bin the event study or drop the gap first)"
        )
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if grid_points < 10 or sims < 100:
        raise ValueError("use at least 10 grid points and 100 simulations")
    if any(m < 0 for m in m_bars) or breakdown_max <= 0 or tolerance <= 0:
        raise ValueError(
            "M̄ values, breakdown_max and tolerance must be non-negative (positive for the last two)"
        )
    post_times = times[post]
    chosen = post_times if target is None else np.asarray(sorted(set(int(t) for t in target)))
    if not chosen.size or not np.isin(chosen, post_times).all():
        raise ValueError(
            f"target periods {chosen.tolist()} must be post-periods ({post_times.min()}..{post_times.max()})"
        )
    l_post = np.isin(post_times, chosen).astype(float) / chosen.size
    vcov_post = study.vcov[np.ix_(post, post)]
    estimate = float(l_post @ study.estimates[post])
    se = math.sqrt(float(l_post @ vcov_post @ l_post))
    z = float(stats.norm.ppf(1 - alpha / 2))
    notes: list[str] = []
    options = {"alpha": alpha, "grid_points": grid_points, "sims": sims, "seed": seed}
    results: dict[float, RelativeMagnitudeBound] = {}

    def at(m_bar: float) -> RelativeMagnitudeBound:
        if m_bar not in results:
            bound, edge = _robust_bound(study, l_post, m_bar, **options)
            if edge:
                notes.append(f"M̄ = {m_bar:g}: the robust interval reaches the end of the θ grid")
            results[m_bar] = bound
        return results[m_bar]

    bounds = tuple(at(float(m)) for m in m_bars)
    zero: dict[float, bool] = {}

    def rejects_zero(m_bar: float) -> bool:
        if m_bar not in zero:
            zero[m_bar] = not _accepts_zero(study, l_post, m_bar, alpha=alpha, sims=sims, seed=seed)
        return zero[m_bar]

    breakdown_m: float | None = None
    if breakdown:
        if estimate - z * se <= 0 <= estimate + z * se or not rejects_zero(0.0):
            breakdown_m = 0.0
        else:
            low, high = 0.0, None
            for m in sorted(float(m) for m in m_bars if m > 0):
                if not rejects_zero(m):
                    high = m
                    break
                low = m
            while high is None and low < breakdown_max:
                candidate = min(breakdown_max, max(2 * low, 0.5))
                if rejects_zero(candidate):
                    low = candidate
                else:
                    high = candidate
            if high is not None:
                while high - low > tolerance:
                    middle = (low + high) / 2
                    if rejects_zero(middle):
                        low = middle
                    else:
                        high = middle
                breakdown_m = high
        for bound in bounds:
            if bound.m_bar in zero and bound.includes_zero == zero[bound.m_bar]:
                notes.append(
                    f"M̄ = {bound.m_bar:g}: the test of θ = 0 and the interval's hull disagree (the robust "
                    "confidence set is not an interval)"
                )
    pre_steps = np.diff(np.concatenate([study.estimates[pre], [0.0]]))
    return HonestDiD(
        estimate=estimate,
        se=se,
        ci_lower=estimate - z * se,
        ci_upper=estimate + z * se,
        bounds=bounds,
        breakdown_m_bar=breakdown_m,
        breakdown_searched_to=breakdown_max,
        max_pre_step=float(np.abs(pre_steps).max()),
        pre_periods=tuple(int(t) for t in times[pre]),
        post_periods=tuple(int(t) for t in post_times),
        target=tuple(int(t) for t in chosen),
        notes=tuple(notes),
        **options,
    )
