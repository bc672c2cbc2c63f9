"""Population-scale building blocks: person-year covariates, a coarsened candidate pool, cohort extraction.

At full Danish size (5.9 million persons, 0.7-3 billion person-period rows) nothing population-sized may be
held in memory. Everything here is a lazy polars plan meant to be streamed (``collect(engine="streaming")``
or ``sink_parquet``) one register year at a time:

* :func:`person_year_covariates` -- one row per person and year (5.9 M rows per year): demographics from the
  population snapshot and yearly sums of the outcome registers. Used to pre-select comparison candidates.
  :func:`cem_pool` runs it year by year and keeps only the pool.
* :func:`candidate_pool` -- coarsened exact matching (CEM) on those covariates in the year before each
  participant's start: per stratum, a seeded sample of non-participants, ``per_participant`` times the
  number of participants in it. Only this pool (a few hundred thousand persons) enters the monthly panel.
* :func:`transition_pool` -- everyone discharged from an institution stay in the month before a start: the
  persons in the same critical transition, who always enter the panel (the CEM sample would miss most);
  :func:`without_transition` -- the participants that still need CEM candidates (no such discharge).
* :func:`panel_pool` -- who enters the outcome panel: participants, the transition pool, and either
  everyone else (small populations) or the CEM candidates (population scale).
* :func:`extract_cohort` -- the register rows of a set of person ids, filtered by an ``is_in`` predicate
  inside the scan before anything else touches the data (the step a naive design does with a
  population-sized merge).

Counts are cast to Int64 before summing (a UInt32/Int8 sum wraps or overflows at this size).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from analysis.linkage import cohort

#: Columns each register contributes to the cohort extraction (the outcome panel needs no others).
COHORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "benefits": ("PNR", "UGE_START", "YDELSESKODE"),
    "employment": ("PNR", "MAANED", "BESKAEFTIGET", "LOEN"),
    "health": ("PNR", "C_PATTYPE", "C_ADIAG", "D_INDDTO", "V_SENGDAGE"),
}

COVARIATES = pl.Schema(
    {
        "person_id": pl.Int64,
        "year": pl.Int32,
        "sex": pl.Int8,
        "birth_year": pl.Int32,
        "origin": pl.Int8,
        "municipality": pl.Int16,
        "benefit_weeks": pl.Int64,
        "employed_months": pl.Int64,
        "earnings": pl.Float64,
        "emergency_contacts": pl.Int64,
        "psych_admissions": pl.Int64,
        "bed_days": pl.Int64,
    }
)


def _require(registers: Mapping[str, pl.LazyFrame], names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in registers]
    if missing:
        raise ValueError(f"needs the registers {missing} (have {sorted(registers)})")


def _distinct_weeks(week_start: pl.Expr) -> pl.Expr:
    """Count the distinct weeks in a group of one calendar year: an OR of one bit per week, then a popcount.

    Exact (a year's Mondays are 7 days apart, so ``(ordinal day - 1) // 7`` gives each its own bit of 53) and
    several times cheaper than ``n_unique`` in a population-sized group-by; duplicated person-weeks
    count once.
    """
    bit = pl.lit(2, pl.UInt64).pow(((week_start.dt.ordinal_day() - 1) // 7).cast(pl.UInt32))
    return bit.bitwise_or().bitwise_count_ones().cast(pl.Int64)


def person_year_covariates(registers: Mapping[str, pl.LazyFrame], /, *, year: int) -> pl.DataFrame:
    """Covariates of everyone in the population snapshot of ``year`` (:data:`COVARIATES`), sorted by person.

    Four streamed aggregations (population, benefits, employment, health of that year) run together, then a
    join of the four person-sorted results (a sorted join is several times faster than hashing 5.9 M keys
    three times). Call it once per year: memory holds one year's hash tables and result (~0.5 GiB at 5.9 M).
    """
    _require(registers, ("population", "benefits", "employment", "health"))
    people = (
        registers["population"]
        .filter(pl.col("AAR") == year)
        .select(
            person_id=pl.col("PNR").cast(pl.Int64),
            year=pl.lit(year, pl.Int32),
            sex=pl.col("KOEN").cast(pl.Int8),
            birth_year=pl.col("FOED_DAG").dt.year().cast(pl.Int32),
            origin=pl.col("IE_TYPE").cast(pl.Int8),
            municipality=pl.col("KOM").cast(pl.Int16),
        )
        .unique("person_id", keep="first")
    )
    weeks = (
        registers["benefits"]
        .filter(pl.col("UGE_START").dt.year() == year)
        .group_by(person_id=pl.col("PNR").cast(pl.Int64))
        .agg(benefit_weeks=_distinct_weeks(pl.col("UGE_START")))
    )
    work = (
        registers["employment"]
        .filter(pl.col("MAANED").dt.year() == year)
        .group_by(person_id=pl.col("PNR").cast(pl.Int64))
        .agg(employed_months=pl.col("BESKAEFTIGET").cast(pl.Int64).sum(), earnings=pl.col("LOEN").sum())
    )
    inpatient = pl.col("C_PATTYPE") == 0
    health = (
        registers["health"]
        .filter(pl.col("D_INDDTO").dt.year() == year)
        .group_by(person_id=pl.col("PNR").cast(pl.Int64))
        .agg(
            emergency_contacts=(pl.col("C_PATTYPE") == 3).cast(pl.Int64).sum(),
            psych_admissions=(inpatient & pl.col("C_ADIAG").str.starts_with("DF")).cast(pl.Int64).sum(),
            bed_days=pl.when(inpatient).then(pl.col("V_SENGDAGE")).otherwise(0).cast(pl.Int64).sum(),
        )
    )
    frames = [f.sort("person_id") for f in pl.collect_all([people, weeks, work, health], engine="streaming")]
    joined = frames[0]
    for frame in frames[1:]:  # each side has one row per person (population: unique above; others: group-bys)
        joined = joined.join(frame, on="person_id", how="left", maintain_order="left")
    demographics = ("sex", "birth_year", "origin", "municipality")
    return joined.select([pl.col(c).cast(t) if c in demographics else pl.col(c).fill_null(0).cast(t)
                          for c, t in COVARIATES.items()])


def cem_pool(
    registers: Mapping[str, pl.LazyFrame],
    participants: pl.DataFrame,
    /,
    *,
    per_participant: int = 20,
    seed: int = 0,
) -> pl.DataFrame:
    """Build :func:`candidate_pool` from the registers, one baseline year's covariates in memory at a time."""
    if "start_month" not in participants.columns:
        raise ValueError("participants lack columns ['start_month']")
    years = sorted({d.year - 1 for d in participants["start_month"].drop_nulls().to_list()})
    pools = [candidate_pool(person_year_covariates(registers, year=y), participants,
                            per_participant=per_participant, seed=seed) for y in years]
    if not pools:
        return candidate_pool(pl.DataFrame(schema=COVARIATES), participants, per_participant=per_participant,
                              seed=seed)
    return pl.concat(pools).unique("person_id", keep="first").sort("person_id")


def transition_pool(registers: Mapping[str, pl.LazyFrame], participants: pl.DataFrame, /) -> pl.DataFrame:
    """Every person discharged from an institution stay in the month before some participant's start.

    These are the comparison persons that went through the same kind of critical transition at the same
    time (shelter exit, psychiatric discharge, prison release) and so share the participants' dip and
    recovery; the coarsened pool alone holds few of them at population scale (a few thousand a month among
    5.9 million). Without a ``stays`` register the result is empty.

    Returns
    -------
    polars.DataFrame
        ``person_id`` (Int64, sorted, unique), participants included when they had such a discharge.
    """
    if "start_month" not in participants.columns:
        raise ValueError("participants lack columns ['start_month']")
    if "stays" not in registers:
        return pl.DataFrame(schema={"person_id": pl.Int64})
    months = participants.select(
        pl.col("start_month").dt.truncate("1mo").dt.offset_by("-1mo").unique().drop_nulls())
    return (
        registers["stays"]
        .select(person_id=pl.col("PNR").cast(pl.Int64), month=pl.col("UDDATO").dt.truncate("1mo"))
        .filter(pl.col("month").is_in(months.get_column("start_month").implode()))
        .select("person_id")
        .unique()
        .sort("person_id")
        .collect(engine="streaming")
    )


def without_transition(registers: Mapping[str, pl.LazyFrame], participants: pl.DataFrame, /) -> pl.DataFrame:
    """Return the participants *without* a stay discharge in the month before their own start.

    Only they need coarsened-exact candidates: a participant with such a discharge is matched within the
    persons of :func:`transition_pool` (``analysis.estimate.matching``), so CEM candidates would only grow the
    panel. All participants when there is no ``stays`` register.
    """
    if "start_month" not in participants.columns or "person_id" not in participants.columns:
        raise ValueError("participants need person_id and start_month")
    if "stays" not in registers:
        return participants
    ids = participants.select(pl.col("person_id").cast(pl.Int64))
    exits = (
        registers["stays"]
        .filter(member_of(ids))
        .select(person_id=pl.col("PNR").cast(pl.Int64),
                start_month=pl.col("UDDATO").dt.truncate("1mo").dt.offset_by("1mo"))
        .unique()
        .collect(engine="streaming")
    )
    month = participants.schema["start_month"]
    return participants.join(exits.with_columns(pl.col("start_month").cast(month)),
                             on=["person_id", "start_month"], how="anti")


def stratum() -> pl.Expr:
    """Return a person-year's coarsened stratum: sex, age decade, origin, benefit, work and hospital bands.

    Coarse enough that every participant finds candidates, fine enough to drop the population that looks
    nothing like a CTI participant (most of it: employed all year, never on benefits, no hospital contact).
    """
    age_band = ((pl.col("year") - pl.col("birth_year")) // 10).clip(1, 8)
    weeks, months = pl.col("benefit_weeks"), pl.col("employed_months")
    benefit_band = (pl.when(weeks == 0).then(0).when(weeks <= 13).then(1).when(weeks <= 39).then(2)
                    .otherwise(3))
    work_band = pl.when(months == 0).then(0).when(months <= 6).then(1).otherwise(2)
    hospital = ((pl.col("emergency_contacts") + pl.col("psych_admissions")) > 0).cast(pl.Int32)
    native = (pl.col("origin") == 1).cast(pl.Int32)
    # One decimal digit per band (sex 1/2, age 1-8, origin 0/1, benefit 0-3, work 0-2, hospital 0/1): an
    # integer key hashes far faster than a string at 5.9 M rows, and still reads as e.g. 131210.
    return (pl.col("sex").cast(pl.Int32) * 100_000 + age_band.cast(pl.Int32) * 10_000 + native * 1_000
            + benefit_band * 100 + work_band * 10 + hospital).alias("stratum")


def candidate_pool(
    covariates: pl.LazyFrame | pl.DataFrame,
    participants: pl.DataFrame,
    /,
    *,
    per_participant: int = 20,
    seed: int = 0,
) -> pl.DataFrame:
    """Person ids of every participant plus a CEM-pre-selected, seeded candidate pool.

    Parameters
    ----------
    covariates
        :func:`person_year_covariates` for (at least) every year before a participant's start year.
    participants
        ``person_id`` and ``start_month`` (first CTI start) of the treated.
    per_participant
        Candidates kept per participant in the same (baseline year, stratum); the sample is a seeded hash
        order, so the same inputs give the same pool.

    Returns
    -------
    polars.DataFrame
        ``person_id`` (Int64, sorted, unique) and ``participant`` (bool). Participants whose baseline year has
        no covariates are kept (they are matched on the full candidate set of their stratum elsewhere).
    """
    missing = [c for c in ("person_id", "start_month") if c not in participants.columns]
    if missing:
        raise ValueError(f"participants lack columns {missing}")
    if per_participant < 1:
        raise ValueError(f"per_participant must be >= 1, got {per_participant}")
    treated = participants.select(
        pl.col("person_id").cast(pl.Int64), year=(pl.col("start_month").dt.year() - 1).cast(pl.Int32)
    ).unique("person_id")
    years = sorted(treated["year"].unique().to_list())
    cov = covariates.lazy().filter(pl.col("year").is_in(years)).with_columns(stratum=stratum())
    demand = (
        cov.join(treated.lazy(), on=["person_id", "year"], how="semi")
        .group_by("year", "stratum")
        .agg(quota=(pl.len() * per_participant).cast(pl.Int64))
    )
    chosen = (
        cov.join(treated.lazy().select("person_id"), on="person_id", how="anti")
        .join(demand, on=["year", "stratum"], how="inner")  # only strata a participant is in
        .with_columns(order=pl.col("person_id").hash(seed))
        .filter(pl.col("order").rank("ordinal").over("year", "stratum") <= pl.col("quota"))
        .select("person_id")
        .unique()
        .collect(engine="streaming")
    )
    return (
        pl.concat([treated.select("person_id", participant=pl.lit(True)),
                   chosen.with_columns(participant=pl.lit(False))])
        .unique("person_id", keep="first")
        .sort("person_id")
    )


def extract_cohort(register: pl.LazyFrame, ids: pl.DataFrame, /, *, columns: tuple[str, ...]) -> pl.LazyFrame:
    """Rows of ``register`` for the persons in ``ids`` (``person_id``), only ``columns``, for streaming.

    The id set is an ``is_in`` predicate, which the parquet reader applies while decoding: it reads ``PNR``,
    then decodes the other columns only for the rows that pass. A semi join would decode every column first
    (about twice the time at a 5-10 % cohort share).
    """
    if "person_id" not in ids.columns:
        raise ValueError("ids needs a person_id column")
    return register.select(columns).filter(member_of(ids))


def member_of(ids: pl.DataFrame, /, column: str = "PNR") -> pl.Expr:
    """``column`` is one of ``ids["person_id"]``: a predicate the parquet reader can push down."""
    return pl.col(column).is_in(ids.get_column("person_id").cast(pl.Int64).unique().implode())


POOL_KINDS = ("auto", "cem", "all")


#: Above this many persons ``kind="auto"`` builds the pool from the persons in the participants' transition
#: plus coarsened-exact candidates instead of taking everyone. The matching compares participants only within
#: their transition split, so everyone else in the panel is read, stored and checked for nothing: on the
#: 100,000-person world of ``make run`` the panel shrinks from 100,000 persons (9.3 M person-months, 16 s to
#: build) to the 2,464 in the transition (0.2 M, 0.6 s) with the same matches but one (2026-12-02). Below it
#: a world is small enough to keep whole, and a transition split may hold too few persons for its own model.
CEM_ABOVE = 50_000


@dataclass(frozen=True, slots=True)
class PanelPool:
    """The persons of the outcome panel and how they were chosen."""

    persons: pl.DataFrame  # person_id (Int64, unique, sorted)
    description: str
    population: int  # persons in the population register
    stays_register: bool  # whether a stays register was there to build the transition pool from


def panel_pool(
    registers: Mapping[str, pl.LazyFrame],
    participants: pl.DataFrame,
    /,
    *,
    kind: str = "auto",
    cem_above: int = CEM_ABOVE,
    per_participant: int = 20,
    comparison_pool: int = 0,
    seed: int = 0,
) -> PanelPool:
    """Participants, everyone in the same transition, and the comparison candidates.

    Parameters
    ----------
    registers
        Lazy registers by name (``population`` required; ``stays`` optional).
    participants
        One row per participant (``person_id``, ``start_month``:
        ``analysis.estimate.effects.participant_table``).
    kind
        ``"cem"``: coarsened-exact candidates for participants without a transition; ``"all"``: everyone
        (or a seeded sample of ``comparison_pool`` persons); ``"auto"``: ``"cem"`` above
        ``cem_above`` persons.
    cem_above, per_participant, comparison_pool, seed
        See ``kind``; ``seed`` makes every sample reproducible.
    """
    if kind not in POOL_KINDS:
        raise ValueError(f"the pool kind must be one of {', '.join(POOL_KINDS)}, got {kind!r}")
    size = registers["population"].select(pl.col("PNR").n_unique()).collect(engine="streaming").item()
    if kind == "cem" or (kind == "auto" and size > cem_above):
        unmarked = without_transition(registers, participants)
        persons = pl.concat([
            participants.select("person_id"),
            cem_pool(registers, unmarked, per_participant=per_participant, seed=seed).select("person_id"),
        ])
        description = f"cem ({per_participant} per participant without a transition: {unmarked.height})"
    else:
        persons = cohort.comparison_pool(registers["population"], participants, size=comparison_pool,
                                         seed=seed)
        description = "everyone" if comparison_pool == 0 else f"random sample of {comparison_pool}"
    # Persons in the same transition (a stay discharge the month before a start) always enter the panel.
    transitions = transition_pool(registers, participants)
    persons = (pl.concat([persons.select(pl.col("person_id").cast(pl.Int64)), transitions])
               .unique().sort("person_id"))
    if description != "everyone":
        description += f" + {transitions.height} with a stay discharge the month before a start"
    return PanelPool(persons, description, size, "stays" in registers)
