"""DiD / event study on a stacked panel: hand-computed 2x2s, fixed effects, clustering, bad input."""

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.estimate.did import (
    TwoWayAbsorber,
    _alternating,
    _fit,
    event_study,
    event_window_counts,
    pooled_did,
    subgroup_did,
)
from analysis.estimate.inference import z_critical
from analysis.estimate.power import mde_from_se, mde_two_groups
from analysis.schema import EVENT_STUDY


def _stacked(n_treated: int = 60, n_controls: int = 120, effect: float = 0.3, seed: int = 0,
             noise: float = 0.1) -> pl.DataFrame:
    """Balanced stacked panel, event times -4..4, unit and time effects, a step effect from event 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(n_treated + n_controls):
        treated = int(unit < n_treated)
        alpha = rng.normal()
        for e in range(-4, 5):
            y = alpha + 0.1 * e + (effect if treated and e >= 0 else 0.0) + rng.normal(scale=noise)
            rows.append((unit, unit, e + 4, e, treated, 1.0, y, unit % 2))
    schema = {"unit": pl.Int64, "person_id": pl.Int64, "stack_time": pl.Int64, "event_time": pl.Int32,
              "treated": pl.Int8, "weight": pl.Float64, "y": pl.Float64, "group": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _levels(result) -> list[dict]:
    return list(result.to_frame().iter_rows(named=True))


def test_pooled_did_equals_the_hand_computed_difference_of_mean_changes() -> None:
    frame = _stacked()
    result = pooled_did(frame, "y", post=(0, 4), pre=(-4, -1))
    means = frame.with_columns(post=pl.col("event_time") >= 0).group_by("treated", "post").agg(
        pl.col("y").mean()
    )
    m = {(r["treated"], r["post"]): r["y"] for r in means.iter_rows(named=True)}
    hand = (m[(1, True)] - m[(1, False)]) - (m[(0, True)] - m[(0, False)])
    assert result.estimate == pytest.approx(hand, abs=1e-9)  # balanced panel: TWFE = 2x2
    assert result.ci_lower < 0.3 < result.ci_upper
    assert (result.n_treated, result.n_controls) == (60, 120)
    assert result.mde == pytest.approx(mde_from_se(result.se))


def test_event_study_recovers_a_step_and_has_flat_pre_trends() -> None:
    study = event_study(_stacked(noise=0.05), "y", reference=-1)
    table = {r["event_time"]: r for r in study.table.iter_rows(named=True)}
    assert table[-1]["estimate"] == 0.0 and table[-1]["se"] is None
    for e in range(0, 5):
        assert table[e]["estimate"] == pytest.approx(0.3, abs=0.05)
    for e in (-4, -3, -2):
        assert abs(table[e]["estimate"]) < 0.05
    assert study.pretrend_df == 3 and study.pretrend_p > 0.01
    assert table[0]["n_treated"] == 60 and table[0]["n_controls"] == 120


def test_pre_trend_test_rejects_a_diverging_pre_period() -> None:
    frame = _stacked(noise=0.05).with_columns(
        y=pl.col("y") + pl.when((pl.col("treated") == 1) & (pl.col("event_time") < 0))
        .then(0.1 * pl.col("event_time")).otherwise(0)
    )
    assert event_study(frame, "y").pretrend_p < 1e-6


def test_binned_pre_trend_test_is_the_wald_test_of_window_means() -> None:
    frame = _stacked(noise=0.05)
    study = event_study(frame, "y")
    assert study.pretrend_test() == (study.pretrend_stat, study.pretrend_df, study.pretrend_p)
    # a window without any coefficient is left out
    stat, dof, p = study.pretrend_test([(-4, -3), (-2, -2), (5, 9)])
    rows = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])  # coefficients of event times -4, -3, -2 (ref -1)
    pre = study.times < -1
    b, v = rows @ study.params[pre], rows @ study.cov[np.ix_(pre, pre)] @ rows.T
    assert dof == 2 and stat == pytest.approx(float(b @ np.linalg.solve(v, b)), rel=1e-10)
    # p from Hotelling's reference with the 60 participants as clusters (see test_wald_with_clusters_...)
    assert p == pytest.approx(float(stats.f.sf(stat / 2 * 58 / 59, 2, 58)), rel=1e-12)
    diverging = frame.with_columns(
        y=pl.col("y") + pl.when((pl.col("treated") == 1) & (pl.col("event_time") < 0))
        .then(0.1 * pl.col("event_time")).otherwise(0)
    )
    assert event_study(diverging, "y").pretrend_test([(-4, -3), (-2, -2)])[2] < 1e-6


def test_weights_act_as_duplicated_units() -> None:
    frame = _stacked(n_treated=20, n_controls=30, seed=3)
    doubled_controls = frame.filter(pl.col("treated") == 0).with_columns(
        unit=pl.col("unit") + 1000, person_id=pl.col("person_id") + 1000
    )
    weighted = frame.with_columns(weight=pl.when(pl.col("treated") == 0).then(2.0).otherwise(1.0))
    a = pooled_did(weighted, "y", post=(0, 4)).estimate
    b = pooled_did(pl.concat([frame, doubled_controls]), "y", post=(0, 4)).estimate
    assert a == pytest.approx(b, abs=1e-8)


def test_absorbed_residuals_match_a_dummy_regression() -> None:
    rng = np.random.default_rng(1)
    n = 300
    fe1, fe2 = rng.integers(0, 20, n), rng.integers(0, 7, n)
    w = rng.uniform(0.5, 2, n)
    x = rng.normal(size=n)
    dummies = np.column_stack([np.eye(20)[fe1], np.eye(7)[fe2][:, 1:]])
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(dummies * sw[:, None], x * sw, rcond=None)[0]
    residual = x - dummies @ beta
    assert np.allclose(TwoWayAbsorber(fe1, fe2, w).residuals(x)[:, 0], residual, atol=1e-7)


def test_absorption_is_exact_on_unbalanced_stacks_and_equals_alternating_projections() -> None:
    rng = np.random.default_rng(2)
    # three stacks (disconnected blocks of cells), units observed on ragged event windows, unit weights
    units, cells, weights = [], [], []
    for stack in range(3):
        for unit in range(15):
            first, last = rng.integers(0, 3), rng.integers(5, 9)
            for t in range(first, last):
                units.append(stack * 100 + unit)
                cells.append(stack * 10 + t)
                weights.append(1.0 + unit % 3)
    fe1 = np.unique(units, return_inverse=True)[1]
    fe2 = np.unique(cells, return_inverse=True)[1]
    w, x = np.array(weights), rng.normal(size=(len(units), 3))
    dummies = np.column_stack([np.eye(fe1.max() + 1)[fe1], np.eye(fe2.max() + 1)[fe2]])
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(dummies * sw[:, None], x * sw[:, None], rcond=None)[0]
    exact = TwoWayAbsorber(fe1, fe2, w).residuals(x)
    assert np.allclose(exact, x - dummies @ beta, atol=1e-10)
    assert np.allclose(exact, _alternating(x, fe1, fe2, w), atol=1e-8)
    fallback = TwoWayAbsorber(fe1, fe2, w, max_block=3)  # every block too large: alternating projections
    assert np.allclose(fallback.residuals(x), exact, atol=1e-8)


def test_clustered_covariance_equals_statsmodels_wls_cluster() -> None:
    frame = _stacked(seed=9).with_columns(weight=1.0 / (1 + pl.col("unit") % 3))  # controls with 1/k weights
    # the same control persons in a second stack (clusters span stacks), and ragged windows (unbalanced)
    second = frame.filter(pl.col("treated") == 0).with_columns(unit=pl.col("unit") + 10_000,
                                                              stack_time=pl.col("stack_time") + 100)
    frame = pl.concat([frame, second]).filter((pl.col("unit") % 7 != 3) | (pl.col("event_time") < 3))
    y = frame["y"].to_numpy()
    x = np.column_stack([(frame["treated"] * (frame["event_time"] == e)).to_numpy().astype(float)
                         for e in (-3, 0, 2)])
    # and a dense regressor on every row: the sparse algebra in _fit must not assume one-hot dummies
    x = np.column_stack([x, np.random.default_rng(3).normal(size=frame.height)])
    fit = _fit(y, x, frame)
    w = frame["weight"].to_numpy()
    absorber = TwoWayAbsorber(frame["unit"].to_numpy(), frame["stack_time"].to_numpy(), w)
    persons = frame["person_id"].rank("dense").to_numpy()
    reference = sm.WLS(absorber.residuals(y)[:, 0], absorber.residuals(x), weights=w).fit(
        cov_type="cluster", cov_kwds={"groups": persons})
    assert np.allclose(fit.params, reference.params, atol=1e-10)
    assert np.allclose(fit.cov, reference.cov_params(), rtol=1e-8, atol=1e-14)


def test_clustering_by_person_widens_the_se_when_a_person_is_in_several_stacks() -> None:
    frame = _stacked(seed=5)
    # the same control persons reused in a second stack: clustering by person must see the dependence
    second = frame.filter(pl.col("treated") == 0).with_columns(unit=pl.col("unit") + 10_000,
                                                                stack_time=pl.col("stack_time") + 100)
    both = pl.concat([frame, second])
    clustered = pooled_did(both, "y", post=(0, 4)).se
    naive = pooled_did(both.with_columns(person_id=pl.col("unit")), "y", post=(0, 4)).se
    assert clustered > naive


def test_subgroups_and_raw_means() -> None:
    frame = _stacked()
    groups = pl.DataFrame({"person_id": list(range(60)), "site": ["a" if i < 30 else "b" for i in range(60)]})
    result = subgroup_did(frame.with_columns(cohort=pl.lit(0)), "y", groups, "site", post=(0, 4))
    rows = {r["level"]: r for r in _levels(result)}
    assert set(rows) == {"a", "b"} and rows["a"]["n_treated"] == 30
    assert rows["a"]["ci_lower"] < 0.3 < rows["a"]["ci_upper"]
    means = event_window_counts(frame, ["y"])
    assert means.filter(pl.col("group") == "participants")["n"].to_list() == [60] * 9


def test_subgroups_share_one_fit_and_recover_heterogeneous_effects() -> None:
    # two levels in the same stack with different effects: each level's estimate finds its own
    frame = _stacked(n_treated=80, n_controls=160, noise=0.05).with_columns(cohort=pl.lit(0))
    frame = frame.with_columns(
        y=pl.col("y")
        + pl.when((pl.col("treated") == 1) & (pl.col("unit") >= 40) & (pl.col("event_time") >= 0))
        .then(0.3).otherwise(0.0)
    )
    groups = pl.DataFrame({"person_id": list(range(80)),
                           "kind": ["low" if i < 40 else "high" for i in range(80)]})
    rows = {r["level"]: r for r in _levels(subgroup_did(frame, "y", groups, "kind", post=(0, 4)))}
    assert rows["low"]["ci_lower"] < 0.3 < rows["low"]["ci_upper"]
    assert rows["high"]["ci_lower"] < 0.6 < rows["high"]["ci_upper"]
    assert rows["low"]["n_treated"] == 40 and rows["low"]["n_controls"] == 160


def test_subgroups_in_disjoint_stacks_equal_their_separate_fits() -> None:
    first = _stacked(seed=1).with_columns(cohort=pl.lit(0))
    second = _stacked(seed=2, effect=0.5).with_columns(
        cohort=pl.lit(1), unit=pl.col("unit") + 1000, person_id=pl.col("person_id") + 1000,
        stack_time=pl.col("stack_time") + 100,
    )
    both = pl.concat([first, second])
    groups = pl.DataFrame({"person_id": [*range(60), *range(1000, 1060)],
                           "year": ["2024"] * 60 + ["2025"] * 60})
    rows = {r["level"]: r for r in _levels(subgroup_did(both, "y", groups, "year", post=(0, 4)))}
    for level, part in (("2024", first), ("2025", second)):
        alone = pooled_did(part, "y", post=(0, 4))
        assert rows[level]["estimate"] == pytest.approx(alone.estimate, abs=1e-10)
        assert rows[level]["n_controls"] == alone.n_controls == 120


def test_a_subgroup_without_comparisons_gets_no_estimate() -> None:
    frame = _stacked().with_columns(cohort=pl.lit(0))
    lonely = _stacked(seed=4).filter(pl.col("treated") == 1).with_columns(
        cohort=pl.lit(1), unit=pl.col("unit") + 1000, person_id=pl.col("person_id") + 1000,
        stack_time=pl.col("stack_time") + 100,
    )
    groups = pl.DataFrame({"person_id": [*range(60), *range(1000, 1060)], "site": ["a"] * 60 + ["b"] * 60})
    rows = {r["level"]: r
            for r in _levels(subgroup_did(pl.concat([frame, lonely]), "y", groups, "site", post=(0, 4)))}
    assert rows["b"]["estimate"] is None and rows["b"]["n_treated"] == 60 and rows["b"]["n_controls"] == 0
    assert rows["a"]["ci_lower"] < 0.3 < rows["a"]["ci_upper"]


def test_bad_input_is_explained() -> None:
    frame = _stacked(10, 10)
    with pytest.raises(ValueError, match="lacks columns"):
        event_study(frame.drop("weight"), "y")
    with pytest.raises(ValueError, match="treated and comparison"):
        pooled_did(frame.filter(pl.col("treated") == 1), "y")
    with pytest.raises(ValueError, match="reference event time"):
        event_study(frame, "y", reference=-10)
    with pytest.raises(ValueError, match="alpha and power"):
        mde_from_se(0.1, power=1.5)
    for estimator in (event_study, pooled_did):
        with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
            estimator(frame, "y", alpha=1.5)


# --- the result objects ---------------------------------------------------------------------------------


def test_pooled_did_result_carries_its_windows_and_level_and_renders_one_row() -> None:
    frame = _stacked()
    result = pooled_did(frame, "y", post=(1, 4), pre=(-4, -2), alpha=0.1)
    assert (result.outcome, result.post, result.pre, result.alpha) == ("y", (1, 4), (-4, -2), 0.1)
    assert result.n_obs == frame.filter(pl.col("event_time") != -1).filter(pl.col("event_time") != 0).height
    # the interval is at the result's own level
    assert result.ci_upper - result.estimate == pytest.approx(z_critical(0.1) * result.se, rel=1e-12)
    row = result.to_frame().row(0, named=True)
    assert row == {"outcome": "y", "estimate": result.estimate, "se": result.se, "ci_lower": result.ci_lower,
                   "ci_upper": result.ci_upper, "n_treated": 60, "n_controls": 120, "mde": result.mde,
                   "n_obs": result.n_obs}


def test_an_unidentified_pooled_did_keeps_its_n_and_null_estimates() -> None:
    post_only = _stacked().filter(pl.col("event_time") >= 0)  # no pre-period rows: nothing to difference
    result = pooled_did(post_only, "y", post=(0, 4))
    assert result.estimate is None and result.se is None and result.mde is None
    assert (result.n_treated, result.n_controls) == (60, 120)
    frame = result.to_frame()
    assert frame["estimate"].dtype == pl.Float64 and frame["estimate"].null_count() == 1


def test_event_study_result_knows_its_reference_and_window() -> None:
    study = event_study(_stacked(), "y", reference=-2, alpha=0.2)
    assert (study.outcome, study.reference, study.window, study.alpha) == ("y", -2, (-4, 4), 0.2)
    assert study.to_frame() is study.table and study.to_frame().schema == EVENT_STUDY
    reference = study.to_frame().filter(pl.col("event_time") == -2).row(0, named=True)
    assert reference["estimate"] == 0.0 and reference["se"] is None
    row = study.to_frame().filter(pl.col("event_time") == 2).row(0, named=True)
    assert row["ci_upper"] - row["estimate"] == pytest.approx(z_critical(0.2) * row["se"], rel=1e-12)


def test_subgroup_result_has_one_row_per_level_and_its_options() -> None:
    frame = _stacked().with_columns(cohort=pl.lit(0))
    groups = pl.DataFrame({"person_id": list(range(60)),
                           "site": ["a" if i < 30 else None for i in range(60)]})
    result = subgroup_did(frame, "y", groups, "site", post=(0, 4), alpha=0.1)
    assert (result.outcome, result.dimension, result.post, result.pre, result.alpha) == (
        "y", "site", (0, 4), (-4, -1), 0.1)
    levels = result.to_frame()
    assert levels is result.levels
    assert levels.columns == ["level", "estimate", "se", "ci_lower", "ci_upper", "n_treated", "n_controls",
                              "mde"]
    assert levels["level"].to_list() == ["a", "unknown"]  # a missing label is its own level
    assert result.n_obs == frame.height


def test_mde_figures() -> None:
    assert mde_from_se(1.0) == pytest.approx(2.8016, abs=1e-4)
    assert mde_two_groups(1.0, 100, 100) == pytest.approx(2.8016 * np.sqrt(0.02), abs=1e-4)
    assert mde_two_groups(1.0, 100, 100, r2=0.75) == pytest.approx(mde_two_groups(1.0, 100, 100) / 2)


def _influence_matrix(study, times: list[int]) -> tuple[np.ndarray, np.ndarray]:
    chosen = study.influence.filter(pl.col("event_time").is_in(times))
    wide = chosen.pivot(on="event_time", index="person_id", values="influence").sort("person_id")
    return wide["person_id"].to_numpy(), wide.select([str(t) for t in times]).to_numpy()


def test_influence_functions_reproduce_the_clustered_covariance() -> None:
    # controls serve two stacks (two units, one person): the influence is per person, as the clustering is
    frame = _stacked(n_treated=30, n_controls=50, seed=5)
    second = frame.filter(pl.col("treated") == 0).with_columns(
        unit=pl.col("unit") + 10_000, stack_time=pl.col("stack_time") + 100, y=pl.col("y") + 0.2)
    stacked = pl.concat([frame, second])
    study = event_study(stacked, "y", influence=True)
    assert event_study(stacked, "y").influence is None  # only when asked for
    times = [-4, -3, -2, 0, 1, 2, 3, 4]
    persons, matrix = _influence_matrix(study, times)
    assert persons.size == stacked["person_id"].n_unique() == 80
    se = {r["event_time"]: r["se"] for r in study.table.iter_rows(named=True)}
    assert np.sqrt(np.diag(matrix.T @ matrix)) == pytest.approx([se[t] for t in times], rel=1e-10)


def test_stacked_influence_gives_the_cross_outcome_covariance() -> None:
    frame = _stacked(n_treated=40, n_controls=60, seed=8).with_columns(y2=2 * pl.col("y"), y3=-pl.col("y"))
    studies = {o: event_study(frame, o, influence=True) for o in ("y", "y2", "y3")}
    _, a = _influence_matrix(studies["y"], [2])
    _, b = _influence_matrix(studies["y2"], [2])
    _, c = _influence_matrix(studies["y3"], [2])
    variance = float(a[:, 0] @ a[:, 0])
    assert float(a[:, 0] @ b[:, 0]) == pytest.approx(2 * variance, rel=1e-9)  # Cov(b, 2b) = 2 Var(b)
    assert float(a[:, 0] @ c[:, 0]) == pytest.approx(-variance, rel=1e-9)


def test_a_window_reference_is_the_one_month_study_minus_the_windows_mean() -> None:
    frame = _stacked(noise=0.05, seed=11)
    one = event_study(frame, "y", reference=-1)
    window = event_study(frame, "y", reference=(-4, -3))
    old = dict(zip(one.table["event_time"], one.table["estimate"], strict=True))
    base = (old[-4] + old[-3]) / 2
    new = {r["event_time"]: r for r in window.table.iter_rows(named=True)}
    for e in range(-4, 5):  # every month, the reference months and the old omitted one too
        assert new[e]["estimate"] == pytest.approx(old[e] - base, abs=1e-9)
        assert new[e]["se"] is not None and new[e]["se"] > 0
    assert (new[-4]["estimate"] + new[-3]["estimate"]) == pytest.approx(0.0, abs=1e-12)
    assert window.reference_months == (-4, -3) and one.reference_months == (-1, -1)
    # a contrast of two months does not depend on the normalisation, nor does its standard error
    for study in (one, window):
        est, se = study.combination({2: 1.0, -2: -1.0})
        assert est == pytest.approx(old[2] - old[-2], abs=1e-9)
        assert se == pytest.approx(one.combination({2: 1.0, -2: -1.0})[1], rel=1e-9)
    # the influence functions are re-normalised with the coefficients
    influenced = event_study(frame, "y", reference=(-4, -3), influence=True)
    persons, matrix = _influence_matrix(influenced, list(range(-4, 5)))
    expected = [new[e]["se"] for e in range(-4, 5)]
    assert np.sqrt(np.diag(matrix.T @ matrix)) == pytest.approx(expected, rel=1e-9)


def test_the_pretrend_window_leaves_out_the_transition_month() -> None:
    # participants differ from their comparisons only in the transition month (-1): a real trace, not a trend
    frame = _stacked(noise=0.05, seed=4).with_columns(
        y=pl.col("y")
        + pl.when((pl.col("treated") == 1) & (pl.col("event_time") == -1)).then(0.5).otherwise(0))
    marked = event_study(frame, "y", reference=(-4, -3), pretrend=(-4, -1), exclude=(-1,))
    unmarked = event_study(frame, "y", reference=(-4, -3), pretrend=(-4, -1))
    assert marked.pretrend_p > 0.01 and unmarked.pretrend_p < 1e-6
    assert marked.pretrend_window == (-4, -1) and marked.exclude == (-1,)
    assert marked.pretrend_df == 2  # months -4..-2 less one: the reference months' mean is 0 by construction
    spike = marked.table.filter(pl.col("event_time") == -1)["estimate"].item()
    assert spike == pytest.approx(0.5, abs=0.05)  # still estimated and shown
    assert marked.pretrend_test() == (marked.pretrend_stat, marked.pretrend_df, marked.pretrend_p)
    stat, dof, p = marked.pretrend_test([(-4, -3), (-2, -1)])  # binned: the spike is left out of its bin
    assert dof == 1 and p > 0.01
    with pytest.raises(ValueError, match="not in the panel"):
        event_study(frame, "y", reference=(-9, -8))
    with pytest.raises(ValueError, match="first to its last"):
        event_study(frame, "y", reference=(-2, -4))


def test_wald_is_rank_aware_for_a_near_constant_outcome() -> None:
    """Directions with rounding-noise variance are left out of the statistic and of the degrees of freedom."""
    from analysis.estimate.did import wald

    b = np.array([0.1, 1e-5])
    v = np.diag([1.0, 1e-12])  # the second coefficient is a near-constant outcome's: noise, not information
    stat, dof, p = wald(b, v)
    assert dof == 1 and stat == pytest.approx(0.01) and p == pytest.approx(stats.chi2.sf(0.01, 1))
    # np.linalg.pinv's default cut-off keeps the noise direction: the statistic explodes
    assert float(b @ np.linalg.pinv(v) @ b) > 50 and np.linalg.matrix_rank(v) == 2
    # a well-conditioned covariance: the ordinary Wald test
    full = np.array([[1.0, 0.3], [0.3, 2.0]])
    assert wald(b, full)[0] == pytest.approx(float(b @ np.linalg.solve(full, b))) and wald(b, full)[1] == 2
    # nothing but noise: not defined
    assert wald(b, np.zeros((2, 2)))[1] == 0 and np.isnan(wald(b, np.zeros((2, 2)))[2])


def test_wald_with_clusters_reads_hotellings_small_sample_reference() -> None:
    """With G clusters the statistic is the same, the p-value is F(q, G - q) of stat/q * (G - q)/(G - 1)."""
    from analysis.estimate.did import wald

    rng = np.random.default_rng(3)
    b, root = rng.normal(size=5), rng.normal(size=(5, 5))
    v = root @ root.T + np.eye(5)
    stat, dof, p_chi2 = wald(b, v)
    small = wald(b, v, clusters=40)
    assert small[:2] == (stat, dof) and small[2] == pytest.approx(
        stats.f.sf(stat / 5 * 35 / 39, 5, 35), rel=1e-12)
    assert small[2] > p_chi2  # few clusters: a larger p for the same statistic
    assert wald(b, v, clusters=10**7)[2] == pytest.approx(p_chi2, rel=1e-4)  # many: the chi-squared
    assert np.isnan(wald(b, v, clusters=5)[2])  # no more units than restrictions: not defined


def test_the_pre_trend_tests_use_the_fewest_participants_of_their_months_as_clusters() -> None:
    """The event study's pre-trend p-values use the participants behind the tested months as clusters."""
    from analysis.estimate.did import wald

    study = event_study(_stacked(), "y")
    tested = (study.times >= study.pretrend_window[0]) & (study.times <= study.pretrend_window[1]) & (
        study.times != study.reference)
    months = study.times[tested].tolist()
    fewest = int(study.table.filter(pl.col("event_time").is_in(months))["n_treated"].min())
    rows = np.eye(study.times.size)[tested]
    expected = wald(rows @ study.params, rows @ study.cov @ rows.T, clusters=fewest)
    assert study.fewest_treated(tested) == fewest
    assert (study.pretrend_stat, study.pretrend_df, study.pretrend_p) == pytest.approx(expected)
    assert study.pretrend_test() == pytest.approx(expected)
