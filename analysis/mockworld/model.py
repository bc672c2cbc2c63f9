"""The per-person monthly model: expected outcomes without and with CTI (the planted effect)."""

from __future__ import annotations

from datetime import date

import numpy as np

from analysis.mockworld.world import _EPOCH_MONTH, _NEVER, World, _month_index, _sigmoid

# --- per-person monthly model ------------------------------------------------------------------------------


def _months_of(year: int, reference: date | None = None) -> np.ndarray:
    """Month indices of ``year`` up to the reference date (registers hold no future months)."""
    last = _month_index(date(year, 12, 1))
    if reference is not None:
        last = min(last, _month_index(reference))
    return np.arange(_month_index(date(year, 1, 1)), last + 1)


def _month_dates(months: np.ndarray) -> np.ndarray:
    """First day of each month index as ``datetime64[D]``."""
    return (months + _EPOCH_MONTH - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")


def _age(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    birth_month = world.person["birth"][idx].astype("datetime64[M]").astype(np.int64) - (
        _EPOCH_MONTH - 1970 * 12
    )
    return (months[None, :] - birth_month[:, None]) / 12.0


def _treatment(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Ramp x multiplier of the planted effect for persons ``idx`` in ``months`` (0 when not treated)."""
    eff = world.config.effects
    part = world.participants
    row = world.person["part_row"][idx]
    treated = row >= 0
    if not treated.any():  # no participant among these persons (most chunks, and any comparison pool)
        return np.zeros((len(idx), len(months)))
    safe = np.maximum(row, 0)
    start = np.where(treated, part["start_month"].to_numpy()[safe] if part.height else 0, _NEVER)
    mult = np.where(treated, part["multiplier"].to_numpy()[safe] if part.height else 0.0, 0.0)
    e = months[None, :] - start[:, None]
    ramp = np.clip(e / eff.ramp_months, 0, 1) * (e >= 0)
    return ramp * mult[:, None]


def _dip_shape(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Crisis profile in [0, 1]: deepens over the 12 months before the crisis, then partly recovers."""
    # A lookup by event month (clipped to -13..12, where the profile is flat), with the same arithmetic as
    # the closed form: before = (e + 13) / 12 on -12..-1, after = 1 - recovery_share * min(e / 12, 1).
    e = np.arange(-13, 13)
    before = np.where((e >= -12) & (e < 0), (e + 13) / 12.0, 0.0)
    table = before + np.where(e >= 0, 1.0 - world.config.recovery_share * np.clip(e / 12.0, 0, 1), 0.0)
    offset = months[None, :] - world.person["crisis_month"][idx][:, None]
    return table[np.clip(offset, -13, 12) + 13]


def _on_disability(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    return months[None, :] >= world.person["disability_month"][idx][:, None]


def labour_probabilities(world: World, idx: np.ndarray, months: np.ndarray) -> dict[str, np.ndarray]:
    """Return expected monthly self-support and employment probabilities without (``*0``) and with CTI.

    Parameters
    ----------
    world
        The mock world.
    idx
        Person indices (``PNR`` values).
    months
        Month indices (0 = January 2019).

    Returns
    -------
    dict
        ``ss0``, ``ss1``, ``emp0``, ``emp1`` arrays of shape ``(len(idx), len(months))``.
    """
    p = world.person
    z = p["z"][idx][:, None]
    age = _age(world, idx, months)
    calendar = 0.08 * np.sin(2 * np.pi * (months % 12) / 12) - 0.25 * (
        (months >= 14) & (months <= 25)
    )  # COVID
    logit = (
        2.0
        - 1.2 * z
        + 0.12 * (p["edu_rank"][idx][:, None] - 3.2)
        - 0.15 * (p["sex"][idx][:, None] == 2)
        - 0.25 * (p["origin"][idx][:, None] != 0)
        - 0.05 * np.maximum(age - 60, 0)
        - 0.04 * np.maximum(25 - age, 0)
        + p["trend"][idx][:, None] * (months[None, :] - 48) / 48
        + calendar[None, :]
        - world.config.dip_logit * _dip_shape(world, idx, months)
    )
    pension = _on_disability(world, idx, months)
    ss0 = np.where(pension, 0.0, _sigmoid(logit))
    effect = _treatment(world, idx, months) * ~pension
    eff = world.config.effects
    ss1 = np.clip(ss0 + eff.self_support_pp * effect, 0, 1)
    q = _sigmoid(1.6 - 0.8 * z + 0.15 * (p["edu_rank"][idx][:, None] - 3.2) - 0.05 * np.maximum(age - 62, 0))
    emp0 = ss0 * q
    emp1 = np.minimum(emp0 + eff.employed_pp * effect, ss1)
    return {"ss0": ss0, "ss1": ss1, "emp0": emp0, "emp1": emp1}


def emergency_rates(world: World, idx: np.ndarray, months: np.ndarray) -> dict[str, np.ndarray]:
    """Return expected emergency contacts per month without (``em0``) and with (``em1``) CTI."""
    p = world.person
    e = months[None, :] - p["crisis_month"][idx][:, None]
    bump = np.where((e >= -4) & (e <= 1), 1.0, 0.0) + 0.6 * _dip_shape(world, idx, months)
    age = _age(world, idx, months)
    rate0 = np.exp(
        -3.5
        + 0.8 * p["z"][idx][:, None]
        + 0.15 * (p["sex"][idx][:, None] == 1)
        + 0.015 * np.maximum(age - 60, 0)
        + bump
    )
    rate1 = rate0 * np.clip(1 + world.config.effects.emergency_rel * _treatment(world, idx, months), 0, None)
    return {"em0": rate0, "em1": rate1}


def psych_rates(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Return expected psychiatric admissions per month (no planted effect; the crisis's own comes on top)."""
    return np.exp(-6.5 + 1.1 * world.person["z"][idx][:, None] + 1.2 * _dip_shape(world, idx, months))
