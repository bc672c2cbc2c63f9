"""The mock world's people: configuration, person-level state, participants and their courses."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
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


#: Bumped whenever the same configuration would generate a different world (part of ``WorldConfig.identity``).
GENERATOR_VERSION = 2
#: How participants are enrolled (``WorldConfig.enrolment``).
ENROLMENT_MODES = ("capacity", "population")


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

    def __post_init__(self) -> None:
        for name in ("self_support_pp", "employed_pp"):
            _check_range(name, getattr(self, name), -1.0, 1.0)
        _check_range("emergency_rel", self.emergency_rel, -1.0, 10.0)
        _check_range("ramp_months", self.ramp_months, 1, 120)
        for name in ("completer_multiplier", "non_completer_multiplier"):
            _check_range(name, getattr(self, name), 0.0, 10.0)
        for code, value in self.delmaalgruppe_multiplier.items():
            if not isinstance(code, str) or not code:
                raise ValueError(f"delmaalgruppe_multiplier keys must be delmålgruppe codes (text), "
                                 f"got {code!r}")
            _check_range(f"delmaalgruppe_multiplier[{code!r}]", value, 0.0, 10.0)

    def to_mapping(self) -> dict:
        """Every field as plain JSON-able values (the inverse of :meth:`from_mapping`)."""
        return _to_mapping(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping, /) -> PlantedEffects:
        """Effects from a (possibly partial) mapping of field names; missing fields keep their defaults.

        Raises ``ValueError`` naming the field for an unknown key, a value of the wrong type or out of range.
        """
        return _from_mapping(cls, mapping, "effects")


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Size, seed, programme and realism knobs of the mock world.

    The programme: each site enrols the crisis persons of its municipality who take CTI up (probability by
    kind of transition and background, ``take_up*``), from the month it joined. With ``enrolment="capacity"``
    (default) a site takes at most ``site_capacity`` of them per calendar quarter (its CTI workers' caseload;
    ``site_capacity_overrides`` by site name; a site's first, partial quarter gets its share of months),
    chosen at random among those who would take it up, so the programme has its real size (about 700
    participants over 2024-2026 with the seven sites of ``pipelines/config/sites.csv``) whatever the
    population size. With ``enrolment="population"`` everyone who takes it up is enrolled: take-up then
    scales with the site municipalities' population (about 26,000 participants at 5.9 million persons).
    """

    persons: int = 100_000
    seed: int = 0
    first_year: int = 2019
    last_year: int = 2026
    reference_date: date = date(2026, 9, 30)  # end of the last reported quarter
    crisis_share: float = 0.06  # approximate share of the population with a crisis 2020-01..reference
    take_up: float = 0.50  # base take-up among eligible crisis persons (see ``_TAKE_UP_BY_KIND``)
    take_up_minority_bonus: float = 0.25  # added for Greenlandic and other non-Danish background
    take_up_greenlandic_bonus: float = 0.25  # added on top for Greenlandic background (the Greenland strand)
    enrolment: str = "capacity"  # "capacity" or "population" (see the class docstring)
    site_capacity: int = 10  # participants a site enrols per calendar quarter at most ("capacity")
    site_capacity_overrides: dict[str, int] = field(default_factory=dict)  # site name -> its own capacity
    dip_logit: float = 1.2  # depth of the pre-crisis dip on the logit scale
    recovery_share: float = 0.5  # share of the dip recovered 12 months after the crisis, without CTI
    completion_rate: float = 0.8
    bad_row_share: float = 0.03
    effects: PlantedEffects = field(default_factory=PlantedEffects)

    def __post_init__(self) -> None:
        _check_range("persons", self.persons, 1, 100_000_000)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        _check_range("first_year", self.first_year, 1900, 2100)
        _check_range("last_year", self.last_year, 1900, 2100)
        if self.first_year > self.last_year:
            raise ValueError(f"first_year {self.first_year} is after last_year {self.last_year}; swap them")
        if not isinstance(self.reference_date, date) or isinstance(self.reference_date, datetime):
            raise ValueError(f"reference_date must be a date (YYYY-MM-DD), got {self.reference_date!r}")
        _check_range("crisis_share", self.crisis_share, 0.0, 0.5)
        for name in ("take_up", "take_up_minority_bonus", "take_up_greenlandic_bonus", "recovery_share",
                     "completion_rate"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("bad_row_share", self.bad_row_share, 0.0, 0.5)
        _check_range("dip_logit", self.dip_logit, 0.0, 10.0)
        if self.enrolment not in ENROLMENT_MODES:
            raise ValueError(f"enrolment must be one of {ENROLMENT_MODES}, got {self.enrolment!r}")
        _check_range("site_capacity", self.site_capacity, 0, 100_000)
        for site, value in self.site_capacity_overrides.items():
            if not isinstance(site, str) or not site:
                raise ValueError(f"site_capacity_overrides keys must be site names, got {site!r}")
            _check_range(f"site_capacity_overrides[{site!r}]", value, 0, 100_000)
        if not isinstance(self.effects, PlantedEffects):
            raise ValueError(f"effects must be PlantedEffects, got {type(self.effects).__name__}")

    def to_mapping(self) -> dict:
        """Return every field, nested (``effects``), as plain JSON-able values (see :meth:`from_mapping`)."""
        return _to_mapping(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping, /) -> WorldConfig:
        """Build a configuration from a (possibly partial) nested mapping: a parsed config file, CLI options.

        Missing fields keep their defaults; ``effects`` is a mapping of :class:`PlantedEffects` fields and
        ``reference_date`` a date or ``YYYY-MM-DD`` text. ``WorldConfig.from_mapping(c.to_mapping()) == c``.

        Raises
        ------
        ValueError
            For an unknown key (with the known ones listed), a value of the wrong type, or one out of range.
        """
        return _from_mapping(cls, mapping, "world")

    def identity(self) -> str:
        """Stable hash (hex SHA-256) of the whole configuration and ``GENERATOR_VERSION``.

        Two configurations have the same identity exactly when they generate the same world, so a world on
        disk whose identity matches is "already generated"; any field (an effect size, the capacity, the
        seed) changes it. Independent of field order, process and platform (canonical JSON of
        :meth:`to_mapping`).
        """
        payload = json.dumps({"generator": GENERATOR_VERSION, "config": self.to_mapping()}, sort_keys=True,
                             separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def capacity(self, site: str, /) -> int:
        """Participants ``site`` enrols per full calendar quarter at most (``enrolment="capacity"``)."""
        return int(self.site_capacity_overrides.get(site, self.site_capacity))


def _check_range(name: str, value, low, high) -> None:
    """Raise a ValueError unless ``value`` is a finite number (an int for int bounds) in ``[low, high]``."""
    integer = isinstance(low, int) and isinstance(high, int)
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind + (np.integer, np.floating)) or (
        integer and isinstance(value, (float, np.floating))
    ):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be between {low} and {high}, got {value!r}")


def _to_mapping(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), str(f.type)
        if dataclasses.is_dataclass(value):
            value = _to_mapping(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, dict):
            cast = float if kind.endswith("float]") else int
            value = {str(k): cast(v) for k, v in sorted(value.items())}
        elif kind in ("int", "float"):
            value = int(value) if kind == "int" else float(value)  # 1 and 1.0 give one identity
        out[f.name] = value
    return out


#: Scalar type of each field for :func:`_from_mapping` (floats also accept integers).
_FIELD_KINDS = {"int": int, "float": float, "str": str, "date": date}


def _from_mapping(cls, mapping: Mapping, where: str):
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where} settings must be a mapping of field names to values, "
                         f"got {type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in mapping if k not in fields)
    if unknown:
        raise ValueError(f"unknown {where} setting(s) {unknown}; known: {sorted(fields)}")
    values = {}
    for name, raw in mapping.items():
        kind = str(fields[name].type)
        label = f"{where}.{name}"
        if name == "effects":
            values[name] = raw if isinstance(raw, PlantedEffects) else PlantedEffects.from_mapping(raw)
        elif kind.startswith("dict["):
            if not isinstance(raw, Mapping):
                raise ValueError(f"{label} must be a mapping, got {raw!r}")
            cast = float if kind.endswith("float]") else int
            values[name] = {str(k): _scalar(f"{label}[{k!r}]", v, cast) for k, v in raw.items()}
        else:
            values[name] = _scalar(label, raw, _FIELD_KINDS[kind])
    try:
        return cls(**values)
    except ValueError as error:
        raise ValueError(f"{where} settings: {error}") from None


def _scalar(label: str, raw, kind):
    """``raw`` as ``kind`` (int, float, str or date), refusing anything that would be a silent conversion."""
    if kind is date:
        if isinstance(raw, date) and not isinstance(raw, datetime):
            return raw
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw)
            except ValueError:
                pass
        raise ValueError(f"{label} must be a date as YYYY-MM-DD, got {raw!r}")
    if kind is str:
        if isinstance(raw, str):
            return raw
        raise ValueError(f"{label} must be text, got {raw!r}")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, np.integer, np.floating)):
        raise ValueError(f"{label} must be {'an integer' if kind is int else 'a number'}, got {raw!r}")
    if kind is int:
        if float(raw) != int(raw):
            raise ValueError(f"{label} must be an integer, got {raw!r}")
        return int(raw)
    return float(raw)


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


#: WorldConfig fields that only the monthly outcome model reads (not ``build_world``'s draws of people).
OUTCOME_MODEL_FIELDS = ("effects", "dip_logit", "recovery_share")


def with_outcome_model(world: World, config: WorldConfig, /) -> World:
    """Return the same people, participants and courses under another outcome model (effects, dip, recovery).

    Equal to ``build_world(config, ...)`` when ``config`` differs from ``world.config`` only in
    :data:`OUTCOME_MODEL_FIELDS` (``build_world`` draws nothing from them; only the participants' effect
    multipliers are recomputed), at no cost: the Monte Carlo harness runs several scenarios on one world.
    """
    differ = [f.name for f in dataclasses.fields(WorldConfig) if f.name not in OUTCOME_MODEL_FIELDS
              and getattr(config, f.name) != getattr(world.config, f.name)]
    if differ:
        raise ValueError(f"with_outcome_model changes only {OUTCOME_MODEL_FIELDS}; {differ} differ: "
                         "build a new world")
    part = world.participants
    multiplier = _multiplier(config.effects, part["delmaalgruppe"].to_numpy(), part["completed"].to_numpy())
    return dataclasses.replace(world, config=config,
                               participants=part.with_columns(multiplier=pl.Series(multiplier)))


def _multiplier(effects: PlantedEffects, group: np.ndarray, completed: np.ndarray) -> np.ndarray:
    """Each participant's effect multiplier: delmålgruppe times completion."""
    by_group = np.array([effects.delmaalgruppe_multiplier.get(g, 1.0) for g in np.asarray(group).tolist()],
                        dtype=np.float64)
    return by_group * np.where(completed, effects.completer_multiplier, effects.non_completer_multiplier)


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
    if config.enrolment == "capacity":
        chosen = _within_capacity(config, chosen, person["crisis_month"][chosen], site_pos[kom[chosen]],
                                  sites, lookup[kom[chosen]])
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
    multiplier = _multiplier(config.effects, group, completed)
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


def _within_capacity(config: WorldConfig, chosen: np.ndarray, month: np.ndarray, site: np.ndarray,
                     sites: pl.DataFrame, joined: np.ndarray) -> np.ndarray:
    """Return the persons (sorted) each site enrols: at most its capacity per calendar quarter, at random.

    A site's first quarter holds its capacity times the share of that quarter's months it was open. The draw
    has its own generator, so worlds where no site exceeds its capacity are unchanged by it (and every later
    draw of ``build_world`` is too).
    """
    names = sites["site"].to_list()
    capacity = np.array([config.capacity(name) for name in names], dtype=np.float64)
    quarter = month // 3
    open_months = np.clip(3 * quarter + 3 - np.maximum(joined, 3 * quarter), 0, 3)
    cells = site * 10_000 + quarter  # one cell per (site, quarter)
    rng = np.random.default_rng([config.seed, 7])
    priority = rng.random(chosen.size)  # enrolment order inside a cell: random among those who take CTI up
    order = np.lexsort((priority, cells))
    sorted_cells = cells[order]
    first = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(order.size) - first  # 0-based position inside the cell
    limit = np.floor(capacity[site[order]] * open_months[order] / 3 + 0.5)
    return np.sort(chosen[order][rank < limit])


def _valid_on(codes: pl.DataFrame, group: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Whether each delmålgruppe code is in the code list and valid on the matching start date."""
    valid = np.zeros(len(group), dtype=bool)
    for row in codes.iter_rows(named=True):
        lo = np.datetime64(row["valid_from"] or "1900-01-01", "D")
        hi = np.datetime64(row["valid_to"] or "9999-12-31", "D")
        valid |= (group == row["code"]) & (start >= lo) & (start <= hi)
    return valid
