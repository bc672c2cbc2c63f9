"""Normal-theory inference shared by the estimators: the critical value of a two-sided interval."""

from __future__ import annotations

from scipy.stats import norm


def check_alpha(alpha: float, /) -> None:
    """Raise ``ValueError`` unless ``alpha`` is a significance level strictly between 0 and 1."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")


def z_critical(alpha: float, /) -> float:
    """Return the two-sided normal critical value ``z_{1 - alpha/2}`` (1.959963984540054 at ``alpha=0.05``).

    Parameters
    ----------
    alpha
        Significance level of the interval ``estimate +/- z * se``, in (0, 1).

    Returns
    -------
    float
        The ``1 - alpha/2`` quantile of the standard normal.
    """
    check_alpha(alpha)
    return float(norm.ppf(1 - alpha / 2))
