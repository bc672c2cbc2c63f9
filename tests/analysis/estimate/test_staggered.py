import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.estimate.inference import z_critical
from analysis.estimate.staggered import aggte, att_gt, stack_results

# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------

#: Four units, three periods: A first treated in 2, B in 3, C and D never treated.
TINY = pl.DataFrame(
    {
        "id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
        "year": [1, 2, 3] * 4,
        "first_treat": [2, 2, 2, 3, 3, 3, None, None, None, None, None, None],
        "y": [1.0, 4.0, 6.0, 2.0, 3.0, 7.0, 0.0, 1.0, 1.0, 1.0, 1.0, 3.0],
    }
)
KW = {"unit": "id", "period": "year", "cohort": "first_treat", "outcome": "y"}


def _panel(
    n: int = 400, periods: int = 6, seed: int = 0, *, never: bool = True, first_period: bool = False
) -> pl.DataFrame:
    """Staggered panel: cohorts 3, 4, 5 (and never), effect 1 + 0.5 e from e = 0, a covariate with
    period-varying effect (so unconditional estimates are biased when cohorts differ in x)."""
    rng = np.random.default_rng(seed)
    choices = [3, 4, 5] + ([0] if never else []) + ([1] if first_period else [])
    g = rng.choice(choices, n)
    x = rng.normal(size=n) + 0.3 * (g == 3)
    t = np.arange(1, periods + 1)
    e = t[None, :] - g[:, None]
    effect = np.where((g[:, None] > 0) & (e >= 0), 1.0 + 0.5 * e, 0.0)
    y = x[:, None] * (1 + 0.2 * t[None, :]) + 0.3 * g[:, None] + effect + rng.normal(size=(n, periods))
    return pl.DataFrame(
        {
            "id": np.repeat(np.arange(n), periods),
            "year": np.tile(t, n),
            "first_treat": np.repeat(g, periods),
            "y": y.ravel(),
            "x": np.repeat(x, periods),
        }
    )


def _cell(res, cohort: int, period: int) -> dict:
    rows = res.group_time.filter((pl.col("cohort") == cohort) & (pl.col("period") == period)).to_dicts()
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------------------------------------
# hand-computed 2x2s
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("control_group", "expected"),
    [
        # never treated controls C, D: ATT(2,2) = 3 - (1 + 0)/2; ATT(2,3) = 5 - (1 + 2)/2 ...
        ("never_treated", {(2, 2): 2.5, (2, 3): 3.5, (3, 2): 0.5, (3, 3): 3.0}),
        # not yet treated: B (first treated in 3) is a control for ATT(2,2): 3 - (1 + 1 + 0)/3
        ("not_yet_treated", {(2, 2): 3 - 2 / 3, (2, 3): 3.5, (3, 2): 0.5, (3, 3): 3.0}),
    ],
)
def test_hand_computed_group_time_atts(control_group: str, expected: dict) -> None:
    res = att_gt(TINY, **KW, control_group=control_group)
    assert res.group_time.height == 4
    for (g, t), value in expected.items():
        assert _cell(res, g, t)["att"] == pytest.approx(value, abs=1e-10)


def test_hand_computed_standard_error() -> None:
    # ATT(2,2): one treated unit (no variance), controls' changes 1 and 0 around 0.5:
    # se^2 = sum_c (dy - m0)^2 / n0^2 = 0.5 / 4
    res = att_gt(TINY, **KW)
    assert _cell(res, 2, 2)["se"] == pytest.approx(np.sqrt(0.125), abs=1e-10)
    assert _cell(res, 2, 2)["n_treated"] == 1
    assert _cell(res, 2, 2)["n_control"] == 2


def test_hand_computed_universal_base_period() -> None:
    res = att_gt(TINY, **KW, base_period="universal")
    # cohort 3 compares every period with period 2: ATT(3,1) = (2 - 3) - ((0 - 1) + (1 - 1))/2
    assert _cell(res, 3, 1)["att"] == pytest.approx(-0.5, abs=1e-10)
    assert _cell(res, 3, 2)["att"] == 0.0  # the reference period
    assert _cell(res, 3, 2)["se"] is None or np.isnan(_cell(res, 3, 2)["se"])
    assert _cell(res, 3, 3)["att"] == pytest.approx(3.0, abs=1e-10)
    assert _cell(res, 2, 1)["att"] == 0.0
    assert res.group_time.height == 6


def test_hand_computed_aggregations() -> None:
    res = att_gt(TINY, **KW)
    # simple: post cells (2,2), (2,3), (3,3), equal cohort sizes
    assert res.aggregate("simple").att == pytest.approx((2.5 + 3.5 + 3.0) / 3, abs=1e-10)
    dyn = res.aggregate("dynamic")
    assert dict(zip(dyn.keys.tolist(), dyn.atts.tolist(), strict=True)) == pytest.approx(
        {-1: 0.5, 0: 2.75, 1: 3.5}, abs=1e-10
    )
    assert dyn.att == pytest.approx((2.75 + 3.5) / 2, abs=1e-10)
    grp = res.aggregate("group")
    assert grp.atts.tolist() == pytest.approx([3.0, 3.0], abs=1e-10)
    assert grp.att == pytest.approx(3.0, abs=1e-10)
    cal = res.aggregate("calendar")
    assert cal.to_frame()["period"].to_list() == [2, 3]
    assert cal.atts.tolist() == pytest.approx([2.5, 3.25], abs=1e-10)
    assert cal.att == pytest.approx(2.875, abs=1e-10)


def test_anticipation_shifts_base_period_and_controls() -> None:
    frame = _panel(n=300, periods=6, seed=3)
    res = att_gt(frame, **KW, anticipation=1, control_group="not_yet_treated")
    y = frame.sort("id", "year")["y"].to_numpy().reshape(-1, 6)
    g = frame.sort("id", "year")["first_treat"].to_numpy()[::6]
    # ATT(4, 5): base 4 - 1 - 1 = 2; controls untreated through max(5, 2) + 1 = 6: never treated only
    dy = y[:, 4] - y[:, 1]
    expected = dy[g == 4].mean() - dy[g == 0].mean()
    cell = _cell(res, 4, 5)
    assert cell["base_period"] == 2
    assert cell["att"] == pytest.approx(expected, abs=1e-10)
    # ATT(4, 3) is an anticipation-window pre-period: varying base 2, controls first treated after 4
    dy = y[:, 2] - y[:, 1]
    expected = dy[g == 4].mean() - dy[(g == 0) | (g == 5)].mean()
    assert _cell(res, 4, 3)["att"] == pytest.approx(expected, abs=1e-10)


def test_base_window_compares_every_period_with_a_pre_period_average() -> None:
    frame = _panel(n=300, periods=8, seed=5).with_columns(pl.col("first_treat").replace(3, 5))
    res = att_gt(frame, **KW, base_period="universal", anticipation=1, base_window=2)
    y = frame.sort("id", "year")["y"].to_numpy().reshape(-1, 8)
    g = frame.sort("id", "year")["first_treat"].to_numpy()[::8]
    # cohort 5: base period 5 - 1 - 1 = 3, window the years 2 and 3 (columns 1, 2)
    base = y[:, 1:3].mean(axis=1)
    for t in (1, 3, 6, 8):
        dy = y[:, t - 1] - base
        assert _cell(res, 5, t)["att"] == pytest.approx(dy[g == 5].mean() - dy[g == 0].mean(), abs=1e-10)
    assert _cell(res, 5, 3)["att"] != 0.0  # the base period differs from the window average
    assert res.base_window == 2 and res.base_period == "universal"
    assert 4 in res.group_time["cohort"].to_list()  # its base year 2 and window years 1..2 are in the panel
    # with a window of three years cohort 4 (base year 2) would need a year 0: it is dropped with a note
    wide = att_gt(frame, **KW, base_period="universal", anticipation=1, base_window=3)
    assert 4 not in wide.group_time["cohort"].to_list() and 5 in wide.group_time["cohort"].to_list()
    assert any("base window" in note for note in wide.notes)
    # a window of one period is R's universal base
    one = att_gt(frame, **KW, base_period="universal", anticipation=1, base_window=1)
    plain = att_gt(frame, **KW, base_period="universal", anticipation=1)
    assert one.group_time.equals(plain.group_time)


def test_base_window_standard_errors_are_the_two_by_twos_of_the_averages() -> None:
    frame = _panel(n=200, periods=8, seed=6).with_columns(pl.col("first_treat").replace({3: 6, 4: 6}))
    res = att_gt(frame, **KW, base_period="universal", base_window=3)
    y = frame.sort("id", "year")["y"].to_numpy().reshape(-1, 8)
    g = frame.sort("id", "year")["first_treat"].to_numpy()[::8]
    dy = y[:, 7] - y[:, 2:5].mean(axis=1)  # ATT(6, 8) against the mean of years 3..5
    t, c = dy[g == 6], dy[g == 0]
    se = np.sqrt(t.var() / t.size + c.var() / c.size)
    assert _cell(res, 6, 8)["se"] == pytest.approx(se, rel=1e-10)


def test_unconditional_methods_coincide_and_pandas_and_zero_cohort_are_accepted() -> None:
    frame = _panel(seed=4)
    base = att_gt(frame, **KW, method="dr").group_time
    for method in ("ipw", "reg"):
        other = att_gt(frame, **KW, method=method).group_time
        np.testing.assert_allclose(other["att"].to_numpy(), base["att"].to_numpy(), atol=1e-12)
        np.testing.assert_allclose(other["se"].to_numpy(), base["se"].to_numpy(), atol=1e-12)
    nulls = frame.with_columns(
        pl.when(pl.col("first_treat") > 0).then(pl.col("first_treat")).alias("first_treat")
    )
    from_pandas = att_gt(nulls.to_pandas(), **KW).group_time
    np.testing.assert_allclose(from_pandas["att"].to_numpy(), base["att"].to_numpy(), atol=1e-12)


def test_irregular_period_spacing_is_mapped_to_ranks() -> None:
    frame = _panel(seed=5)
    spaced = frame.with_columns(
        (2000 + 2 * pl.col("year")).alias("year"),
        pl.when(pl.col("first_treat") > 0)
        .then(2000 + 2 * pl.col("first_treat"))
        .otherwise(0)
        .alias("first_treat"),
    )
    a = att_gt(frame, **KW)
    b = att_gt(spaced, **KW)
    np.testing.assert_allclose(b.group_time["att"].to_numpy(), a.group_time["att"].to_numpy(), atol=1e-12)
    assert b.group_time["period"].to_list()[:2] == [2004, 2006]
    assert b.aggregate("dynamic").att == pytest.approx(a.aggregate("dynamic").att, abs=1e-12)


def test_integer_weights_equal_duplicated_units() -> None:
    frame = _panel(n=200, seed=6)
    twice = frame.filter(pl.col("id") % 3 == 0).with_columns(pl.col("id") + 10_000)
    duplicated = pl.concat([frame, twice])
    weighted = frame.with_columns(pl.when(pl.col("id") % 3 == 0).then(2.0).otherwise(1.0).alias("w"))
    for covariates in (None, ["x"]):
        a = att_gt(duplicated, **KW, covariates=covariates)
        b = att_gt(weighted, **KW, covariates=covariates, weights="w")
        np.testing.assert_allclose(b.group_time["att"].to_numpy(), a.group_time["att"].to_numpy(), atol=1e-9)
        assert b.aggregate("simple").att == pytest.approx(a.aggregate("simple").att, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.floats(-100, 100))
def test_unit_and_period_fixed_effects_do_not_move_the_att(seed: int, shift: float) -> None:
    frame = _panel(n=60, periods=5, seed=seed)
    rng = np.random.default_rng(seed)
    unit_fe = pl.DataFrame({"id": np.arange(60), "fe": rng.normal(scale=10, size=60)})
    moved = frame.join(unit_fe, on="id", how="left", validate="m:1").with_columns(
        pl.col("y") + pl.col("fe") + shift * pl.col("year")
    )
    a = att_gt(frame, **KW, control_group="not_yet_treated").group_time["att"].to_numpy()
    b = att_gt(moved, **KW, control_group="not_yet_treated").group_time["att"].to_numpy()
    np.testing.assert_allclose(b, a, atol=1e-8)


# --------------------------------------------------------------------------------------------------
# against the reference implementation (differences 0.3, a port of R did)
# --------------------------------------------------------------------------------------------------

#: Point estimates agree to rounding; analytic SEs to 1e-8 (covariate SEs differ only in the last
#: digits of the logit fit). The brief's tolerance was 1e-3; we assert much tighter.
ATT_TOL = 1e-8
SE_TOL = 1e-8

REFERENCE_CASES = [
    # seed, covariates, method, control_group, anticipation, base_period
    (11, None, "dr", "never_treated", 0, "varying"),
    (12, None, "dr", "not_yet_treated", 0, "varying"),
    (13, None, "dr", "never_treated", 1, "universal"),
    (14, None, "reg", "not_yet_treated", 1, "varying"),
    (15, ["x"], "dr", "never_treated", 0, "varying"),
    (16, ["x"], "dr", "not_yet_treated", 1, "universal"),
    (17, ["x"], "ipw", "not_yet_treated", 0, "varying"),
    (18, ["x"], "reg", "never_treated", 0, "universal"),
]


def _differences(frame: pl.DataFrame, covariates, method, control_group, anticipation, base_period):
    differences = pytest.importorskip("differences")
    pdf = frame.to_pandas()
    pdf["first_treat"] = pdf["first_treat"].replace(0, np.nan).astype(float)
    pdf = pdf.set_index(["id", "year"])
    with warnings.catch_warnings():
        # differences (a test-only reference) emits pandas deprecation noise we cannot fix
        warnings.simplefilter("ignore")
        model = differences.ATTgt(
            data=pdf, cohort_column="first_treat", base_period=base_period, anticipation=anticipation
        )
        fitted = model.fit(
            formula="y ~ x" if covariates else "y",
            est_method={"ipw": "std_ipw"}.get(method, method),
            control_group=control_group,
            progress_bar=False,
        ).to_pandas()
        aggregated = {
            kind: model.aggregate(theirs)
            for kind, theirs in [
                ("simple", "simple"),
                ("dynamic", "event"),
                ("group", "cohort"),
                ("calendar", "time"),
            ]
        }
    fitted.columns = ["att", "se", "lower", "upper", "zero_not_in_cband"]
    for frame_ in aggregated.values():
        frame_.columns = ["att", "se", "lower", "upper", "zero_not_in_cband"]
    return fitted.reset_index(), aggregated


@pytest.mark.parametrize(
    ("seed", "covariates", "method", "control_group", "anticipation", "base_period"), REFERENCE_CASES
)
def test_matches_differences(seed, covariates, method, control_group, anticipation, base_period) -> None:
    frame = _panel(n=300, periods=6, seed=seed)
    theirs, aggregated = _differences(frame, covariates, method, control_group, anticipation, base_period)
    res = att_gt(
        frame,
        **KW,
        covariates=covariates,
        method=method,
        control_group=control_group,
        anticipation=anticipation,
        base_period=base_period,
    )
    ours = res.group_time.to_pandas()
    merged = ours.merge(
        theirs,
        left_on=["cohort", "period"],
        right_on=["cohort", "time"],
        how="outer",
        validate="1:1",
        suffixes=("", "_ref"),
    )
    assert len(merged) == len(ours) == len(theirs)
    np.testing.assert_allclose(merged["att"], merged["att_ref"], atol=ATT_TOL)
    real = merged["se"].notna()  # the universal reference cell has no standard error
    np.testing.assert_allclose(merged.loc[real, "se"], merged.loc[real, "se_ref"], atol=SE_TOL)

    simple = res.aggregate("simple")
    assert simple.att == pytest.approx(aggregated["simple"]["att"].iloc[0], abs=ATT_TOL)
    assert simple.se == pytest.approx(aggregated["simple"]["se"].iloc[0], abs=SE_TOL)
    for kind in ("dynamic", "group", "calendar"):
        agg = res.aggregate(kind)
        ref = aggregated[kind]
        np.testing.assert_array_equal(agg.keys, ref.index.to_numpy())
        np.testing.assert_allclose(agg.atts, ref["att"].to_numpy(), atol=ATT_TOL)
        ok = np.isfinite(agg.ses)
        np.testing.assert_allclose(agg.ses[ok], ref["se"].to_numpy()[ok], atol=SE_TOL)


# --------------------------------------------------------------------------------------------------
# planted effects and inference
# --------------------------------------------------------------------------------------------------


def test_dynamic_confidence_intervals_cover_the_planted_effect() -> None:
    frame = _panel(n=3000, periods=8, seed=21)
    res = att_gt(frame, **KW, covariates=["x"])
    dyn = res.aggregate("dynamic").to_frame()
    truth = (
        pl.col("event_time")
        .cast(pl.Float64)
        .pipe(lambda e: pl.when(e >= 0).then(1.0 + 0.5 * e).otherwise(0.0))
    )
    checked = dyn.with_columns(truth=truth).with_columns(
        covered=(pl.col("ci_lower") <= pl.col("truth")) & (pl.col("truth") <= pl.col("ci_upper"))
    )
    assert checked["covered"].all(), checked
    # the unconditional estimator is biased here (cohort 3 has higher x with a trending effect)
    biased = att_gt(frame, **KW).aggregate("dynamic")
    assert abs(biased.atts[biased.keys == 0][0] - 1.0) > abs(
        dyn.filter(pl.col("event_time") == 0)["att"][0] - 1.0
    )


def test_bootstrap_is_reproducible_and_close_to_analytic() -> None:
    frame = _panel(n=500, seed=22)
    a = att_gt(frame, **KW, bootstrap=499, seed=7)
    b = att_gt(frame, **KW, bootstrap=499, seed=7)
    c = att_gt(frame, **KW, bootstrap=499, seed=8)
    analytic = att_gt(frame, **KW)
    assert a.group_time.equals(b.group_time)
    assert not a.group_time["se"].equals(c.group_time["se"])
    np.testing.assert_allclose(a.group_time["se"].to_numpy(), analytic.group_time["se"].to_numpy(), rtol=0.2)
    assert a.aggregate("dynamic").ses.tolist() == b.aggregate("dynamic").ses.tolist()
    banded = a.aggregate("dynamic", cband=True)
    assert banded.crit_value > 1.96  # uniform bands are wider than pointwise intervals
    assert att_gt(frame, **KW, bootstrap=199, seed=7, cband=True).crit_value > 1.96


def test_dynamic_window_and_balance() -> None:
    res = att_gt(_panel(seed=23), **KW)
    assert res.aggregate("dynamic", min_e=-2, max_e=1).keys.tolist() == [-2, -1, 0, 1]
    balanced = res.aggregate("dynamic", balance_e=1)
    # only cohorts observed for e = 0 and 1 (3, 4 and 5 in a 6-period panel) contribute
    assert balanced.keys.max() == 1


# --------------------------------------------------------------------------------------------------
# errors and notes
# --------------------------------------------------------------------------------------------------


def test_units_treated_in_the_first_period_are_dropped_with_a_note() -> None:
    frame = _panel(seed=24, first_period=True)
    res = att_gt(frame, **KW)
    assert any("first period" in note for note in res.notes)
    assert 1 not in res.group_time["cohort"].to_list()
    assert res.n_units == frame.filter(pl.col("first_treat") != 1)["id"].n_unique()


@pytest.mark.parametrize(
    ("mutate", "options", "message"),
    [
        (lambda f: f.drop("y"), {}, "lacks columns"),
        (lambda f: f, {"covariates": ["nope"]}, "lacks columns"),
        (lambda f: f.filter(pl.col("first_treat") > 0), {}, "no never-treated units"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("first_treat") > 0).then(1).otherwise(0).alias("first_treat")
            ),
            {},
            "no treated cohort has a pre-treatment",
        ),
        (lambda f: f.filter(~((pl.col("id") < 3) & (pl.col("year") == 2))), {}, "unbalanced panel: 3 of"),
        (lambda f: pl.concat([f, f.head(1)]), {}, "duplicated"),
        (lambda f: f.with_columns(pl.col("y").cast(pl.String)), {}, "must be numeric"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("id") == 0).then(float("nan")).otherwise(pl.col("y")).alias("y")
            ),
            {},
            "null/NaN",
        ),
        (
            lambda f: f.with_columns(pl.when(pl.col("id") == 0).then(None).otherwise(pl.col("x")).alias("x")),
            {"covariates": ["x"]},
            "null/NaN",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("year") == 1).then(0).otherwise(pl.col("first_treat")).alias("first_treat")
            ),
            {},
            "varies within unit",
        ),
        (lambda f: f, {"control_group": "everyone"}, "control_group"),
        (lambda f: f, {"method": "ols"}, "method"),
        (lambda f: f, {"base_period": "fixed"}, "base_period"),
        (lambda f: f, {"anticipation": -1}, "anticipation"),
        (lambda f: f, {"bootstrap": -5}, "bootstrap"),
        (lambda f: f, {"base_window": 0}, "base_window must be a positive integer"),
        (lambda f: f, {"base_window": 2}, "base_window > 1 needs base_period='universal'"),
    ],
)
def test_bad_input_raises(mutate, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        att_gt(mutate(_panel(n=50, seed=25)), **KW, **options)


def test_bad_aggregation_raises() -> None:
    res = att_gt(TINY, **KW)
    with pytest.raises(ValueError, match="kind must be"):
        res.aggregate("event")
    with pytest.raises(ValueError, match="balance_e only"):
        res.aggregate("simple", balance_e=1)


def test_not_yet_treated_without_never_treated_uses_the_last_cohort_as_control() -> None:
    # R did: the last cohort (5) becomes the control group and periods from 5 on are dropped
    frame = _panel(seed=26, never=False)
    res = att_gt(frame, **KW, control_group="not_yet_treated")
    assert any("no never-treated units" in note for note in res.notes)
    assert sorted(set(res.group_time["cohort"].to_list())) == [3, 4]
    assert res.group_time["period"].max() == 4
    y = frame.sort("id", "year")["y"].to_numpy().reshape(-1, 6)
    g = frame.sort("id", "year")["first_treat"].to_numpy()[::6]
    dy = y[:, 3] - y[:, 1]
    assert _cell(res, 3, 4)["att"] == pytest.approx(dy[g == 3].mean() - dy[g == 5].mean(), abs=1e-10)


def test_cohorts_after_the_last_period_count_as_never_treated() -> None:
    frame = _panel(seed=27).with_columns(
        pl.when(pl.col("first_treat") == 0).then(99).otherwise(pl.col("first_treat")).alias("first_treat")
    )
    res = att_gt(frame, **KW)
    assert any("after the last period" in note for note in res.notes)
    base = att_gt(_panel(seed=27), **KW)
    assert res.group_time["att"].to_list() == pytest.approx(base.group_time["att"].to_list(), abs=1e-12)


def test_cohort_values_must_be_periods() -> None:
    frame = _panel(n=50, seed=28).with_columns(
        pl.when(pl.col("first_treat") == 4).then(40).otherwise(pl.col("first_treat")).alias("first_treat"),
        pl.col("year") * 10,
    )
    frame = frame.with_columns(
        pl.when(pl.col("first_treat").is_in([3, 5]))
        .then(pl.col("first_treat") * 10 + 5)
        .otherwise(pl.col("first_treat"))
        .alias("first_treat")
    )
    with pytest.raises(ValueError, match="not one of the periods"):
        att_gt(frame, **KW)


# --------------------------------------------------------------------------------------------------
# stacks (each cohort against its own controls)
# --------------------------------------------------------------------------------------------------


def _stacks(shared_controls: bool) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Cohorts 3 and 4 of ``_panel`` each with half of the never-treated units (or all of them, shared)."""
    frame = _panel(600, seed=3).filter(pl.col("first_treat") != 5)
    never = frame.filter(pl.col("first_treat") == 0)["id"].unique().sort()
    halves = (never, never) if shared_controls else (never.gather_every(2), never.gather_every(2, offset=1))
    stacks = [frame.filter((pl.col("first_treat") == g) | pl.col("id").is_in(h.implode()))
              for g, h in zip((3, 4), halves, strict=True)]
    return frame, stacks


def test_one_stack_is_the_att_gt_result_itself() -> None:
    frame = _panel(300, seed=1)
    single = att_gt(frame, **KW)
    stacked = stack_results([single])
    assert stacked.group_time["att"].equals(single.group_time["att"])
    assert np.allclose(stacked.group_time["se"], single.group_time["se"], rtol=1e-12, equal_nan=True)
    for kind in ("simple", "dynamic", "group", "calendar"):
        a, b = stacked.aggregate(kind), single.aggregate(kind)
        assert (a.att, a.se) == pytest.approx((b.att, b.se), rel=1e-12), kind


def test_stacked_cells_keep_their_own_estimates_and_standard_errors() -> None:
    _, stacks = _stacks(shared_controls=False)
    results = [att_gt(s, **KW) for s in stacks]
    stacked = stack_results(results)
    separate = pl.concat([r.group_time for r in results])
    assert np.allclose(stacked.group_time["att"], separate["att"], equal_nan=True)
    assert np.allclose(stacked.group_time["se"], separate["se"], equal_nan=True)
    # the simple aggregate weights each cohort's post cells by its number of treated units
    post = stacked.group_time.filter(pl.col("post"))
    weights = post["n_treated"].cast(pl.Float64)
    expected = float((post["att"] * weights).sum() / weights.sum())
    assert stacked.aggregate("simple").att == pytest.approx(expected)


def test_a_control_in_two_stacks_is_one_cluster() -> None:
    _, stacks = _stacks(shared_controls=True)
    results = [att_gt(s, **KW) for s in stacks]
    clustered, independent = stack_results(results), stack_results(results, cluster=False)
    assert clustered.aggregate("simple").att == pytest.approx(independent.aggregate("simple").att)
    # both cohorts' ATTs lean on the same control means: positively correlated, so clustering widens the SE
    assert clustered.aggregate("simple").se > independent.aggregate("simple").se * 1.01
    assert any("clustered by unit" in n for n in clustered.notes)
    _, disjoint = _stacks(shared_controls=False)
    apart = [att_gt(s, **KW) for s in disjoint]
    independent_se = stack_results(apart, cluster=False).aggregate("dynamic").se
    assert stack_results(apart).aggregate("dynamic").se == pytest.approx(independent_se)


def test_stacks_must_share_periods_and_not_share_cohorts() -> None:
    _, stacks = _stacks(shared_controls=False)
    a, b = (att_gt(s, **KW) for s in stacks)
    with pytest.raises(ValueError, match="more than one stack"):
        stack_results([a, a])
    shorter = att_gt(stacks[1].filter(pl.col("year") < 6), **KW)
    with pytest.raises(ValueError, match="same periods"):
        stack_results([a, shorter])
    with pytest.raises(ValueError, match="same settings"):
        stack_results([a, att_gt(stacks[1], **KW, anticipation=1)])
    with pytest.raises(ValueError, match="at least one"):
        stack_results([])
    with pytest.raises(ValueError, match=r"differ in \['outcome'\]"):
        stack_results([a, att_gt(stacks[1].rename({"y": "y2"}), **{**KW, "outcome": "y2"})])
    with pytest.raises(ValueError, match=r"differ in \['covariates'\]"):
        stack_results([a, att_gt(stacks[1], **KW, covariates=["x"])])


# --------------------------------------------------------------------------------------------------
# the result objects
# --------------------------------------------------------------------------------------------------


def test_results_carry_their_options() -> None:
    res = att_gt(_panel(seed=29), **KW, covariates=("x",), control_group="not_yet_treated", anticipation=1,
                 method="ipw", alpha=0.1)
    assert (res.outcome, res.covariates, res.method, res.anticipation) == ("y", ("x",), "ipw", 1)
    assert (res.control_group, res.alpha, res.cband) == ("not_yet_treated", 0.1, False)
    assert res.to_frame() is res.group_time
    agg = res.aggregate("dynamic", min_e=-1, max_e=2)
    assert (agg.kind, agg.key, agg.min_e, agg.max_e, agg.balance_e, agg.alpha, agg.bootstrap, agg.cband) == (
        "dynamic", "event_time", -1, 2, None, 0.1, 0, False)
    assert agg.keys.tolist() == [-1, 0, 1, 2]
    assert agg.ci_upper - agg.att == pytest.approx(z_critical(0.1) * agg.se, rel=1e-12)
    # the method is R's aggte(): the same numbers from the function
    direct = aggte(res, "dynamic", min_e=-1, max_e=2)
    assert (direct.att, direct.se) == (agg.att, agg.se)
    assert direct.to_frame().equals(agg.to_frame())


def test_stacked_results_keep_the_stacks_settings_and_their_own_band_choice() -> None:
    _, stacks = _stacks(shared_controls=False)
    results = [att_gt(s, **KW, bootstrap=99, seed=3) for s in stacks]
    stacked = stack_results(results, cband=True)
    options = (stacked.outcome, stacked.method, stacked.bootstrap, stacked.seed, stacked.cband)
    assert options == ("y", "dr", 99, 3, True)
    assert stacked.n_units == sum(r.n_units for r in results)
    assert stacked.crit_value > z_critical(stacked.alpha)  # a uniform band is wider than the pointwise one
