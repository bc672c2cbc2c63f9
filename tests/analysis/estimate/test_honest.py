"""Honest-DiD relative-magnitude bounds, checked against moderndid 0.4.1 and the R HonestDiD README.

The reference numbers come from ``scripts/reference/honest_did_reference.py`` (run in a throwaway Python 3.12
venv with moderndid 0.4.1 from PyPI; moderndid cannot be a dependency here). Both use HonestDiD's defaults:
C-LF, κ = α/10, 1000 grid points, 1000 least-favourable draws from seed 0.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.estimate import honest
from analysis.estimate.honest import EventStudy, bin_event_study, relative_magnitudes

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "honest_did_reference.json").read_text())[
    "cases"
]


def _study(case: dict) -> EventStudy:
    times = [*range(-case["n_pre"], 0), *range(1, case["n_post"] + 1)]
    return EventStudy(times, np.array(case["beta"]), np.array(case["sigma"]), 0)


def _grid_step(study: EventStudy, target: list[int] | None, m_bar: float) -> float:
    post = np.asarray(study.times)[study.post]
    chosen = post if target is None else np.asarray(target)
    weights = np.isin(post, chosen) / chosen.size
    low, high = honest._grid_ends(study, weights, m_bar)
    return (high - low) / 999


CASES = [
    ("ehec_twfe", "moderndid_first", [1]),
    ("ehec_twfe", "moderndid_average", None),
    ("synthetic_pooled", "moderndid_average", None),
]


@functools.cache
def _result(case: str, key: str, target: tuple[int, ...] | None):
    m_bars = [r["m_bar"] for r in REFERENCE[case][key]["robust"]]
    return relative_magnitudes(_study(REFERENCE[case]), target=target, m_bars=m_bars, breakdown=False)


@pytest.mark.parametrize(("case", "key", "target"), CASES)
def test_matches_moderndid(case, key, target):
    study = _study(REFERENCE[case])
    reference = REFERENCE[case][key]
    result = _result(case, key, None if target is None else tuple(target))
    assert [result.ci_lower, result.ci_upper] == pytest.approx(reference["original"], abs=1e-12)
    for bound, robust, identified in zip(
        result.bounds, reference["robust"], reference["identified"], strict=True
    ):
        assert bound.m_bar == robust["m_bar"]
        assert (bound.id_lower, bound.id_upper) == pytest.approx(
            (identified["lb"], identified["ub"]), abs=1e-9
        )
        step = _grid_step(study, target, bound.m_bar)  # the interval ends are grid points: one step of slack
        assert bound.ci_lower == pytest.approx(robust["lb"], abs=step)
        assert bound.ci_upper == pytest.approx(robust["ub"], abs=step)


def test_matches_the_r_readme_example():
    # HonestDiD README: R's grid is +-20 SE around 0 with 1000 points (a step of 0.00037 here) and the README
    # prints three significant figures, so the two implementations agree to about 0.0005.
    readme = REFERENCE["ehec_twfe"]["r_readme"]["robust"]
    result = _result("ehec_twfe", "moderndid_first", (1,))  # the README's Mbar 0.5, 1, 1.5, 2 (checked below)
    assert [b.m_bar for b in result.bounds] == [r["m_bar"] for r in readme]
    for bound, row in zip(result.bounds, readme, strict=True):
        assert bound.ci_lower == pytest.approx(row["lb"], abs=5e-4)
        assert bound.ci_upper == pytest.approx(row["ub"], abs=5e-4)


def test_breakdown_matches_the_readme_reading():
    # The README: "the breakdown value for a significant effect is Mbar = 2" (0 out at 1.5, in at 2).
    result = relative_magnitudes(
        _study(REFERENCE["ehec_twfe"]), target=[1], m_bars=[1.5, 2.0], tolerance=0.02
    )
    assert not result.bounds[0].includes_zero and result.bounds[1].includes_zero
    assert 1.5 < result.breakdown_m_bar <= 2.0
    assert not result.notes


def _small(beta_post=(0.30, 0.34), pre=(0.01, -0.02, 0.015), scale=0.02) -> EventStudy:
    times = [-3, -2, -1, 1, 2]
    beta = np.array([*pre, *beta_post])
    corr = 0.3 ** np.abs(np.subtract.outer(times, times))
    return EventStudy(times, beta, corr * scale**2, 0)


def test_identified_set_at_zero_mbar_is_the_point_estimate_and_grows_with_mbar():
    result = relative_magnitudes(_small(), m_bars=[0.0, 0.5, 1.0, 2.0], breakdown=False, grid_points=200)
    first = result.bounds[0]
    assert first.id_lower == pytest.approx(result.estimate) and first.id_upper == pytest.approx(
        result.estimate
    )
    for smaller, larger in zip(result.bounds, result.bounds[1:], strict=False):
        assert larger.id_lower < smaller.id_lower <= smaller.id_upper < larger.id_upper
        assert larger.ci_lower <= smaller.ci_lower and smaller.ci_upper <= larger.ci_upper
        assert larger.ci_lower <= larger.id_lower and larger.id_upper <= larger.ci_upper


def test_identified_set_follows_the_largest_pre_step():
    # post steps may reach M̄ x the largest pre step (0.035 here: from -0.02 to 0.015); with two post periods
    # and θ their mean, the bias of θ is at most M̄ x 0.035 x (1 + 2) / 2.
    study = _small()
    result = relative_magnitudes(study, m_bars=[1.0], breakdown=False, grid_points=200)
    assert result.max_pre_step == pytest.approx(0.035)
    bound = result.bounds[0]
    assert bound.id_upper - result.estimate == pytest.approx(0.035 * 1.5)
    assert result.estimate - bound.id_lower == pytest.approx(0.035 * 1.5)


def test_shortcut_gives_the_hull_of_testing_every_grid_point_with_every_polyhedron():
    # The speed-ups (skip θ inside the hull, accept where η* <= 0, reject above the Bonferroni ceiling, scan
    # inwards) must give HonestDiD's answer: min and max of the θ accepted by any polyhedron on the grid.
    study = _small(beta_post=(0.05, 0.02), pre=(0.02, -0.01, 0.03), scale=0.03)
    weights = np.array([0.5, 0.5])
    bound, _ = honest._robust_bound(study, weights, 1.0, alpha=0.05, grid_points=120, sims=300, seed=0)
    low, high = honest._grid_ends(study, weights, 1.0)
    grid = np.linspace(low, high, 120)
    accepted = np.zeros(grid.size, dtype=bool)
    for step in range(3):
        for positive in (True, False):
            poly = honest._Polyhedron(
                honest._rm_constraints(3, 2, 1.0, step, positive),
                study.estimates,
                study.vcov,
                weights,
                3,
                alpha=0.05,
                sims=300,
                seed=0,
            )
            accepted |= poly.accepts(grid)
    hit = np.flatnonzero(accepted)
    assert (bound.ci_lower, bound.ci_upper) == (grid[hit[0]], grid[hit[-1]])


def test_least_favourable_quantile_solves_only_what_it_needs_and_gets_the_same_number():
    study = _small()
    a = honest._rm_constraints(3, 2, 0.5, 1, False)
    poly = honest._Polyhedron(
        a, study.estimates, study.vcov, np.array([0.5, 0.5]), 3, alpha=0.05, sims=1000, seed=3
    )
    draws = np.random.default_rng(3).multivariate_normal(
        np.zeros(poly.y.size), poly.sigma, size=1000, check_valid="ignore"
    )
    every, _ = honest._min_eta(draws, poly.x, poly.sd)
    assert poly.lf_cv == pytest.approx(float(np.quantile(every, 0.995)), abs=1e-9)


def test_breakdown_is_zero_when_the_conventional_interval_covers_zero_and_none_when_never_reached():
    weak = relative_magnitudes(_small(beta_post=(0.01, -0.01)), m_bars=[1.0], grid_points=100)
    assert weak.ci_lower < 0 < weak.ci_upper and weak.breakdown_m_bar == 0.0
    strong = relative_magnitudes(
        _small(beta_post=(0.9, 1.0), pre=(0.001, -0.001, 0.0005), scale=0.01),
        m_bars=[0.5],
        grid_points=100,
        breakdown_max=2.0,
    )
    assert strong.breakdown_m_bar is None and strong.breakdown_searched_to == 2.0


def test_breakdown_sits_where_zero_enters_the_interval():
    result = relative_magnitudes(
        _small(beta_post=(0.08, 0.09)), m_bars=[0.25, 0.5, 1.0, 2.0], grid_points=300, tolerance=0.02
    )
    m = result.breakdown_m_bar
    assert m is not None and m > 0
    for bound in result.bounds:
        assert bound.includes_zero == (bound.m_bar >= m)


def test_to_frame_has_the_conventional_row_and_one_per_mbar():
    result = relative_magnitudes(_small(), m_bars=[0.5, 1.0], breakdown=False, grid_points=100)
    frame = result.to_frame()
    assert frame.columns == ["m_bar", "kind", "id_lower", "id_upper", "ci_lower", "ci_upper", "estimate"]
    assert frame["kind"].to_list() == ["conventional", "relative magnitudes", "relative magnitudes"]
    assert frame["m_bar"].to_list() == [None, 0.5, 1.0]
    assert frame["estimate"].n_unique() == 1


def test_target_averages_the_chosen_post_periods_only():
    study = _small(beta_post=(0.2, 0.6))
    second = relative_magnitudes(study, target=[2], m_bars=[], breakdown=False)
    both = relative_magnitudes(study, m_bars=[], breakdown=False)
    assert second.estimate == pytest.approx(0.6) and both.estimate == pytest.approx(0.4)
    assert second.target == (2,) and both.target == (1, 2)


def test_bin_event_study_averages_and_re_references_exactly():
    months = [t for t in range(-9, 6) if t != -1]
    beta = np.array(months, dtype=float)  # β_t = t, the reference month -1 is 0
    study = EventStudy(months, beta, np.eye(len(months)), -1)
    binned = bin_event_study(study, width=3, origin=0)
    # bins -3..1 (months -9..5); bin -1 = months -3, -2, -1 (=0) has mean -5/3 and is the reference
    assert binned.times == (-3, -2, 0, 1) and binned.reference == -1
    assert binned.labels == ("-9..-7", "-6..-4", "0..2", "3..5")
    expected = np.array([-8.0, -5.0, 1.0, 4.0]) + 5 / 3
    assert binned.estimates == pytest.approx(expected)
    weights = np.zeros((4, len(months)))
    index = {t: i for i, t in enumerate(months)}
    for row, bin_months in enumerate([(-9, -8, -7), (-6, -5, -4), (0, 1, 2), (3, 4, 5)]):
        for t in bin_months:
            weights[row, index[t]] += 1 / 3
        for t in (-3, -2):
            weights[row, index[t]] -= 1 / 3
    assert binned.vcov == pytest.approx(weights @ weights.T)


def test_bin_event_study_drops_incomplete_bins_and_takes_another_reference():
    months = [t for t in range(-16, 3) if t != -1]
    study = EventStudy(months, np.zeros(len(months)), np.eye(len(months)) * 0.01, -1)
    binned = bin_event_study(study, width=3, origin=-15, reference_bin=0)  # reference: months -15..-13
    assert binned.reference == 0
    assert binned.times == (1, 2, 3, 4, 5)  # month -16 (bin -1) is alone: dropped; months 0..2 form bin 5
    assert binned.labels[0] == "-12..-10"
    with pytest.raises(ValueError, match="reference bin"):
        bin_event_study(study, width=3, origin=-15, reference_bin=-1)


@pytest.mark.parametrize(
    ("times", "reference", "message"),
    [
        ([-3, -2, 1, 2], 0, "consecutive"),  # month -1 missing
        ([-1, 1, 2], 0, "at least two pre"),
        ([-2, -1, 1], 0, "at least two pre"),
    ],
)
def test_rejects_event_studies_it_cannot_use(times, reference, message):
    study = EventStudy(times, np.zeros(len(times)), np.eye(len(times)) * 0.01, reference)
    with pytest.raises(ValueError, match=message):
        relative_magnitudes(study)


def test_a_study_normalised_to_a_mean_of_months_bins_like_one_with_a_reference_month():
    # γ_t are month effects; one study drops month -1 (β_t = γ_t - γ_-1), the other is normalised to the
    # mean of months -6..-4 (every month has a coefficient). Binned relative to months -6..-4 they agree.
    months = list(range(-9, 6))
    gamma = np.sin(np.arange(len(months))) + 0.1 * np.arange(len(months))
    ref_month = gamma - gamma[months.index(-1)]
    dropped = [t for t in months if t != -1]
    values = np.array([ref_month[months.index(t)] for t in dropped])
    a = EventStudy(dropped, values, np.eye(len(dropped)) * 0.01, -1)
    mean_ref = gamma - gamma[[months.index(t) for t in (-6, -5, -4)]].mean()
    b = EventStudy(months, mean_ref, np.eye(len(months)) * 0.01, None)
    qa = bin_event_study(a, width=3, reference_bin=-2)
    qb = bin_event_study(b, width=3, reference_bin=-2)
    assert qa.times == qb.times == (-3, -1, 0, 1) and qa.reference == qb.reference == -2
    assert qa.estimates == pytest.approx(qb.estimates)
    with pytest.raises(ValueError, match="reference_bin"):
        bin_event_study(b, width=3)
    with pytest.raises(ValueError, match="no reference period"):
        relative_magnitudes(b)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="reference"):
        EventStudy([-2, -1, 0, 1], np.zeros(4), np.eye(4), 0)
    with pytest.raises(ValueError, match="positive semi-definite"):
        EventStudy([-1, 1], np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), 0)
    with pytest.raises(ValueError, match="symmetric"):
        EventStudy([-1, 1], np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), 0)
    with pytest.raises(ValueError, match="increasing"):
        EventStudy([1, -1], np.zeros(2), np.eye(2), 0)
    with pytest.raises(ValueError, match="finite"):
        EventStudy([-1, 1], np.array([np.nan, 0.0]), np.eye(2), 0)
    with pytest.raises(ValueError, match="post-periods"):
        relative_magnitudes(_small(), target=[-1])


def test_event_study_to_frame():
    frame = _small().to_frame()
    assert frame.schema == pl.Schema(
        {"time": pl.Int64, "label": pl.String, "estimate": pl.Float64, "se": pl.Float64}
    )
    assert frame["se"].to_list() == pytest.approx([0.02] * 5)
    assert not math.isnan(frame["estimate"].sum())
