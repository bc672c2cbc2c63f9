import math

import pytest

from analysis.estimate.power import mde_from_se, power_at, power_statement, scale_se


def test_power_at_zero_is_the_level_and_at_the_mde_the_stated_power() -> None:
    assert power_at(0.0, 0.01) == pytest.approx(0.05, abs=1e-12)
    assert power_at(mde_from_se(0.01), 0.01) == pytest.approx(0.8, abs=1e-3)  # the far tail adds ~1e-6
    assert power_at(-0.03, 0.01) == power_at(0.03, 0.01)
    assert power_at(0.03, 0.01) > power_at(0.02, 0.01) > power_at(0.01, 0.01)


def test_scale_se_projects_to_another_sample_size() -> None:
    assert scale_se(0.004, 26_000, 650) == pytest.approx(0.004 * math.sqrt(40), rel=1e-12)
    assert scale_se(0.01, 700, 700) == 0.01


def test_statement_says_plainly_when_the_planted_effect_is_out_of_reach() -> None:
    weak = power_statement("employed", 0.016, 701, design="matched DiD", effect=0.035)
    assert weak.detectable is False and weak.mde == pytest.approx(2.8016 * 0.016, rel=1e-3)
    assert "cannot reliably detect the planted effect on employed (0.035)" in weak.sentence
    assert "with probability 0.59 only" in weak.sentence and "701 participants" in weak.sentence
    strong = power_statement("self_support", 0.009, 701, design="matched DiD", effect=-0.071)
    assert strong.detectable is True and strong.power_at_effect > 0.99
    assert "can detect the planted effect on self_support (-0.071)" in strong.sentence
    bare = power_statement("self_support", 0.009, 701, design="staggered ATT")
    assert bare.detectable is None and bare.effect is None and "0.0252 or more" in bare.sentence
    frame = weak.to_frame()
    assert frame.height == 1 and frame["detectable"].to_list() == [False]
    assert frame["sentence"][0] == weak.sentence


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: power_at(0.1, 0.0), "standard error must be a positive number"),
        (lambda: power_at(float("nan"), 0.1), "effect must be a finite number"),
        (lambda: power_at(0.1, 0.1, alpha=1.5), "alpha must be in"),
        (lambda: scale_se(0.1, 0, 10), "at least 1"),
        (lambda: power_statement("y", 0.1, 0, design="d"), "n_treated must be at least 1"),
        (lambda: power_statement("y", -0.1, 10, design="d"), "standard error must be >= 0"),
    ],
)
def test_bad_arguments_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
