"""Statistical disclosure control: counts and estimates on fewer than 5 persons are never published.

* Primary suppression: a count of 1..4 persons is shown as "<5"; an estimate whose n is below 5 is removed.
* Secondary suppression (two-way tables with margins): a row or column with exactly one suppressed cell
  would give that cell away by subtraction, so the smallest other positive cell on that line is suppressed
  too, until no line has a single suppressed cell. :func:`audit` proves the result with linear programming:
  for every suppressed cell it computes the largest value consistent with everything published, and the
  table fails if a small cell (1..4) can be shown to be below 5 or any suppressed cell is pinned exactly.
  Zeros are published: a zero reveals no person.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.optimize import linprog

MIN_CELL = 5


def format_count(n: int | None) -> str:
    """``"<5"`` for 1..4 (and for a suppressed None), else the number with a thin thousands separator."""
    if n is None or 0 < n < MIN_CELL:
        return "<5"
    return f"{int(n):,}".replace(",", " ")


def suppress_estimates(frame: pl.DataFrame, /, *, n_columns: Sequence[str], value_columns: Sequence[str],
                       optional: Sequence[str] = ()) -> pl.DataFrame:
    """Null every value (and the n columns) of rows where any n column is below ``MIN_CELL`` or missing.

    Adds a Boolean ``suppressed`` column. Zero-count rows are suppressed too: an estimate on nobody is
    not an estimate. ``optional`` n columns may be null (a design without that group, e.g. no controls in
    the naive before/after): null there is not a small cell, but 0..4 still is.
    """
    missing = [c for c in (*n_columns, *value_columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    small = pl.any_horizontal(
        [(pl.col(c) < MIN_CELL).fill_null(c not in optional) for c in n_columns]
    ) if n_columns else pl.lit(False)
    out = frame.with_columns(suppressed=small)
    return out.with_columns(
        [
            pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c)
            for c in (*value_columns, *n_columns)
        ]
    )


def suppress_table(counts: np.ndarray, /) -> np.ndarray:
    """Suppression mask for a two-way table *with* its margins (last row and column are totals).

    ``counts`` has shape (r + 1, c + 1): inner cells plus row totals (last column), column totals (last
    row) and the grand total. Returns a Boolean mask of the cells to suppress (primary and secondary).
    """
    table = np.asarray(counts, dtype=np.int64)
    if table.ndim != 2 or min(table.shape) < 2:
        raise ValueError("suppress_table needs a 2-D table with a margin row and column")
    mask = (table > 0) & (table < MIN_CELL)
    for _ in range(table.size):
        changed = False
        for lines in (mask, mask.T):  # rows, then columns (views: writing through them updates mask)
            values = table if lines is mask else table.T
            for i in range(lines.shape[0]):
                if lines[i].sum() == 1:
                    candidates = np.flatnonzero(~lines[i] & (values[i] > 0))
                    if candidates.size:
                        pick = candidates[np.argmin(values[i][candidates])]
                        lines[i, pick] = True
                        changed = True
        if not changed:
            break
    # The greedy lines rule is not enough in every table (two small cells that share a line can still be
    # bounded by it): widen with the smallest published positive cell on a line of a failing cell until the
    # LP audit passes. Suppressing everything always passes, so this terminates.
    while problems := _failing_cells(table, mask):
        i, j = problems[0]
        line = [(i, k) for k in range(table.shape[1])] + [(k, j) for k in range(table.shape[0])]
        free = [cell for cell in line if not mask[cell] and table[cell] > 0]
        if not free:
            free = [tuple(cell) for cell in np.argwhere(~mask & (table > 0))]
        if not free:
            break
        mask[min(free, key=lambda cell: table[cell])] = True
    return mask


def _failing_cells(table: np.ndarray, mask: np.ndarray) -> list[tuple[int, int]]:
    return [cell for cell, _ in _audit(table, mask)]


def audit(counts: np.ndarray, mask: np.ndarray, /) -> list[str]:
    """Problems an attacker could exploit, by linear programming over the published table (empty = safe).

    Unknowns are the suppressed cells (inner and margins); every row sum and column sum relation of the
    table is an equality; all cells are >= 0. For each suppressed cell the LP gives its feasible range.
    """
    return [text for _, text in _audit(counts, mask)]


def _audit(counts: np.ndarray, mask: np.ndarray, /) -> list[tuple[tuple[int, int], str]]:
    table = np.asarray(counts, dtype=float)
    r, c = table.shape[0] - 1, table.shape[1] - 1
    unknown = np.argwhere(mask)
    index = {tuple(cell): k for k, cell in enumerate(unknown)}
    if not unknown.size:
        return []
    rows_eq, rhs = [], []
    relations = [[(i, j) for j in range(c)] + [(i, c)] for i in range(r + 1)] + [
        [(i, j) for i in range(r)] + [(r, j)] for j in range(c + 1)
    ]
    for line in relations:
        *parts, total = line
        coefficients = np.zeros(len(unknown))
        constant = 0.0
        for cell in parts:
            if cell in index:
                coefficients[index[cell]] += 1
            else:
                constant += table[cell]
        if total in index:
            coefficients[index[total]] -= 1
        else:
            constant -= table[total]
        if coefficients.any():
            rows_eq.append(coefficients)
            rhs.append(-constant)
    problems = []
    for k, cell in enumerate(map(tuple, unknown)):
        objective = np.zeros(len(unknown))
        objective[k] = 1
        bounds = [(0, None)] * len(unknown)
        low = linprog(objective, A_eq=np.array(rows_eq), b_eq=rhs, bounds=bounds, method="highs")
        high = linprog(-objective, A_eq=np.array(rows_eq), b_eq=rhs, bounds=bounds, method="highs")
        lo = low.fun if low.status == 0 else 0.0
        hi = -high.fun if high.status == 0 else np.inf
        true = table[cell]
        if hi - lo < 0.5:
            problems.append((cell, f"cell {cell} is determined exactly ({true:g})"))
        elif 0 < true < MIN_CELL and hi < MIN_CELL:
            problems.append((cell, f"cell {cell} can be shown to be below {MIN_CELL} (at most {hi:g})"))
    return problems


def with_margins(
    frame: pl.DataFrame, /, *, rows: str, columns: str, count: str
) -> tuple[list, list, np.ndarray]:
    """Long counts -> (row labels, column labels, array with margins); missing combinations are 0."""
    wide = (
        frame.group_by(rows, columns)
        .agg(pl.col(count).sum())
        .pivot(on=columns, index=rows, values=count)
        .sort(rows)
    )
    col_labels = sorted(c for c in wide.columns if c != rows)
    inner = wide.select(col_labels).fill_null(0).to_numpy().astype(np.int64)
    table = np.zeros((inner.shape[0] + 1, inner.shape[1] + 1), dtype=np.int64)
    table[:-1, :-1] = inner
    table[:-1, -1] = inner.sum(axis=1)
    table[-1, :-1] = inner.sum(axis=0)
    table[-1, -1] = inner.sum()
    return wide[rows].to_list(), col_labels, table


def display_table(frame: pl.DataFrame, /, *, rows: str, columns: str, count: str) -> pl.DataFrame:
    """Build a publishable two-way table of strings: numbers, "<5" (primary) or "x" (secondary), totals."""
    row_labels, col_labels, table = with_margins(frame, rows=rows, columns=columns, count=count)
    mask = suppress_table(table)
    out = {rows: [str(v) for v in row_labels] + ["Total"]}
    for j, label in enumerate([*map(str, col_labels), "Total"]):
        out[label] = [
            ("<5" if 0 < table[i, j] < MIN_CELL else "x") if mask[i, j] else format_count(int(table[i, j]))
            for i in range(table.shape[0])
        ]
    return pl.DataFrame(out)
