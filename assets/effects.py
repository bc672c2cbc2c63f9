"""Effect models. So far: the naive before/after for participants (it shows the Ashenfelter dip)."""

import dagster as dg
import polars as pl

from analysis import before_after as ba
from analysis.schema import OUTCOMES
from pipelines.partitions import EFFECTS_GROUP


@dg.multi_asset(
    group_name=EFFECTS_GROUP,
    outs={
        "before_after": dg.AssetOut(description="Participants' outcome means by month from start (-36..+24), with CIs."),
        "before_after_contrasts": dg.AssetOut(
            description="Naive post-minus-pre contrasts: biased by the Ashenfelter dip, shown to motivate controls."
        ),
    },
)
def before_after(outcome_panel: pl.DataFrame, linked_courses: pl.DataFrame):
    """Each participant's first course start defines event month 0."""
    participants = linked_courses.group_by("person_id").agg(start_month=pl.col("start_date").min())
    result = ba.before_after(outcome_panel, participants, outcomes=OUTCOMES)
    naive = result.contrasts.filter(
        (pl.col("outcome") == "self_support") & (pl.col("contrast") == "post 12..24 minus pre -3..-1")
    )
    meta = {"participants": participants.height}
    if naive.height and naive["estimate"][0] is not None:
        meta |= {"naive_self_support_vs_dip": round(naive["estimate"][0], 4), "n": int(naive["n"][0])}
    yield dg.Output(result.by_event_time, output_name="before_after", metadata=meta)
    yield dg.Output(result.contrasts, output_name="before_after_contrasts", metadata={"rows": result.contrasts.height})


assets = [before_after]
