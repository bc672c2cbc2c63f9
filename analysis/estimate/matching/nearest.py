"""Nearest-neighbour search within a stratum: on the score, or on features inside a score caliper."""

from __future__ import annotations

import numpy as np


def stratum_codes(columns: list[np.ndarray], n: int) -> np.ndarray:
    """One integer code per combination of exact-matching values (all zero without exact columns)."""
    if not columns or not n:
        return np.zeros(n, dtype=np.int64)
    # Mixed-radix code of each column's sorted-value rank: the lexicographic order of np.unique(axis=0) on the
    # stacked columns (so strata are visited in the same order), without its slow row-wise sort.
    code = np.zeros(n, dtype=np.int64)
    for column in columns:
        values, rank = np.unique(np.asarray(column), return_inverse=True)
        code = code * values.size + rank.reshape(-1)
    return np.unique(code, return_inverse=True)[1].reshape(-1)


def nearest_scores(treated: np.ndarray, controls: np.ndarray, /, *, k: int, caliper: float, replacement: bool,
             rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each treated score, up to ``k`` nearest control positions within ``caliper`` and their distances.

    With replacement every treated unit looks at the 2k sorted controls around its score (the k nearest are
    among them); without, treated units are served one at a time in random order and chosen controls are
    used up (greedy).
    """
    if not controls.size:
        return [(np.zeros(0, dtype=np.int64), np.zeros(0))] * treated.size
    order = np.argsort(controls, kind="stable")
    sorted_c = controls[order]
    if replacement:
        at = np.searchsorted(sorted_c, treated)
        offsets = np.arange(-k, k)
        window = np.clip(at[:, None] + offsets[None, :], 0, sorted_c.size - 1)
        out = []
        for row, t in zip(window, treated, strict=True):
            cand = np.unique(row)
            dist = np.abs(sorted_c[cand] - t)
            best = np.argsort(dist, kind="stable")[:k]
            best = best[dist[best] <= caliper]
            out.append((order[cand[best]], dist[best]))
        return out
    used = np.zeros(controls.size, dtype=bool)
    out: list = [None] * treated.size
    for i in rng.permutation(treated.size):
        free = np.flatnonzero(~used)
        dist = np.abs(controls[free] - treated[i])
        best = np.argsort(dist, kind="stable")[:k]
        best = best[dist[best] <= caliper]
        used[free[best]] = True
        out[i] = (free[best], dist[best])
    return out


def nearest_features(xt: np.ndarray, xc: np.ndarray, pt: np.ndarray, pc: np.ndarray, /, *, k: int,
                     caliper: float, replacement: bool,
                     rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``k`` controls nearest in standardised features among those within ``caliper`` on the score.

    Returns control positions and their *score* distances (what the caliper bounds).
    """
    order = np.argsort(pc, kind="stable")
    sorted_p = pc[order]
    used = np.zeros(pc.size, dtype=bool)
    out: list = [None] * pt.size
    for i in (rng.permutation(pt.size) if not replacement else range(pt.size)):
        lo, hi = np.searchsorted(sorted_p, [pt[i] - caliper, pt[i] + caliper], side="left")
        cand = order[lo:hi]
        if not replacement:
            cand = cand[~used[cand]]
        if not cand.size:
            out[i] = (cand, np.zeros(0))
            continue
        dist = ((xc[cand] - xt[i]) ** 2).sum(axis=1)
        best = cand[k_smallest(dist, k)]
        used[best] = True
        out[i] = (best, np.abs(pc[best] - pt[i]))
    return out


def k_smallest(values: np.ndarray, k: int, /) -> np.ndarray:
    """Positions of the ``k`` smallest values, ties to the earlier position: ``argsort(kind="stable")[:k]``.

    A partition finds the k-th value in linear time; only the values up to it are sorted.
    """
    if values.size <= k:
        return np.argsort(values, kind="stable")
    kth = np.partition(values, k - 1)[k - 1]
    near = np.flatnonzero(values <= kth)
    return near[np.argsort(values[near], kind="stable")[:k]]
