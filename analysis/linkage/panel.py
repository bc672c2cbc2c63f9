"""Register linkage: courses -> integer person ids, and the person x month outcome panel.

Every register is filtered to the requested persons (an ``is_in`` predicate pushed into the scan) *before* it
is aggregated, and the whole panel is one lazy query, so the same code runs on 5.9 million persons with the
streaming engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from analysis.linkage import population
from analysis.schema import EXIT_COLUMNS, OUTCOME_PANEL

BENEFIT_FAMILIES = ("unemployment_insurance", "social_assistance", "sickness_benefit", "disability_pension")


@dataclass(frozen=True, slots=True)
class Linkage:
    """Courses with their person id, the courses that could not be linked, and link rates."""

    linked: pl.DataFrame
    unlinked: pl.DataFrame
    link_rate: pl.DataFrame


def link_participants(courses: pl.DataFrame, person_index: pl.DataFrame, /) -> Linkage:
    """Attach ``person_id`` to each course (many courses to one person); list the unlinked ones.

    ``link_rate`` has one row per site and first reported quarter: ``participants``, ``linked``, ``rate``.
    """
    for name, frame, column in (("courses", courses, "pseudonym"),
                                ("person_index", person_index, "person_id")):
        if column not in frame.columns:
            raise ValueError(f"{name} needs a {column!r} column")
    _require_one_key(courses, person_index)
    joined = courses.join(person_index.select("pseudonym", "person_id"), on="pseudonym", how="left",
                          validate="m:1")
    linked = joined.filter(pl.col("person_id").is_not_null())
    unlinked = joined.filter(pl.col("person_id").is_null()).select(
        "pseudonym", *(["key_id"] if "key_id" in joined.columns else []), "site", "start_date",
        "first_reported")
    rate = (
        joined.group_by("site", quarter=pl.col("first_reported"))
        .agg(participants=pl.len().cast(pl.Int64),
             linked=pl.col("person_id").is_not_null().sum().cast(pl.Int64))
        .with_columns(rate=pl.col("linked") / pl.col("participants"))
        .sort("site", "quarter")
    )
    return Linkage(linked, unlinked, rate)


def _require_one_key(courses: pl.DataFrame, person_index: pl.DataFrame, /) -> None:
    """Pseudonyms of two keys never match: joining them would silently unlink every participant."""
    ids = {name: set(frame["key_id"].drop_nulls().unique().to_list())
           for name, frame in (("courses", courses), ("person_index", person_index))
           if "key_id" in frame.columns}
    if len(set().union(*ids.values())) > 1:
        found = "; ".join(f"{name}: key id {', '.join(sorted(values))}" for name, values in ids.items())
        raise ValueError(f"the pseudonyms were made with different keys ({found}); they cannot be linked. "
                         "Rerun with the data directory's key, or re-pseudonymise everything with "
                         "`cti rotate-key`.")


def _month_grid(first_month: date, last_month: date) -> pl.DataFrame:
    """Every month in the window with its number of Mondays (the DREAM weeks that belong to it)."""
    months, mondays = [], []
    day = date(first_month.year, first_month.month, 1)
    while day <= last_month:
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        first_monday = day + timedelta(days=(7 - day.weekday()) % 7)
        months.append(day)
        mondays.append(len(range(0, (following - first_monday).days, 7)))
        day = following
    return pl.DataFrame({"month": months, "mondays": mondays}, schema={"month": pl.Date, "mondays": pl.Int64})


def outcome_panel(
    registers: Mapping[str, pl.LazyFrame],
    /,
    *,
    persons: pl.LazyFrame | None,
    first_month: date,
    last_month: date,
    dream_codes: pl.DataFrame,
    hfaudd_levels: pl.DataFrame,
) -> pl.LazyFrame:
    """Person x month outcomes (``analysis.schema.OUTCOME_PANEL``) for ``persons`` (all if None).

    Definitions: benefit shares are the month's DREAM weeks (weeks belong to the month of their Monday)
    with a code of that family, over the month's Mondays; ``self_support`` is one minus the share of weeks
    with any code. ``employed``/``earnings`` from monthly employment (0 when absent). Hospital counts by the
    month of admission: emergency = patient type 3, psychiatric admission = inpatient with an F diagnosis,
    bed days = bed days of inpatient admissions that month. ``edu_level`` from the year's UDDA snapshot once
    valid (0 unknown), ``enrolled`` when an enrolment spell covers the first of the month.
    ``shelter_exits``/``psych_ward_exits``/``prison_exits`` count discharges (``UDDATO``) from the stays
    register that month by ``OPHOLD_TYPE``; without a ``stays`` register (extracts that lack it) they are 0
    and matching falls back on the hospital markers.
    """
    missing = [r for r in ("population", "benefits", "employment", "health", "education", "enrolment")
               if r not in registers]
    if missing:
        raise ValueError(f"outcome_panel needs the registers {missing}")
    if first_month > last_month:
        raise ValueError(f"first_month {first_month} is after last_month {last_month}")
    grid = _month_grid(first_month, last_month).lazy()
    if persons is None:
        ids = registers["population"].select(person_id=pl.col("PNR").cast(pl.Int64)).unique()
        keep = None
    else:
        keep = persons.select(pl.col("person_id").cast(pl.Int64)).unique().collect()
        ids = keep.lazy()
    start, end = pl.lit(grid.select(pl.col("month").min()).collect().item()), pl.lit(last_month)

    # the id set filters the register while it is read, before anything else
    def only(name: str) -> pl.LazyFrame:
        return registers[name] if keep is None else registers[name].filter(population.member_of(keep))

    families = dream_codes.select(pl.col("code").cast(pl.String), pl.col("family")).lazy()
    weeks = (
        only("benefits")
        .filter(pl.col("UGE_START").is_between(start, end.dt.month_end()))
        .join(families, left_on="YDELSESKODE", right_on="code", how="left", validate="m:1")
        .group_by(person_id=pl.col("PNR"), month=pl.col("UGE_START").dt.truncate("1mo"))
        .agg(
            _any=pl.col("UGE_START").n_unique().cast(pl.Int64),
            **{f"_{f}": (pl.col("family") == f).sum().cast(pl.Int64) for f in BENEFIT_FAMILIES},
        )
    )
    work = (
        only("employment")
        .filter(pl.col("MAANED").is_between(start, end))
        .group_by(person_id=pl.col("PNR"), month=pl.col("MAANED").dt.truncate("1mo"))
        .agg(employed=pl.col("BESKAEFTIGET").max().cast(pl.Int8), earnings=pl.col("LOEN").sum())
    )
    inpatient = pl.col("C_PATTYPE") == 0
    health = (
        only("health")
        .filter(pl.col("D_INDDTO").is_between(start, end.dt.month_end()))
        .group_by(person_id=pl.col("PNR"), month=pl.col("D_INDDTO").dt.truncate("1mo"))
        .agg(
            emergency_contacts=(pl.col("C_PATTYPE") == 3).sum().cast(pl.Int64),
            psych_admissions=(inpatient & pl.col("C_ADIAG").str.starts_with("DF")).sum().cast(pl.Int64),
            bed_days=pl.when(inpatient).then(pl.col("V_SENGDAGE")).otherwise(0).cast(pl.Int64).sum(),
        )
    )
    levels = hfaudd_levels.select(pl.col("hfaudd").cast(pl.String),
                                  level=pl.col("level").cast(pl.Int8)).lazy()
    education = (
        only("education")
        .join(levels, left_on="HFAUDD", right_on="hfaudd", how="left", validate="m:1")
        .select(person_id=pl.col("PNR"), year=pl.col("AAR").cast(pl.Int32), level=pl.col("level"),
                valid_from=pl.col("HF_VFRA"))
        .unique(subset=["person_id", "year"], keep="last")
    )
    vfra, vtil = pl.col("ELEV3_VFRA"), pl.col("ELEV3_VTIL")
    first_covered = (pl.when(vfra.dt.day() == 1).then(vfra)
                     .otherwise(vfra.dt.truncate("1mo").dt.offset_by("1mo")))
    enrolled = (
        only("enrolment")
        .filter((vtil >= start) & (vfra <= end))
        .select(
            person_id=pl.col("PNR"),
            month=pl.date_ranges(
                pl.max_horizontal(first_covered, start), pl.min_horizontal(vtil, end).dt.truncate("1mo"),
                interval="1mo"
            ),
        )
        .explode("month")
        .drop_nulls("month")
        .unique()
        .with_columns(enrolled=pl.lit(1, pl.Int8))
    )
    if "stays" in registers:
        exits = (
            only("stays")
            .filter(pl.col("UDDATO").is_between(start, end.dt.month_end()))
            .group_by(person_id=pl.col("PNR"), month=pl.col("UDDATO").dt.truncate("1mo"))
            .agg(**{c: (pl.col("OPHOLD_TYPE") == t).sum().cast(pl.Int64) for t, c in EXIT_COLUMNS.items()})
        )
    else:
        exits = pl.LazyFrame(schema={"person_id": pl.Int64, "month": pl.Date,
                                     **dict.fromkeys(EXIT_COLUMNS.values(), pl.Int64)})
    panel = (
        ids.join(grid, how="cross")
        .join(weeks, on=["person_id", "month"], how="left", validate="1:1")
        .join(work, on=["person_id", "month"], how="left", validate="1:1")
        .join(health, on=["person_id", "month"], how="left", validate="1:1")
        .join(enrolled, on=["person_id", "month"], how="left", validate="1:1")
        .join(exits, on=["person_id", "month"], how="left", validate="1:1")
        .with_columns(year=pl.col("month").dt.year().cast(pl.Int32))
        .join(education, on=["person_id", "year"], how="left", validate="m:1")
    )
    share = lambda column: (pl.col(column).fill_null(0) / pl.col("mondays")).clip(0, 1)  # noqa: E731
    return panel.select(
        "person_id",
        "month",
        self_support=1 - share("_any"),
        **{f: share(f"_{f}") for f in BENEFIT_FAMILIES},
        employed=pl.col("employed").fill_null(0),
        earnings=pl.col("earnings").fill_null(0.0),
        enrolled=pl.col("enrolled").fill_null(0),
        edu_level=(pl.when(pl.col("valid_from") <= pl.col("month")).then(pl.col("level")).otherwise(0)
                   .fill_null(0)),
        emergency_contacts=pl.col("emergency_contacts").fill_null(0),
        psych_admissions=pl.col("psych_admissions").fill_null(0),
        bed_days=pl.col("bed_days").fill_null(0),
        **{c: pl.col(c).fill_null(0) for c in EXIT_COLUMNS.values()},
    ).select([pl.col(c).cast(t) for c, t in OUTCOME_PANEL.items()]).sort("person_id", "month")


def quarterly(panel: pl.LazyFrame, /) -> pl.LazyFrame:
    """Person x quarter: means of shares and flags, sums of counts and earnings (of the outcomes present)."""
    present = set(panel.collect_schema().names())
    sums = [c for c in ("earnings", "emergency_contacts", "psych_admissions", "bed_days",
                        *EXIT_COLUMNS.values())
            if c in present]
    means = [c for c in OUTCOME_PANEL.names() if c not in ("person_id", "month", *sums) and c in present]
    return (
        panel.group_by("person_id", quarter=pl.col("month").dt.truncate("1q"))
        .agg(*[pl.col(c).cast(pl.Float64).mean() for c in means], *[pl.col(c).sum() for c in sums])
        .sort("person_id", "quarter")
    )
