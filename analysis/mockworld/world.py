"""The mock world's people: configuration, person-level state, participants and their courses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import polars as pl

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
