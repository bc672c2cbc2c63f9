"""Frame helpers whose results are the same bits on every run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def sum_by(frame: pl.DataFrame, /, keys: Sequence[str], value: str, *,
           name: str | None = None) -> pl.DataFrame:
    """Sum ``value`` per combination of ``keys`` in one fixed order: the same bits whatever the row order.

    A float sum depends on the order of its terms (the last bit of 0.1 + 0.2 + 0.3 depends on which pair
    is added first), and a multi-threaded ``group_by(...).agg(sum())`` adds them in whatever order its
    threads meet them, so two runs on the same data can differ. Here the rows are sorted by the keys and
    then the value, and each group is reduced by numpy over that fixed sequence. Returns one row per key
    combination, sorted by the keys; nulls in ``value`` count 0.
    """
    missing = [c for c in (*keys, value) if c not in frame.columns]
    if missing:
        raise ValueError(f"sum_by: the frame lacks columns {missing}")
    if not frame.height:
        return frame.select(*keys, pl.col(value).cast(pl.Float64).alias(name or value)).clear()
    ordered = frame.select(*keys, pl.col(value).cast(pl.Float64).fill_null(0.0)).sort([*keys, value])
    group = ordered.select(pl.struct(list(keys)).rle_id()).to_series().to_numpy()
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    totals = np.add.reduceat(ordered[value].to_numpy(), starts)
    firsts = ordered.select(list(keys))[starts.tolist()]
    return firsts.with_columns(pl.Series(name or value, totals, dtype=pl.Float64))
