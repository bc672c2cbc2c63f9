"""The balanced person x month panel as arrays: every window mean of the features in O(1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl


def month_index(column: str) -> pl.Expr:
    """Months since year 0 (a month's integer position): ``year * 12 + month - 1``."""
    return (pl.col(column).dt.year().cast(pl.Int64) * 12 + pl.col(column).dt.month().cast(pl.Int64) - 1)


@dataclass(frozen=True, slots=True)
class PanelArrays:
    """A balanced person x month panel as arrays: ``values[outcome][row, month - first]``."""

    ids: np.ndarray  # sorted person ids (row order)
    first: int  # month index of column 0
    values: dict[str, np.ndarray]
    cumsum: dict[str, np.ndarray]  # with a leading zero column: window sums in O(1)

    @classmethod
    def from_panel(cls, panel: pl.DataFrame, outcomes: Sequence[str], *,
                   cumulative: Sequence[str] | None = None) -> PanelArrays:
        """Arrays of ``outcomes`` from a balanced ``person_id`` x ``month`` panel (sorted here if it is not).

        ``cumulative`` names the outcomes whose window means are needed (their running sums are kept; all
        ``outcomes`` when None).

        Raises
        ------
        ValueError
            When a column is missing or the panel is not balanced (every person in every month).
        """
        missing = [c for c in ("person_id", "month", *outcomes) if c not in panel.columns]
        if missing:
            raise ValueError(f"panel lacks columns {missing}")
        frame = panel.select("person_id", month_index("month").alias("m"), *outcomes)
        person, m = frame["person_id"].to_numpy(), frame["m"].to_numpy()
        step_p, step_m = np.diff(person), np.diff(m)
        ordered = bool(((step_p > 0) | ((step_p == 0) & (step_m > 0))).all())  # strictly by person, month
        if not ordered:  # the linkage writes it sorted; anything else is sorted here
            frame = frame.sort("person_id", "m")
            person, m = frame["person_id"].to_numpy(), frame["m"].to_numpy()
            step_p, step_m = np.diff(person), np.diff(m)
        ids = np.concatenate([person[:1], person[1:][step_p != 0]])
        first, last = int(m.min()), int(m.max())
        months = last - first + 1
        if frame.height != ids.size * months or bool(((step_p == 0) & (step_m == 0)).any()):
            raise ValueError(
                f"the panel must be balanced (every person in every month {first}..{last}); it has "
                f"{frame.height} rows for {ids.size} persons x {months} months"
            )
        values, sums = {}, {}
        running = set(outcomes if cumulative is None else cumulative)
        for outcome in outcomes:
            matrix = frame[outcome].cast(pl.Float64).to_numpy().reshape(ids.size, months)
            values[outcome] = matrix
            if outcome in running:
                total = np.empty((ids.size, months + 1))
                total[:, 0] = 0.0
                np.cumsum(matrix, axis=1, out=total[:, 1:])
                sums[outcome] = total
        return cls(ids, first, values, sums)

    @property
    def months(self) -> int:
        """Number of months (columns) of the panel."""
        return next(iter(self.values.values())).shape[1]

    def window_mean(self, outcome: str, rows: np.ndarray, at: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Mean of ``outcome`` over months ``at + lo .. at + hi`` (column positions) for each row."""
        c = self.cumsum[outcome]
        return (c[rows, at + hi + 1] - c[rows, at + lo]) / (hi - lo + 1)
