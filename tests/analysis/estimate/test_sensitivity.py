"""Sensitivity of the matched design: reference, pre-trend tests, phases, placebo in time, honest DiD."""

import numpy as np
import polars as pl
import pytest

from analysis.estimate.did import event_study, pooled_did
from analysis.estimate.sensitivity import (
    DIP_MONTHS,
    PRE_DIP_MONTHS,
    REFERENCE_MONTHS,
    TRANSITION_MONTH,
    honest_did,
    phase_effects,
    placebo_did,
    pretrend_tests,
)
from analysis.schema import HONEST_DID, PHASE_EFFECTS, PLACEBO_EFFECTS, PRETREND_TESTS


def _stacked(*, n_treated: int = 50, n_controls: int = 100, seed: int = 0, effect: float = 0.2,
             spike: float = 0.0, pre_step: float = 0.0, trend: float = 0.0) -> pl.DataFrame:
    """One stack, event months -36..24: a step ``effect`` from month 1, a transition ``spike`` in month -1,
    a ``pre_step`` for participants from month -12 on, a participants' ``trend`` per month before -12."""
    rng = np.random.default_rng(seed)
    months = np.arange(-36, 25)
    rows = []
    for unit in range(n_treated + n_controls):
        treated = unit < n_treated
        level = rng.normal()
        y = level + 0.002 * months + rng.normal(scale=0.05, size=months.size)
        if treated:
            y = y + effect * (months >= 1) + spike * (months == TRANSITION_MONTH) + pre_step * (months >= -12)
            y = y + trend * np.minimum(months + 12, 0)
        for e, value in zip(months, y, strict=True):
            rows.append((unit, unit, int(e) + 36, int(e), int(treated), 1.0, 0, float(value)))
    schema = {"unit": pl.Int64, "person_id": pl.Int64, "stack_time": pl.Int64, "event_time": pl.Int32,
              "treated": pl.Int8, "weight": pl.Float64, "cohort": pl.Int64, "y": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _study(frame: pl.DataFrame):
    return event_study(frame, "y", reference=REFERENCE_MONTHS, pretrend=PRE_DIP_MONTHS,
                       exclude=(TRANSITION_MONTH,))


def test_phase_effects_are_the_mean_coefficient_of_their_months() -> None:
    study = _study(_stacked(seed=1))
    phases = phase_effects(study)
    assert phases.schema == PHASE_EFFECTS
    assert phases["phase"].to_list() == ["phase_1", "phase_2", "phase_3", "after"]
    coefficient = dict(zip(study.table["event_time"], study.table["estimate"], strict=True))
    for row in phases.iter_rows(named=True):
        months = range(row["first_month"], row["last_month"] + 1)
        assert row["estimate"] == pytest.approx(np.mean([coefficient[m] for m in months]), abs=1e-12)
        assert row["ci_lower"] < 0.2 < row["ci_upper"]
        assert row["n_treated"] == 50 and row["persons_min"] == 50
    assert phases.filter(pl.col("phase") == "after")[["first_month", "last_month"]].row(0) == (10, 24)
    # a phase beyond the study's window is clipped, one wholly beyond it left out
    clipped = phase_effects(study, phases=(("late", 20, 30), ("never", 30, 40)))
    assert clipped[["phase", "first_month", "last_month"]].rows() == [("late", 20, 24)]


def test_pretrend_tests_leave_the_transition_month_out_and_find_a_pre_dip_trend() -> None:
    spiked = pretrend_tests(_study(_stacked(seed=2, spike=0.5)))
    assert spiked.schema == PRETREND_TESTS
    assert spiked["test"].to_list() == ["pre_dip", "pre_dip_binned", "dip", "dip_binned"]
    by_test = {r["test"]: r for r in spiked.iter_rows(named=True)}
    assert by_test["dip"]["excluded"] == "-1" and by_test["pre_dip"]["excluded"] is None
    assert (by_test["dip"]["first_month"], by_test["dip"]["last_month"]) == DIP_MONTHS
    assert all(r["p_value"] > 0.001 for r in spiked.iter_rows(named=True))  # the spike is not a trend
    assert (by_test["pre_dip"]["reference_first"], by_test["pre_dip"]["reference_last"]) == REFERENCE_MONTHS
    assert by_test["pre_dip"]["df"] == 24 - 1 and by_test["pre_dip_binned"]["bins"] == 2
    trending = pretrend_tests(_study(_stacked(seed=2, trend=-0.01)))
    trending = {r["test"]: r for r in trending.iter_rows(named=True)}
    assert trending["pre_dip"]["p_value"] < 1e-6 and trending["pre_dip_binned"]["p_value"] < 1e-6


def test_the_placebo_moves_the_start_twelve_months_earlier_and_uses_no_month_after_it() -> None:
    frame = _stacked(seed=3, pre_step=0.15, effect=5.0, spike=3.0)  # post and transition must not leak in
    placebo = placebo_did(frame, "y")
    assert placebo.schema == PLACEBO_EFFECTS
    row = placebo.row(0, named=True)
    assert (row["shift"], row["post_first"], row["post_last"], row["pre_first"], row["pre_last"]) == (
        12, 0, 10, -24, -1)
    hand = pooled_did(frame.filter(pl.col("event_time") < -1), "y", post=(-12, -2), pre=(-36, -13))
    assert row["estimate"] == pytest.approx(hand.estimate, abs=1e-12)
    assert row["ci_lower"] < 0.15 < row["ci_upper"]  # the step at real month -12 is what it finds
    clean = placebo_did(_stacked(seed=3, effect=5.0, spike=3.0), "y").row(0, named=True)
    assert clean["ci_lower"] < 0 < clean["ci_upper"]
    with pytest.raises(ValueError, match="too late"):
        placebo_did(frame.filter(pl.col("event_time") >= -12), "y")


def test_honest_did_bins_quarters_from_the_reference_and_widens_with_m_bar() -> None:
    study = _study(_stacked(seed=4))
    honest = honest_did(study, grid_points=100, sims=200, m_bars=(0.5, 2.0))
    assert honest.schema == HONEST_DID
    conventional = honest.filter(pl.col("m_bar").is_null()).row(0, named=True)
    # the pooled effect is the mean of months 12..23 relative to the reference, whole quarters
    estimate, _ = study.combination({m: 1 / 12 for m in range(12, 24)})
    assert conventional["estimate"] == pytest.approx(estimate, abs=1e-12)
    window = (conventional["first_month"], conventional["last_month"], conventional["bin_months"])
    assert window == (12, 23, 3)
    assert (conventional["pre_bins"], conventional["post_bins"]) == (7, 12)
    widths = [r["id_upper"] - r["id_lower"] for r in honest.filter(pl.col("m_bar").is_not_null()).iter_rows(
        named=True)]
    assert widths[0] < widths[1]
    bounds = honest.filter(pl.col("m_bar") == 2.0).row(0, named=True)
    assert bounds["ci_lower"] <= bounds["id_lower"] and bounds["id_upper"] <= bounds["ci_upper"]
    with pytest.raises(ValueError, match="one bin"):
        honest_did(event_study(_stacked(seed=4), "y", reference=-1))
