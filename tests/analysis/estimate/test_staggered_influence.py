"""The factored influence functions of att_gt: the same numbers as DRDID's per-cell influence functions,
operations that agree with the dense matrix, and memory that grows with units, not cells x units."""

import numpy as np
import polars as pl
import pytest

from analysis.estimate.staggered import att_gt, drdid, stack_results
from analysis.estimate.staggered.influence import Influence

KW = {"unit": "id", "period": "year", "cohort": "first_treat", "outcome": "y"}


def _panel(n: int = 500, periods: int = 8, seed: int = 0, *, varying: bool = False,
           cohorts: tuple[int, ...] = ()) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cohorts = np.array(cohorts or range(3, periods))
    g = np.where(rng.random(n) < 0.4, 0, rng.choice(cohorts, n))
    x = rng.normal(size=n) + 0.3 * (g > 0)
    t = np.arange(1, periods + 1)
    y = x[:, None] * (1 + 0.1 * t[None, :]) + np.where((g[:, None] > 0) & (t >= g[:, None]), 1.0, 0.0)
    y = y + rng.normal(size=(n, periods))
    xs = np.repeat(x, periods) + (0.2 * rng.normal(size=n * periods) if varying else 0.0)
    return pl.DataFrame({"id": np.repeat(np.arange(n), periods), "year": np.tile(t, n),
                         "first_treat": np.repeat(g, periods), "y": y.ravel(), "x": xs,
                         "w": np.repeat(rng.integers(1, 4, n).astype(float), periods)})


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
@pytest.mark.parametrize("varying", [False, True])
def test_each_cell_is_drdid_s_own_influence_function(method: str, varying: bool) -> None:
    """Every row of the factored matrix equals the single-cell DRDID estimator's influence function."""
    frame = _panel(400, 6, seed=4, varying=varying)
    res = att_gt(frame, **KW, covariates=["x"], method=method, weights="w")
    dense = res.influence.dense()
    # rebuild the panel as att_gt sorts it: units by cohort rank, never treated last
    ids = res.unit_ids
    wide = frame.pivot(on="year", index="id", values="y", sort_columns=True)
    order = {v: i for i, v in enumerate(wide["id"].to_list())}
    pos = np.array([order[i] for i in ids])
    y = wide.drop("id").to_numpy()[pos]
    xw = frame.pivot(on="year", index="id", values="x", sort_columns=True).drop("id").to_numpy()[pos]
    w = frame.filter(pl.col("year") == 1).sort("id")["w"].to_numpy()[pos]
    w = w / w.mean()
    gt = res.group_time
    never = slice(max(b for _, b in res.cohort_slices.values()), len(ids))
    checked = 0
    periods = list(res.periods)
    for k, row in enumerate(gt.iter_rows(named=True)):
        g, t, base = (periods.index(row[c]) for c in ("cohort", "period", "base_period"))
        a, b = res.cohort_slices[g]
        idx = np.r_[a:b, never]
        d = np.r_[np.ones(b - a), np.zeros(len(idx) - (b - a))]
        xmat = np.column_stack([np.ones(len(idx)), xw[idx, min(t, base)]])
        dy = y[idx, t] - y[idx, base]
        ws = w[idx] / w[idx].mean()
        if method == "reg":
            att, inf = drdid.reg_panel(dy, d, xmat, ws)
        else:
            estimator = drdid.dr_panel if method == "dr" else drdid.ipw_panel
            att, inf = estimator(dy, d, xmat, ws, *drdid.logit(xmat, d, ws))
        assert row["att"] == pytest.approx(att, rel=1e-9, abs=1e-12)
        expected = np.zeros(len(ids))
        expected[idx] = len(ids) / len(idx) * inf
        np.testing.assert_allclose(dense[k], expected, rtol=1e-8, atol=1e-10)
        checked += 1
    assert checked == gt.height > 10


def test_operations_agree_with_the_dense_matrix() -> None:
    frame = _panel(600, 7, seed=2)
    never = frame.filter(pl.col("first_treat") == 0)["id"].unique().sort()
    stacks = [frame.filter((pl.col("first_treat") == g) | pl.col("id").is_in(never.implode()))
              for g in (3, 4, 5)]
    for result in (att_gt(frame, **KW, covariates=["x"], base_period="universal", base_window=2),
                   stack_results([att_gt(s, **KW, covariates=["x"]) for s in stacks])):
        inf: Influence = result.influence
        dense = inf.dense()
        assert dense.shape == inf.shape == (result.group_time.height, result.n_units)
        rng = np.random.default_rng(0)
        weights = rng.normal(size=(3, inf.n_rows))
        np.testing.assert_allclose(inf.rows(weights), weights @ dense, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(inf.norms(), (dense ** 2).sum(axis=1), rtol=1e-10)
        clusters = result.clusters if result.clusters is not None else np.arange(inf.n_cols) // 2
        size = int(clusters.max()) + 1
        summed = np.zeros((inf.n_rows, size))
        np.add.at(summed.T, clusters, dense.T)
        np.testing.assert_allclose(inf.norms(clusters), (summed ** 2).sum(axis=1), rtol=1e-10)
        v = rng.normal(size=(4, size))
        np.testing.assert_allclose(inf.draws(v, clusters), v @ summed.T, rtol=1e-10, atol=1e-9)
        v = rng.normal(size=(4, inf.n_cols))
        np.testing.assert_allclose(inf.draws(v), v @ dense.T, rtol=1e-10, atol=1e-9)


def test_memory_grows_with_units_not_cells_times_units() -> None:
    """Four times the periods (about four times the cells per cohort): the factors stay about the same."""
    short = att_gt(_panel(2000, 8, seed=1, cohorts=(3, 4, 5, 6, 7)), **KW, covariates=["x"])
    long_ = att_gt(_panel(2000, 32, seed=1, cohorts=(3, 4, 5, 6, 7)), **KW, covariates=["x"])
    cohorts = len(short.cohort_slices)
    assert len(long_.cohort_slices) == cohorts
    assert long_.group_time.height > 3.5 * short.group_time.height
    assert long_.influence.nbytes < 1.2 * short.influence.nbytes
    # a fraction of the dense matrix of R did (cells x units doubles): 5 cohorts x their subsample x 7 numbers
    # instead of 155 cells x 2000 units
    assert long_.influence.nbytes < 0.2 * long_.group_time.height * long_.n_units * 8
