"""Register extracts of the mock world, one register-year at a time, and the restricted CPR key."""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.mockworld.model import (
    _dip_shape,
    _month_dates,
    _months_of,
    _on_disability,
    emergency_rates,
    labour_probabilities,
    psych_rates,
)
from analysis.mockworld.world import (
    _CRISIS_KINDS,
    _FAMILY_SEED,
    _HFAUDD_BY_LEVEL_RANK,
    _PSYCH_DIAG,
    _SOMATIC_DIAG,
    _STAY_MEAN_DAYS,
    _STAY_TYPE,
    CHUNK,
    World,
)
from analysis.schema import REGISTERS


def _chunks(n: int):
    for number, start in enumerate(range(0, n, CHUNK)):
        yield number, np.arange(start, min(start + CHUNK, n))


def _rng(world: World, family: str, year: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([world.config.seed, _FAMILY_SEED[family], year, chunk])


def _labour_states(world: World, year: int, chunk: int, idx: np.ndarray):
    """Draw monthly states; the same uniforms drive treated and untreated worlds (common random numbers)."""
    months = _months_of(year, world.config.reference_date)
    return (months, *labour_states(world, idx, months, _rng(world, "labour", year, chunk)))


def labour_states(world: World, idx: np.ndarray, months: np.ndarray, rng: np.random.Generator):
    """Self-support, employment and earnings of persons ``idx`` in ``months``, drawn from ``rng``.

    The registers draw from one generator per (labour, year, person chunk) with ``idx`` the whole chunk;
    ``analysis.mockworld.panel`` calls the same function for any set of persons.
    """
    probs = labour_probabilities(world, idx, months)
    u = rng.random(probs["ss1"].shape)
    v = rng.random(u.shape)
    self_support = u < probs["ss1"]  # ss1 == ss0 for everyone but treated participants
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(probs["ss1"] > 0, probs["emp1"] / probs["ss1"], 0.0)
    employed = self_support & (v < q)
    earnings = np.exp(rng.normal(9.9 - 0.15 * world.person["z"][idx][:, None], 0.35, u.shape))
    return self_support, employed, earnings


def benefit_kinds(world: World, idx: np.ndarray, months: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return the benefit family (1 UI, 2 social assistance, 3 sickness, 4 disability) of each person-month.

    Around a crisis, benefit months are mostly social assistance; short sickness spells interrupt others.
    Draws two uniforms per cell from ``rng`` (the registers then draw the code within the family from it).
    """
    p = world.person
    shape = (len(idx), len(months))
    kind = np.broadcast_to(p["benefit_kind"][idx][:, None], shape).astype(np.int8)
    kind = np.where((_dip_shape(world, idx, months) > 0) & (rng.random(shape) < 0.7), 2, kind)
    kind = np.where(rng.random(shape) < 0.08, 3, kind)
    return np.where(_on_disability(world, idx, months), 4, kind)


def health_counts(world: World, idx: np.ndarray, months: np.ndarray, rng: np.random.Generator):
    """Emergency contacts, psychiatric admissions (with the crisis trace) and outpatient uniforms per cell.

    Draws three uniforms per cell from ``rng`` up front, so counts in one cell never shift another's; the
    crisis leaves a register trace in the month before it: a psychiatric admission discharged around the
    crisis month (psychiatric discharge) or an emergency contact (other transitions).
    """
    p = world.person
    shape = (len(idx), len(months))
    uniforms = rng.random((3, *shape))
    # em1 == em0 for everyone but treated participants
    emergency = _poisson(uniforms[0], emergency_rates(world, idx, months)["em1"])
    psych = _poisson(uniforms[2], psych_rates(world, idx, months))
    marker = (months[None, :] - p["crisis_month"][idx][:, None]) == -1
    psych_kind = (p["crisis_kind"][idx] == "PSY")[:, None]
    return emergency + (marker & ~psych_kind), psych + (marker & psych_kind), uniforms[1]


def psych_stay_days(world: World, pnr: np.ndarray, month: np.ndarray, nth: np.ndarray) -> np.ndarray:
    """Return the bed days of the ``nth`` psychiatric admission of ``pnr`` in ``month`` (geometric)."""
    u = _uniform_hash(world.config.seed, pnr, month, nth, np.full(len(pnr), 1))
    return np.ceil(np.log1p(-u) / np.log1p(-1 / 14)).clip(1).astype(np.int64)


def enrolment_spells(world: World, year: int, idx: np.ndarray, rng: np.random.Generator):
    """Education enrolment spells starting in ``year``: positions in ``idx``, first and last day."""
    p = world.person
    age = year - (p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970)
    starts = rng.random(len(idx)) < np.where(age < 30, 0.12, 0.015) * np.exp(-0.3 * p["z"][idx])
    who = np.flatnonzero(starts)
    begin = np.datetime64(f"{year}-08-01", "D") - rng.integers(0, 200, len(who)).astype("timedelta64[D]")
    begin = np.maximum(begin, np.datetime64(f"{year}-01-01", "D"))
    end = begin + rng.integers(90, 3 * 365, len(who)).astype("timedelta64[D]")
    return who, begin, end, age[who]


def stay_exits(world: World, idx: np.ndarray, months: np.ndarray):
    """Return positions in ``idx`` with a stay discharge in ``months`` (the month before a crisis), and it."""
    exit_month = world.person["crisis_month"][idx] - 1
    who = np.flatnonzero(np.isin(exit_month, months))
    return who, exit_month[who]


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
    kind = benefit_kinds(world, idx, months, rng)
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
    p = world.person
    shape = (len(idx), len(months))
    emergency, psych, u_outpatient = health_counts(world, idx, months, _rng(world, "health", year, chunk))
    outpatient = _poisson(u_outpatient, np.broadcast_to(np.exp(-2.6 + 0.3 * p["z"][idx])[:, None], shape))
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
            stay = psych_stay_days(world, pnr, months[rows_m], nth)
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
    who, begin, end, age = enrolment_spells(world, year, idx, _rng(world, "enrolment", year, chunk))
    return pl.DataFrame(
        {
            "PNR": world.person["PNR"][idx][who],
            "UDD": np.where(age < 25, "5080", "6000"),
            "ELEV3_VFRA": begin,
            "ELEV3_VTIL": end,
        },
        schema={"PNR": pl.Int64, "UDD": pl.String, "ELEV3_VFRA": pl.Date, "ELEV3_VTIL": pl.Date},
    )


def _stays(world, year, chunk, idx):
    """Return the institution stay each crisis ends, discharged in the last ten days of the month before it.

    Randomness is a counter-based hash of the person, so adding this register changed no other register.
    """
    p = world.person
    who, month = stay_exits(world, idx, _months_of(year, world.config.reference_date))
    pnr, kind = p["PNR"][idx][who], p["crisis_kind"][idx][who]
    u_day, u_length = (_uniform_hash(world.config.seed, pnr, np.full(len(pnr), 60 + j)) for j in range(2))
    month_days = (_month_dates(month + 1) - _month_dates(month)).astype(np.int64)
    last_days = (month_days - 1 - (u_day * 10).astype(np.int64)).astype("timedelta64[D]")
    discharge = _month_dates(month) + last_days
    discharge = np.minimum(discharge, np.datetime64(world.config.reference_date, "D"))
    mean = np.select([kind == k for k in _CRISIS_KINDS], [_STAY_MEAN_DAYS[k] for k in _CRISIS_KINDS], 60)
    length = np.ceil(np.log1p(-u_length) / np.log1p(-1 / mean)).clip(1).astype(np.int64)  # geometric
    return pl.DataFrame(
        {
            "PNR": pnr,
            "OPHOLD_TYPE": np.select([kind == k for k in _CRISIS_KINDS],
                                     [_STAY_TYPE[k] for k in _CRISIS_KINDS], "BOF"),
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
