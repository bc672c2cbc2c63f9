"""Minimum detectable effects: what the current sample can and cannot show."""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl
from scipy.stats import norm

from analysis.estimate.inference import z_critical


def mde_from_se(se: float, /, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true effect detected with probability ``power`` by a two-sided test at level ``alpha``.

    ``MDE = (z_{1-alpha/2} + z_{power}) * se`` (Bloom 1995), i.e. 2.80 standard errors at the defaults.
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if not se >= 0:
        raise ValueError(f"standard error must be >= 0, got {se}")
    return float((z_critical(alpha) + norm.ppf(power)) * se)


def mde_two_groups(sd: float, n_treated: int, n_controls: int, /, *, alpha: float = 0.05, power: float = 0.8,
                   r2: float = 0.0) -> float:
    """Planning MDE for a difference in means: ``(z + z) * sd * sqrt((1 - r2) * (1/n_t + 1/n_c))``.

    ``r2`` is the share of outcome variance explained by pre-period history (matching, fixed effects).
    """
    if n_treated < 1 or n_controls < 1:
        raise ValueError("both groups need at least one person")
    if not 0 <= r2 < 1:
        raise ValueError(f"r2 must be in [0, 1), got {r2}")
    return mde_from_se(sd * math.sqrt((1 - r2) * (1 / n_treated + 1 / n_controls)), alpha=alpha, power=power)


def power_at(effect: float, se: float, /, *, alpha: float = 0.05) -> float:
    """Probability that a two-sided test at level ``alpha`` rejects "no effect" when the truth is ``effect``.

    ``Phi(|effect| / se - z) + Phi(-|effect| / se - z)`` with ``z = z_{1-alpha/2}`` (normal approximation,
    the standard error taken as known); ``alpha`` itself when ``effect`` is 0.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not (se > 0 and math.isfinite(se)):
        raise ValueError(f"standard error must be a positive number, got {se}")
    if not math.isfinite(effect):
        raise ValueError(f"effect must be a finite number, got {effect}")
    z, ratio = norm.ppf(1 - alpha / 2), abs(effect) / se
    return float(norm.cdf(ratio - z) + norm.cdf(-ratio - z))


def scale_se(se: float, n_from: int, n_to: int, /) -> float:
    """Project the standard error ``se`` of an estimate on ``n_from`` participants to ``n_to`` of them.

    ``se * sqrt(n_from / n_to)``: what the same design would give the real programme's sample when the
    figure comes from another size (e.g. a mock world with population-proportional take-up).
    """
    if n_from < 1 or n_to < 1:
        raise ValueError(f"both sample sizes must be at least 1, got {n_from} and {n_to}")
    if not se >= 0:
        raise ValueError(f"standard error must be >= 0, got {se}")
    return float(se * math.sqrt(n_from / n_to))


@dataclass(frozen=True, slots=True)
class PowerStatement:
    """What one estimate can detect: its MDE, the power against an effect of interest, and a plain sentence.

    ``detectable`` is None without an ``effect``, else whether ``|effect| >= mde`` (the design detects it
    with at least ``power``); ``power_at_effect`` is the probability of a significant estimate if the truth
    were ``effect``.
    """

    outcome: str
    design: str
    n_treated: int
    se: float
    mde: float
    alpha: float
    power: float
    effect: float | None
    power_at_effect: float | None
    detectable: bool | None
    sentence: str

    def to_frame(self) -> pl.DataFrame:
        """One row with every field."""
        return pl.DataFrame([{f: getattr(self, f) for f in self.__slots__}],
                            schema={"outcome": pl.String, "design": pl.String, "n_treated": pl.Int64,
                                    "se": pl.Float64, "mde": pl.Float64, "alpha": pl.Float64,
                                    "power": pl.Float64, "effect": pl.Float64, "power_at_effect": pl.Float64,
                                    "detectable": pl.Boolean, "sentence": pl.String})


def power_statement(outcome: str, se: float, n_treated: int, /, *, design: str, effect: float | None = None,
                    effect_label: str = "the planted effect", alpha: float = 0.05,
                    power: float = 0.8) -> PowerStatement:
    """State the minimum detectable effect of an estimate and whether ``effect`` is within reach.

    Parameters
    ----------
    outcome, design
        Names for the sentence (e.g. ``"self_support"``, ``"matched DiD"``).
    se, n_treated
        The estimate's standard error and the participants it rests on (the real sample's).
    effect
        The size that matters (the mock world's planted effect, or a policy-relevant size); None for the
        MDE alone.
    effect_label
        How the sentence names ``effect``.
    alpha, power
        Two-sided level and the power the MDE is stated at.

    Returns
    -------
    PowerStatement
        With a sentence that says plainly when the study cannot detect ``effect``, e.g. "With 701
        participants, the matched DiD cannot reliably detect the planted effect on employed (0.035): its
        minimum detectable effect is 0.0448 (80 % power, 5 % two-sided), and it would find the planted effect
        significant with probability 0.59 only."
    """
    if n_treated < 1:
        raise ValueError(f"n_treated must be at least 1, got {n_treated}")
    mde = mde_from_se(se, alpha=alpha, power=power)
    where = f"With {n_treated:,} participants, the {design}"
    terms = f"({power:.0%} power, {alpha:.0%} two-sided)".replace("%", " %")
    if effect is None:
        return PowerStatement(outcome, design, n_treated, se, mde, alpha, power, None, None, None,
                              f"{where} detects effects on {outcome} of {mde:.3g} or more {terms}.")
    reach = power_at(effect, se, alpha=alpha) if se > 0 else 1.0
    detectable = abs(effect) >= mde
    if detectable:
        sentence = (f"{where} can detect {effect_label} on {outcome} ({effect:.3g}): its minimum detectable "
                    f"effect is {mde:.3g} {terms}, and it finds {effect_label} significant with probability "
                    f"{reach:.2f}.")
    else:
        sentence = (f"{where} cannot reliably detect {effect_label} on {outcome} ({effect:.3g}): its minimum "
                    f"detectable effect is {mde:.3g} {terms}, and it would find {effect_label} significant "
                    f"with probability {reach:.2f} only.")
    return PowerStatement(outcome, design, n_treated, se, mde, alpha, power, float(effect), reach, detectable,
                          sentence)
