"""The per-outcome effect tables: the result objects of the matched and the staggered design."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from analysis.estimate.did import event_study, pooled_did, subgroup_did
from analysis.estimate.effects import (
    ANTICIPATION_MONTHS,
    BASE_WINDOW_MONTHS,
    DIMENSIONS,
    POST_WINDOW,
    cohort_panel,
    matched_effects,
    staggered_effects,
)
from analysis.estimate.inference import z_critical
from analysis.estimate.sensitivity import headline_pretrend
from analysis.estimate.staggered import att_gt, stack_results
from analysis.schema import EFFECT_ESTIMATES, GROUP_TIME_ATT, STAGGERED_AGGREGATES


def _stacked(n_treated: int = 40, n_controls: int = 80, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One stack, event months -6..24, an effect of 0.3 from month 0; participants with every dimension."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(n_treated + n_controls):
        treated = int(unit < n_treated)
        alpha = rng.normal()
        for e in range(-6, 25):
            y = alpha + 0.01 * e + (0.3 if treated and e >= 0 else 0.0) + rng.normal(scale=0.1)
            rows.append((unit, unit, e + 6, e, treated, 1.0, 0, y))
    schema = {"unit": pl.Int64, "person_id": pl.Int64, "stack_time": pl.Int64, "event_time": pl.Int32,
              "treated": pl.Int8, "weight": pl.Float64, "cohort": pl.Int64, "y": pl.Float64}
    participants = pl.DataFrame({"person_id": list(range(n_treated))}).with_columns(
        **{d: pl.when(pl.col("person_id") % 2 == 0).then(pl.lit("a")).otherwise(pl.lit("b"))
           for d in DIMENSIONS}
    )
    return pl.DataFrame(rows, schema=schema, orient="row"), participants


def test_matched_effects_are_the_pooled_and_subgroup_dids_with_the_event_study() -> None:
    stacked, participants = _stacked()
    result = matched_effects(stacked, participants, "y", reference=(-6, -4), pretrend=(-6, -2))
    assert (result.outcome, result.post) == ("y", POST_WINDOW)
    assert result.to_frame() is result.estimates and result.estimates.schema == EFFECT_ESTIMATES
    study = event_study(stacked, "y", reference=(-6, -4), pretrend=(-6, -2), exclude=(-1,))
    assert result.event_study.to_frame().equals(study.to_frame())
    overall = result.estimates.filter(pl.col("dimension") == "all").row(0, named=True)
    pooled = pooled_did(stacked, "y", post=POST_WINDOW)
    assert (overall["estimate"], overall["ci_lower"], overall["n_controls"]) == (
        pooled.estimate, pooled.ci_lower, pooled.n_controls)
    headline = headline_pretrend(result.event_study)
    assert headline[1] == 1  # the one bin (-6..-2) inside the window: the binned test, not the monthly one
    assert overall["pretrend_p"] == headline[2] != result.event_study.pretrend_p
    assert overall["window"] == "12..24"
    site = result.estimates.filter(pl.col("dimension") == "site").select("level", "estimate", "n_treated")
    levels = subgroup_did(stacked, "y", participants, "site", post=POST_WINDOW).to_frame()
    assert site.equals(levels.select("level", "estimate", "n_treated"))
    assert result.estimates.height == 1 + 2 * len(DIMENSIONS)


def _months(seed: int = 1) -> pl.DataFrame:
    """Two stacks of 30 participants (start months 20, 21) and their own 60 comparisons, months 0..45.

    The effect is 0.5 from the start month; the outcome also drifts with a unit-specific trend. A third
    stack's start month 5 has no full base window (12 months before its anticipation month): it cannot be
    estimated.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for stack in (20, 21, 5):
        n = 90
        person = np.arange(n) + 1000 * stack
        g = np.where(np.arange(n) < 30, stack, 0)
        t = np.arange(46)
        effect = np.where((g[:, None] > 0) & (t >= g[:, None]), 0.5, 0.0)
        y = rng.normal(size=n)[:, None] + 0.02 * t[None, :] + effect + rng.normal(scale=0.3, size=(n, t.size))
        frames.append(pl.DataFrame({
            "stack": np.full(n * t.size, stack), "person_id": np.repeat(person, t.size),
            "period": np.tile(t, n), "y": y.ravel(), "cohort": np.repeat(np.where(g > 0, g, -1), t.size),
            "weight": np.ones(n * t.size),
        }).with_columns(cohort=pl.when(pl.col("cohort") > 0).then(pl.col("cohort"))))
    return pl.concat(frames)


def test_staggered_effects_carry_their_design_and_the_stacks_left_out() -> None:
    months = _months()
    result = staggered_effects(months, "y", alpha=0.1)
    assert (result.outcome, result.post, result.alpha) == ("y", POST_WINDOW, 0.1)  # the truth's months
    assert (result.control_group, result.method) == ("never_treated", "dr")
    assert (result.anticipation, result.base_window) == (ANTICIPATION_MONTHS, BASE_WINDOW_MONTHS) == (1, 12)
    assert len(result.skipped) == 1 and result.skipped[0].startswith("stack 5: ")
    assert result.note.startswith("1 start month(s) left out: stack 5: ")
    assert (result.n_treated, result.n_controls) == (60, 120)  # the two estimated stacks
    assert result.group_time.schema == GROUP_TIME_ATT and result.aggregates.schema == STAGGERED_AGGREGATES
    assert set(result.aggregates["aggregation"]) == {"simple", "dynamic", "group", "calendar"}
    # the pooled effect is the dynamic aggregate over months 12..24 of the stacked att_gt results, each
    # against the mean of months g-13..g-2
    stacks = [months.filter(pl.col("stack") == s) for s in (20, 21)]
    direct = stack_results([att_gt(f, unit="person_id", period="period", cohort="cohort", outcome="y",
                                   weights="weight", anticipation=1, base_period="universal", base_window=12,
                                   alpha=0.1) for f in stacks])
    pooled = direct.aggregate("dynamic", min_e=12, max_e=24)
    assert (result.estimate, result.se, result.ci_lower) == (pooled.att, pooled.se, pooled.ci_lower)
    assert result.ci_upper - result.estimate == pytest.approx(z_critical(0.1) * result.se, rel=1e-12)
    assert result.ci_lower < 0.5 < result.ci_upper
    row = result.to_frame().row(0, named=True)
    assert row == {"outcome": "y", "estimate": result.estimate, "se": result.se, "ci_lower": result.ci_lower,
                   "ci_upper": result.ci_upper, "n_treated": 60, "n_controls": 120, "mde": result.mde,
                   "note": result.note}


def test_staggered_effects_without_any_estimable_stack_say_why() -> None:
    with pytest.raises(ValueError, match="no start month could be estimated: stack 5: "):
        staggered_effects(_months().filter(pl.col("stack") == 5), "y")


def test_cohort_panel_stacks_each_start_month_with_its_own_comparisons() -> None:
    months = [date(2024, m, 1) for m in range(1, 7)]
    panel = pl.DataFrame({"person_id": np.repeat([1, 2, 3, 4], 6), "month": months * 4,
                          "y": np.arange(24, dtype=float)})
    start = 2024 * 12 + 2  # March 2024 as a month index
    units = pl.DataFrame({"person_id": [1, 2, 3, 2, 4], "cohort": [start, start, start, start + 1, start + 1],
                          "treated": [1, 0, 0, 0, 1], "weight": [1.0, 0.5, 0.5, 1.0, 1.0],
                          "person_start": [start, None, start + 5, None, start + 1]})
    frame = cohort_panel(panel, units, "y")
    # person 3 starts CTI later: not a never-treated comparison; person 2 serves both start months
    members = frame.group_by("stack").agg(pl.col("person_id").unique().sort()).sort("stack")
    assert members["person_id"].to_list() == [[1, 2], [2, 4]]
    assert frame["period"].min() == 2024 * 12 and frame["period"].max() == 2024 * 12 + 5
    first = frame.filter(pl.col("stack") == start)
    assert first.filter(pl.col("person_id") == 1)["cohort"].unique().to_list() == [start]
    assert first.filter(pl.col("person_id") == 2)["cohort"].null_count() == 6
    assert first.filter(pl.col("person_id") == 2)["weight"].unique().to_list() == [0.5]
    assert first.filter(pl.col("person_id") == 2)["y"].to_list() == list(range(6, 12))


def test_cohort_panel_does_not_depend_on_row_order() -> None:
    """Stack weights are summed in one fixed order (analysis.frames.sum_by): same bytes for any row order."""
    start = 24 * 12
    units = pl.DataFrame(
        {"person_id": [9, 9, 9, 1], "cohort": [start, start + 1, start + 2, start], "treated": [0, 0, 0, 1],
         "weight": [0.1, 0.2, 0.3, 1.0], "person_start": [None, None, None, start]},
        schema={"person_id": pl.Int64, "cohort": pl.Int64, "treated": pl.Int8, "weight": pl.Float64,
                "person_start": pl.Int64},
    )
    months = [date(2023, m, 1) for m in range(1, 13)]
    panel = pl.DataFrame({"person_id": [9] * 12 + [1] * 12, "month": months * 2,
                          "self_support": [0.1, 0.7, 0.2] * 4 + [0.3, 0.6, 0.1] * 4})
    forward = cohort_panel(panel, units, "self_support")
    backward = cohort_panel(panel.reverse(), units.reverse(), "self_support")
    assert forward.write_ipc(None).getvalue() == backward.write_ipc(None).getvalue()
    assert forward.filter(pl.col("person_id") == 9)["stack"].unique().sort().to_list() == [start, start + 1,
                                                                                          start + 2]
