"""Standard errors of influence functions: analytic, or R ``did``'s multiplier bootstrap (``mboot``).

Every estimate of :mod:`analysis.estimate.staggered` (an ATT(g, t) or an aggregation of them) is a row of
influence function values over units; clustering sums a row's columns within clusters first.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.stats import norm

from analysis.estimate.inference import z_critical
from analysis.estimate.staggered.influence import Influence

#: Standard errors at or below this are reported as missing (R ``did``: sqrt(eps) * 10).
_SE_FLOOR = np.sqrt(np.finfo(float).eps) * 10
#: Upper bound on doubles held by one block of bootstrap draws.
_BOOT_BLOCK = 2**23


def check_bootstrap(bootstrap: int, /) -> None:
    """Raise ``ValueError`` unless ``bootstrap`` is a non-negative number of draws."""
    if not isinstance(bootstrap, (int, np.integer)) or isinstance(bootstrap, bool) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative number of draws, not {bootstrap!r}")


def collapse(influence: np.ndarray, clusters: np.ndarray | None, /) -> np.ndarray:
    """Sum influence columns within clusters (``clusters``: cluster index per column; identity when None)."""
    if clusters is None:
        return influence
    size = int(clusters.max()) + 1
    # one sparse product (rows x units) @ (units x clusters) instead of a bincount per row
    members = sparse.csr_matrix((np.ones(clusters.size), (np.arange(clusters.size), clusters)),
                                shape=(clusters.size, size))
    return np.asarray((members.T @ np.asarray(influence, dtype=float).T).T)


def standard_errors(
    influence: np.ndarray | Influence,
    n: int,
    /,
    *,
    alpha: float,
    bootstrap: int,
    seed: int | None,
    cband: bool,
    clusters: np.ndarray | None = None,
    uniform_rows: int | None = None,
) -> tuple[np.ndarray, float]:
    """Return standard errors of each row's estimate and the critical value for its intervals.

    Parameters
    ----------
    influence
        Rows of influence function values (estimates x units), scaled as R ``did`` (``n / n1 * IF``): dense,
        or factored (:class:`~analysis.estimate.staggered.influence.Influence`, summed block by block).
    n
        Number of units the influence functions are scaled by.
    alpha
        Significance level of the intervals.
    bootstrap
        Number of multiplier-bootstrap draws; 0 for analytic standard errors, ``sqrt(mean(IF^2) / n)``.
    seed
        Seed of ``np.random.default_rng`` for the bootstrap draws.
    cband
        With a bootstrap, return the uniform (simultaneous) critical value over the first
        ``uniform_rows`` rows (all rows when None) instead of the normal quantile.
    clusters
        Cluster index per influence column: columns are summed per cluster first, so a bootstrap draws
        one multiplier per cluster.
    uniform_rows
        See ``cband``.

    Returns
    -------
    tuple[numpy.ndarray, float]
        Standard errors (NaN at or below sqrt(eps) * 10, as R) and the critical value. The bootstrap is R's
        ``mboot``: Mammen multipliers and interquartile-range standard errors.
    """
    factored = isinstance(influence, Influence)
    if not factored:
        influence = collapse(influence, clusters)
    z = z_critical(alpha)
    if bootstrap == 0:
        squares = influence.norms(clusters) if factored else np.einsum("ij,ij->i", influence, influence)
        se = np.sqrt(squares / n / n)
        se[se <= _SE_FLOOR] = np.nan
        return se, z
    rng = np.random.default_rng(seed)
    s5 = np.sqrt(5.0)
    low, high, p_low = (1 - s5) / 2, (1 + s5) / 2, (s5 + 1) / (2 * s5)
    # units, or clusters of units (then n still scales: n / n_clusters != 1)
    cols = influence.shape[1] if not factored or clusters is None else int(clusters.max()) + 1
    block = max(1, _BOOT_BLOCK // cols)
    draws = []
    done = 0
    while done < bootstrap:
        m = min(block, bootstrap - done)
        v = np.where(rng.random((m, cols)) < p_low, low, high)
        draws.append((influence.draws(v, clusters) if factored else v @ influence.T) / np.sqrt(n))
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
