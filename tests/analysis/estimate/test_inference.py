"""The shared normal critical value: the number every interval of the estimators uses."""

import math

import pytest
from scipy.stats import norm

from analysis.estimate.inference import z_critical


def test_z_at_five_percent_is_the_float_the_intervals_always_used() -> None:
    # effects.py hard-coded this literal; the derived value must be the same float (byte-identical outputs)
    assert z_critical(0.05) == 1.959963984540054


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5])
def test_z_is_the_two_sided_normal_quantile(alpha: float) -> None:
    assert z_critical(alpha) == float(norm.ppf(1 - alpha / 2))


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.05, 1.5, math.nan])
def test_a_level_outside_zero_one_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        z_critical(alpha)
