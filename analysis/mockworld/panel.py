"""The linkage's person x month outcome panel straight from the mock world, without registers or ingest.

:func:`outcome_panel` returns exactly the frame that ``analysis.linkage.panel.outcome_panel`` builds from the
mock registers (``analysis.schema.OUTCOME_PANEL``, same definitions), for any set of persons, by calling the
functions the registers draw with (``labour_states``, ``benefit_kinds``, ``health_counts``,
``enrolment_spells``, ``stay_exits``) and turning their states into panel columns directly:

* ``draws="registers"``: the registers' own random numbers (one generator per register family, year and
  person chunk, drawn for the whole chunk), so the panel equals the one linked from ``register_year``
  output; ``tests/analysis/mockworld`` checks that cell by cell. It costs as much as generating the chunks.
* ``draws="fresh"``: a generator of its own per (seed, register family, year, ``stream``), drawn for just
  these persons (in PNR order), so a few hundred thousand persons of a 5.9-million-person world cost
  seconds. The data-generating process is the same; only the random numbers differ from the registers'.
  Same persons, seed and stream give the same panel; the planted effect only touches participants' months
  from their start (common random numbers), as in the registers.

:func:`transition_pool` and :func:`person_attributes` are the world-side equivalents of
``analysis.linkage.population.transition_pool`` and ``analysis.estimate.matching.person_attributes``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from analysis.mockworld.model import _month_dates, _months_of
from analysis.mockworld.registers import (
    _HFAUDD_BY_LEVEL_RANK,
    _chunks,
    _rng,
    benefit_kinds,
    enrolment_spells,
    health_counts,
    labour_states,
    psych_stay_days,
    stay_exits,
)
from analysis.mockworld.world import _EPOCH_MONTH, _FAMILY_SEED, World, _month_index
from analysis.schema import EXIT_COLUMNS, OUTCOME_PANEL

#: Benefit families in the order of ``benefit_kinds``' codes 1..4 (the panel's share columns).
BENEFIT_FAMILIES = ("unemployment_insurance", "social_assistance", "sickness_benefit", "disability_pension")
DRAWS = ("fresh", "registers")
#: Panel column of each crisis kind's stay discharge (the stays register's OPHOLD_TYPE, then EXIT_COLUMNS).
_EXIT_OF_KIND = {"OVG": EXIT_COLUMNS["BOF"], "PSY": EXIT_COLUMNS["PSY"], "FAE": EXIT_COLUMNS["KRF"]}
#: A seed word of the ``fresh`` generators (six words; the registers' have four, the last a chunk number).
_FRESH = 1_000_000


def transition_pool(world: World, start_months: pl.Series | list[date], /) -> np.ndarray:
    """Persons (sorted PNR) discharged from an institution stay in the month before one of ``start_months``.

    The same persons as ``analysis.linkage.population.transition_pool`` finds in the stays register: every
    crisis leaves one discharge, in the month before the crisis.
    """
    days = start_months.to_list() if isinstance(start_months, pl.Series) else start_months
    starts = np.unique([_month_index(d) for d in days])
    crisis = world.person["crisis_month"]
    last = _month_index(world.config.reference_date)
    first = _month_index(date(world.config.first_year, 1, 1))
    exits = crisis - 1
    return np.flatnonzero(np.isin(crisis, starts) & (exits >= first) & (exits <= last)).astype(np.int64)


def person_attributes(world: World, persons: np.ndarray, /) -> pl.DataFrame:
    """Return ``analysis.estimate.matching.person_attributes`` of ``persons`` (PNR) from the world."""
    p = world.person
    idx = np.unique(np.asarray(persons, dtype=np.int64))
    _check_persons(world, idx)
    kom = p["kom"][idx].astype(np.int64)
    kom_type = np.where(np.isin(kom, (101, 147)), 0, np.where(np.isin(kom, (751, 461, 851)), 1, 2))
    greenlandic = p["opr_land"][idx] == "GRL"
    return pl.DataFrame(
        {
            "person_id": p["PNR"][idx],
            "sex": p["sex"][idx],
            "birth_date": p["birth"][idx].astype("datetime64[D]"),
            "greenlandic": greenlandic.astype(np.int8),
            "immigrant": ((p["ie_type"][idx] > 1) & ~greenlandic).astype(np.int8),
            "kom_type": kom_type.astype(np.int8),
        },
        schema={"person_id": pl.Int64, "sex": pl.Int8, "birth_date": pl.Date, "greenlandic": pl.Int8,
                "immigrant": pl.Int8, "kom_type": pl.Int8},
    )


def _check_persons(world: World, idx: np.ndarray) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= world.config.persons):
        raise ValueError(f"persons must be PNR values 0..{world.config.persons - 1} of the world")


def outcome_panel(
    world: World,
    persons: np.ndarray,
    /,
    *,
    first_month: date,
    last_month: date,
    hfaudd_levels: pl.DataFrame,
    draws: str = "fresh",
    stream: int = 0,
) -> pl.DataFrame:
    """Person x month outcomes (``analysis.schema.OUTCOME_PANEL``) of ``persons`` from the world's model.

    Parameters
    ----------
    world
        The mock world.
    persons
        PNR values (any order, duplicates ignored); the rows come out sorted by person and month.
    first_month, last_month
        First days of the panel's first and last month, inside the registers' span (``first_year`` to the
        reference date).
    hfaudd_levels
        The education-level table (``pipelines/config/hfaudd_levels.csv``), as the linkage uses it.
    draws
        ``"fresh"`` (own random numbers for these persons; the Monte Carlo harness) or ``"registers"``
        (the registers' random numbers, equal to the panel linked from ``register_year``).
    stream
        Distinguishes independent ``fresh`` draws of the same persons (e.g. participants and pool).
    """
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}, got {draws!r}")
    if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
        raise ValueError(f"stream must be a non-negative integer, got {stream!r}")
    cfg = world.config
    lo, hi = _month_index(first_month), _month_index(last_month)
    span = (_month_index(date(cfg.first_year, 1, 1)),
            _month_index(min(date(cfg.last_year, 12, 1), cfg.reference_date)))
    if first_month.day != 1 or last_month.day != 1 or not span[0] <= lo <= hi <= span[1]:
        raise ValueError(
            f"first_month and last_month must be first days of months with {_month_start_text(span[0])} <= "
            f"first_month <= last_month <= {_month_start_text(span[1])} (the registers' span), got "
            f"{first_month} and {last_month}"
        )
    idx = np.unique(np.asarray(persons, dtype=np.int64))
    _check_persons(world, idx)
    months = np.arange(lo, hi + 1)
    n, m = idx.size, months.size
    out = {name: np.zeros((n, m), dtype=np.float64) for name in ("self_support", "unemployment_insurance",
                                                                   "social_assistance", "sickness_benefit",
                                                                   "disability_pension", "earnings")}
    out |= {name: np.zeros((n, m), dtype=np.int64) for name in ("employed", "enrolled", "edu_level",
                                                                  "emergency_contacts", "psych_admissions",
                                                                  "bed_days", *EXIT_COLUMNS.values())}
    for year in range(cfg.first_year, cfg.last_year + 1):
        year_months = _months_of(year, cfg.reference_date)
        keep = (year_months >= lo) & (year_months <= hi)
        for rows, sub, within, generator in _draw_sets(world, idx, year, draws, stream):
            # ``sub``: the persons the generators draw for; ``within``: the requested ones among them, which
            # go to panel rows ``rows`` (``sub`` is the requested persons themselves with fresh draws).
            target = np.full(sub.size, -1)
            target[within] = rows
            who, begin, end, _ = enrolment_spells(world, year, sub, generator("enrolment", 0))
            mine = target[who] >= 0
            _enrolled(target[who][mine], begin[mine], end[mine], lo, hi, out["enrolled"])
            if not keep.any():
                continue
            ym = year_months[keep]
            columns = slice(int(ym[0] - lo), int(ym[-1] - lo) + 1)  # the year's months are contiguous
            grid = (slice(None) if rows.size == idx.size else rows, columns)
            rows_of = None if within.size == sub.size else within  # None: every person drawn is requested
            months_of = None if keep.all() else keep

            def pick(a: np.ndarray, rows_of=rows_of, months_of=months_of) -> np.ndarray:
                """Return the requested persons' kept months of a drawn state (no copy when it is all)."""
                a = a if rows_of is None else a[rows_of]
                return a if months_of is None else a[:, months_of]

            labour = labour_states(world, sub, year_months, generator("labour", 0))
            ss, employed, earnings = (pick(a) for a in labour)
            kind = pick(benefit_kinds(world, sub, year_months, generator("labour", 10_000)))
            out["self_support"][grid] = ss
            for code, name in enumerate(BENEFIT_FAMILIES, start=1):
                out[name][grid] = ~ss & (kind == code)
            out["employed"][grid] = employed
            out["earnings"][grid] = np.where(employed, np.round(earnings, 0), 0.0)
            emergency, psych, _ = health_counts(world, sub, year_months, generator("health", 0))
            out["emergency_contacts"][grid] = pick(emergency)
            psych = pick(psych)
            out["psych_admissions"][grid] = psych
            out["bed_days"][grid] = _bed_days(world, world.person["PNR"][sub[within]], ym, psych)
            who, exit_month = stay_exits(world, sub, ym)
            mine = target[who] >= 0
            kinds = world.person["crisis_kind"][sub[who[mine]]]
            for crisis_kind, column in _EXIT_OF_KIND.items():
                hit = kinds == crisis_kind
                np.add.at(out[column], (target[who[mine]][hit], exit_month[mine][hit] - lo), 1)
            out["edu_level"][grid] = _edu_levels(world, sub[within], year, ym, hfaudd_levels)
    frame = {
        "person_id": np.repeat(world.person["PNR"][idx], m),
        "month": np.tile(_month_dates(months), n),
        **{name: values.ravel() for name, values in out.items()},
    }
    return pl.DataFrame(frame).select([pl.col(c).cast(t) for c, t in OUTCOME_PANEL.items()])


def _month_start_text(index: int) -> str:
    return str(_month_dates(np.array([index]))[0])


def _draw_sets(world: World, idx: np.ndarray, year: int, draws: str, stream: int):
    """(panel rows, persons drawn for, positions of the requested ones among them, generator factory) sets.

    ``fresh``: one set, the requested persons themselves, generators of their own. ``registers``: one set
    per person chunk that holds requested persons, drawn for the whole chunk with the registers' generators,
    so the requested persons' values are the registers'.
    """
    cfg = world.config
    if draws == "fresh":
        def fresh(family: str, offset: int) -> np.random.Generator:
            return np.random.default_rng([cfg.seed, _FAMILY_SEED[family], year, _FRESH, stream, offset])

        yield np.arange(idx.size), idx, np.arange(idx.size), fresh
        return
    for chunk, chunk_idx in _chunks(cfg.persons):
        inside = np.flatnonzero((idx >= chunk_idx[0]) & (idx <= chunk_idx[-1]))
        if not inside.size:
            continue

        def registers(family: str, offset: int, chunk: int = chunk) -> np.random.Generator:
            return _rng(world, family, year, chunk + offset)

        yield inside, chunk_idx, idx[inside] - chunk_idx[0], registers


def _enrolled(rows: np.ndarray, begin: np.ndarray, end: np.ndarray, lo: int, hi: int,
              out: np.ndarray) -> None:
    """Mark the months whose first day a spell covers (the linkage's ``enrolled``), inside ``lo..hi``."""
    first = begin.astype("datetime64[M]").astype(np.int64) - (_EPOCH_MONTH - 1970 * 12)
    first = first + (begin != begin.astype("datetime64[M]").astype("datetime64[D]"))  # not the 1st: next one
    last = end.astype("datetime64[M]").astype(np.int64) - (_EPOCH_MONTH - 1970 * 12)
    first, last = np.maximum(first, lo), np.minimum(last, hi)
    for row, a, b in zip(rows, first, last, strict=True):
        if a <= b:
            out[row, a - lo : b - lo + 1] = 1


def _bed_days(world: World, pnr: np.ndarray, months: np.ndarray, psych: np.ndarray) -> np.ndarray:
    """Bed days of the psychiatric admissions in each cell (the registers' stay lengths)."""
    rows_p, rows_m = np.nonzero(psych)
    reps = psych[rows_p, rows_m]
    rows_p, rows_m = np.repeat(rows_p, reps), np.repeat(rows_m, reps)
    nth = np.arange(rows_p.size) - np.repeat(np.cumsum(reps) - reps, reps)
    days = psych_stay_days(world, pnr[rows_p], months[rows_m], nth)
    cells = np.bincount(rows_p * psych.shape[1] + rows_m, weights=days, minlength=psych.size)
    return cells.reshape(psych.shape).astype(np.int64)


def _edu_levels(world: World, idx: np.ndarray, year: int, months: np.ndarray,
                hfaudd_levels: pl.DataFrame) -> np.ndarray:
    """Return the education register's level of ``year`` where its valid-from date has passed, else 0."""
    p = world.person
    level_of = dict(zip(hfaudd_levels["hfaudd"].cast(pl.String).to_list(),
                        hfaudd_levels["level"].cast(pl.Int64).to_list(), strict=True))
    levels = np.array([level_of.get(code, 0) for code in _HFAUDD_BY_LEVEL_RANK], dtype=np.int64)
    birth_year = p["birth"][idx].astype("datetime64[Y]").astype(np.int64) + 1970
    finished = birth_year + np.array([16, 16, 20, 19, 22, 24, 26, 30])[p["edu_rank"][idx]]
    done = finished <= year
    level = np.where(done, levels[p["edu_rank"][idx]], level_of.get("1090", 0))
    valid_from = (np.where(done, finished, birth_year + 16) - 2019) * 12 + 6  # July, as a month index
    return np.where(valid_from[:, None] <= months[None, :], level[:, None], 0)
