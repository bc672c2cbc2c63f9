"""A deterministic mock of the Danish registers with a planted CTI effect, and the sites' inbox files.

Data-generating process (every number below is a field of ``WorldConfig``/``PlantedEffects``):

* Each person has a latent vulnerability ``z``; self-support, employment, earnings, hospital contacts and
  education depend on it (and on age, origin), with a person-specific trend and a seasonal calendar effect.
* Vulnerable persons have a *critical transition* (crisis) in some month ``c`` (shelter exit, psychiatric
  discharge, prison release). Outcomes worsen over the 12 months before ``c`` (the Ashenfelter dip) and
  recover half of the dip over the 12 months after it, without any intervention. The crisis leaves a
  register trace in the month before ``c``: a psychiatric admission (F-diagnosis) or an emergency contact.
* Participants are crisis persons living in a CTI site municipality whose crisis falls after the site
  joined (2024-01/2024-08) and before the reference date, taken up with a probability that is higher for
  Greenlandic and other non-Danish background. CTI starts in the crisis month. Non-participants with a
  crisis (other municipalities, earlier years, not taken up) form a natural comparison group.
* The planted effect (``PlantedEffects``) acts only on participants after start, on the probability/rate
  scale, ramping linearly from 0 at start to full at month 12, larger for completers and varying by
  sub-target group. ``truth()`` reports the realised average effect on the treated from the model's own
  expected values (before sampling noise), so estimators can be checked against it.

Generation is vectorised over persons in chunks and seeded per (register family, year, chunk), so any
register-year can be produced on its own, in any order, with bounded memory at 5.9 million persons.
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
_OTHER_KOM = (157, 159, 165, 167, 173, 175, 185, 187, 217, 219, 223, 230, 250, 253, 259, 265, 269, 270, 306, 316)
_HFAUDD_BY_LEVEL_RANK = ("1010", "1090", "5080", "3500", "6000", "7000", "7500", "9000")
_PSYCH_DIAG = ("DF20", "DF32", "DF10", "DF43", "DF60")
_SOMATIC_DIAG = ("DS52", "DJ18", "DR10", "DS06", "DK35", "DI21")


@dataclass(frozen=True, slots=True)
class PlantedEffects:
    """The causal effect of CTI in the mock world: the one place it is stated."""

    self_support_pp: float = 0.08  # +8 percentage points of the monthly self-support probability at month >= 12
    emergency_rel: float = -0.30  # -30 % emergency-contact rate at month >= 12
    ramp_months: int = 12  # linear ramp from 0 at start to full effect
    completer_multiplier: float = 1.25
    non_completer_multiplier: float = 0.4
    group_multiplier: dict[str, float] = field(
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
    crisis_share: float = 0.06  # approximate share of the population with a crisis 2020-2026
    take_up: float = 0.45
    take_up_minority_bonus: float = 0.25
    dip_logit: float = 1.2  # depth of the pre-crisis dip on the logit scale
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
    """Draw every person's attributes, crisis and (for participants) course. Cheap even at 5.9M persons."""
    if config.persons < 1_000:
        raise ValueError("the mock world needs at least 1,000 persons so that every site has participants")
    n = config.persons
    rng = np.random.default_rng([config.seed, 0])
    sex = rng.integers(1, 3, n).astype(np.int8)
    age_2019 = rng.integers(18, 76, n)
    birth_offset = rng.integers(0, 365, n)
    origin_draw = rng.random(n)
    origin = np.where(origin_draw < 0.86, "DNK", np.where(origin_draw < 0.885, "GRL", "IMM"))
    immigrant_country = rng.choice(np.array(_NON_DANISH), n)
    opr_land = np.where(origin == "IMM", immigrant_country, origin)
    ie_type = np.where(origin == "DNK", 1, np.where(rng.random(n) < 0.75, 2, 3)).astype(np.int8)
    site_koms = sites["kom"].cast(pl.Int16).to_numpy()
    in_site = rng.random(n) < 0.4
    kom = np.where(in_site, rng.choice(site_koms, n), rng.choice(np.array(_OTHER_KOM, dtype=np.int16), n))
    z = rng.standard_normal(n) + 0.6 * (origin == "GRL") + 0.3 * (origin == "IMM")
    edu_rank = np.clip(np.round(3.2 - 1.1 * z + rng.normal(0, 1.2, n)), 0, 7).astype(np.int64)
    trend = rng.normal(0, 0.25, n)
    disability = (age_2019 > 45) & (z > 1.6) & (rng.random(n) < 0.5)
    benefit_kind = np.where(z > 0.5, 2, np.where(rng.random(n) < 0.6, 1, 3))  # 1 UI, 2 social assistance, 3 sickness
    # Crisis hazard rises steeply in z; calibrated so that about ``crisis_share`` has one in 2020-01..2026-09.
    risk = _sigmoid(-4.5 + 2.2 * z)
    risk *= config.crisis_share / max(risk.mean(), 1e-9)
    has_crisis = rng.random(n) < np.clip(risk, 0, 0.9)
    first, last = _month_index(date(2020, 1, 1)), _month_index(config.reference_date)
    crisis_month = np.where(has_crisis, rng.integers(first, last + 1, n), -10_000)
    crisis_kind = rng.choice(np.array(["OVG", "PSY", "FAE"]), n, p=[0.45, 0.35, 0.2])
    crisis_kind = np.where((crisis_kind == "FAE") & (sex == 2), "OVG", crisis_kind)
    person = {
        "PNR": np.arange(n, dtype=np.int64),
        "sex": sex,
        "birth": np.array([date(2019 - int(a), 1, 1) for a in np.unique(age_2019)], dtype="datetime64[D]")[
            np.searchsorted(np.unique(age_2019), age_2019)
        ]
        - birth_offset.astype("timedelta64[D]"),
        "ie_type": ie_type,
        "opr_land": opr_land,
        "kom": kom.astype(np.int16),
        "z": z,
        "edu_rank": edu_rank,
        "trend": trend,
        "disability": disability,
        "benefit_kind": benefit_kind,
        "crisis_month": crisis_month,
        "crisis_kind": crisis_kind,
    }
    participants = _draw_participants(config, person, sites, delmaalgrupper, rng)
    dream = {
        family: sorted(dream_codes.filter(pl.col("family") == family)["code"].to_list())
        for family in dream_codes["family"].unique().to_list()
    }
    return World(config, person, sites, delmaalgrupper, dream, participants)


def _draw_participants(config, person, sites, codes, rng) -> pl.DataFrame:
    joined = {int(k): _month_index(date.fromisoformat(j)) for k, j in zip(sites["kom"], sites["joined"], strict=True)}
    site_of = {int(k): s for k, s in zip(sites["kom"], sites["site"], strict=True)}
    kom = person["kom"].astype(np.int64)
    join_month = np.array([joined.get(int(k), 10_000) for k in kom])
    minority = person["opr_land"] != "DNK"
    eligible = (person["crisis_month"] >= join_month) & (person["crisis_month"] <= _month_index(config.reference_date))
    p_take = config.take_up + config.take_up_minority_bonus * minority
    chosen = np.flatnonzero(eligible & (rng.random(len(kom)) < p_take))
    start_month = person["crisis_month"][chosen]
    start = np.array([_month_start(int(m)) for m in start_month], dtype="datetime64[D]") + rng.integers(0, 28, len(chosen)).astype("timedelta64[D]")
    completed = rng.random(len(chosen)) < config.completion_rate
    length = np.where(completed, 273 + rng.integers(-14, 15, len(chosen)), rng.integers(60, 240, len(chosen)))
    end = start + length.astype("timedelta64[D]")
    land = person["opr_land"][chosen]
    age = (start - person["birth"][chosen]).astype(np.int64) / 365.25
    group = np.where(
        land == "GRL",
        np.where(rng.random(len(chosen)) < 0.75, "GRL", person["crisis_kind"][chosen]),
        np.where((land != "DNK") & (rng.random(len(chosen)) < 0.6), "AKB", person["crisis_kind"][chosen]),
    )
    ung_valid_until = np.datetime64(_valid_until(codes, "UNG"))
    group = np.where((age < 25) & (start <= ung_valid_until) & (rng.random(len(chosen)) < 0.5), "UNG", group)
    multiplier = np.array([config.effects.group_multiplier.get(g, 1.0) for g in group]) * np.where(
        completed, config.effects.completer_multiplier, config.effects.non_completer_multiplier
    )
    return pl.DataFrame(
        {
            "PNR": person["PNR"][chosen],
            "site": [site_of[int(k)] for k in kom[chosen]],
            "start": start.astype("datetime64[D]"),
            "end": end.astype("datetime64[D]"),
            "completed": completed,
            "delmaalgruppe": group,
            "multiplier": multiplier,
            "start_month": start_month.astype(np.int64),
        }
    ).with_columns(pl.col("start").cast(pl.Date), pl.col("end").cast(pl.Date))


def _valid_until(codes: pl.DataFrame, code: str) -> str:
    row = codes.filter(pl.col("code") == code)
    value = row["valid_to"][0] if row.height else None
    return value or "9999-12-31"


# --- per-person monthly model ------------------------------------------------------------------------------


def _months_of(year: int, reference: date | None = None) -> np.ndarray:
    """Month indices of ``year`` up to the reference date (registers hold no future months)."""
    last = _month_index(date(year, 12, 1))
    if reference is not None:
        last = min(last, _month_index(reference))
    return np.arange(_month_index(date(year, 1, 1)), last + 1)


def _treatment(world: World, idx: np.ndarray, months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ramp x multiplier) of the planted effect for persons ``idx`` in ``months`` (0 when untreated)."""
    eff = world.config.effects
    part = world.participants
    lookup = np.full(world.config.persons, -1, dtype=np.int64)
    lookup[part["PNR"].to_numpy()] = np.arange(part.height)
    row = lookup[idx]
    treated = row >= 0
    start = np.where(treated, part["start_month"].to_numpy()[np.maximum(row, 0)], 10_000)
    mult = np.where(treated, part["multiplier"].to_numpy()[np.maximum(row, 0)], 0.0)
    e = months[None, :] - start[:, None]
    ramp = np.clip(e / eff.ramp_months, 0, 1) * (e >= 0)
    return ramp * mult[:, None], treated


def _dip(world: World, idx: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Crisis profile: deepening over the 12 months before the crisis, half recovered 12 months after."""
    e = months[None, :] - world.person["crisis_month"][idx][:, None]
    before = np.where((e >= -12) & (e < 0), (e + 13) / 12.0, 0.0)
    after = np.where(e >= 0, 0.5 + 0.5 * np.clip(1 - e / 12.0, 0, 1), 0.0)
    return -world.config.dip_logit * (before + after)


def labour_probabilities(world: World, idx: np.ndarray, months: np.ndarray) -> dict[str, np.ndarray]:
    """Expected self-support and employment probabilities, without (``*0``) and with (``*1``) CTI."""
    p = world.person
    age = (months[None, :] / 12 + 2019) - (p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970)[:, None]
    season = 0.08 * np.sin(2 * np.pi * (months % 12) / 12)[None, :]
    logit = (
        2.0 - 1.3 * p["z"][idx][:, None] - 0.04 * np.maximum(age - 60, 0)
        + p["trend"][idx][:, None] * (months[None, :] - 48) / 48 + season + _dip(world, idx, months)
    )
    ss0 = np.where(p["disability"][idx][:, None], 0.0, _sigmoid(logit))
    effect, _ = _treatment(world, idx, months)
    ss1 = np.clip(ss0 + world.config.effects.self_support_pp * effect, 0, 1)
    q = _sigmoid(1.6 - 0.8 * p["z"][idx])[:, None]  # employed share among self-supporting months
    return {"ss0": ss0, "ss1": ss1, "emp0": ss0 * q, "emp1": ss1 * q, "q": np.broadcast_to(q, ss0.shape)}


def emergency_rates(world: World, idx: np.ndarray, months: np.ndarray) -> dict[str, np.ndarray]:
    """Expected emergency contacts per month without and with CTI."""
    e = months[None, :] - world.person["crisis_month"][idx][:, None]
    bump = np.where((e >= -4) & (e <= 1), 1.2, 0.0) - 0.5 * _dip(world, idx, months) / world.config.dip_logit
    rate0 = np.exp(-3.4 + 0.8 * world.person["z"][idx][:, None] + bump)
    effect, _ = _treatment(world, idx, months)
    rate1 = rate0 * np.clip(1 + world.config.effects.emergency_rel * effect, 0, None)
    return {"em0": rate0, "em1": rate1}


def _chunks(n: int):
    for number, start in enumerate(range(0, n, CHUNK)):
        yield number, np.arange(start, min(start + CHUNK, n))


def _rng(world: World, family: str, year: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([world.config.seed, _FAMILY_SEED[family], year, chunk])


def _labour_states(world: World, year: int, chunk: int, idx: np.ndarray):
    months = _months_of(year, world.config.reference_date)
    probs = labour_probabilities(world, idx, months)
    rng = _rng(world, "labour", year, chunk)
    u = rng.random(probs["ss1"].shape)
    treated_now = _treatment(world, idx, months)[0] > 0
    ss_prob = np.where(treated_now, probs["ss1"], probs["ss0"])
    self_support = u < ss_prob
    employed = self_support & (rng.random(u.shape) < probs["q"])
    earnings = np.exp(rng.normal(9.9 - 0.15 * world.person["z"][idx][:, None], 0.35, u.shape))
    return months, self_support, employed, earnings


def _mondays(year: int) -> dict[int, list[date]]:
    day = date(year, 1, 1)
    day += timedelta(days=(7 - day.weekday()) % 7)
    out: dict[int, list[date]] = {}
    while day.year == year:
        out.setdefault(day.month, []).append(day)
        day += timedelta(days=7)
    return out


def register_year(world: World, register: str, year: int) -> pl.DataFrame:
    """One year of one register, exactly in the ``analysis.schema.REGISTERS`` shape; deterministic."""
    if register not in REGISTERS:
        raise ValueError(f"unknown register {register!r}; choose one of {sorted(REGISTERS)}")
    if not world.config.first_year <= year <= world.config.last_year:
        raise ValueError(f"year {year} is outside the world's {world.config.first_year}-{world.config.last_year}")
    builder = {
        "population": _population,
        "benefits": _benefits,
        "employment": _employment,
        "health": _health,
        "education": _education,
        "enrolment": _enrolment,
    }[register]
    frames = [builder(world, year, chunk, idx) for chunk, idx in _chunks(world.config.persons)]
    return pl.concat(frames).select([pl.col(c).cast(t) for c, t in REGISTERS[register].items()])


def _population(world, year, chunk, idx):
    p = world.person
    return pl.DataFrame(
        {
            "PNR": p["PNR"][idx],
            "AAR": np.full(len(idx), year),
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
    kind = np.where(p["disability"][idx], 4, p["benefit_kind"][idx])
    family = {1: "unemployment_insurance", 2: "social_assistance", 3: "sickness_benefit", 4: "disability_pension"}
    rng = _rng(world, "labour", year, chunk + 10_000)
    # Short spells of sickness benefit interrupt other benefit spells now and then.
    kind = np.where((kind[:, None] != 4) & (rng.random(self_support.shape) < 0.08), 3, kind[:, None])
    code_choice = rng.integers(0, 2, self_support.shape)
    rows_p, rows_m = np.nonzero(~self_support)
    codes = np.empty(len(rows_p), dtype=object)
    for k, fam in family.items():
        options = world.dream[fam]
        sel = kind[rows_p, rows_m] == k
        codes[sel] = np.array(options, dtype=object)[code_choice[rows_p[sel], rows_m[sel]] % len(options)]
    mondays = _mondays(year)
    frames = []
    for month_pos, month in enumerate(range(1, 13)):
        sel = rows_m == month_pos
        for monday in mondays[month]:
            frames.append(
                pl.DataFrame(
                    {"PNR": p["PNR"][idx][rows_p[sel]], "UGE_START": [monday] * int(sel.sum()), "YDELSESKODE": codes[sel].astype(str)},
                    schema={"PNR": pl.Int64, "UGE_START": pl.Date, "YDELSESKODE": pl.String},
                )
            )
    return pl.concat(frames).sort("PNR", "UGE_START")


def _employment(world, year, chunk, idx):
    months, _, employed, earnings = _labour_states(world, year, chunk, idx)
    rows_p, rows_m = np.nonzero(employed)
    month_dates = np.array([_month_start(int(m)) for m in months], dtype="datetime64[D]")
    return pl.DataFrame(
        {
            "PNR": world.person["PNR"][idx][rows_p],
            "MAANED": month_dates[rows_m],
            "BESKAEFTIGET": np.ones(len(rows_p), dtype=np.int8),
            "LOEN": np.round(earnings[rows_p, rows_m], 0),
        }
    ).with_columns(pl.col("MAANED").cast(pl.Date))


def _health(world, year, chunk, idx):
    months = _months_of(year, world.config.reference_date)
    rng = _rng(world, "health", year, chunk)
    p = world.person
    rates = emergency_rates(world, idx, months)
    treated_now = _treatment(world, idx, months)[0] > 0
    emergency = rng.poisson(np.where(treated_now, rates["em1"], rates["em0"]))
    outpatient = rng.poisson(np.exp(-2.6 + 0.3 * p["z"][idx])[:, None] * np.ones((1, len(months))))
    psych_rate = np.exp(-6.5 + 1.1 * p["z"][idx])[:, None] * np.ones((1, len(months)))
    psych = rng.poisson(psych_rate)
    # The crisis leaves a register trace in the month before it: psychiatric admission or emergency contact.
    e = months[None, :] - p["crisis_month"][idx][:, None]
    marker = e == -1
    psych_kind = (p["crisis_kind"][idx] == "PSY")[:, None]
    psych = psych + (marker & psych_kind)
    emergency = emergency + (marker & ~psych_kind)
    records = []
    for counts, pattype in ((emergency, 3), (outpatient, 2), (psych, 0)):
        rows_p, rows_m = np.nonzero(counts)
        reps = counts[rows_p, rows_m]
        rows_p, rows_m = np.repeat(rows_p, reps), np.repeat(rows_m, reps)
        start = np.array([_month_start(int(m)) for m in months], dtype="datetime64[D]")[rows_m] + rng.integers(0, 28, len(rows_p)).astype("timedelta64[D]")
        if pattype == 0:
            stay = rng.geometric(1 / 14, len(rows_p))
            diag = rng.choice(np.array(_PSYCH_DIAG), len(rows_p))
        else:
            stay = np.zeros(len(rows_p), dtype=np.int64)
            diag = np.where(rng.random(len(rows_p)) < 0.15, rng.choice(np.array(_PSYCH_DIAG), len(rows_p)), rng.choice(np.array(_SOMATIC_DIAG), len(rows_p)))
        records.append(
            pl.DataFrame(
                {
                    "PNR": p["PNR"][idx][rows_p],
                    "C_PATTYPE": np.full(len(rows_p), pattype, dtype=np.int8),
                    "C_ADIAG": diag.astype(str),
                    "D_INDDTO": start,
                    "D_UDDTO": start + stay.astype("timedelta64[D]"),
                    "V_SENGDAGE": stay.astype(np.int32),
                }
            )
        )
    frame = pl.concat(records).with_columns(pl.col("D_INDDTO").cast(pl.Date), pl.col("D_UDDTO").cast(pl.Date))
    frame = frame.sort("PNR", "D_INDDTO", "C_PATTYPE", "C_ADIAG")
    base = (year * 100 + chunk) * 10_000_000
    return frame.with_columns(RECNUM=pl.int_range(base, base + frame.height, dtype=pl.Int64))


def _education(world, year, chunk, idx):
    p = world.person
    birth_year = p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970
    finish_age = np.array([16, 16, 20, 19, 22, 24, 26, 30])[p["edu_rank"][idx]]
    finished = birth_year + finish_age
    done = finished <= year
    level_code = np.array(_HFAUDD_BY_LEVEL_RANK)[p["edu_rank"][idx]]
    code = np.where(done, level_code, "1090")
    valid_from = np.where(done, finished, birth_year + 16)
    return pl.DataFrame(
        {
            "PNR": p["PNR"][idx],
            "AAR": np.full(len(idx), year),
            "HFAUDD": code,
            "HF_VFRA": [date(int(y), 7, 1) for y in valid_from],
            "HF_VTIL": [date(9999, 12, 31)] * len(idx),
        }
    )


def _enrolment(world, year, chunk, idx):
    rng = _rng(world, "enrolment", year, chunk)
    p = world.person
    age = year - (p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970)
    starts = rng.random(len(idx)) < np.where(age < 30, 0.12, 0.015) * np.exp(-0.3 * p["z"][idx])
    who = np.flatnonzero(starts)
    begin = np.array([date(year, 8, 1)] * len(who), dtype="datetime64[D]") - rng.integers(0, 200, len(who)).astype("timedelta64[D]")
    begin = np.maximum(begin, np.datetime64(date(year, 1, 1)))
    end = begin + rng.integers(90, 3 * 365, len(who)).astype("timedelta64[D]")
    return pl.DataFrame(
        {
            "PNR": p["PNR"][idx][who],
            "UDD": np.where(age[who] < 25, "5080", "6000"),
            "ELEV3_VFRA": begin,
            "ELEV3_VTIL": end,
        }
    ).with_columns(pl.col("ELEV3_VFRA").cast(pl.Date), pl.col("ELEV3_VTIL").cast(pl.Date))


# --- CPR numbers ------------------------------------------------------------------------------------------


def cpr_key(world: World) -> pl.DataFrame:
    """Synthetic CPR (day + 60, so never a real person's) for every PNR, consistent with birth date and sex."""
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
    return pl.DataFrame({"CPR": [f"{v:010d}" for v in number.tolist()], "PNR": p["PNR"]})


# --- the sites' quarterly submission files ---------------------------------------------------------------

#: How each site's case system exports (deterministic by the site's position in sites.csv).
_STYLES = (
    {"ext": "csv", "encoding": "cp1252", "sep": ";", "headers": ("CPR-nr.", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"), "date": "%d-%m-%Y", "yes": ("Ja", "Nej"), "cpr": "hyphen", "totals": False},
    {"ext": "csv", "encoding": "utf-8-sig", "sep": ";", "headers": ("Personnummer", "Start dato", "Slut dato", "Målgruppe", "Afsluttet (ja/nej)"), "date": "%d.%m.%Y", "yes": ("J", "N"), "cpr": "plain", "totals": True},
    {"ext": "xlsx", "encoding": None, "sep": None, "headers": ("CPR", "Startdato", "Slutdato", "Delmaalgruppe", "Gennemført"), "date": "excel", "yes": ("1", "0"), "cpr": "number", "totals": False},
    {"ext": "csv", "encoding": "latin-1", "sep": ",", "headers": ("cpr_nr", "startdato", "slutdato", "delmålgruppe", "gennemført"), "date": "%Y-%m-%d", "yes": ("x", ""), "cpr": "spaces", "totals": False},
    {"ext": "csv", "encoding": "utf-8", "sep": ";", "headers": ("CPR nr", "Startdato", "Ophørsdato", "Delmålgruppe (kode)", "Gennemført"), "date": "%Y-%m-%d", "yes": ("Ja", "Nej"), "cpr": "hyphen", "totals": False},
    {"ext": "csv", "encoding": "cp1252", "sep": ";", "headers": ("CPR-nr.", "Opstart", "Afslutningsdato", "Målgruppe", "Fuldført"), "date": "%d-%m-%Y", "yes": ("Ja", "Nej"), "cpr": "drop_zero", "totals": True},
    {"ext": "csv", "encoding": "utf-8-sig", "sep": ",", "headers": ("Personnummer", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"), "date": "%d.%m.%Y", "yes": ("Ja", "Nej"), "cpr": "plain", "totals": False},
)

BAD_KINDS = (
    ("cpr_invalid_date", "cpr_invalid_date"),
    ("cpr_wrong_length", "cpr_wrong_length"),
    ("end_before_start", "end_before_start"),
    ("unknown_code", "unknown_delmaalgruppe"),
    ("missing_start", "missing_required_field"),
    ("bad_date", "date_unparseable"),
)


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
        return int(cpr)  # Excel stores it as a number: a leading zero is lost
    if style == "drop_zero":
        return cpr.lstrip("0") if cpr.startswith("0") else cpr
    return cpr


def submissions(world: World) -> list[SubmissionFile]:
    """Every quarterly file each site delivers, as bytes, with deliberate realistic mess (see truth())."""
    return [f for f, _ in _submissions_with_truth(world)]


def _submissions_with_truth(world: World) -> list[tuple[SubmissionFile, dict]]:
    cfg = world.config
    cprs = cpr_key(world)["CPR"].to_numpy()
    part = world.participants
    out = []
    for position, site_row in enumerate(world.sites.iter_rows(named=True)):
        style = _STYLES[position % len(_STYLES)]
        joined = date.fromisoformat(site_row["joined"])
        mine = part.filter(pl.col("site") == site_row["site"]).sort("start", "PNR")
        for quarter, q_start, q_end in _quarters(cfg.reference_date):
            if joined > q_end:
                continue
            active = mine.filter((pl.col("start") <= q_end) & (pl.col("end") >= q_start))
            rng = np.random.default_rng([cfg.seed, 7, position, int(quarter[:4]), int(quarter[-1])])
            received = datetime.combine(q_end + timedelta(days=20), datetime.min.time(), tzinfo=UTC)
            versions = [(1, received, cfg.bad_row_share)]
            if position == 0 and quarter == "2024Q2":  # a corrected resubmission two weeks later
                versions = [(1, received, 0.25), (2, received + timedelta(days=14), 0.0)]
            for version, when, bad_share in versions:
                rows, truth_rows = _rows(world, active, cprs, style, q_end, rng, bad_share)
                content = _encode(rows, style)
                name = site_row["site"] + ("" if version == 1 else "_rettet") + "." + style["ext"]
                truth = {
                    "quarter": quarter, "site": site_row["site"], "filename": name, "version": version,
                    "superseded": version < len(versions), **truth_rows,
                }
                out.append((SubmissionFile(quarter, site_row["site"], name, content, version, when), truth))
    return out


def _rows(world, active, cprs, style, q_end, rng, bad_share):
    rows, bad, duplicates, repaired = [], [], 0, 0
    fmt_date = (lambda d: d) if style["date"] == "excel" else (lambda d: d.strftime(style["date"]))
    for rec in active.iter_rows(named=True):
        cpr = cprs[rec["PNR"]]
        ended = rec["end"] <= q_end
        row = [
            _format_cpr(cpr, style["cpr"]),
            fmt_date(rec["start"]),
            fmt_date(rec["end"]) if ended else "",
            rec["delmaalgruppe"],
            (style["yes"][0] if rec["completed"] else style["yes"][1]) if ended else "",
        ]
        if style["cpr"] in ("number", "drop_zero") and cpr.startswith("0"):
            repaired += 1
        reason = None
        if rng.random() < bad_share:
            kind, reason = BAD_KINDS[int(rng.integers(0, len(BAD_KINDS)))]
            if kind == "cpr_invalid_date":
                row[0] = f"{cpr[:2]}13{cpr[4:6]}-{cpr[6:]}"
            elif kind == "cpr_wrong_length":
                row[0] = cpr + "7"
            elif kind == "end_before_start":
                row[2] = fmt_date(rec["start"] - timedelta(days=30))
                row[4] = style["yes"][1]
            elif kind == "unknown_code":
                row[3] = "ZZ9"
            elif kind == "missing_start":
                row[1] = ""
            else:
                row[1] = "primo " + rec["start"].strftime("%m") + "/" + rec["start"].strftime("%Y")
            if style["cpr"] in ("number", "drop_zero") and cpr.startswith("0"):
                repaired -= 1
            if kind in ("cpr_invalid_date", "cpr_wrong_length") and style["cpr"] == "number":
                row[0] = str(row[0])
        rows.append(row)
        if reason is not None:
            bad.append({"source_row": len(rows), "reason": reason})
        elif rng.random() < 0.01:  # an exact duplicate line (copy-paste in the case system)
            rows.append(list(row))
            duplicates += 1
    good = len(rows) - len(bad) - duplicates
    if style["totals"] and rows:
        rows.append(["I alt", str(len(rows)), "", "", ""])
        bad.append({"source_row": len(rows), "reason": "not_a_data_row"})
    return rows, {
        "rows_total": len(rows), "good_rows": good, "exact_duplicates": duplicates,
        "repaired_cpr": repaired, "bad_rows": bad,
    }


def _encode(rows: list[list], style: dict) -> bytes:
    if style["ext"] == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        guide = book.active
        guide.title = "Vejledning"
        guide.append(["Indberetning af CTI-forløb. Udfyld arket 'Forløb'."])
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
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = source.read(item.filename)
            if item.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z", data)
            target.writestr(info, data)
    return out.getvalue()


def truth(world: World) -> dict:
    """The planted truth: effects on the treated, participants, and every deliberate error in the inbox."""
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
    effects: dict[str, dict] = {}
    for outcome, diff in diffs.items():
        by_month = {}
        for k in range(0, 25):
            mask = e == k
            if mask.any():
                by_month[str(k)] = float(diff[mask].mean())
        pooled = (e >= 12) & (e <= 24)
        post = (e >= 0) & (e <= 24)
        groups = {}
        for column in ("delmaalgruppe", "completed"):
            for value in sorted(part[column].unique().to_list()):
                rows = (part[column] == value).to_numpy()[:, None] & pooled
                if rows.any():
                    groups[f"{column}={value}"] = float(diff[rows].mean())
        effects[outcome] = {
            "att_by_event_month": by_month,
            "att_months_12_24": float(diff[pooled].mean()) if pooled.any() else None,
            "att_months_0_24": float(diff[post].mean()) if post.any() else None,
            "counterfactual_mean_months_12_24": float(levels[outcome][pooled].mean()) if pooled.any() else None,
            "by_group_months_12_24": groups,
        }
    files = [t for _, t in _submissions_with_truth(world)]
    pop = world.person
    in_part = np.zeros(cfg.persons, dtype=bool)
    in_part[idx] = True
    return {
        "config": {**{k: v for k, v in asdict(cfg).items() if k != "effects"}, "reference_date": cfg.reference_date.isoformat()},
        "planted_effects": asdict(cfg.effects),
        "definitions": {
            "event_month": "months from the CTI start month (0 = start month)",
            "att_months_12_24": "mean over participants and event months 12..24 observed before the reference date of E[Y(1)-Y(0)]",
            "self_support": "probability that a month is benefit-free (all its weeks blank in DREAM)",
            "employed": "probability of employment in the month",
            "emergency_contacts": "expected emergency contacts per month",
        },
        "participants": {
            "count": part.height,
            "by_site": dict(sorted(part.group_by("site").len().iter_rows())),
            "by_delmaalgruppe": dict(sorted(part.group_by("delmaalgruppe").len().iter_rows())),
            "completed_share": float(part["completed"].mean()),
            "greenlandic_share": float((pop["opr_land"][idx] == "GRL").mean()),
            "population_greenlandic_share": float((pop["opr_land"] == "GRL").mean()),
        },
        "effects": effects,
        "submissions": files,
    }
