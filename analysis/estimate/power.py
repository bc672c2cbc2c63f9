"""Minimum detectable effects: what the current sample can and cannot show."""

from __future__ import annotations

import math

from scipy.stats import norm

from analysis.estimate.inference import z_critical


def mde_from_se(se: float, /, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true effect detected with probability ``power`` by a two-sided test at level ``alpha``.

    ``MDE = (z_{1-alpha/2} + z_{power}) * se`` (Bloom 1995), i.e. 2.80 standard errors at the defaults.
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if not se >= 0:
        raise ValueError(f"standard error must be >= 0, got {se}")
    return float((z_critical(alpha) + norm.ppf(power)) * se)


def mde_two_groups(sd: float, n_treated: int, n_controls: int, /, *, alpha: float = 0.05, power: float = 0.8,
                   r2: float = 0.0) -> float:
    """Planning MDE for a difference in means: ``(z + z) * sd * sqrt((1 - r2) * (1/n_t + 1/n_c))``.

    ``r2`` is the share of outcome variance explained by pre-period history (matching, fixed effects).
    """
    if n_treated < 1 or n_controls < 1:
        raise ValueError("both groups need at least one person")
    if not 0 <= r2 < 1:
        raise ValueError(f"r2 must be in [0, 1), got {r2}")
    return mde_from_se(sd * math.sqrt((1 - r2) * (1 / n_treated + 1 / n_controls)), alpha=alpha, power=power)
