"""Per-outcome effect tables: matched DiD / event study, heterogeneity, staggered ATT, naive contrast.

This module strings the estimators together in the shape the assets persist (analysis.schema effect
tables); every row carries its n so the report can apply disclosure control.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.estimate import did, sensitivity
from analysis.estimate.matching import month_index
from analysis.estimate.power import mde_from_se
from analysis.estimate.staggered import att_gt, stack_results
from analysis.frames import sum_by
from analysis.schema import (
    EFFECT_ESTIMATES,
    EFFECT_INFLUENCE,
    GROUP_TIME_ATT,
    MATCHED_MEANS,
    STAGGERED_AGGREGATES,
)

#: Pooled post window (event months) of every headline estimate, both designs; the planted truth uses it too.
POST_WINDOW = (12, 24)
#: The month before the start holds the transition itself (the stay discharge, the dip's bottom, its
#: register trace): the staggered design treats it as anticipation.
ANTICIPATION_MONTHS = 1
#: The staggered design's base: each person's mean over the 12 months before the transition month (event
#: months -13..-2), so every ATT(g, t) compares month t with a year, not with one noisy month (with a single
#: base month its standard error is 1.5-4 times as large, most for emergency contacts, whose month -2 lies
#: in the crisis bump).
BASE_WINDOW_MONTHS = 12
#: Heterogeneity dimensions (columns of :func:`participant_table`).
DIMENSIONS = ("delmaalgruppe", "site", "completed", "start_cohort")


#: Columns of a pooled estimate row (:meth:`StaggeredEffects.to_frame`).
_POOLED = {"outcome": pl.String, "estimate": pl.Float64, "se": pl.Float64, "ci_lower": pl.Float64,
           "ci_upper": pl.Float64, "n_treated": pl.Int64, "n_controls": pl.Int64, "mde": pl.Float64,
           "note": pl.String}


@dataclass(frozen=True, slots=True)
class OutcomeEffects:
    """Everything estimated for one outcome."""

    outcome: str
    estimates: pl.DataFrame  # EFFECT_ESTIMATES
    event_study: pl.DataFrame  # EVENT_STUDY
    matched_means: pl.DataFrame  # MATCHED_MEANS
    group_time: pl.DataFrame  # GROUP_TIME_ATT
    aggregates: pl.DataFrame  # STAGGERED_AGGREGATES
    #: EFFECT_INFLUENCE: each person's influence on the post-period event-study coefficients (for the SØM).
    influence: pl.DataFrame | None = None
    #: analysis.estimate.sensitivity: PRETREND_TESTS, PHASE_EFFECTS, PLACEBO_EFFECTS, HONEST_DID (None when
    #: not computed: honest DiD only when asked for).
    pretrend_tests: pl.DataFrame | None = None
    phases: pl.DataFrame | None = None
    placebo: pl.DataFrame | None = None
    honest: pl.DataFrame | None = None

    def to_frame(self) -> pl.DataFrame:
        """Return the pooled estimates of every design (``analysis.schema.EFFECT_ESTIMATES``)."""
        return self.estimates


@dataclass(frozen=True, slots=True)
class MatchedEffects:
    """The matched design of one outcome (:func:`matched_effects`) and the post window it pools."""

    outcome: str
    estimates: pl.DataFrame  # EFFECT_ESTIMATES, design "matched_did": overall and per subgroup
    event_study: did.EventStudyResult
    matched_means: pl.DataFrame  # MATCHED_MEANS
    post: tuple[int, int]  # event months of the pooled DiD

    def to_frame(self) -> pl.DataFrame:
        """Return the pooled DiD estimates, overall and per subgroup."""
        return self.estimates


@dataclass(frozen=True, slots=True)
class StaggeredEffects:
    """The staggered ATT of one outcome (:func:`staggered_effects`) with the options it was estimated with.

    ``estimate`` .. ``mde`` are the pooled dynamic effect over event months ``post`` (None where it could
    not be estimated; se, CI and mde also None where the standard error is degenerate). ``skipped`` lists
    the start months left out, each with the reason.
    """

    outcome: str
    group_time: pl.DataFrame  # GROUP_TIME_ATT
    aggregates: pl.DataFrame  # STAGGERED_AGGREGATES
    estimate: float | None
    se: float | None
    ci_lower: float | None
    ci_upper: float | None
    mde: float | None
    n_treated: int  # participants in the estimated start months
    n_controls: int  # their matched comparison persons
    skipped: tuple[str, ...]
    post: tuple[int, int]  # event months of the pooled effect
    alpha: float
    control_group: str
    method: str
    anticipation: int  # months
    base_window: int  # months of the base average

    @property
    def note(self) -> str:
        """Which start months were left out and why (empty when none was)."""
        if not self.skipped:
            return ""
        return f"{len(self.skipped)} start month(s) left out: {'; '.join(self.skipped)}"

    def to_frame(self) -> pl.DataFrame:
        """Return the pooled effect as one row (outcome, estimate, se, CI, n, mde and the note)."""
        row = {c: getattr(self, c) for c in _POOLED}
        return pl.DataFrame([row], schema=_POOLED)


def participant_table(linked_courses: pl.DataFrame, /) -> pl.DataFrame:
    """One row per person: first course's start month, site, delmålgruppe, completion and start cohort."""
    need = ("person_id", "start_date", "site", "delmaalgruppe", "completed")
    missing = [c for c in need if c not in linked_courses.columns]
    if missing:
        raise ValueError(f"linked courses lack columns {missing}")
    first = linked_courses.sort("person_id", "start_date").group_by("person_id", maintain_order=True).first()
    return first.select(
        pl.col("person_id").cast(pl.Int64),
        start_month=pl.col("start_date").dt.truncate("1mo"),
        site="site",
        delmaalgruppe="delmaalgruppe",
        completed=pl.when(pl.col("completed").is_null()).then(pl.lit("ongoing"))
        .when(pl.col("completed")).then(pl.lit("completed")).otherwise(pl.lit("not completed")),
        start_cohort=pl.col("start_date").dt.year().cast(pl.String),
    )


#: The columns an estimate row takes from an estimator's row.
_ESTIMATE_COLUMNS = ("estimate", "se", "ci_lower", "ci_upper", "n_treated", "n_controls", "mde")


def _estimate_row(outcome: str, design: str, dimension: str, level: str, row: Mapping, *,
                  pretrend_p: float | None, window: str) -> dict:
    """One row of ``analysis.schema.EFFECT_ESTIMATES`` from an estimator's row."""
    return {"outcome": outcome, "design": design, "dimension": dimension, "level": level,
            **{k: row.get(k) for k in _ESTIMATE_COLUMNS}, "pretrend_p": pretrend_p, "window": window}


def matched_effects(stacked: pl.DataFrame, participants: pl.DataFrame, outcome: str, /, *,
                    reference: int | tuple[int, int] = sensitivity.REFERENCE_MONTHS,
                    pretrend: tuple[int, int] | None = sensitivity.PRE_DIP_MONTHS,
                    exclude: tuple[int, ...] = (sensitivity.TRANSITION_MONTH,)) -> MatchedEffects:
    """Event study, pooled DiD overall and per subgroup, and raw means, on the stacked matched sample.

    The event study is relative to the mean of the ``reference`` months (before the dip) and its pre-trend
    test (``pretrend_p`` of the pooled DiD row: :func:`analysis.estimate.sensitivity.headline_pretrend`,
    the yearly means) covers the ``pretrend`` months without ``exclude`` (the transition month); see
    :mod:`analysis.estimate.sensitivity`.
    """
    study = did.event_study(stacked, outcome, reference=reference, pretrend=pretrend, exclude=exclude,
                            influence=True)
    window = f"{POST_WINDOW[0]}..{POST_WINDOW[1]}"
    pooled = did.pooled_did(stacked, outcome, post=POST_WINDOW).to_frame().row(0, named=True)
    rows = [_estimate_row(outcome, "matched_did", "all", "all", pooled,
                          pretrend_p=sensitivity.headline_pretrend(study)[2],
                          window=window)]
    for dimension in DIMENSIONS:
        levels = did.subgroup_did(stacked, outcome, participants, dimension, post=POST_WINDOW).to_frame()
        rows += [_estimate_row(outcome, "matched_did", dimension, sub["level"], sub, pretrend_p=None,
                               window=window) for sub in levels.iter_rows(named=True)]
    estimates = pl.DataFrame(rows, schema=EFFECT_ESTIMATES)
    means = did.event_window_counts(stacked, [outcome]).select(
        [pl.col(c).cast(t) for c, t in MATCHED_MEANS.items()]
    )
    return MatchedEffects(outcome=outcome, estimates=estimates, event_study=study, matched_means=means,
                          post=POST_WINDOW)


def cohort_panel(panel: pl.DataFrame, units: pl.DataFrame, outcome: str, /) -> pl.DataFrame:
    """Return the matched sample by month, one stack per start month (its participants, their comparisons).

    Columns: ``stack`` (the start month of the match, a month index), ``person_id``, ``period`` (month
    index = year * 12 + month - 1), the outcome, ``cohort`` (the start month for participants, null for
    comparisons) and ``weight`` (matching weight, summed over a comparison's matches within the stack).
    Comparison persons who start CTI later are left out (the never-treated control group needs units that
    are never treated inside the panel). Start months, not quarters: a quarter's participants started up to
    two months apart, so quarterly cells blur the start and cannot hold the window months 12..24.
    """
    eligible = units.filter((pl.col("treated") == 1) | pl.col("person_start").is_null()).with_columns(
        stack=pl.col("cohort").cast(pl.Int64))
    members = (
        eligible.group_by("person_id", "stack").agg(treated=pl.col("treated").max())
        .join(sum_by(eligible, ["person_id", "stack"], "weight"), on=["person_id", "stack"], validate="1:1")
    )
    months = (
        panel.select("person_id", period=month_index("month").cast(pl.Int64),
                     value=pl.col(outcome).cast(pl.Float64))
        .join(members.select("person_id").unique(), on="person_id", how="semi")
    )
    return (
        members.join(months, on="person_id", how="inner", validate="m:m")  # a comparison may serve two stacks
        .select("stack", "person_id", "period", pl.col("value").alias(outcome),
                cohort=pl.when(pl.col("treated") == 1).then(pl.col("stack")),
                weight=pl.col("weight").cast(pl.Float64))
        .sort("stack", "person_id", "period")
    )


def staggered_effects(stacks: pl.DataFrame, outcome: str, /, *, alpha: float = 0.05,
                      post: tuple[int, int] = POST_WINDOW, anticipation: int = ANTICIPATION_MONTHS,
                      base_window: int = BASE_WINDOW_MONTHS) -> StaggeredEffects:
    """Callaway & Sant'Anna ATT(g, t) on the matched sample by month, stacked by start month.

    Each start month g is estimated against its own matched comparisons only (never-treated control group,
    doubly robust, matching weights), so a cohort is never compared with persons matched on another
    cohort's dip. Every ATT(g, t) compares month t with the ``base_window`` months before the
    ``anticipation`` months before g (universal base); :func:`analysis.estimate.staggered.stack_results`
    then aggregates the stacks as one set of ATT(g, t) with standard errors clustered by person.

    Parameters
    ----------
    stacks
        :func:`cohort_panel` (any integer periods work; ``post``, ``anticipation`` and ``base_window`` are in
        them).
    outcome
        The outcome column.
    alpha
        Level of the intervals.
    post
        Event periods whose dynamic aggregation is the pooled effect (the truth's months 12..24).
    anticipation, base_window
        See :func:`analysis.estimate.staggered.att_gt`.

    Returns
    -------
    StaggeredEffects
        Group-time ATTs, the four aggregations, and the pooled dynamic effect over event periods ``post``.
    """
    if "stack" not in stacks.columns:
        stacks = stacks.with_columns(stack=pl.lit(0, pl.Int64))
    weights = "weight" if "weight" in stacks.columns else None
    results, skipped = [], []
    for (stack,), frame in stacks.partition_by("stack", as_dict=True, maintain_order=True).items():
        try:
            results.append(att_gt(frame, unit="person_id", period="period", cohort="cohort", outcome=outcome,
                                  control_group="never_treated", method="dr", alpha=alpha, weights=weights,
                                  anticipation=anticipation, base_period="universal",
                                  base_window=base_window))
        except ValueError as error:  # e.g. a start month without its base window inside the panel
            skipped.append(f"stack {stack}: {error}")
    if not results:
        raise ValueError("no start month could be estimated: " + "; ".join(skipped))
    result = stack_results(results)
    cohorts = result.group_time["cohort"].unique().cast(pl.Int64)
    estimated = stacks.filter(pl.col("stack").is_in(cohorts.implode()))
    sizes = (estimated.filter(pl.col("cohort").is_not_null()).group_by("cohort")
             .agg(n=pl.col("person_id").n_unique()))
    gt = (
        result.group_time.select("cohort", "period", "att", "se", "ci_lower", "ci_upper")
        .with_columns(pl.col("cohort").cast(pl.Int64))
        .join(sizes, on="cohort", how="left", validate="m:1")
        .with_columns(outcome=pl.lit(outcome), n_treated=pl.col("n"))
        .select([pl.col(c).cast(t) for c, t in GROUP_TIME_ATT.items()])
    )
    n_treated = int(sizes["n"].sum())
    aggregates = []
    for kind in ("simple", "dynamic", "group", "calendar"):
        try:
            agg = result.aggregate(kind)
        except ValueError:
            continue
        key = agg.key
        aggregates.append(agg.to_frame().select(
            outcome=pl.lit(outcome), aggregation=pl.lit(kind),
            key=(pl.col(key) if key else pl.lit(None)).cast(pl.Int32), att="att", se="se",
            ci_lower="ci_lower", ci_upper="ci_upper", n_treated=pl.lit(n_treated, pl.Int64),
        ))
    aggregates_frame = (
        pl.concat(aggregates) if aggregates else pl.DataFrame(schema=STAGGERED_AGGREGATES)
    ).select([pl.col(c).cast(t) for c, t in STAGGERED_AGGREGATES.items()])
    n_controls = int(estimated.filter(pl.col("cohort").is_null())["person_id"].n_unique())
    try:
        pooled = result.aggregate("dynamic", min_e=post[0], max_e=post[1])
        ok = np.isfinite(pooled.se) and pooled.se > 0
        effect = {"estimate": pooled.att, "se": pooled.se if ok else None,
                  "ci_lower": pooled.ci_lower if ok else None, "ci_upper": pooled.ci_upper if ok else None,
                  "mde": mde_from_se(pooled.se, alpha=alpha) if ok else None}
    except ValueError:
        effect = {"estimate": None, "se": None, "ci_lower": None, "ci_upper": None, "mde": None}
    return StaggeredEffects(outcome=outcome, group_time=gt, aggregates=aggregates_frame, **effect,
                            n_treated=n_treated, n_controls=n_controls, skipped=tuple(skipped),
                            post=post, alpha=alpha, control_group=result.control_group,
                            method=result.method, anticipation=result.anticipation,
                            base_window=result.base_window)


def outcome_effects(panel: pl.DataFrame, stacked: pl.DataFrame, units: pl.DataFrame,
                    participants: pl.DataFrame, outcome: str, /, *,
                    naive: pl.DataFrame | None = None, honest: bool = False) -> OutcomeEffects:
    """All effect tables of one outcome (see the module docstring); ``honest`` adds the honest-DiD bounds."""
    matched = matched_effects(stacked, participants, outcome)
    study = matched.event_study
    staggered = staggered_effects(cohort_panel(panel, units, outcome), outcome)
    window = f"{staggered.post[0]}..{staggered.post[1]}"
    window += f" ({staggered.note})" if staggered.note else ""
    pooled = _estimate_row(outcome, "staggered_att", "all", "all", staggered.to_frame().row(0, named=True),
                           pretrend_p=None, window=window)
    rows = [matched.estimates, pl.DataFrame([pooled], schema=EFFECT_ESTIMATES)]
    if naive is not None and naive.height:
        contrast = naive.filter((pl.col("outcome") == outcome) & pl.col("contrast").str.contains("-3..-1"))
        for r in contrast.iter_rows(named=True):
            ok = r["se"] is not None and r["se"] > 0
            row = {**r, "n_treated": r["n"], "n_controls": None, "mde": mde_from_se(r["se"]) if ok else None}
            naive_row = _estimate_row(outcome, "naive_before_after", "all", "all", row, pretrend_p=None,
                                      window="12..24 vs -3..-1")
            rows.append(pl.DataFrame([naive_row], schema=EFFECT_ESTIMATES))
    return OutcomeEffects(outcome=outcome, estimates=pl.concat(rows),
                          event_study=matched.event_study.to_frame(), matched_means=matched.matched_means,
                          group_time=staggered.group_time, aggregates=staggered.aggregates,
                          influence=post_influence(matched.event_study.influence, outcome),
                          pretrend_tests=sensitivity.pretrend_tests(study),
                          phases=sensitivity.phase_effects(study),
                          placebo=sensitivity.placebo_did(stacked, outcome),
                          honest=sensitivity.honest_did(study) if honest else None)


def post_influence(influence: pl.DataFrame, outcome: str, /) -> pl.DataFrame:
    """Return the event-study influence functions of event months >= 0 (``EFFECT_INFLUENCE``), zeros dropped.

    Persons with no influence on a coefficient (not observed in that event month) contribute nothing to any
    covariance, so their rows are left out; the SØM reads them back as zeros when it stacks outcomes.
    """
    return (influence.filter((pl.col("event_time") >= 0) & (pl.col("influence") != 0))
            .select(pl.lit(outcome).alias("outcome"), "person_id", "event_time", "influence")
            .select([pl.col(c).cast(t) for c, t in EFFECT_INFLUENCE.items()]))
