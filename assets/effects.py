"""Effect models: naive before/after, the matched comparison, and per-outcome DiD / event study / staggered ATT."""

import dagster as dg
import polars as pl

from analysis.estimate import before_after as ba
from analysis.estimate import effects, matching
from analysis.schema import HEADLINE_OUTCOMES, HONEST_DID, OUTCOMES
from expectations import effects as suites
from expectations.adapter import check_results, check_specs
from pipelines.partitions import EFFECTS_GROUP, OUTCOME_PARTITIONS
from pipelines.storage import OPTIONAL_KEY


class MatchingConfig(dg.Config):
    """The matched-comparison design (defaults: analysis.estimate.matching.MatchConfig)."""

    neighbours: int = 5
    caliper: float = 0.2
    replacement: bool = True
    metric: str = "mahalanobis"
    seed: int = 0


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
    participants = effects.participant_table(linked_courses)
    result = ba.before_after(outcome_panel, participants, outcomes=OUTCOMES)
    naive = result.contrasts.filter(
        (pl.col("outcome") == "self_support") & (pl.col("contrast") == "post 12..24 minus pre -3..-1")
    )
    meta = {"participants": participants.height}
    if naive.height and naive["estimate"][0] is not None:
        meta |= {"naive_self_support_vs_dip": round(naive["estimate"][0], 4), "n": int(naive["n"][0])}
    yield dg.Output(result.by_event_time, output_name="before_after", metadata=meta)
    yield dg.Output(result.contrasts, output_name="before_after_contrasts", metadata={"rows": result.contrasts.height})


@dg.multi_asset(
    group_name=EFFECTS_GROUP,
    outs={
        "matched_units": dg.AssetOut(description="Participants and matched comparison persons, one row per (person, cohort) stack unit."),
        "matched_pairs": dg.AssetOut(description="Participant -> comparison pairs with propensity distance and weight."),
        "balance": dg.AssetOut(description="Covariate balance before/after matching (SMD, variance ratio)."),
        "unmatched_participants": dg.AssetOut(description="Participants without a comparison inside the caliper, with the reason."),
    },
    check_specs=check_specs(dg.AssetKey("balance"), suites.BALANCE),
)
def matched_sample(config: MatchingConfig, outcome_panel: pl.DataFrame, linked_courses: pl.DataFrame,
                   population: pl.LazyFrame):
    """Match every participant at the start month on pre-period history and demographics."""
    participants = effects.participant_table(linked_courses)
    persons = matching.person_attributes(population, outcome_panel.select("person_id").unique())
    design = matching.MatchConfig(neighbours=config.neighbours, caliper=config.caliper, replacement=config.replacement,
                                  metric=config.metric, seed=config.seed)
    result = matching.match(outcome_panel, participants.select("person_id", "start_month"), persons, config=design)
    worst = float(result.balance["smd_after"].abs().max())
    meta = {"n_treated": result.n_treated, "n_controls": result.n_controls, "unmatched": result.unmatched.height,
            "max_abs_smd_after": round(worst, 4), "notes": "; ".join(result.notes) or "none"}
    yield dg.Output(result.units, output_name="matched_units", metadata=meta)
    yield dg.Output(result.pairs, output_name="matched_pairs", metadata={"pairs": result.pairs.height})
    yield dg.Output(result.balance, output_name="balance", metadata={"max_abs_smd_after": round(worst, 4)})
    yield dg.Output(result.unmatched, output_name="unmatched_participants", metadata={"unmatched": result.unmatched.height})
    yield from check_results(result.balance, suites.BALANCE, asset_key=dg.AssetKey("balance"))


_TABLES = {
    "effect_estimates": "Pooled effects (matched DiD, staggered ATT, naive) overall and by sub-group, with n, CI and MDE.",
    "event_study": "Event-study coefficients by month from start on the matched sample, relative to the mean of "
                   "months -15..-13 (before the dip; every month estimated, the transition month -1 included).",
    "matched_means": "Raw means by event month: participants vs matched comparisons.",
    "group_time_att": "Callaway & Sant'Anna ATT(g, t) by start month and month.",
    "staggered_aggregates": "Simple / dynamic / group / calendar aggregations of the group-time ATTs.",
    "effect_influence": "Each matched person's influence on the event-study coefficients of months >= 0: "
                        "stacked by person across outcomes: their joint covariance (read by the SØM).",
    "pretrend_tests": "Pre-trend tests of the event study: months before the dip (-36..-13) and the dip "
                      "(-12..-1), the transition month -1 left out; monthly and binned.",
    "phase_effects": "Effects by CTI phase (months 1-3, 4-6, 7-9) and the follow-up (10-24): the mean "
                     "event-study coefficient of the phase's months, clustered SE.",
    "placebo_effects": "Placebo in time: every start moved 12 months earlier, pooled DiD on months before "
                       "the real start only (should be 0).",
    "honest_did": "Rambachan & Roth honest-DiD bounds (relative magnitudes, M = 0.5, 1, 2) of the pooled "
                  "effect over months 12..23, quarterly bins from the reference (headline outcomes only).",
}


@dg.multi_asset(
    group_name=EFFECTS_GROUP,
    partitions_def=OUTCOME_PARTITIONS,
    # OPTIONAL: the report reads every outcome that exists and names the others, so none existing is no error
    outs={name: dg.AssetOut(description=text, metadata={OPTIONAL_KEY: True}) for name, text in _TABLES.items()},
    check_specs=[
        *check_specs(dg.AssetKey("event_study"), suites.ESTIMATES, partitions_def=OUTCOME_PARTITIONS),
        *check_specs(dg.AssetKey("group_time_att"), suites.GROUP_TIME, partitions_def=OUTCOME_PARTITIONS),
    ],
)
def outcome_effects(
    context: dg.AssetExecutionContext,
    outcome_panel: pl.LazyFrame,
    matched_units: pl.DataFrame,
    linked_courses: pl.DataFrame,
    before_after_contrasts: pl.DataFrame,
):
    """One outcome (the partition): event study, pooled DiD with sub-groups, staggered ATT, naive contrast."""
    outcome = context.partition_key
    ids = matched_units.select("person_id").unique().lazy()
    panel = outcome_panel.select("person_id", "month", outcome).join(ids, on="person_id", how="semi").collect()
    stacked = matching.stacked_panel(panel, matched_units, outcomes=[outcome])
    result = effects.outcome_effects(panel, stacked, matched_units, effects.participant_table(linked_courses), outcome,
                                     naive=before_after_contrasts, honest=outcome in HEADLINE_OUTCOMES)
    headline = {r["design"]: r for r in result.estimates.filter(pl.col("dimension") == "all").iter_rows(named=True)}
    meta = {}
    for design, row in headline.items():
        for key in ("estimate", "ci_lower", "ci_upper", "n_treated", "n_controls"):
            value = row[key]
            meta[f"{design}/{key}"] = round(value, 5) if isinstance(value, float) else value
    yield dg.Output(result.estimates, output_name="effect_estimates", metadata=meta)
    yield dg.Output(result.event_study, output_name="event_study", metadata={"rows": result.event_study.height})
    yield dg.Output(result.matched_means, output_name="matched_means", metadata={"rows": result.matched_means.height})
    yield dg.Output(result.group_time, output_name="group_time_att", metadata={"cells": result.group_time.height})
    yield dg.Output(result.aggregates, output_name="staggered_aggregates", metadata={"rows": result.aggregates.height})
    yield dg.Output(result.influence, output_name="effect_influence",
                    metadata={"rows": result.influence.height,
                              "persons": result.influence["person_id"].n_unique()})
    pre_dip = result.pretrend_tests.filter(pl.col("test") == "pre_dip")
    yield dg.Output(result.pretrend_tests, output_name="pretrend_tests",
                    metadata={"pre_dip_p": round(float(pre_dip["p_value"][0]), 4)
                              if pre_dip.height and pre_dip["p_value"][0] is not None else "none"})
    yield dg.Output(result.phases, output_name="phase_effects", metadata={"rows": result.phases.height})
    yield dg.Output(result.placebo, output_name="placebo_effects",
                    metadata={"estimate": round(result.placebo["estimate"][0], 5)
                              if result.placebo["estimate"][0] is not None else "none"})
    honest = result.honest if result.honest is not None else pl.DataFrame(schema=HONEST_DID)
    yield dg.Output(honest, output_name="honest_did", metadata={"rows": honest.height})
    yield from check_results(result.event_study.drop_nulls("se"), suites.ESTIMATES, asset_key=dg.AssetKey("event_study"))
    yield from check_results(result.group_time.drop_nulls("se"), suites.GROUP_TIME, asset_key=dg.AssetKey("group_time_att"))


assets = [before_after, matched_sample, outcome_effects]
