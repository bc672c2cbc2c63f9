"""The conditional 2x2 DiD estimators of one ATT(g, t), ports of R ``DRDID``'s panel estimators.

Each takes one 2x2 subsample (a treated cohort and its controls) as arrays: ``dy`` the outcome change
from the base to the current period, ``d`` the treatment indicator, ``x`` the covariates with an
intercept column, ``w`` weights with mean 1. Each returns the ATT and its influence function on the
subsample (DRDID's scale; :func:`analysis.estimate.staggered.att_gt` rescales it to the whole panel).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

#: Propensity scores of control units at or above this are trimmed (DRDID's ``trim.level``).
_TRIM_LEVEL = 0.995


def logit(x: np.ndarray, d: np.ndarray, w: np.ndarray, /, *, max_iter: int = 100,
          tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logit of ``d`` on ``x`` by Newton-Raphson.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        Fitted probabilities (capped below 1 as DRDID) and ``n * (X'WX)^-1``, the scaled inverse Hessian
        the influence functions use.

    Raises
    ------
    ValueError
        When the Hessian is singular (too few treated units or collinear covariates).
    """
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        p = expit(x @ beta)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, x.T @ (w * (d - p)))
        except np.linalg.LinAlgError:
            raise ValueError(
                "the propensity model is singular for a cohort (too few treated units or collinear "
                "covariates); drop constant/collinear covariates or use method='reg' or no covariates"
            ) from None
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    p = expit(x @ beta)
    hess = (x * (w * p * (1 - p))[:, None]).T @ x
    return np.minimum(p, 1 - 1e-6), len(d) * np.linalg.pinv(hess)


def _wls(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome regression on controls: fitted changes and the asymptotic linear representation."""
    wc = w * (1 - d)
    xtx = (x * wc[:, None]).T @ x
    beta = np.linalg.solve(xtx, (x * wc[:, None]).T @ dy)
    fit = x @ beta
    alr = (x * (wc * (dy - fit))[:, None]) @ np.linalg.inv(xtx / len(d))
    return fit, alr


def dr_panel(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray, ps: np.ndarray,
             hess_inv: np.ndarray, /) -> tuple[float, np.ndarray]:
    """Doubly robust DiD (DRDID ``drdid_panel``): outcome regression plus inverse probability weights.

    ``ps`` and ``hess_inv`` are the propensity fit of :func:`logit` on the same subsample.
    """
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


def ipw_panel(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray, ps: np.ndarray,
              hess_inv: np.ndarray, /) -> tuple[float, np.ndarray]:
    """Normalised inverse probability weighting DiD (DRDID ``std_ipw_did_panel``)."""
    trim = np.where(d == 1, True, ps < _TRIM_LEVEL)
    w_t = trim * w * d
    w_c = trim * w * ps * (1 - d) / (1 - ps)
    eta_t = (w_t * dy).mean() / w_t.mean()
    eta_c = (w_c * dy).mean() / w_c.mean()
    alr_ps = (x * (w * (d - ps))[:, None]) @ hess_inv
    inf_t = (w_t * dy - w_t * eta_t) / w_t.mean()
    inf_c = (w_c * dy - w_c * eta_c + alr_ps @ ((w_c * (dy - eta_c))[:, None] * x).mean(0)) / w_c.mean()
    return float(eta_t - eta_c), inf_t - inf_c


def reg_panel(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray, /) -> tuple[float, np.ndarray]:
    """Outcome regression DiD (DRDID ``reg_did_panel``)."""
    fit, alr_ols = _wls(dy, d, x, w)
    w_t = w * d
    eta_t = (w_t * dy).mean() / w_t.mean()
    eta_c = (w_t * fit).mean() / w_t.mean()
    inf_t = (w_t * dy - w_t * eta_t) / w_t.mean()
    inf_c = (w_t * fit - w_t * eta_c + alr_ols @ (w_t[:, None] * x).mean(0)) / w_t.mean()
    return float(eta_t - eta_c), inf_t - inf_c


# --- every cell of a block at once, with the influence functions factored ----------------------------------
#
# Within a block (one treated cohort against one control group, the same covariates and propensity fit)
# only the outcome change differs between cells. Each estimator above is linear in ``dy``, so with ``DY``
# (units x cells) all cells are a few matrix products, and every cell's influence function is
# ``a * dy + F @ C`` with ``a`` and ``F`` shared (see :mod:`analysis.estimate.staggered.influence`).
# Each function returns (att per cell, a, F, C) on DRDID's scale, as the single-cell functions.


def unconditional_block(dy: np.ndarray, d: np.ndarray, w: np.ndarray, /) -> tuple[np.ndarray, ...]:
    """Difference of weighted mean changes (every method without covariates), for the cells ``dy[:, j]``."""
    n1 = len(d)
    w1, w0 = w * d, w * (1 - d)
    s1, s0 = w1.sum(), w0.sum()
    m1, m0 = (w1 @ dy) / s1, (w0 @ dy) / s0
    a = n1 * (w1 / s1 - w0 / s0)
    factors = np.column_stack([-n1 * w1 / s1, n1 * w0 / s0])
    return m1 - m0, a, factors, np.vstack([m1, m0])


def _wls_block(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray):
    wc = w * (1 - d)
    xtx = (x * wc[:, None]).T @ x
    beta = np.linalg.solve(xtx, (x * wc[:, None]).T @ dy)
    return wc, beta, np.linalg.inv(xtx / len(d))


def dr_block(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray, ps: np.ndarray,
             hess_inv: np.ndarray, /) -> tuple[np.ndarray, ...]:
    """:func:`dr_panel` for the cells ``dy[:, j]`` at once."""
    n1 = len(d)
    wc, beta, m_inv = _wls_block(dy, d, x, w)
    trim = np.where(d == 1, True, ps < _TRIM_LEVEL)
    w_t = trim * w * d
    w_c = trim * w * ps * (1 - d) / (1 - ps)
    mw_t, mw_c = w_t.mean(), w_c.mean()
    resid = dy - x @ beta
    eta_t = (w_t @ resid) / n1 / mw_t
    eta_c = (w_c @ resid) / n1 / mw_c
    s_t = x @ (m_inv @ (w_t[:, None] * x).mean(0))
    s_c = x @ (m_inv @ (w_c[:, None] * x).mean(0))
    alr_ps = (x * (w * (d - ps))[:, None]) @ hess_inv
    u = x.T @ (w_c[:, None] * resid) / n1 - np.outer((w_c[:, None] * x).mean(0), eta_c)
    a = (w_t - wc * s_t) / mw_t - (w_c - wc * s_c) / mw_c
    factors = np.column_stack([-(a[:, None] * x), -w_t / mw_t, w_c / mw_c, -alr_ps / mw_c])
    return eta_t - eta_c, a, factors, np.vstack([beta, eta_t, eta_c, u])


def ipw_block(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray, ps: np.ndarray,
              hess_inv: np.ndarray, /) -> tuple[np.ndarray, ...]:
    """:func:`ipw_panel` for the cells ``dy[:, j]`` at once."""
    n1 = len(d)
    trim = np.where(d == 1, True, ps < _TRIM_LEVEL)
    w_t = trim * w * d
    w_c = trim * w * ps * (1 - d) / (1 - ps)
    mw_t, mw_c = w_t.mean(), w_c.mean()
    eta_t = (w_t @ dy) / n1 / mw_t
    eta_c = (w_c @ dy) / n1 / mw_c
    alr_ps = (x * (w * (d - ps))[:, None]) @ hess_inv
    u = x.T @ (w_c[:, None] * dy) / n1 - np.outer((w_c[:, None] * x).mean(0), eta_c)
    a = w_t / mw_t - w_c / mw_c
    factors = np.column_stack([-w_t / mw_t, w_c / mw_c, -alr_ps / mw_c])
    return eta_t - eta_c, a, factors, np.vstack([eta_t, eta_c, u])


def reg_block(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray, /) -> tuple[np.ndarray, ...]:
    """:func:`reg_panel` for the cells ``dy[:, j]`` at once."""
    n1 = len(d)
    wc, beta, m_inv = _wls_block(dy, d, x, w)
    w_t = w * d
    mw_t = w_t.mean()
    v = (w_t[:, None] * x).mean(0)
    eta_t = (w_t @ dy) / n1 / mw_t
    eta_c = (v @ beta) / mw_t
    s = x @ (m_inv @ v)
    a = (w_t - wc * s) / mw_t
    factors = np.column_stack([-(a[:, None] * x), -w_t / mw_t, w_t / mw_t])
    return eta_t - eta_c, a, factors, np.vstack([beta, eta_t, eta_c])
