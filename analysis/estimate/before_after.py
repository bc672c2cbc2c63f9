"""Before/after for participants: outcome means by event time (months from the CTI start), with CIs.

This is the naive design: it shows the Ashenfelter dip (outcomes fall in the months before a critical
transition and partly recover afterwards whatever happens), which is why a comparison group is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analysis.estimate.did import contributor_stats
from analysis.estimate.inference import z_critical


@dataclass(frozen=True, slots=True)
class BeforeAfterResult:
    """Means by event time and the naive post-minus-pre contrasts, each with its n."""

    by_event_time: pl.DataFrame  # outcome, event_time, mean, se, ci_lower, ci_upper, n, contributor stats
    contrasts: pl.DataFrame  # outcome, contrast, estimate, se, ci_lower, ci_upper, n
    window: tuple[int, int]  # event months around the start
    alpha: float

    def to_frame(self) -> pl.DataFrame:
        """Event-time means (the table the report plots)."""
        return self.by_event_time


#: Naive contrasts: post window minus a pre window, in event months (inclusive).
CONTRASTS = {
    "post 12..24 minus pre -36..-13": ((12, 24), (-36, -13)),
    "post 12..24 minus pre -3..-1": ((12, 24), (-3, -1)),
}


def event_time_panel(panel: pl.DataFrame, participants: pl.DataFrame, /, *,
                     window: tuple[int, int]) -> pl.DataFrame:
    """Return participants' panel rows with ``event_time`` (months from the start month) inside ``window``."""
    needed = (("panel", panel, ("person_id", "month")),
              ("participants", participants, ("person_id", "start_month")))
    for name, frame, columns in needed:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    starts = participants.select(pl.col("person_id").cast(pl.Int64), pl.col("start_month").dt.truncate("1mo"))
    if starts["person_id"].n_unique() != starts.height:
        raise ValueError("participants must have one start month per person (use each person's first course)")
    joined = panel.join(starts, on="person_id", how="inner", validate="m:1")
    event = (pl.col("month").dt.year() - pl.col("start_month").dt.year()) * 12 + (
        pl.col("month").dt.month() - pl.col("start_month").dt.month()
    )
    return joined.with_columns(event_time=event.cast(pl.Int32)).filter(
        pl.col("event_time").is_between(*window)
    )


def before_after(
    panel: pl.DataFrame,
    participants: pl.DataFrame,
    /,
    *,
    outcomes: tuple[str, ...],
    window: tuple[int, int] = (-36, 24),
    alpha: float = 0.05,
) -> BeforeAfterResult:
    """Mean of each outcome by event time, normal-approximation CIs (one observation per person and month).

    The contrasts average each person's post and pre windows first and then take the mean of the
    person-level differences (persons observed in both windows), so persons are the unit of the SE.
    """
    if not participants.height:
        raise ValueError("no participants: before/after needs at least one linked participant")
    missing = [o for o in outcomes if o not in panel.columns]
    if missing:
        raise ValueError(f"panel lacks outcome columns {missing}")
    z = z_critical(alpha)
    rows = event_time_panel(panel, participants, window=window)
    frames, contrasts = [], []
    for outcome in outcomes:
        y = pl.col(outcome).cast(pl.Float64)
        frames.append(
            rows.group_by("event_time")
            .agg(mean=y.mean(), sd=y.std(), n=pl.len().cast(pl.Int64))
            .join(
                contributor_stats(rows, by=("event_time",), value=y),
                on="event_time",
                how="left",
                validate="1:1",
            )
            .with_columns(outcome=pl.lit(outcome), se=pl.col("sd") / pl.col("n").sqrt())
        )
        for label, (post, pre) in CONTRASTS.items():
            person = rows.group_by("person_id").agg(
                post=y.filter(pl.col("event_time").is_between(*post)).mean(),
                pre=y.filter(pl.col("event_time").is_between(*pre)).mean(),
            ).drop_nulls().sort("person_id")  # group order is random: sort so the sum below is reproducible
            diff = person["post"] - person["pre"]
            n = diff.len()
            se = float(diff.std() / n**0.5) if n > 1 else None
            estimate = float(diff.mean()) if n else None
            contrasts.append({"outcome": outcome, "contrast": label, "estimate": estimate, "se": se, "n": n})
    by_time = (
        pl.concat(frames)
        .with_columns(ci_lower=pl.col("mean") - z * pl.col("se"), ci_upper=pl.col("mean") + z * pl.col("se"))
        .select(
            "outcome",
            "event_time",
            "mean",
            "se",
            "ci_lower",
            "ci_upper",
            "n",
            "n_positive",
            "n_full",
            "top2_share",
        )
        .sort("outcome", "event_time")
    )
    table = pl.DataFrame(contrasts, schema={"outcome": pl.String, "contrast": pl.String,
                                            "estimate": pl.Float64, "se": pl.Float64, "n": pl.Int64})
    table = table.with_columns(ci_lower=pl.col("estimate") - z * pl.col("se"),
                               ci_upper=pl.col("estimate") + z * pl.col("se"))
    return BeforeAfterResult(by_event_time=by_time, contrasts=table, window=window, alpha=alpha)
