"""Influence functions of many ATT(g, t) held in factored form: memory grows with units, not cells x units.

Every 2x2 estimator of :mod:`analysis.estimate.staggered` (unconditional, DRDID's doubly robust, IPW and
outcome regression) has an influence function that is, on its subsample, linear in the unit's outcome
change ``dy = y_t - y_base`` with unit-level coefficients shared by every cell of a cohort::

    IF[:, cell] = a * dy[:, cell] + F @ C[:, cell]

``a`` (units of the subsample) and ``F`` (units x q, q = 2 without covariates, 2 (k + 1) + 2 with k
covariates) are the same for every cell that shares the subsample, the covariates and the propensity fit
(a *block*: a cohort against one control group); ``C`` holds q numbers per cell. The outcomes ``y`` are the
panel's own. So a block of c cells over m units costs m (q + 1) numbers instead of c m, and the dense
(cells x units) matrix of R ``did`` is never formed: the standard errors, the bootstrap and the
aggregations are computed block by block from the factors (:meth:`Influence.rows`, :meth:`norms`,
:meth:`draws`), each block materialised only while it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse


@dataclass(frozen=True, slots=True)
class Block:
    """Cells that share one subsample: ``IF = scale * (a * dy + F @ C)`` on the columns of ``slices``.

    ``rows`` are the cells' indices in the influence matrix; ``t_rows`` index ``y`` (the current period of
    each cell) and ``b_rows`` index ``base`` (each cell's base outcome: a period of ``y``, or a window mean);
    ``slices`` are (start, stop) ranges of the panel's unit order, ``offset`` shifts them to the columns of a
    stacked result.
    """

    rows: np.ndarray
    t_rows: np.ndarray
    b_rows: np.ndarray
    y: np.ndarray  # periods x units of the panel the block was estimated on
    base: np.ndarray  # base outcomes x units (``y`` itself when the base is one period)
    slices: tuple[tuple[int, int], ...]
    a: np.ndarray  # subsample units
    factors: np.ndarray  # subsample units x q
    coefficients: np.ndarray  # q x cells
    offset: int = 0
    scale: float = 1.0

    def columns(self) -> np.ndarray:
        """Return the block's columns in the (stacked) influence matrix."""
        return np.concatenate([np.arange(s, e) for s, e in self.slices]) + self.offset

    def _gather(self, source: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Return ``source[rows]`` on the block's columns (rows x subsample units)."""
        if len(self.slices) == 1:
            s, e = self.slices[0]
            return source[rows, s:e]
        return np.concatenate([source[rows, s:e] for s, e in self.slices], axis=1)

    @staticmethod
    def _spread(rows: np.ndarray, weights: np.ndarray, periods: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the weights summed per source row (m x used rows) and the rows used."""
        spread = np.zeros((weights.shape[0], periods))
        np.add.at(spread.T, rows, weights.T)
        used = np.flatnonzero(spread.any(axis=0))
        return spread[:, used], used

    def dense(self) -> np.ndarray:
        """Return the block's influence rows on its own columns (cells x subsample units)."""
        dy = self._gather(self.y, self.t_rows) - self._gather(self.base, self.b_rows)
        out = dy * self.a[None, :]
        out += self.coefficients.T @ self.factors.T
        if self.scale != 1.0:
            out *= self.scale
        return out

    def add_combined(self, weights: np.ndarray, out: np.ndarray, /) -> None:
        """Add ``weights @ rows`` (weights: m x cells of this block) into ``out`` (m x all columns)."""
        wy, used_y = self._spread(self.t_rows, weights, self.y.shape[0])
        wb, used_b = self._spread(self.b_rows, weights, self.base.shape[0])
        wc = (weights @ self.coefficients.T) * self.scale
        start = 0
        for s, e in self.slices:
            stop = start + e - s
            part = wy @ self.y[used_y, s:e]
            part -= wb @ self.base[used_b, s:e]
            part *= self.a[None, start:stop] * self.scale
            part += wc @ self.factors[start:stop].T
            out[:, s + self.offset : e + self.offset] += part
            start = stop


@dataclass(frozen=True, slots=True)
class Influence:
    """The influence functions of ``n_rows`` estimates over ``n_cols`` units, as blocks.

    Rows in no block are zero (e.g. the reference cell of a universal base period).
    Scaled as R ``did`` (``n / n1 * IF``). :meth:`dense` gives the (rows x units) matrix R works with, for
    small problems and tests.
    """

    n_rows: int
    n_cols: int
    blocks: tuple[Block, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """Return (estimates, units), as the dense matrix's shape."""
        return self.n_rows, self.n_cols

    @property
    def nbytes(self) -> int:
        """Return the bytes the factors hold (the outcomes are the panel's and not counted)."""
        return sum(b.a.nbytes + b.factors.nbytes + b.coefficients.nbytes for b in self.blocks)

    def dense(self) -> np.ndarray:
        """Return the dense (rows x units) matrix (memory rows x units: for small problems)."""
        out = np.zeros((self.n_rows, self.n_cols))
        for b in self.blocks:
            out[np.ix_(b.rows, b.columns())] = b.dense()
        return out

    def rows(self, weights: np.ndarray, /) -> np.ndarray:
        """Return ``weights @ IF`` (weights: m x n_rows), the influence functions of m linear combinations."""
        weights = np.atleast_2d(np.asarray(weights, dtype=float))
        out = np.zeros((weights.shape[0], self.n_cols))
        for b in self.blocks:
            w = weights[:, b.rows]
            if w.any():
                b.add_combined(w, out)
        return out

    def norms(self, clusters: np.ndarray | None = None, /) -> np.ndarray:
        """Return each row's sum of squares, after summing its columns within ``clusters`` (one per column).

        A row's columns all lie in one block (a cell is estimated on one subsample), so clusters are summed
        inside the block.
        """
        out = np.zeros(self.n_rows)
        for b in self.blocks:
            values = b.dense()
            if clusters is not None:
                cl = clusters[b.columns()]
                _, local = np.unique(cl, return_inverse=True)
                members = sparse.csr_matrix((np.ones(local.size), (local, np.arange(local.size))))
                values = np.asarray((members @ values.T).T)
            out[b.rows] += np.einsum("ij,ij->i", values, values)
        return out

    def draws(self, multipliers: np.ndarray, clusters: np.ndarray | None = None, /) -> np.ndarray:
        """Return ``multipliers @ IF.T`` (multipliers: draws x columns, or x clusters with ``clusters``)."""
        out = np.zeros((multipliers.shape[0], self.n_rows))
        for b in self.blocks:
            cols = b.columns()
            v = multipliers[:, cols if clusters is None else clusters[cols]]
            out[:, b.rows] += v @ b.dense().T
        return out

    def shifted(self, *, row_offset: int, col_offset: int, scale: float, n_rows: int,
                n_cols: int) -> Influence:
        """Return the same blocks placed at ``row_offset``/``col_offset`` of a larger (stacked) matrix."""
        blocks = tuple(replace(b, rows=b.rows + row_offset, offset=b.offset + col_offset,
                               scale=b.scale * scale) for b in self.blocks)
        return Influence(n_rows=n_rows, n_cols=n_cols, blocks=blocks)

    @staticmethod
    def stack(parts: list[Influence], /, *, n_rows: int, n_cols: int) -> Influence:
        """Return one influence holding every part's blocks (parts already :meth:`shifted` into place)."""
        return Influence(n_rows=n_rows, n_cols=n_cols, blocks=tuple(b for p in parts for b in p.blocks))
