"""Difference-in-differences and event study on the stacked matched sample.

Model (weighted least squares): for stacked unit ``i`` (a person in one cohort's stack) at event time ``e``

    y_ie = a_i + l_(cohort, e) + sum_{k != ref} b_k * treated_i * 1[e = k] + u_ie

with unit fixed effects ``a_i`` and stack x event-time fixed effects ``l`` (calendar-month effects within
each cohort's stack), absorbed exactly (:class:`TwoWayAbsorber`); standard errors are clustered by
person (a person can appear in several stacks), with statsmodels' cluster formula (the tests compare the
two on the same data; the design is never handed to statsmodels itself because at population scale its
copies of a 5 M x 60 design would not fit in memory). The pooled DiD replaces the event dummies by one
``treated x post`` term, comparing the post window with the whole pre-period. The pre-trend test is the
joint Wald test that every pre-period coefficient is zero.

The reference of the event study is one omitted month (``reference=-1``, the default) or the mean of a window
of months (``reference=(-15, -13)``: before an Ashenfelter dip, as the effect report uses it): the study is
then fitted with one month of the window omitted and re-normalised exactly (every coefficient minus the
window's mean, the clustered covariance and the influence functions transformed with it), so every month,
the reference months and the month before the start included, gets an estimate and a standard error. The
pre-trend test then covers a chosen window of months (``pretrend``), leaving out months that are known to
differ (``exclude``: the transition month itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from analysis.estimate.inference import z_critical
from analysis.estimate.power import mde_from_se
from analysis.schema import EVENT_STUDY

#: Event-time windows of the binned pre-trend test (EventStudyResult.pretrend_test): the year-long windows
#: of the match's history, then the months before the transition month in two halves.
PRETREND_BINS = ((-36, -25), (-24, -13), (-12, -7), (-6, -2))

_NEEDED = ("unit", "person_id", "stack_time", "event_time", "treated", "weight")

#: Columns of a pooled DiD estimate (one row of :meth:`DidResult.to_frame`, one level of a subgroup fit).
_ESTIMATE = {"estimate": pl.Float64, "se": pl.Float64, "ci_lower": pl.Float64, "ci_upper": pl.Float64,
             "n_treated": pl.Int64, "n_controls": pl.Int64, "mde": pl.Float64}


@dataclass(frozen=True, slots=True)
class EventStudyResult:
    """Coefficients by event time with the pre-trend test, and the options they were estimated with."""

    table: pl.DataFrame  # analysis.schema.EVENT_STUDY
    pretrend_stat: float  # Wald chi-squared of the pre-period coefficients
    pretrend_df: int
    pretrend_p: float
    n_obs: int
    outcome: str
    reference: int  # the omitted event time (estimate 0)
    window: tuple[int, int]  # first and last event time of the stacked panel
    alpha: float
    #: Person-level influence functions of the coefficients (``event_study(..., influence=True)``): columns
    #: ``person_id``, ``event_time``, ``influence``. The sum over persons of the products of two
    #: coefficients' influences is their clustered covariance, so stacking them by person across outcomes
    #: gives the joint covariance of several outcomes' event studies (as Stata's ``suest`` does).
    influence: pl.DataFrame | None = None
    #: The months of the pre-trend test (before ``exclude`` is taken out of them).
    pretrend_window: tuple[int, int] | None = None
    #: Months left out of the pre-trend test (the transition month), still estimated and shown.
    exclude: tuple[int, ...] = ()
    #: Every event time of ``table``, its estimate (0 for an omitted month) and their clustered covariance
    #: (a zero row and column for an omitted month): any linear combination ``l`` of the coefficients has
    #: estimate ``l @ params`` and variance ``l @ cov @ l`` (phases, bins, honest DiD).
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    params: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    def to_frame(self) -> pl.DataFrame:
        """Return the coefficients by event time (``analysis.schema.EVENT_STUDY``)."""
        return self.table

    @property
    def reference_months(self) -> tuple[int, int]:
        """The first and last month whose mean is normalised to 0 (one month: both the same)."""
        return _window(self.reference)

    def pretrend_test(self, bins: Sequence[tuple[int, int]] | None = None, /, *,
                      window: tuple[int, int] | None = None) -> tuple[float, int, float]:
        """Wald test that pre-period coefficients are zero: (chi-squared, degrees of freedom, p).

        The months tested are ``window`` (default: the study's ``pretrend_window``) without the ``exclude``
        months. With ``bins`` (event-time windows), the test is that the mean coefficient of every bin is
        zero (a few averaged restrictions instead of one per month, whose clustered covariance is estimated
        more precisely); a bin's excluded months are left out of its mean.
        """
        lo, hi = window or self.pretrend_window or (int(self.times.min()), self.reference_months[0] - 1)
        tested = (self.times >= lo) & (self.times <= hi) & ~np.isin(self.times, self.exclude)
        if bins is None:
            rows = np.eye(self.times.size)[tested]
        else:
            inside = np.array([(self.times >= a) & (self.times <= b) & tested for a, b in bins], dtype=float)
            inside = inside[inside.sum(axis=1) > 0] if inside.size else inside.reshape(0, self.times.size)
            rows = inside / inside.sum(axis=1, keepdims=True) if inside.size else inside
        return wald(rows @ self.params, rows @ self.cov @ rows.T, clusters=self.fewest_treated(tested))

    def fewest_treated(self, months: np.ndarray, /) -> int | None:
        """Return the fewest participants seen at any of ``months`` (a mask of :attr:`times`; None: unknown).

        The clustered covariance of the coefficients is, to first order, the participants' sample
        covariance (a few hundred of them against thousands of weighted comparisons), so they are the
        clusters of the pre-trend tests' small-sample reference (:func:`wald`).
        """
        return _fewest_treated(self.table, self.times[months])

    def combination(self, weights: dict[int, float], /) -> tuple[float, float]:
        """Estimate and standard error of ``sum(w * coefficient(e))`` over event times ``e``."""
        index = {int(t): i for i, t in enumerate(self.times)}
        missing = [e for e in weights if e not in index]
        if missing:
            raise ValueError(f"event times {missing} are not in the study's window {self.window}")
        ell = np.zeros(self.times.size)
        for e, w in weights.items():
            ell[index[e]] += w
        return float(ell @ self.params), float(np.sqrt(max(float(ell @ self.cov @ ell), 0.0)))


@dataclass(frozen=True, slots=True)
class DidResult:
    """One pooled DiD (:func:`pooled_did`): the estimate with its n and the windows it compares.

    The estimate fields are None when the DiD is not identified (no participants or comparisons in the
    post window, no pre-period rows, or a degenerate standard error).
    """

    outcome: str
    estimate: float | None
    se: float | None
    ci_lower: float | None
    ci_upper: float | None
    n_treated: int  # participants (persons) in the post window
    n_controls: int  # comparison persons in the post window
    mde: float | None
    n_obs: int  # stacked rows in the two windows
    post: tuple[int, int]
    pre: tuple[int, int]
    alpha: float

    def to_frame(self) -> pl.DataFrame:
        """Return one row: ``outcome``, estimate, se, CI, n_treated, n_controls, mde and ``n_obs``."""
        row = {"outcome": self.outcome, **{c: getattr(self, c) for c in _ESTIMATE}, "n_obs": self.n_obs}
        return pl.DataFrame([row], schema={"outcome": pl.String, **_ESTIMATE, "n_obs": pl.Int64})


@dataclass(frozen=True, slots=True)
class SubgroupDidResult:
    """Pooled DiDs by level of one dimension (:func:`subgroup_did`), all from one fit.

    ``levels`` has one row per level: ``level``, estimate, se, CI, n_treated, n_controls, mde (null
    estimates where the level is not identified).
    """

    outcome: str
    dimension: str
    levels: pl.DataFrame
    n_obs: int  # stacked rows in the two windows (shared by every level)
    post: tuple[int, int]
    pre: tuple[int, int]
    alpha: float

    def to_frame(self) -> pl.DataFrame:
        """Return the per-level estimates."""
        return self.levels


def _check(stacked: pl.DataFrame, outcome: str) -> None:
    missing = [c for c in (*_NEEDED, outcome) if c not in stacked.columns]
    if missing:
        raise ValueError(
            f"stacked panel lacks columns {missing} (see analysis.estimate.matching.stacked_panel)"
        )
    if stacked.height == 0:
        raise ValueError("the stacked panel is empty")
    groups = stacked["treated"].unique().to_list()
    if sorted(groups) != [0, 1]:
        raise ValueError(f"the stacked panel needs treated and comparison units, has treated values {groups}")


class TwoWayAbsorber:
    """Exact weighted two-way fixed-effects residuals (Frisch-Waugh-Lovell), reusable across columns.

    The residual of ``x`` on dummies of ``fe1`` (units) and ``fe2`` (cells) is
    ``x1 - (T g - unit mean of T g)`` with ``x1 = x - unit mean of x`` and ``g`` solving
    ``(T' W M_U T) g = T' W x1``. That cell system is sparse and block diagonal (one block per connected
    set of units and cells: in a stacked design, one per stack, at most one block per event window), so
    each block's pseudo-inverse is computed once and every column then costs a few sparse products.
    Unlike alternating projections, the cost does not depend on how unbalanced the panel is (at population
    scale: 5.5 M rows x 61 columns in seconds instead of minutes).
    """

    def __init__(self, fe1: np.ndarray, fe2: np.ndarray, w: np.ndarray, /, *, max_block: int = 4_000) -> None:
        """Factor the cell system of ``fe1``/``fe2`` (dense integer codes) and weights ``w``.

        ``max_block`` is the largest connected block of cells solved densely; a design with a larger one
        falls back to alternating projections (a stacked event window never comes close).
        """
        fe1, fe2, w = np.asarray(fe1, np.int64), np.asarray(fe2, np.int64), np.asarray(w, float)
        n = w.size
        if not (fe1.size == fe2.size == n):
            raise ValueError(f"fe1, fe2 and w must have the same length, got {fe1.size}, {fe2.size}, {n}")
        self.fe1, self.fe2, self.w = fe1, fe2, w
        g1, g2 = int(fe1.max()) + 1, int(fe2.max()) + 1
        rows = np.arange(n)
        self._unit_sum = sparse.csr_matrix((w, (fe1, rows)), shape=(g1, n))
        self._cell_sum = sparse.csr_matrix((w, (fe2, rows)), shape=(g2, n))
        w1 = np.bincount(fe1, weights=w, minlength=g1)
        self._inv1 = np.divide(1.0, w1, out=np.zeros_like(w1), where=w1 > 0)
        a = sparse.csr_matrix((w, (fe1, fe2)), shape=(g1, g2))  # unit x cell weight totals
        self._a = a
        m = sparse.diags(np.bincount(fe2, weights=w, minlength=g2)) - a.T @ sparse.diags(self._inv1) @ a
        m = m.tocsr()
        count, label = connected_components(abs(m) > 0, directed=False)
        order = np.argsort(label, kind="stable")
        bounds = np.searchsorted(label[order], np.arange(count + 1))
        self._blocks = []
        for b in range(count):
            idx = order[bounds[b] : bounds[b + 1]]
            if idx.size > max_block:
                self._blocks = None  # too large to invert densely: fall back to iterating
                break
            # A connected block is singular in one direction only (a constant shift of its cell effects is
            # absorbed by the unit effects): pin its first cell to 0 and invert the rest.
            idx = idx[1:]
            if idx.size:
                inverse = np.linalg.pinv(m[idx][:, idx].toarray(), rtol=1e-12, hermitian=True)
                self._blocks.append((idx, inverse))
        self._g2 = g2

    def _unit_demean(self, x: np.ndarray) -> np.ndarray:
        return x - (self._inv1[:, None] * (self._unit_sum @ x))[self.fe1]

    def solve_cells(self, rhs: np.ndarray, /) -> np.ndarray:
        """Cell effects ``g`` solving ``(T' W M_U T) g = rhs`` block by block (``rhs``: cells x columns)."""
        if self._blocks is None:
            raise ValueError("the cell blocks are too large to invert (see max_block)")
        g = np.zeros((self._g2, rhs.shape[1]))
        for idx, inverse in self._blocks:
            g[idx] = inverse @ rhs[idx]
        return g

    def residuals(self, columns: np.ndarray, /, *, chunk: int = 8) -> np.ndarray:
        """Residuals of each column (a new float64 array), computed ``chunk`` columns at a time."""
        x = np.asarray(columns, dtype=float)
        x = x[:, None] if x.ndim == 1 else x
        if self._blocks is None:
            return _alternating(x, self.fe1, self.fe2, self.w)
        out = np.empty_like(x)
        for lo in range(0, x.shape[1], chunk):
            x1 = self._unit_demean(x[:, lo : lo + chunk])
            g = self.solve_cells(self._cell_sum @ x1)
            out[:, lo : lo + chunk] = x1 - self._unit_demean(g[self.fe2])
        return out


def _alternating(x: np.ndarray, fe1: np.ndarray, fe2: np.ndarray, w: np.ndarray, /, *, tol: float = 1e-10,
                 max_iter: int = 10_000) -> np.ndarray:
    """Weighted alternating projections (Gauss-Seidel), for designs with cell blocks too large to invert."""
    x = np.array(x, dtype=float, copy=True)
    w1, w2 = np.bincount(fe1, weights=w), np.bincount(fe2, weights=w)
    for _ in range(max_iter):
        delta = 0.0
        for codes, total in ((fe1, w1), (fe2, w2)):
            for j in range(x.shape[1]):
                sums = np.bincount(codes, weights=w * x[:, j], minlength=total.size)
                means = sums / np.where(total > 0, total, 1)
                shift = means[codes]
                x[:, j] -= shift
                delta = max(delta, float(np.abs(shift).max()))
        if delta < tol:
            return x
    raise ValueError(f"fixed effects did not converge in {max_iter} iterations (tolerance {tol})")


@dataclass(frozen=True, slots=True)
class _Fit:
    params: np.ndarray
    cov: np.ndarray
    #: Per person (rows, in ``person_ids`` order) and coefficient: ``cov == influence.T @ influence``.
    influence: np.ndarray
    person_ids: np.ndarray


def _fit(y: np.ndarray, x, frame: pl.DataFrame, /) -> _Fit:
    """WLS of ``y`` on ``x`` (dense or scipy-sparse) after absorbing unit and cell effects, person-clustered.

    The covariance is statsmodels' ``WLS(...).fit(cov_type="cluster")`` on the absorbed data (same
    small-sample factor ``G/(G-1) * (N-1)/(N-K)``; ``tests/analysis/estimate/test_did.py`` checks both
    agree), but the absorbed design ``RX`` is never formed. With ``U`` the weighted unit-mean operator,
    ``C`` the row -> cell incidence, ``S = U_sum X`` (units x K), ``A`` the unit x cell weight totals and
    ``g`` the cell effects of ``X - UX`` (solved from ``C'W X - A' diag(1/w_unit) S``),
    ``RX = X - UX - (I - U) C g``, so

    * ``X~'WX~ = X'W(RX) = X'WX - S' diag(1/w_unit) S - (C'WX)' g + S' diag(1/w_unit) (A g)`` and
      ``X~'Wy~ = X'Wy~``: sparse products of ``X`` and matrices of units x K and cells x K;
    * a person's score ``sum w e X~`` loses every term constant within a unit (``e`` sums to zero within
      each unit, and a unit belongs to one person), leaving ``sum w e (X - g[cell])``.

    So a population-scale event study (5.5 M rows x 60 event dummies) costs a few sparse passes over the
    rows instead of dense copies of the design.
    """
    x = sparse.csr_matrix(x, dtype=float)
    n, k = x.shape
    w = frame["weight"].to_numpy().astype(float)
    unit, cell = frame["unit"].to_numpy().astype(np.int64), frame["stack_time"].to_numpy().astype(np.int64)
    persons = frame["person_id"].rank("dense").cast(pl.Int64).to_numpy() - 1
    owner = np.full(int(unit.max()) + 1, -1, np.int64)
    owner[unit] = persons
    if not np.array_equal(owner[unit], persons):
        raise ValueError(
            "every stacked unit must belong to one person (see analysis.estimate.matching.stacked_panel)"
        )
    absorber = TwoWayAbsorber(unit, cell, w)
    yd = absorber.residuals(y)[:, 0]
    inv = sparse.diags(absorber._inv1)
    s = (absorber._unit_sum @ x).tocsr()  # units x K
    s_inv = (inv @ s).tocsr()
    cx = (absorber._cell_sum @ x).toarray()  # cells x K: C'WX
    g = absorber.solve_cells(cx - np.asarray((absorber._a.T @ s_inv).todense()))
    wx = x.multiply(w[:, None]).tocsr()
    gram = (x.T @ wx).toarray() - (s.T @ s_inv).toarray() - cx.T @ g + s_inv.T @ (absorber._a @ g)
    gram = (gram + gram.T) / 2
    bread = np.linalg.pinv(gram, hermitian=True)
    params = bread @ (wx.T @ yd)
    we = w * (yd - absorber.residuals(x @ params)[:, 0])
    groups = int(persons.max()) + 1
    by_person = sparse.csr_matrix((we, (persons, np.arange(n))), shape=(groups, n))
    by_cell = sparse.csr_matrix((we, (persons, cell)), shape=(groups, g.shape[0]))
    scores = np.asarray((by_person @ x).todense()) - by_cell @ g
    factor = groups / (groups - 1) * (n - 1) / (n - k) if groups > 1 and n > k else float("nan")
    influence = np.sqrt(factor) * (scores @ bread)  # bread is symmetric: influence' influence = the cov below
    person_ids = np.unique(frame["person_id"].to_numpy())  # the dense ranks above, in order
    cov = factor * bread @ (scores.T @ scores) @ bread
    return _Fit(np.asarray(params).ravel(), cov, influence, person_ids)


def _counts(frame: pl.DataFrame) -> tuple[int, int]:
    persons = frame.group_by("treated").agg(pl.col("person_id").n_unique())
    get = dict(zip(persons["treated"].to_list(), persons["person_id"].to_list(), strict=True))
    return int(get.get(1, 0)), int(get.get(0, 0))


def _window(reference: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(reference, tuple):
        lo, hi = (int(v) for v in reference)
        if lo > hi:
            raise ValueError(f"a reference window runs from its first to its last month, got {reference}")
        return lo, hi
    return int(reference), int(reference)


def event_study(stacked: pl.DataFrame, outcome: str, /, *, reference: int | tuple[int, int] = -1,
                pretrend: tuple[int, int] | None = None, exclude: Sequence[int] = (),
                alpha: float = 0.05, influence: bool = False) -> EventStudyResult:
    """Event-study coefficients of ``outcome`` relative to event time ``reference``.

    Parameters
    ----------
    stacked
        The stacked matched sample (:func:`analysis.estimate.matching.stacked_panel`).
    outcome
        The outcome column.
    reference
        One event month, omitted (estimate 0, no standard error), or a window ``(first, last)`` of months
        whose mean is normalised to 0 (every month keeps an estimate and a standard error).
    pretrend
        The months of the pre-trend test (default: every month before the reference).
    exclude
        Months left out of the pre-trend test (e.g. the transition month, where the groups are known to
        differ); they are still estimated and shown.
    alpha
        Level of the intervals.
    influence
        Also return each person's influence on every coefficient.

    Returns
    -------
    EventStudyResult
        One row per event time in the stacked window, with the number of treated and comparison persons
        observed at that event time, and the pre-trend test; with ``influence``, also each person's
        influence on every coefficient.
    """
    z = z_critical(alpha)
    _check(stacked, outcome)
    frame = stacked.filter(pl.col(outcome).is_not_null())
    times = np.sort(frame["event_time"].unique().to_numpy())
    lo, hi = _window(reference)
    window = np.arange(lo, hi + 1)
    if not np.isin(window, times).all():
        raise ValueError(
            f"reference event time(s) {lo}..{hi} are not in the panel's window {times.min()}..{times.max()}"
        )
    omitted = hi  # the fit omits one month; a window reference is restored exactly below
    coef_times = times[times != omitted]
    e = frame["event_time"].to_numpy()
    column = np.searchsorted(coef_times, e)
    dummy = (frame["treated"].to_numpy() == 1) & (e != omitted)
    x = sparse.csr_matrix((np.ones(int(dummy.sum())), (np.flatnonzero(dummy), column[dummy])),
                          shape=(frame.height, coef_times.size))
    result = _fit(frame[outcome].cast(pl.Float64).to_numpy(), x, frame)
    # every event time, the omitted one at 0; a window reference subtracts the window's mean (a linear map
    # of the coefficients, so the clustered covariance and each person's influence map with it)
    embed = np.zeros((times.size, coef_times.size))
    embed[np.searchsorted(times, coef_times), np.arange(coef_times.size)] = 1.0
    if lo != hi:
        embed -= embed[np.isin(times, window)].mean(axis=0, keepdims=True)
    params = embed @ result.params
    cov = embed @ result.cov @ embed.T
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    window_test = pretrend if pretrend is not None else (int(times.min()), lo - 1)
    excluded = tuple(int(m) for m in exclude)
    tested = (times >= window_test[0]) & (times <= window_test[1]) & ~np.isin(times, excluded)
    if lo == hi:
        tested &= times != omitted
    by_time = frame.group_by("event_time", "treated").agg(pl.col("person_id").n_unique().alias("n"))
    counts = by_time.pivot(on="treated", index="event_time", values="n")
    se_column = [None if (lo == hi and t == omitted) else float(v) for t, v in zip(times, se, strict=True)]
    est = pl.DataFrame({"event_time": times.astype(np.int32), "estimate": params, "se": se_column},
                       schema={"event_time": pl.Int32, "estimate": pl.Float64, "se": pl.Float64})
    table = (
        est.join(
            counts.select(pl.col("event_time").cast(pl.Int32), n_treated=pl.col("1"), n_controls=pl.col("0")),
            on="event_time", how="left", validate="1:1",
        )
        .with_columns(outcome=pl.lit(outcome), ci_lower=pl.col("estimate") - z * pl.col("se"),
                      ci_upper=pl.col("estimate") + z * pl.col("se"))
        .select([pl.col(c).cast(t) for c, t in EVENT_STUDY.items()])
        .sort("event_time")
    )
    persons = None
    if influence:
        ids = result.person_ids
        mapped = result.influence @ embed.T  # persons x every event time
        keep = np.ones(times.size, bool) if lo != hi else times != omitted
        persons = pl.DataFrame({"person_id": np.repeat(ids, int(keep.sum())).astype(np.int64),
                                "event_time": np.tile(times[keep], ids.size).astype(np.int32),
                                "influence": mapped[:, keep].ravel()})
    stat, dof, p = wald(params[tested], cov[np.ix_(tested, tested)],
                        clusters=_fewest_treated(table, times[tested]))
    return EventStudyResult(table=table, pretrend_stat=stat, pretrend_df=dof, pretrend_p=p,
                            n_obs=frame.height, outcome=outcome, reference=reference,
                            window=(int(times.min()), int(times.max())), alpha=alpha, influence=persons,
                            pretrend_window=(int(window_test[0]), int(window_test[1])), exclude=excluded,
                            times=times.astype(np.int64), params=np.asarray(params), cov=np.asarray(cov))


def _fewest_treated(table: pl.DataFrame, months: np.ndarray, /) -> int | None:
    """Return the fewest participants (``n_treated``) of ``table`` at any event month of ``months``."""
    fewest = table.filter(pl.col("event_time").is_in(months.tolist()))["n_treated"].min()
    return None if fewest is None else int(fewest)


#: Eigenvalues of a covariance below this share of its largest are numerical noise (see :func:`wald`).
WALD_RCOND = 1e-10


def wald(b: np.ndarray, v: np.ndarray, /, *, rcond: float = WALD_RCOND,
         clusters: int | None = None) -> tuple[float, int, float]:
    """Wald chi-squared of ``b = 0`` with covariance ``v``: (statistic, rank of ``v``, p); NaN without any.

    With ``clusters`` (the number of independent units the covariance is estimated from), p is read from
    Hotelling's small-sample reference instead of the chi-squared: ``stat / q * (G - q) / (G - 1)`` against
    ``F(q, G - q)``, with ``q`` the rank and ``G`` the clusters. An estimated covariance of many
    restrictions from a few hundred units is noisy, and its inverse inflates the statistic: the monthly
    pre-trend test (23 months, a few hundred participants, a count outcome) rejects a true null too often
    against the chi-squared (measured by ``scripts/validate.py``; README, "Validity"). With ``G <= q`` the
    test is not defined (p is NaN): fewer units than restrictions.

    Rank-aware: ``v`` is symmetrised and decomposed into eigenvalues, and only directions whose eigenvalue
    exceeds ``rcond`` times the largest are tested (a Moore-Penrose pseudo-inverse with one tolerance for
    both the inverse and the degrees of freedom). A near-constant outcome (a register that barely changes
    around the start) has coefficients with clustered variances of order 1e-20 whose ratios are rounding
    noise: ``np.linalg.pinv``'s default cut-off kept some of them, so the statistic exploded while
    ``matrix_rank`` counted a different rank. Such directions carry no information and are left out; when
    none is left the test is not defined (NaN).
    """
    if not b.size:
        return float("nan"), 0, float("nan")
    sym = (np.asarray(v, dtype=float) + np.asarray(v, dtype=float).T) / 2
    values, vectors = np.linalg.eigh(sym)
    top = float(values.max(initial=0.0))
    keep = values > rcond * top if top > 0 else np.zeros(values.size, bool)
    dof = int(keep.sum())
    if not dof:
        return float("nan"), 0, float("nan")
    z = vectors[:, keep].T @ np.asarray(b, dtype=float)
    stat = float(np.sum(z * z / values[keep]))
    if clusters is None:
        return stat, dof, float(stats.chi2.sf(stat, dof))
    if clusters <= dof:
        return stat, dof, float("nan")
    scaled = stat / dof * (clusters - dof) / (clusters - 1)
    return stat, dof, float(stats.f.sf(scaled, dof, clusters - dof))


def pooled_did(stacked: pl.DataFrame, outcome: str, /, *, post: tuple[int, int] = (12, 24),
               pre: tuple[int, int] | None = None, alpha: float = 0.05) -> DidResult:
    """One DiD: mean treated-minus-comparison gap in the ``post`` window minus the gap in the ``pre`` window.

    ``pre`` defaults to every event time before 0. Event times in neither window are left out (the ramp-up
    months 0..post[0]-1 by default).

    Returns
    -------
    DidResult
        Estimate, se, CI, n_treated and n_controls (persons in the post window), mde and n_obs.
    """
    z = z_critical(alpha)
    _check(stacked, outcome)
    pre = pre if pre is not None else (int(stacked["event_time"].min()), -1)
    frame = stacked.filter(
        pl.col(outcome).is_not_null()
        & (pl.col("event_time").is_between(*pre) | pl.col("event_time").is_between(*post))
    )
    n_treated, n_controls = _counts(frame.filter(pl.col("event_time").is_between(*post)))
    known = {"outcome": outcome, "n_treated": n_treated, "n_controls": n_controls, "n_obs": frame.height,
             "post": post, "pre": pre, "alpha": alpha}
    empty = DidResult(estimate=None, se=None, ci_lower=None, ci_upper=None, mde=None, **known)
    if n_treated == 0 or n_controls == 0 or not frame.filter(pl.col("event_time").is_between(*pre)).height:
        return empty
    # units must be seen in both windows to contribute within-unit contrasts; others only shift their FE
    x = ((frame["treated"] == 1) & frame["event_time"].is_between(*post)).cast(pl.Float64).to_numpy()[:, None]
    result = _fit(frame[outcome].cast(pl.Float64).to_numpy(), x, frame)
    estimate, se = float(result.params[0]), float(np.sqrt(result.cov[0, 0]))
    if not np.isfinite(se) or se <= 0:
        return empty
    return DidResult(estimate=estimate, se=se, ci_lower=estimate - z * se, ci_upper=estimate + z * se,
                     mde=mde_from_se(se, alpha=alpha), **known)


def subgroup_did(stacked: pl.DataFrame, outcome: str, groups: pl.DataFrame, dimension: str, /, *,
                 post: tuple[int, int] = (12, 24), alpha: float = 0.05) -> SubgroupDidResult:
    """Pooled DiD for each level of ``dimension`` (a column of ``groups``, keyed by treated ``person_id``).

    One regression per dimension: the unit and stack x event-time effects of :func:`pooled_did` with one
    ``treated x post x level`` term per level, so each level's participants are compared with the comparison
    units of their own cohort stacks, and all levels share one absorbed design (a dimension costs one fit,
    not one per level; at population scale that is most of an outcome's run time). When the levels'
    participants are in disjoint stacks (start cohorts), each estimate equals the separate subgroup fit.
    ``n_controls`` counts the comparison persons in the level's stacks.

    Returns
    -------
    SubgroupDidResult
        One row per level; a level without comparisons in its stacks gets null estimates.
    """
    z = z_critical(alpha)
    if dimension not in groups.columns or "person_id" not in groups.columns:
        raise ValueError(f"groups needs person_id and {dimension!r}")
    _check(stacked, outcome)
    labels = groups.select("person_id", level=pl.col(dimension).cast(pl.String).fill_null("unknown")).unique(
        "person_id"
    )
    treated = stacked.filter(pl.col("treated") == 1).select("cohort", "person_id").unique().join(
        labels, on="person_id", how="inner", validate="m:1"
    )
    levels = sorted(treated["level"].unique().to_list())
    pre = (int(stacked["event_time"].min()), -1)
    in_post = pl.col("event_time").is_between(*post)
    frame = (
        stacked.filter(pl.col(outcome).is_not_null() & (pl.col("event_time").is_between(*pre) | in_post))
        .join(treated.select("cohort", "person_id", "level"), on=["cohort", "person_id"], how="left",
              validate="m:1")
        .with_columns(level=pl.when(pl.col("treated") == 1).then(pl.col("level")))
    )
    # persons in the post window: the level's participants, and the comparisons in the level's stacks
    seen = frame.filter(in_post)
    level_cohorts = treated.select("cohort", "level").unique()
    persons = pl.col("person_id").n_unique()
    n_treated = dict(seen.filter(pl.col("treated") == 1).group_by("level").agg(persons).iter_rows())
    n_controls = dict(
        seen.filter(pl.col("treated") == 0).select("cohort", "person_id")
        .join(level_cohorts, on="cohort", how="inner").group_by("level").agg(persons).iter_rows()
    )
    has_pre = set(frame.filter(~in_post & (pl.col("treated") == 1))["level"].unique().to_list())
    code = frame.select(
        pl.col("level").replace_strict(levels, list(range(len(levels))), default=None)
    ).to_series()
    dummy = ((frame["treated"] == 1).to_numpy() & frame["event_time"].is_between(*post).to_numpy()
             & code.is_not_null().to_numpy())
    rows = np.flatnonzero(dummy)
    usable = n_treated and n_controls and frame.height
    params = se = None
    if usable:
        x = sparse.csr_matrix((np.ones(rows.size), (rows, code.to_numpy()[rows].astype(np.int64))),
                              shape=(frame.height, len(levels)))
        result = _fit(frame[outcome].cast(pl.Float64).to_numpy(), x, frame)
        params, se = result.params, np.sqrt(np.clip(np.diag(result.cov), 0, None))
    out = []
    for j, level in enumerate(levels):
        row = {"level": level, "estimate": None, "se": None, "ci_lower": None, "ci_upper": None,
               "n_treated": int(n_treated.get(level, 0)), "n_controls": int(n_controls.get(level, 0)),
               "mde": None}
        identified = (params is not None and row["n_treated"] and row["n_controls"] and level in has_pre
                      and np.isfinite(se[j]) and se[j] > 1e-12)
        if identified:
            estimate, s_e = float(params[j]), float(se[j])
            row |= {"estimate": estimate, "se": s_e, "ci_lower": estimate - z * s_e,
                    "ci_upper": estimate + z * s_e, "mde": mde_from_se(s_e, alpha=alpha)}
        out.append(row)
    levels_frame = pl.DataFrame(out, schema={"level": pl.String, **_ESTIMATE})
    return SubgroupDidResult(outcome=outcome, dimension=dimension, levels=levels_frame, n_obs=frame.height,
                             post=post, pre=pre, alpha=alpha)


def contributor_stats(rows: pl.DataFrame, /, *, by: Sequence[str], value: pl.Expr) -> pl.DataFrame:
    """Disclosure statistics of a mean per ``by`` group: who contributes to its numerator.

    ``rows`` hold one or more rows per person; ``value`` is a person's contribution on a row (the outcome,
    times the matching weight for weighted means). Contributions are summed per person first. Returns
    ``by`` plus ``n_positive`` (persons with a contribution above 0), ``n_full`` (persons at 1 or more: for
    a share or 0/1 outcome, those fully "with" it) and ``top2_share`` (the two largest contributions over
    the total of all, null when the total is 0): the inputs of the threshold, complement and (n, k)
    dominance rules of :mod:`analysis.publish.disclosure`.
    """
    # sums in sorted order: the same bits on every run (group order is not fixed)
    person = rows.group_by(*by, "person_id").agg(
        c=value.fill_null(0.0).sort().sum(), y=value.fill_null(0.0).max()
    )
    total = pl.col("c").abs().sort().sum()
    return person.group_by(*by).agg(
        n_positive=(pl.col("c") > 0).sum().cast(pl.Int64),
        n_full=(pl.col("y") >= 1).sum().cast(pl.Int64),
        top2_share=pl.when(total > 0).then(pl.col("c").abs().top_k(2).sort().sum() / total),
    )


def event_window_counts(stacked: pl.DataFrame, /, outcomes: Sequence[str]) -> pl.DataFrame:
    """Raw weighted means by event time for participants and comparisons (analysis.schema.MATCHED_MEANS).

    Each row also carries :func:`contributor_stats` (weighted contributions for the comparisons).
    """
    frames = []
    for outcome in outcomes:
        y = pl.col(outcome).cast(pl.Float64)
        observed = stacked.filter(y.is_not_null())
        stats = contributor_stats(observed, by=("treated", "event_time"), value=y * pl.col("weight"))
        frames.append(
            stacked.group_by("treated", "event_time")
            .agg(mean=(y * pl.col("weight")).sum() / pl.col("weight").filter(y.is_not_null()).sum(),
                 n=pl.col("person_id").n_unique().cast(pl.Int64))
            .join(stats, on=["treated", "event_time"], how="left", validate="1:1")
            .with_columns(outcome=pl.lit(outcome),
                          group=pl.when(pl.col("treated") == 1).then(pl.lit("participants"))
                          .otherwise(pl.lit("comparisons")))
        )
    return (
        pl.concat(frames)
        .select(
            "outcome",
            "group",
            pl.col("event_time").cast(pl.Int32),
            "mean",
            "n",
            "n_positive",
            "n_full",
            "top2_share",
        )
        .sort("outcome", "group", "event_time")
    )
