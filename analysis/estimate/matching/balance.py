"""Covariate balance of the match: standardised mean differences and variance ratios, before and after."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis.schema import BALANCE


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.average(x, axis=0, weights=w)
    return m, np.average((x - m) ** 2, axis=0, weights=w)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return ``a / b`` where ``b > 0``, NaN elsewhere."""
    return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def balance_table(names: Sequence[str], x_t: np.ndarray, x_before: np.ndarray, w_before: np.ndarray,
                  x_after: np.ndarray, w_after: np.ndarray) -> pl.DataFrame:
    """Standardised mean differences and variance ratios before and after matching.

    The SMD denominator is the pooled standard deviation *before* matching, sqrt((s_t^2 + s_c^2) / 2), for
    both columns, so the after column moves only with the means (Stuart 2010).

    Parameters
    ----------
    names
        One name per feature column (``analysis.schema.BALANCE`` ``covariate``).
    x_t
        Features of the matched participants.
    x_before, w_before
        Features and weights of the candidates before matching.
    x_after, w_after
        Features and matching weights of the matched comparisons.
    """
    mt, vt = x_t.mean(axis=0), x_t.var(axis=0)
    mb, vb = _weighted_mean_var(x_before, w_before)
    ma, va = _weighted_mean_var(x_after, w_after)
    pooled = np.sqrt((vt + vb) / 2)
    safe = np.where(pooled > 0, pooled, np.nan)
    frame = pl.DataFrame({
        "covariate": list(names), "mean_treated": mt, "mean_control_before": mb, "mean_control_after": ma,
        "smd_before": np.nan_to_num((mt - mb) / safe), "smd_after": np.nan_to_num((mt - ma) / safe),
        "var_ratio_before": _ratio(vt, vb), "var_ratio_after": _ratio(vt, va),
    })
    return frame.select([pl.col(c).cast(t) for c, t in BALANCE.items()])
