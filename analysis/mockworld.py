"""A deterministic mock of the Danish registers with a planted CTI effect, and the sites' inbox files.

Data-generating process (every number below is a field of ``WorldConfig``/``PlantedEffects``):

* Each person has a latent vulnerability ``z``; self-support, employment, earnings, hospital contacts and
  education depend on it (and on age, sex, origin, education), with a person-specific trend and common
  calendar effects (season, a COVID dip 2020-03..2021-02). Disability pension is absorbing from an onset
  month drawn mostly for older and vulnerable persons.
* Vulnerable persons have a *critical transition* (crisis) in some month ``c`` (shelter exit, psychiatric
  discharge, prison release). Outcomes worsen over the 12 months before ``c`` (the Ashenfelter dip) and
  recover half of the dip over the 12 months after it, without any intervention. The crisis leaves a
  register trace in the month before ``c``: a psychiatric admission (F-diagnosis) or an emergency contact
  in the hospital register, and the discharge from the institution stay it ends (shelter/residential,
  psychiatric ward, prison) in the stays register, which only crisis persons have.
* Participants are crisis persons living in a CTI site municipality whose crisis falls after the site
  joined (2024-01/2024-08) and before the reference date, taken up with a probability that is higher for
  Greenlandic and other non-Danish background. CTI starts in the crisis month. Non-participants with a
  crisis (other municipalities, earlier years, not taken up) form a natural comparison group.
* The planted effect (``PlantedEffects``) acts only on participants after start, on the probability/rate
  scale, ramping linearly from 0 at start to full at month 12, larger for completers and varying by
  sub-target group. ``truth()`` reports the realised average effect on the treated from the model's own
  expected values (before sampling noise), so estimators can be checked against it.

Generation is vectorised over persons in chunks and seeded per (register family, year, chunk), so any
register-year can be produced on its own, in any order, with bounded memory at 5.9 million persons. Draws
use common random numbers (uniforms fixed per cell, inverse-CDF Poisson counts, counter-based hashes for
contact details), so setting the effects to zero changes nothing but the participants' post-start months.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from analysis.schema import REGISTERS

CHUNK = 500_000
_EPOCH_MONTH = 2019 * 12  # month index 0 = January 2019 in "months since year 0" units relative below
_FAMILY_SEED = {"population": 1, "labour": 2, "health": 3, "education": 4, "enrolment": 5}
_NON_DANISH = ("TUR", "SYR", "POL", "IRQ", "SOM", "PAK", "ROU", "AFG")
_OTHER_KOM = (
    157,
    159,
    165,
    167,
    173,
    175,
    185,
    187,
    217,
    219,
    223,
    230,
    250,
    253,
    259,
    265,
    269,
    270,
    306,
    316,
)
_HFAUDD_BY_LEVEL_RANK = ("1010", "1090", "5080", "3500", "6000", "7000", "7500", "9000")
_NEVER = 10_000  # a month index far outside every window
_CRISIS_KINDS = ("OVG", "PSY", "FAE")  # shelter/residential exit, psychiatric discharge, prison release
_TAKE_UP_BY_KIND = {"OVG": 1.0, "PSY": 0.85, "FAE": 0.7}  # relative take-up by kind of transition
_STAY_TYPE = {"OVG": "BOF", "PSY": "PSY", "FAE": "KRF"}  # the stays register's code for each kind of crisis
_STAY_MEAN_DAYS = {"OVG": 120, "PSY": 30, "FAE": 90}  # mean length of the stay the crisis ends
_PSYCH_DIAG = ("DF20", "DF32", "DF10", "DF43", "DF60")
_SOMATIC_DIAG = ("DS52", "DJ18", "DR10", "DS06", "DK35", "DI21")


@dataclass(frozen=True, slots=True)
class PlantedEffects:
    """The causal effect of CTI in the mock world: the one place it is stated.

    Effects act only on participants from their start month, on the probability/rate scale, and ramp
    linearly from 0 at event month 0 to full size at ``ramp_months``. Each participant's effect is scaled by
    ``completer_multiplier`` or ``non_completer_multiplier`` times ``delmaalgruppe_multiplier[code]``.
    Months on disability pension get no self-support/employment effect (the pension is absorbing).
    """

    self_support_pp: float = 0.08  # +8 percentage points of the monthly self-support probability
    employed_pp: float = 0.04  # +4 percentage points of the monthly employment probability
    emergency_rel: float = -0.30  # -30 % emergency-contact rate
    ramp_months: int = 12  # linear ramp from 0 at start to full effect
    completer_multiplier: float = 1.15
    non_completer_multiplier: float = 0.4
    delmaalgruppe_multiplier: dict[str, float] = field(
        default_factory=lambda: {"OVG": 1.0, "PSY": 0.8, "FAE": 0.7, "GRL": 1.3, "AKB": 1.1, "UNG": 1.0}
    )


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Size, seed and realism knobs of the mock world."""

    persons: int = 100_000
    seed: int = 0
    first_year: int = 2019
    last_year: int = 2026
    reference_date: date = date(2026, 9, 30)  # end of the last reported quarter
    crisis_share: float = 0.06  # approximate share of the population with a crisis 2020-01..reference
    take_up: float = 0.50  # base take-up among eligible crisis persons (see ``_TAKE_UP_BY_KIND``)
    take_up_minority_bonus: float = 0.25  # added for Greenlandic and other non-Danish background
    take_up_greenlandic_bonus: float = 0.25  # added on top for Greenlandic background (the Greenland strand)
    dip_logit: float = 1.2  # depth of the pre-crisis dip on the logit scale
    recovery_share: float = 0.5  # share of the dip recovered 12 months after the crisis, without CTI
    completion_rate: float = 0.8
    bad_row_share: float = 0.03
    effects: PlantedEffects = field(default_factory=PlantedEffects)


@dataclass(frozen=True, slots=True)
class SubmissionFile:
    """One file a site delivers to the inbox."""

    quarter: str
    site: str
    filename: str
    content: bytes
    version: int
    received: datetime
    encoding: str | None = (
        None  # codec of the bytes ("cp1252", "latin-1", "utf-8", "utf-8-sig"); None for xlsx
    )


@dataclass(frozen=True)
class World:
    """Person-level state of the mock world (numpy arrays of length ``persons``)."""

    config: WorldConfig
    person: dict[str, np.ndarray]
    sites: pl.DataFrame
    codes: pl.DataFrame
    dream: dict[str, list[str]]
    participants: pl.DataFrame  # PNR, site, start, end, completed, delmaalgruppe, multiplier


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1 - _EPOCH_MONTH


def _month_start(index: int) -> date:
    total = index + _EPOCH_MONTH
    return date(total // 12, total % 12 + 1, 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def build_world(
    config: WorldConfig,
    /,
    *,
    sites: pl.DataFrame,
    delmaalgrupper: pl.DataFrame,
    dream_codes: pl.DataFrame,
    hfaudd_levels: pl.DataFrame,
) -> World:
    """Draw every person's attributes, crisis and (for participants) course.

    Parameters
    ----------
    config
        Size, seed and planted effects.
    sites, delmaalgrupper, dream_codes, hfaudd_levels
        The configuration tables of ``pipelines/config`` (all columns may be text).

    Returns
    -------
    World
        Person-level numpy arrays (about 20 per person, cheap even at 5.9 million persons) plus the
        participants' courses. Registers are drawn from it lazily by ``register_year``.
    """
    if config.persons < 1_000:
        raise ValueError("the mock world needs at least 1,000 persons so that every site has participants")
    if config.first_year > config.last_year:
        raise ValueError(f"first_year {config.first_year} is after last_year {config.last_year}; swap them")
    missing = set(_HFAUDD_BY_LEVEL_RANK) - set(hfaudd_levels["hfaudd"].cast(pl.String).to_list())
    if missing:
        raise ValueError(f"hfaudd_levels lacks the codes {sorted(missing)} the mock world uses; add them")
    n = config.persons
    rng = np.random.default_rng([config.seed, 0])
    sex = rng.integers(1, 3, n).astype(np.int8)
    age_2019 = rng.integers(18, 76, n)
    birth = (
        (np.datetime64("2019-01-01") - (age_2019 * 365.25).astype(np.int64).astype("timedelta64[D]"))
        - rng.integers(0, 365, n).astype("timedelta64[D]")
    ).astype("datetime64[D]")
    origin_draw = rng.random(n)
    origin = np.where(origin_draw < 0.86, 0, np.where(origin_draw < 0.885, 1, 2))  # 0 DNK, 1 GRL, 2 other
    immigrant_country = rng.choice(np.array(_NON_DANISH), n)
    opr_land = np.where(origin == 2, immigrant_country, np.where(origin == 1, "GRL", "DNK"))
    ie_type = np.where(origin == 0, 1, np.where(rng.random(n) < 0.75, 2, 3)).astype(np.int8)
    site_koms = sites["kom"].cast(pl.Int16).to_numpy()
    in_site = rng.random(n) < 0.4
    kom = np.where(in_site, rng.choice(site_koms, n), rng.choice(np.array(_OTHER_KOM, dtype=np.int16), n))
    z = rng.standard_normal(n) + 0.6 * (origin == 1) + 0.3 * (origin == 2)
    edu_rank = np.clip(np.round(3.2 - 1.1 * z + rng.normal(0, 1.2, n)), 0, 7).astype(np.int8)
    trend = rng.normal(0, 0.25, n)
    last = _month_index(config.reference_date)
    # Disability pension: near-absorbing, mostly older and vulnerable; some already on it before 2019.
    p_disability = np.clip(_sigmoid(-5.5 + 1.5 * z + 0.07 * (age_2019 - 45)), 0, 0.9)
    disability_month = np.where(rng.random(n) < p_disability, rng.integers(-60, last + 36, n), _NEVER)
    benefit_kind = np.where(
        z > 0.5, 2, np.where(rng.random(n) < 0.6, 1, 3)
    )  # 1 UI, 2 social assistance, 3 sickness
    # Crisis hazard rises steeply in z; calibrated so about ``crisis_share`` has one in 2020-01..reference.
    risk = _sigmoid(-4.5 + 2.2 * z)
    risk *= config.crisis_share / max(risk.mean(), 1e-9)
    has_crisis = rng.random(n) < np.clip(risk, 0, 0.9)
    first = _month_index(date(2020, 1, 1))
    crisis_month = np.where(has_crisis, rng.integers(first, last + 1, n), -_NEVER)
    crisis_kind = rng.choice(np.array(_CRISIS_KINDS), n, p=[0.45, 0.35, 0.2])
    crisis_kind = np.where((crisis_kind == "FAE") & (sex == 2), "OVG", crisis_kind)
    person = {
        "PNR": np.arange(n, dtype=np.int64),
        "sex": sex,
        "birth": birth,
        "ie_type": ie_type,
        "opr_land": opr_land,
        "origin": origin.astype(np.int8),
        "kom": kom.astype(np.int16),
        "z": z,
        "edu_rank": edu_rank,
        "trend": trend,
        "disability_month": disability_month.astype(np.int64),
        "benefit_kind": benefit_kind.astype(np.int8),
        "crisis_month": crisis_month.astype(np.int64),
        "crisis_kind": crisis_kind,
    }
    participants = _draw_participants(config, person, sites, delmaalgrupper, rng)
    part_row = np.full(n, -1, dtype=np.int64)
    part_row[participants["PNR"].to_numpy()] = np.arange(participants.height)
    person["part_row"] = part_row
    dream = {
        family: sorted(dream_codes.filter(pl.col("family") == family)["code"].cast(pl.String).to_list())
        for family in dream_codes["family"].unique().to_list()
    }
    if set(dream) < {"unemployment_insurance", "social_assistance", "sickness_benefit", "disability_pension"}:
        raise ValueError(
            "dream_codes needs codes for the families unemployment_insurance, social_assistance, "
            "sickness_benefit and disability_pension"
        )
    return World(config, person, sites, delmaalgrupper, dream, participants)


def _draw_participants(config, person, sites, codes, rng) -> pl.DataFrame:
    """Crisis persons in a site municipality after it joined, taken up with probability by observables."""
    lookup = np.full(1_000, _NEVER, dtype=np.int64)  # municipality code -> month the site joined
    site_pos = np.full(1_000, -1, dtype=np.int64)
    for position, (k, joined) in enumerate(
        zip(sites["kom"].cast(pl.Int64), sites["joined"].cast(pl.String), strict=True)
    ):
        lookup[k] = _month_index(date.fromisoformat(joined))
        site_pos[k] = position
    kom = person["kom"].astype(np.int64)
    minority = person["opr_land"] != "DNK"
    eligible = (person["crisis_month"] >= lookup[kom]) & (
        person["crisis_month"] <= _month_index(config.reference_date)
    )
    by_kind = np.select(
        [person["crisis_kind"] == k for k in _CRISIS_KINDS], [_TAKE_UP_BY_KIND[k] for k in _CRISIS_KINDS]
    )
    greenlandic = person["opr_land"] == "GRL"
    p_take = config.take_up * by_kind + config.take_up_minority_bonus * minority
    p_take = np.clip(p_take + config.take_up_greenlandic_bonus * greenlandic, 0, 1)
    chosen = np.flatnonzero(eligible & (rng.random(len(kom)) < p_take))
    m = len(chosen)
    start_month = person["crisis_month"][chosen]
    month_days = np.array(
        [
            np.datetime64(_month_start(int(i)), "D")
            for i in range(start_month.min(initial=0), start_month.max(initial=0) + 1)
        ]
    )
    offset = rng.integers(0, 28, m)
    start = month_days[start_month - start_month.min(initial=0)] + offset.astype("timedelta64[D]")
    completed = rng.random(m) < config.completion_rate
    length = np.where(completed, 274 + rng.integers(-21, 22, m), rng.integers(45, 240, m))
    end = start + length.astype("timedelta64[D]")
    land = person["opr_land"][chosen]
    age = (start - person["birth"][chosen]).astype(np.int64) / 365.25
    kind = person["crisis_kind"][chosen]
    group = np.where(
        land == "GRL",
        np.where(rng.random(m) < 0.75, "GRL", kind),
        np.where((land != "DNK") & (rng.random(m) < 0.6), "AKB", kind),
    )
    group = np.where((age < 25) & (rng.random(m) < 0.5), "UNG", group)
    # Only codes valid on the start date may be used; otherwise the person's crisis kind applies.
    valid = _valid_on(codes, group, start)
    group = np.where(valid, group, kind)
    eff = config.effects
    multiplier = np.array([eff.delmaalgruppe_multiplier.get(g, 1.0) for g in group.tolist()]) * np.where(
        completed, eff.completer_multiplier, eff.non_completer_multiplier
    )
    names = np.array(sites["site"].to_list())
    return pl.DataFrame(
        {
            "PNR": person["PNR"][chosen],
            "site": names[site_pos[kom[chosen]]] if m else np.array([], dtype=str),
            "start": start.astype("datetime64[D]"),
            "end": end.astype("datetime64[D]"),
            "completed": completed,
            "delmaalgruppe": group,
            "multiplier": multiplier.astype(np.float64),
            "start_month": start_month.astype(np.int64),
        },
        schema={
            "PNR": pl.Int64,
            "site": pl.String,
            "start": pl.Date,
            "end": pl.Date,
            "completed": pl.Boolean,
            "delmaalgruppe": pl.String,
            "multiplier": pl.Float64,
            "start_month": pl.Int64,
        },
    )


def _valid_on(codes: pl.DataFrame, group: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Whether each delmålgruppe code is in the code list and valid on the matching start date."""
    valid = np.zeros(len(group), dtype=bool)
    for row in codes.iter_rows(named=True):
        lo = np.datetime64(row["valid_from"] or "1900-01-01", "D")
        hi = np.datetime64(row["valid_to"] or "9999-12-31", "D")
        valid |= (group == row["code"]) & (start >= lo) & (start <= hi)
    return valid


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
    safe = np.maximum(row, 0)
    start = np.where(treated, part["start_month"].to_numpy()[safe] if part.height else 0, _NEVER)
    mult = np.where(treated, part["multiplier"].to_numpy()[safe] if part.height else 0.0, 0.0)
    e = months[None, :] - start[:, None]
    ramp = np.clip(e / eff.ramp_months, 0, 1) * (e >= 0)
    return ramp * mult[:, None]


def _dip_shape(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Crisis profile in [0, 1]: deepens over the 12 months before the crisis, then partly recovers."""
    e = months[None, :] - world.person["crisis_month"][idx][:, None]
    before = np.where((e >= -12) & (e < 0), (e + 13) / 12.0, 0.0)
    recovered = world.config.recovery_share * np.clip(e / 12.0, 0, 1)
    return before + np.where(e >= 0, 1.0 - recovered, 0.0)


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


def _chunks(n: int):
    for number, start in enumerate(range(0, n, CHUNK)):
        yield number, np.arange(start, min(start + CHUNK, n))


def _rng(world: World, family: str, year: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([world.config.seed, _FAMILY_SEED[family], year, chunk])


def _labour_states(world: World, year: int, chunk: int, idx: np.ndarray):
    """Draw monthly states; the same uniforms drive treated and untreated worlds (common random numbers)."""
    months = _months_of(year, world.config.reference_date)
    probs = labour_probabilities(world, idx, months)
    rng = _rng(world, "labour", year, chunk)
    u = rng.random(probs["ss1"].shape)
    v = rng.random(u.shape)
    self_support = u < probs["ss1"]  # ss1 == ss0 for everyone but treated participants
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(probs["ss1"] > 0, probs["emp1"] / probs["ss1"], 0.0)
    employed = self_support & (v < q)
    earnings = np.exp(rng.normal(9.9 - 0.15 * world.person["z"][idx][:, None], 0.35, u.shape))
    return months, self_support, employed, earnings


def _week_starts(months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First Monday of each month (``datetime64[D]``) and the number of Mondays in the month."""
    first = _month_dates(months)
    nxt = _month_dates(months + 1)
    weekday = (first.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    monday = first + ((7 - weekday) % 7).astype("timedelta64[D]")
    count = ((nxt - monday).astype(np.int64) + 6) // 7
    return monday, count


def register_year(world: World, register: str, year: int) -> pl.DataFrame:
    """One year of one register, exactly in the ``analysis.schema.REGISTERS`` shape.

    Parameters
    ----------
    world
        The mock world from ``build_world``.
    register
        A key of ``analysis.schema.REGISTERS``.
    year
        Calendar year within ``first_year..last_year``; months after the reference date are not generated.

    Returns
    -------
    pl.DataFrame
        Sorted by ``PNR``; deterministic per (seed, register, year, person chunk), so years can be produced
        independently and in any order, one person chunk (``CHUNK``) in memory at a time.
    """
    if register not in REGISTERS:
        raise ValueError(f"unknown register {register!r}; choose one of {sorted(REGISTERS)}")
    if not world.config.first_year <= year <= world.config.last_year:
        raise ValueError(
            f"year {year} is outside the world's {world.config.first_year}-{world.config.last_year}"
        )
    builder = {
        "population": _population,
        "benefits": _benefits,
        "employment": _employment,
        "health": _health,
        "education": _education,
        "enrolment": _enrolment,
        "stays": _stays,
    }[register]
    schema = REGISTERS[register]
    frames = [
        builder(world, year, chunk, idx).select([pl.col(c).cast(t) for c, t in schema.items()])
        for chunk, idx in _chunks(world.config.persons)
    ]
    return pl.concat(frames, rechunk=True)


def _population(world, year, chunk, idx):
    p = world.person
    return pl.DataFrame(
        {
            "PNR": p["PNR"][idx],
            "AAR": np.full(len(idx), year, dtype=np.int16),
            "KOEN": p["sex"][idx],
            "FOED_DAG": p["birth"][idx],
            "IE_TYPE": p["ie_type"][idx],
            "OPR_LAND": p["opr_land"][idx],
            "KOM": p["kom"][idx],
        }
    )


def _benefits(world, year, chunk, idx):
    months, self_support, _, _ = _labour_states(world, year, chunk, idx)
    p = world.person
    rng = _rng(world, "labour", year, chunk + 10_000)
    shape = self_support.shape
    kind = np.broadcast_to(p["benefit_kind"][idx][:, None], shape).astype(np.int8)
    # Around a crisis, benefit months are mostly social assistance; short sickness spells interrupt others.
    kind = np.where((_dip_shape(world, idx, months) > 0) & (rng.random(shape) < 0.7), 2, kind)
    kind = np.where(rng.random(shape) < 0.08, 3, kind)
    kind = np.where(_on_disability(world, idx, months), 4, kind)
    choice = rng.integers(0, 1_000, shape)
    families = ("unemployment_insurance", "social_assistance", "sickness_benefit", "disability_pension")
    codes = [c for fam in families for c in world.dream[fam]]
    offset = np.cumsum([0] + [len(world.dream[f]) for f in families])
    sizes = np.diff(offset)
    rows_p, rows_m = np.nonzero(~self_support)
    k = kind[rows_p, rows_m] - 1
    code_id = offset[k] + choice[rows_p, rows_m] % sizes[k]
    monday, count = _week_starts(months)
    reps = count[rows_m]
    week_p, week_m, week_code = np.repeat(rows_p, reps), np.repeat(rows_m, reps), np.repeat(code_id, reps)
    within = np.arange(len(week_p)) - np.repeat(np.cumsum(reps) - reps, reps)
    week = monday[week_m] + (7 * within).astype("timedelta64[D]")
    # nonzero() walks persons then months, so rows come out sorted by (PNR, UGE_START) without a sort.
    return pl.DataFrame(
        {"PNR": p["PNR"][idx][week_p], "UGE_START": week, "code": week_code.astype(np.uint8)}
    ).select(
        "PNR",
        "UGE_START",
        YDELSESKODE=pl.col("code").replace_strict(list(range(len(codes))), codes, return_dtype=pl.String),
    )


def _employment(world, year, chunk, idx):
    months, _, employed, earnings = _labour_states(world, year, chunk, idx)
    rows_p, rows_m = np.nonzero(employed)
    return pl.DataFrame(
        {
            "PNR": world.person["PNR"][idx][rows_p],
            "MAANED": _month_dates(months)[rows_m],
            "BESKAEFTIGET": np.ones(len(rows_p), dtype=np.int8),
            "LOEN": np.round(earnings[rows_p, rows_m], 0),
        }
    )


def _poisson(u: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Poisson counts by inverse CDF of uniforms ``u``: a changed rate changes only its own cell's count."""
    count = np.zeros(u.shape, dtype=np.int64)
    flat_u, flat_rate = u.ravel(), np.broadcast_to(rate, u.shape).ravel()
    pmf = np.exp(-flat_rate)
    hit = np.flatnonzero(flat_u > pmf)  # most cells are 0: iterate only over the others
    u_hit, rate_hit, pmf = flat_u[hit], flat_rate[hit], pmf[hit]
    cdf, k, counts = pmf.copy(), 0, np.zeros(len(hit), dtype=np.int64)
    while k <= 60:
        above = u_hit > cdf
        if not above.any():
            break
        counts += above
        k += 1
        pmf = pmf * rate_hit / k
        cdf = cdf + pmf
    count.ravel()[hit] = counts
    return count


def _uniform_hash(seed: int, *keys: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) from a splitmix64 hash of integer keys (counter-based, order-free randomness)."""
    h = np.full(np.shape(keys[0]), seed & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64)
    for key in keys:  # array arithmetic on uint64 wraps modulo 2**64, as the hash intends
        h = h ^ np.asarray(key).astype(np.uint64)
        h = (h + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _health(world, year, chunk, idx):
    months = _months_of(year, world.config.reference_date)
    rng = _rng(world, "health", year, chunk)
    p = world.person
    shape = (len(idx), len(months))
    uniforms = rng.random((3, *shape))  # drawn up front, so counts in one cell never shift another's
    rates = emergency_rates(world, idx, months)
    emergency = _poisson(uniforms[0], rates["em1"])  # em1 == em0 for everyone but treated participants
    outpatient = _poisson(uniforms[1], np.broadcast_to(np.exp(-2.6 + 0.3 * p["z"][idx])[:, None], shape))
    psych_rate = np.exp(-6.5 + 1.1 * p["z"][idx][:, None] + 1.2 * _dip_shape(world, idx, months))
    psych = _poisson(uniforms[2], psych_rate)
    # The crisis leaves a register trace in the month before it: a psychiatric admission discharged around
    # the crisis month (psychiatric discharge) or an emergency contact (other transitions).
    e = months[None, :] - p["crisis_month"][idx][:, None]
    marker = e == -1
    psych_kind = (p["crisis_kind"][idx] == "PSY")[:, None]
    psych = psych + (marker & psych_kind)
    emergency = emergency + (marker & ~psych_kind)
    month_start = _month_dates(months)
    psych_diag, somatic_diag = np.array(_PSYCH_DIAG), np.array(_SOMATIC_DIAG)
    records = []
    for counts, pattype in ((emergency, 3), (outpatient, 2), (psych, 0)):
        rows_p, rows_m = np.nonzero(counts)
        reps = counts[rows_p, rows_m]
        rows_p, rows_m = np.repeat(rows_p, reps), np.repeat(rows_m, reps)
        nth = np.arange(len(rows_p)) - np.repeat(np.cumsum(reps) - reps, reps)
        pnr = p["PNR"][idx][rows_p]
        u = [
            _uniform_hash(world.config.seed, pnr, months[rows_m], nth, np.full(len(pnr), 10 * pattype + j))
            for j in range(4)
        ]
        if pattype == 0:
            # Admitted in the second half of the month, so the stay ends around the next month's start.
            start = month_start[rows_m] + (10 + (u[0] * 18).astype(np.int64)).astype("timedelta64[D]")
            stay = np.ceil(np.log1p(-u[1]) / np.log1p(-1 / 14)).clip(1).astype(np.int64)  # geometric, mean 14
            diag = psych_diag[(u[2] * len(psych_diag)).astype(np.int64)]
        else:
            start = month_start[rows_m] + (u[0] * 28).astype(np.int64).astype("timedelta64[D]")
            stay = np.zeros(len(pnr), dtype=np.int64)
            diag = np.where(
                u[3] < 0.15,
                psych_diag[(u[2] * len(psych_diag)).astype(np.int64)],
                somatic_diag[(u[2] * len(somatic_diag)).astype(np.int64)],
            )
        records.append(
            pl.DataFrame(
                {
                    "PNR": pnr,
                    "C_PATTYPE": np.full(len(pnr), pattype, dtype=np.int8),
                    "C_ADIAG": diag.astype(str),
                    "D_INDDTO": start,
                    "D_UDDTO": start + stay.astype("timedelta64[D]"),
                    "V_SENGDAGE": stay.astype(np.int32),
                },
                schema={
                    "PNR": pl.Int64,
                    "C_PATTYPE": pl.Int8,
                    "C_ADIAG": pl.String,
                    "D_INDDTO": pl.Date,
                    "D_UDDTO": pl.Date,
                    "V_SENGDAGE": pl.Int32,
                },
            )
        )
    frame = pl.concat(records).sort("PNR", "D_INDDTO", "C_PATTYPE", "C_ADIAG", "D_UDDTO")
    base = (year * 100 + chunk) * 10_000_000
    return frame.with_columns(RECNUM=pl.int_range(base, base + frame.height, dtype=pl.Int64))


def _education(world, year, chunk, idx):
    p = world.person
    birth_year = p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970
    finish_age = np.array([16, 16, 20, 19, 22, 24, 26, 30])[p["edu_rank"][idx]]
    finished = birth_year + finish_age
    done = finished <= year
    level_code = np.array(_HFAUDD_BY_LEVEL_RANK)[p["edu_rank"][idx]]
    valid_from = np.where(done, finished, birth_year + 16)
    july = ((valid_from - 1970) * 12 + 6).astype("datetime64[M]").astype("datetime64[D]")
    return pl.DataFrame(
        {
            "PNR": p["PNR"][idx],
            "AAR": np.full(len(idx), year, dtype=np.int16),
            "HFAUDD": np.where(done, level_code, "1090"),
            "HF_VFRA": july,
            "HF_VTIL": np.full(len(idx), np.datetime64("9999-12-31", "D")),
        }
    )


def _enrolment(world, year, chunk, idx):
    rng = _rng(world, "enrolment", year, chunk)
    p = world.person
    age = year - (p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970)
    starts = rng.random(len(idx)) < np.where(age < 30, 0.12, 0.015) * np.exp(-0.3 * p["z"][idx])
    who = np.flatnonzero(starts)
    begin = np.datetime64(f"{year}-08-01", "D") - rng.integers(0, 200, len(who)).astype("timedelta64[D]")
    begin = np.maximum(begin, np.datetime64(f"{year}-01-01", "D"))
    end = begin + rng.integers(90, 3 * 365, len(who)).astype("timedelta64[D]")
    return pl.DataFrame(
        {
            "PNR": p["PNR"][idx][who],
            "UDD": np.where(age[who] < 25, "5080", "6000"),
            "ELEV3_VFRA": begin,
            "ELEV3_VTIL": end,
        },
        schema={"PNR": pl.Int64, "UDD": pl.String, "ELEV3_VFRA": pl.Date, "ELEV3_VTIL": pl.Date},
    )


def _stays(world, year, chunk, idx):
    """The institution stay each crisis ends: discharged in the last ten days of the month before the crisis.

    Randomness is a counter-based hash of the person, so adding this register changed no other register.
    """
    p = world.person
    exit_month = p["crisis_month"][idx] - 1
    who = np.flatnonzero(np.isin(exit_month, _months_of(year, world.config.reference_date)))
    pnr, kind, month = p["PNR"][idx][who], p["crisis_kind"][idx][who], exit_month[who]
    u_day, u_length = (_uniform_hash(world.config.seed, pnr, np.full(len(pnr), 60 + j)) for j in range(2))
    month_days = (_month_dates(month + 1) - _month_dates(month)).astype(np.int64)
    discharge = _month_dates(month) + (month_days - 1 - (u_day * 10).astype(np.int64)).astype("timedelta64[D]")
    discharge = np.minimum(discharge, np.datetime64(world.config.reference_date, "D"))
    mean = np.select([kind == k for k in _CRISIS_KINDS], [_STAY_MEAN_DAYS[k] for k in _CRISIS_KINDS], 60)
    length = np.ceil(np.log1p(-u_length) / np.log1p(-1 / mean)).clip(1).astype(np.int64)  # geometric
    return pl.DataFrame(
        {
            "PNR": pnr,
            "OPHOLD_TYPE": np.select([kind == k for k in _CRISIS_KINDS], [_STAY_TYPE[k] for k in _CRISIS_KINDS], "BOF"),
            "INDDATO": discharge - length.astype("timedelta64[D]"),
            "UDDATO": discharge,
        },
        schema={"PNR": pl.Int64, "OPHOLD_TYPE": pl.String, "INDDATO": pl.Date, "UDDATO": pl.Date},
    )


# --- CPR numbers ------------------------------------------------------------------------------------------


def cpr_key(world: World) -> pl.DataFrame:
    """Return a synthetic CPR (day + 60, never a real one) per PNR, consistent with birth date and sex."""
    p = world.person
    n = world.config.persons
    birth = p["birth"].astype("datetime64[D]")
    years = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    months = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    yy = years % 100
    # Digit 7: 0-3 for 1900-1999; 4 or 9 for 2000-2036; 5-8 for 2000-2057 (all our persons are adults).
    rng = np.random.default_rng([world.config.seed, 99])
    d7 = np.where(years < 2000, rng.integers(0, 4, n), 4)
    # Serial digits 8-9 are drawn; the last digit's parity is the sex (odd = man). Collisions (same birth
    # date, century digit and serial) are resolved by redrawing the serial of the later person.
    serial = rng.integers(0, 100, n)
    last = rng.integers(0, 5, n) * 2 + np.where(p["sex"] == 1, 1, 0)
    stem = days + 60, months, yy
    number = ((stem[0] * 100 + stem[1]) * 100 + stem[2]) * 10_000 + d7 * 1_000 + serial * 10 + last
    for _ in range(50):
        _, first = np.unique(number, return_index=True)
        duplicate = np.ones(n, dtype=bool)
        duplicate[first] = False
        if not duplicate.any():
            break
        serial[duplicate] = rng.integers(0, 100, int(duplicate.sum()))
        number = np.where(duplicate, (number // 1_000) * 1_000 + serial * 10 + last, number)
    else:  # pragma: no cover - only if a single birth date had more than ~2,000 persons
        raise ValueError("could not assign unique synthetic CPR numbers; the world is too dense")
    return pl.DataFrame({"CPR": number, "PNR": p["PNR"]}).select(
        pl.col("CPR").cast(pl.String).str.zfill(10), pl.col("PNR").cast(pl.Int64)
    )


# --- the sites' quarterly submission files ---------------------------------------------------------------

#: How each site's case system exports (deterministic by the site's position in sites.csv). ``encoding`` is
#: the codec the bytes are written in (``utf-8-sig`` = UTF-8 with BOM); xlsx files have none.
_STYLES = (
    {
        "ext": "csv",
        "encoding": "cp1252",
        "sep": ";",
        "headers": ("CPR-nr.", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"),
        "date": "%d-%m-%Y",
        "yes": ("Ja", "Nej"),
        "cpr": "hyphen",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "utf-8-sig",
        "sep": ";",
        "headers": ("Personnummer", "Start dato", "Slut dato", "Målgruppe", "Afsluttet (ja/nej)"),
        "date": "%d.%m.%Y",
        "yes": ("J", "N"),
        "cpr": "plain",
        "totals": True,
    },
    {
        "ext": "xlsx",
        "encoding": None,
        "sep": None,
        "headers": ("CPR", "Startdato", "Slutdato", "Delmaalgruppe", "Gennemført"),
        "date": "excel",
        "yes": ("1", "0"),
        "cpr": "number",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "latin-1",
        "sep": ",",
        "headers": ("cpr_nr", "startdato", "slutdato", "delmålgruppe", "gennemført"),
        "date": "%Y-%m-%d",
        "yes": ("x", ""),
        "cpr": "spaces",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "utf-8",
        "sep": ";",
        "headers": ("CPR nr", "Startdato", "Ophørsdato", "Delmålgruppe (kode)", "Gennemført"),
        "date": "%Y-%m-%d",
        "yes": ("Ja", "Nej"),
        "cpr": "hyphen",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "cp1252",
        "sep": ";",
        "headers": ("CPR-nr.", "Opstart", "Afslutningsdato", "Målgruppe", "Fuldført"),
        "date": "%d-%m-%Y",
        "yes": ("Ja", "Nej"),
        "cpr": "drop_zero",
        "totals": True,
    },
    {
        "ext": "csv",
        "encoding": "utf-8-sig",
        "sep": ",",
        "headers": ("Personnummer", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"),
        "date": "%d.%m.%Y",
        "yes": ("Ja", "Nej"),
        "cpr": "plain",
        "totals": False,
    },
)

#: Deliberate defects: (kind, the quarantine reason the ingest must give).
BAD_KINDS = (
    ("cpr_invalid_date", "cpr_invalid_date"),
    ("cpr_wrong_length", "cpr_wrong_length"),
    ("end_before_start", "end_before_start"),
    ("unknown_code", "unknown_delmaalgruppe"),
    ("missing_start", "missing_required_field"),
    ("bad_date", "date_unparseable"),
)
#: The site and quarter whose file is resubmitted (corrected) two weeks after the first delivery.
RESUBMISSION = (0, "2025Q1")


def _quarters(reference: date) -> list[tuple[str, date, date]]:
    out, year, q = [], 2024, 1
    while True:
        start = date(year, 3 * q - 2, 1)
        end = (date(year + (q == 4), (3 * q) % 12 + 1, 1)) - timedelta(days=1)
        if start > reference:
            return out
        out.append((f"{year}Q{q}", start, end))
        year, q = (year + 1, 1) if q == 4 else (year, q + 1)


def _format_cpr(cpr: str, style: str) -> str | int:
    if style == "hyphen":
        return f"{cpr[:6]}-{cpr[6:]}"
    if style == "spaces":
        return f"{cpr[:6]} {cpr[6:]}"
    if style == "number":
        return int(cpr)  # Excel stores it as a number: a leading zero would be lost
    if style == "drop_zero":
        return cpr[1:] if cpr.startswith("0") else cpr
    return cpr


def submissions(world: World) -> list[SubmissionFile]:
    """Every quarterly file each site delivers, as bytes, with deliberate realistic mess.

    For each quarter 2024Q1..the reference quarter and each site that had joined by the quarter's end, one
    file lists every participant of the site whose course was active in the quarter (started on or before
    its end, not ended before its start). A course still running at the quarter's end has an empty end date
    and completion field; it is reported again, with its end date, in the quarter it ends. One site and
    quarter (``RESUBMISSION``) has a corrected second version (``<site>_rettet.<ext>``, version 2, received
    later) that supersedes the first. ``truth(world)["submissions"]`` lists every defect, in the same order.
    """
    return [f for f, _ in _submissions_with_truth(world)]


def _submissions_with_truth(world: World) -> list[tuple[SubmissionFile, dict]]:
    cfg = world.config
    part = world.participants
    key = cpr_key(world)
    cprs = key["CPR"].to_numpy()
    out = []
    rotation = [0]  # defect kinds rotate across all files, so every kind occurs once there are six bad rows
    for position, site_row in enumerate(world.sites.iter_rows(named=True)):
        style = _STYLES[position % len(_STYLES)]
        joined = date.fromisoformat(str(site_row["joined"]))
        mine = part.filter(pl.col("site") == site_row["site"]).sort("start", "PNR")
        for quarter, q_start, q_end in _quarters(cfg.reference_date):
            if joined > q_end:
                continue
            active = mine.filter((pl.col("start") <= q_end) & (pl.col("end") >= q_start))
            rng = np.random.default_rng([cfg.seed, 7, position, int(quarter[:4]), int(quarter[-1])])
            received = datetime.combine(q_end + timedelta(days=20), datetime.min.time(), tzinfo=UTC)
            versions = [(1, received, cfg.bad_row_share)]
            if (position, quarter) == RESUBMISSION:  # a corrected resubmission two weeks later
                versions = [
                    (1, received, -1.0),
                    (2, received + timedelta(days=14), 0.0),
                ]  # -1: v1 to be corrected
            first_name = site_row["site"] + "." + style["ext"]
            for version, when, bad_share in versions:
                rows, truth_rows = _rows(active, cprs, style, q_end, rng, bad_share, rotation)
                content = _encode(rows, style)
                name = first_name if version == 1 else site_row["site"] + "_rettet." + style["ext"]
                truth = {
                    "quarter": quarter,
                    "site": site_row["site"],
                    "filename": name,
                    "version": version,
                    "received": when.isoformat(),
                    "superseded": version < len(versions),
                    "supersedes": first_name if version > 1 else None,
                    "encoding": style["encoding"],
                    "delimiter": style["sep"],
                    **truth_rows,
                }
                sub = SubmissionFile(
                    quarter, site_row["site"], name, content, version, when, style["encoding"]
                )
                out.append((sub, truth))
    return out


def _rows(active, cprs, style, q_end, rng, bad_share, rotation):
    """Build the data rows of one file and their truth; see ``truth`` for the row-numbering convention."""
    rows, bad, duplicates, repaired, ongoing = [], [], 0, 0, 0
    warnings = []
    fmt_date = (lambda d: d) if style["date"] == "excel" else (lambda d: d.strftime(style["date"]))
    to_correct = bad_share < 0  # the first version of a resubmitted file: its first row is always defective
    bad_share = 0.25 if to_correct else bad_share
    for rec in active.iter_rows(named=True):
        cpr = cprs[rec["PNR"]]
        ended = rec["end"] <= q_end
        ongoing += not ended
        row = [
            _format_cpr(cpr, style["cpr"]),
            fmt_date(rec["start"]),
            fmt_date(rec["end"]) if ended else "",
            rec["delmaalgruppe"],
            (style["yes"][0] if rec["completed"] else style["yes"][1]) if ended else "",
        ]
        reason = None
        if rng.random() < bad_share or (to_correct and not rows):
            kind, reason = BAD_KINDS[rotation[0] % len(BAD_KINDS)]
            rotation[0] += 1
            variant = rng.random() < 0.5
            if kind == "cpr_invalid_date":  # month 13, or a day beyond 91 (no date even with day + 60)
                row[0] = (
                    f"{cpr[:2]}13{cpr[4:6]}-{cpr[6:]}"
                    if variant
                    else f"{92 + int(rng.integers(0, 8))}{cpr[2:6]}-{cpr[6:]}"
                )
            elif kind == "cpr_wrong_length":  # a digit too many, or two missing
                row[0] = cpr + "7" if variant else f"{cpr[:6]}-{cpr[6:8]}"
            elif kind == "end_before_start":
                row[2] = fmt_date(rec["start"] - timedelta(days=30))
                row[4] = style["yes"][1]
            elif kind == "unknown_code":
                row[3] = "ZZ9" if variant else "GRØ"
            elif kind == "missing_start":
                row[1] = ""
            else:
                row[1] = (
                    "primo " + rec["start"].strftime("%m/%Y")
                    if variant
                    else rec["start"].strftime("%d-%m-%Y") + "?"
                )
        elif style["cpr"] in ("number", "drop_zero") and cpr.startswith(
            "0"
        ):  # pragma: no cover - see truth()
            repaired += 1
            warnings.append({"source_row": len(rows) + 1, "warning": "cpr_repaired_leading_zero"})
        rows.append(row)
        if reason is not None:
            bad.append({"source_row": len(rows), "reason": reason})
        elif rng.random() < 0.01:  # an exact duplicate line (copy-paste in the case system)
            rows.append(list(row))
            duplicates += 1
    good = len(rows) - len(bad) - duplicates
    if (style["totals"] and rows) or (to_correct and not rows):
        rows.append(["I alt", str(len(rows)), "", "", ""])
        bad.append({"source_row": len(rows), "reason": "not_a_data_row"})
    return rows, {
        "rows_total": len(rows),
        "good_rows": good,
        "exact_duplicates": duplicates,
        "ongoing_rows": ongoing,
        "repaired_cpr": repaired,
        "warnings": warnings,
        "bad_rows": bad,
    }


def _encode(rows: list[list], style: dict) -> bytes:
    if style["ext"] == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        guide = book.active
        guide.title = "Vejledning"
        guide.append(["Indberetning af CTI-forløb. Udfyld arket 'Forløb'. Én række pr. borger."])
        sheet = book.create_sheet("Forløb")
        sheet.append(list(style["headers"]))
        for row in rows:
            sheet.append(row)
        for cell in sheet["B"][1:] + sheet["C"][1:]:
            if isinstance(cell.value, date):
                cell.number_format = "DD-MM-YYYY"
        buffer = io.BytesIO()
        book.properties.created = datetime(2024, 1, 1)
        book.properties.modified = datetime(2024, 1, 1)
        book.save(buffer)
        return _fixed_zip_times(buffer.getvalue())
    sep = style["sep"]
    lines = [sep.join(style["headers"])] + [sep.join(str(v) for v in row) for row in rows]
    lines += [sep * 4, sep * 4]  # empty trailing rows, as spreadsheet exports leave them
    return ("\r\n".join(lines) + "\r\n").encode(style["encoding"])


def _fixed_zip_times(content: bytes) -> bytes:
    """Rewrite an .xlsx (zip) with fixed member timestamps so the same world gives the same bytes."""
    import zipfile

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = source.read(item.filename)
            if item.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                data = re.sub(
                    rb"(<dcterms:(?:modified|created)[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z", data
                )
            target.writestr(info, data)
    return out.getvalue()


# --- truth ------------------------------------------------------------------------------------------------

#: Event-time windows (months from the start/crisis month) of the selection and dip summaries.
_WINDOWS = {"pre_36_13": (-36, -13), "dip_6_1": (-6, -1), "post_0_5": (0, 5), "post_12_24": (12, 24)}


def _window_means(values: np.ndarray, e: np.ndarray, observed: np.ndarray) -> dict[str, float | None]:
    out = {}
    for name, (lo, hi) in _WINDOWS.items():
        mask = observed & (e >= lo) & (e <= hi)
        out[name] = float(values[mask].mean()) if mask.any() else None
    return out


def _profile(world: World, idx: np.ndarray, anchor: np.ndarray, months: np.ndarray) -> dict:
    """Summarise expected untreated outcomes of persons ``idx`` around ``anchor`` (a month per person)."""
    lab = labour_probabilities(world, idx, months)
    rates = emergency_rates(world, idx, months)
    psych = np.exp(-6.5 + 1.1 * world.person["z"][idx][:, None] + 1.2 * _dip_shape(world, idx, months))
    e = months[None, :] - anchor[:, None]
    observed = np.ones_like(e, dtype=bool)
    p = world.person
    return {
        "persons": len(idx),
        "self_support": _window_means(lab["ss0"], e, observed),
        "employed": _window_means(lab["emp0"], e, observed),
        "emergency_contacts": _window_means(rates["em0"], e, observed),
        "psych_admissions": _window_means(psych, e, observed),
        "greenlandic_share": float((p["opr_land"][idx] == "GRL").mean()) if len(idx) else None,
        "non_danish_share": float((p["opr_land"][idx] != "DNK").mean()) if len(idx) else None,
        "mean_edu_rank": float(p["edu_rank"][idx].mean()) if len(idx) else None,
        "mean_vulnerability_z": float(p["z"][idx].mean()) if len(idx) else None,
    }


def truth(world: World) -> dict:
    """Return the planted truth: effects on the treated, selection, participants, every defect in the inbox.

    Effects are realised average effects on the treated from the model's own expected values (before
    sampling noise): for every participant and event month ``e`` (months from the start month, 0 = the
    start month) observed up to the reference date, ``E[Y(1)] - E[Y(0)]``. ``att_months_12_24`` pools event
    months 12..24 (only participants who have reached them count), ``att_months_0_24`` pools 0..24.

    Submissions: one record per file, in the order of ``submissions(world)``. ``rows_total`` counts data
    rows: every line after the header whose fields are not all empty (fully blank lines, e.g. trailing
    ``;;;;`` rows, are ignored). ``source_row`` is the 1-based number of a data row in that count, so the
    first line after the header is row 1. ``rows_total == good_rows + exact_duplicates + len(bad_rows)``;
    ``exact_duplicates`` counts the second copy of an identical line (the first copy is a good row); the
    totals row ("I alt") is a bad row with reason ``not_a_data_row``. ``warnings`` would list clean rows
    whose 9-digit CPR was repaired with a leading zero, but synthetic CPRs use day + 60 (first digit 6-9),
    so no synthetic CPR starts with 0 and the list is always empty here; ingest tests cover that repair.
    """
    cfg = world.config
    part = world.participants
    idx = part["PNR"].to_numpy()
    months = np.arange(_month_index(date(2021, 1, 1)), _month_index(cfg.reference_date) + 1)
    labour = labour_probabilities(world, idx, months)
    rates = emergency_rates(world, idx, months)
    e = months[None, :] - part["start_month"].to_numpy()[:, None]
    diffs = {
        "self_support": labour["ss1"] - labour["ss0"],
        "employed": labour["emp1"] - labour["emp0"],
        "emergency_contacts": rates["em1"] - rates["em0"],
    }
    levels = {"self_support": labour["ss0"], "employed": labour["emp0"], "emergency_contacts": rates["em0"]}
    pooled, post = (e >= 12) & (e <= 24), (e >= 0) & (e <= 24)
    effects: dict[str, dict] = {}
    for outcome, diff in diffs.items():
        by_month = {str(k): float(diff[e == k].mean()) for k in range(0, 25) if (e == k).any()}
        groups, by_column = {}, {}
        for column in ("delmaalgruppe", "completed"):
            by_column[column] = {}
            for value in sorted(part[column].unique().to_list()):
                rows = (part[column] == value).to_numpy()[:, None] & pooled
                if rows.any():
                    groups[f"{column}={value}"] = float(diff[rows].mean())
                    by_column[column][str(value).lower()] = {
                        "att": float(diff[rows].mean()),
                        "persons": int(rows.any(axis=1).sum()),
                    }
        effects[outcome] = {
            "att_by_event_month": by_month,
            "persons_by_event_month": {str(k): int((e == k).sum()) for k in range(0, 25)},
            "att_months_12_24": float(diff[pooled].mean()) if pooled.any() else None,
            "att_months_0_24": float(diff[post].mean()) if post.any() else None,
            "persons_months_12_24": int(pooled.any(axis=1).sum()),
            "counterfactual_mean_months_12_24": float(levels[outcome][pooled].mean())
            if pooled.any()
            else None,
            "by_group_months_12_24": groups,
            "by_delmaalgruppe_months_12_24": by_column["delmaalgruppe"],
            "by_completed_months_12_24": by_column["completed"],
        }
    # Selection and dip: participants vs crisis persons who did not take part (2024+) vs the population.
    p = world.person
    crisis_2024 = (p["crisis_month"] >= _month_index(date(2024, 1, 1))) & (p["part_row"] < 0)
    others = np.flatnonzero(crisis_2024)
    sample_rng = np.random.default_rng([cfg.seed, 42])
    population = np.sort(sample_rng.choice(cfg.persons, min(cfg.persons, 50_000), replace=False))
    others = (
        np.sort(sample_rng.choice(others, min(len(others), 20_000), replace=False)) if len(others) else others
    )
    pop_anchor = np.full(len(population), _month_index(date(2024, 1, 1)))  # population: around January 2024
    files = [t for _, t in _submissions_with_truth(world)]
    ongoing = part.filter(pl.col("end") > cfg.reference_date)
    return {
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k != "effects"},
            "reference_date": cfg.reference_date.isoformat(),
        },
        "planted_effects": asdict(cfg.effects),
        "definitions": {
            "event_month": "months from the CTI start month (0 = the calendar month of the start date)",
            "att": "mean over participants and observed event months of E[Y(1)] - E[Y(0)] "
            "(expected values, before sampling)",
            "att_months_12_24": "att pooled over event months 12..24 observed up to the reference date",
            "att_months_0_24": "att pooled over event months 0..24 observed up to the reference date",
            "self_support": "probability that a month has no DREAM benefit code in any of its weeks",
            "employed": "probability of employment in the month",
            "emergency_contacts": "expected emergency contacts (C_PATTYPE 3) per month",
            "ramp": "effect = planted size x min(event_month / ramp_months, 1) "
            "x completion multiplier x delmaalgruppe multiplier",
            "completed": "latent completion of the course (also for courses ongoing at the reference date)",
            "selection": "expected untreated outcomes by event-time window (months from start / crisis; "
            "population: months from January 2024, random sample of at most 50,000 persons)",
        },
        "participants": {
            "count": part.height,
            "pnr": sorted(int(v) for v in idx),
            "by_site": dict(sorted(part.group_by("site").len().iter_rows())),
            "by_delmaalgruppe": dict(sorted(part.group_by("delmaalgruppe").len().iter_rows())),
            "completed_share": float(part["completed"].mean()) if part.height else None,
            "ongoing_at_reference_date": ongoing.height,
            "greenlandic_share": float((p["opr_land"][idx] == "GRL").mean()) if part.height else None,
            "population_greenlandic_share": float((p["opr_land"] == "GRL").mean()),
            "crisis_persons": int((p["crisis_month"] >= 0).sum()),
        },
        "selection": {
            "participants": _profile(world, idx, part["start_month"].to_numpy(), months),
            "crisis_non_participants_2024": _profile(world, others, p["crisis_month"][others], months),
            "population": _profile(world, population, pop_anchor, months),
        },
        "effects": effects,
        "submissions": files,
    }
