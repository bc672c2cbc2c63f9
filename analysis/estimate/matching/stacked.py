"""The stacked panel: each matched unit's panel rows around its cohort month, the input of the DiD."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.estimate.matching.arrays import month_index


def stacked_panel(panel: pl.DataFrame, units: pl.DataFrame, /, *, window: tuple[int, int] = (-36, 24),
                  outcomes: Sequence[str] | None = None) -> pl.DataFrame:
    """Return the matched units' panel rows around their cohort month, with event time, treated and weight.

    A unit is (person, cohort); the same person can be a control in several cohorts. Controls are censored
    from their own CTI start month on (a not-yet-treated control stops being a control when it starts).
    ``unit`` numbers the stacked units; ``stack_time`` numbers the (cohort, event time) cells.
    """
    cols = (list(outcomes) if outcomes is not None
            else [c for c in panel.columns if c not in ("person_id", "month")])
    numbered = units.with_row_index("unit").with_columns(pl.col("unit").cast(pl.Int64))
    rows = (
        panel.select("person_id", month_index("month").alias("m"), *cols)
        .join(numbered, on="person_id", how="inner", validate="m:m")
        .with_columns(event_time=(pl.col("m") - pl.col("cohort")).cast(pl.Int32))
        .filter(pl.col("event_time").is_between(*window))
        .filter(pl.col("person_start").is_null() | (pl.col("treated") == 1)
                | (pl.col("m") < pl.col("person_start")))
    )
    return rows.with_columns(
        stack_time=pl.struct("cohort", "event_time").rank("dense").cast(pl.Int64) - 1
    ).drop("person_start").sort("unit", "event_time")
