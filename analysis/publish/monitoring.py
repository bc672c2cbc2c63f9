"""Programme monitoring: how the CTI programme runs, per site and for the programme, quarter by quarter.

SBST monitors every method it spreads under the Development and Investment Programme (UIP). This module turns
the consolidated ``courses`` and the delivery log into the quarterly figures an analyst or a site's project
lead asks for, against configurable targets (``pipelines/config/monitoring_targets.csv``):

* **Flows and stock** per site and quarter: new starts, courses active in the quarter, courses ended
  completed / ended early (``completed`` false) / ended without a completion flag, courses open at the
  quarter's end. ``active = open at the end of the previous quarter + new starts`` and ``open at the end =
  active - ended`` hold exactly (:func:`reconcile` checks them, and every count against ``courses``).
* **Time in course**: a course is in phase k (k = 1..3) until ``start + k x phase_months`` months and
  beyond plan after ``start + planned_months`` (the seeds: nine months in three phases of three months).
  Open courses are placed by their phase at the quarter's end, ended courses by the phase they ended in.
* **Sub-target-group mix**: new starts and open courses by delmålgruppe.
* **Targets**: distinct citizens (pseudonyms) who started a course up to the quarter's end, per site or for
  the programme, optionally within one delmålgruppe (the Greenland strand: at least 40 per organisation,
  120-150 in all).
* **Delivery discipline**: per site and quarter, whether a file arrived and how many days after the quarter
  ended (late after ``delivery_days``), resubmissions (versions after the first), the quarantine rate of
  the current file and the link rate of the quarter's newly reported participants, each against its target,
  so a site that slips shows as a row of flags.

The programme's rows have ``site == PROGRAMME`` ("ALL": upper case, so no site id can be it). Everything
here is exact; what may be published is decided in :mod:`analysis.publish.monitoring_page`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

#: The site label of the programme-wide rows (site ids are lower case, so this never clashes).
PROGRAMME = "ALL"

#: Target measures the monitoring understands, and whether each must be configured (complete table).
MEASURES: dict[str, str] = {
    "participants": "distinct citizens who started a course up to the quarter's end (min/max)",
    "planned_months": "planned length of a course in months (max)",
    "phase_months": "length of each phase in months (min = max)",
    "delivery_days": "days after the quarter's end by which the site's file must arrive (max)",
    "quarantine_rate": "share of the current file's rows quarantined (max)",
    "link_rate": "share of the quarter's newly reported participants found in the population register (min)",
}
REQUIRED = ("planned_months", "phase_months", "delivery_days", "quarantine_rate", "link_rate")
SCOPES = ("programme", "each_site")
TARGET_COLUMNS = ("measure", "scope", "delmaalgruppe", "min", "max", "unit", "source")

FLOWS = pl.Schema(
    {
        "site": pl.String,
        "quarter": pl.String,
        "new_starts": pl.Int64,
        "active": pl.Int64,
        "ended_completed": pl.Int64,
        "ended_early": pl.Int64,
        "ended_unknown": pl.Int64,
        "open_at_end": pl.Int64,
        "open_phase_1": pl.Int64,
        "open_phase_2": pl.Int64,
        "open_phase_3": pl.Int64,
        "open_beyond_plan": pl.Int64,
        "ended_phase_1": pl.Int64,
        "ended_phase_2": pl.Int64,
        "ended_phase_3": pl.Int64,
        "ended_beyond_plan": pl.Int64,
        "mean_months_ended": pl.Float64,
        "cumulative_starts": pl.Int64,
    }
)
COUNT_COLUMNS = tuple(c for c, t in FLOWS.items() if t == pl.Int64)
PHASES = ("phase_1", "phase_2", "phase_3", "beyond_plan")


# --- targets -------------------------------------------------------------------------------------------


def _number(value: str | None) -> float | None:
    if value is None or not str(value).strip():
        return None
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        return math.nan
    return number


def target_problems(table: pl.DataFrame, /, *, sites: tuple[str, ...] = ()) -> list[str]:
    """Everything wrong with a targets table (empty: complete and usable).

    Each row needs a known measure, a scope (``programme``, ``each_site`` or one of ``sites``), a
    delmålgruppe (``*`` for all), a numeric min and/or max (min <= max) and a source; every measure in
    ``REQUIRED`` must be present for the programme or each site, once per scope and delmålgruppe.
    """
    missing = [c for c in TARGET_COLUMNS if c not in table.columns]
    if missing:
        return [
            f"the targets table lacks column(s) {', '.join(missing)} (expected {', '.join(TARGET_COLUMNS)})"
        ]
    problems, seen = [], set()
    for number, row in enumerate(table.iter_rows(named=True), start=1):
        where = f"row {number}"
        measure = (row["measure"] or "").strip()
        scope = (row["scope"] or "").strip()
        group = (row["delmaalgruppe"] or "").strip() or "*"
        if measure not in MEASURES:
            problems.append(f"{where}: unknown measure {measure!r}; known: {', '.join(MEASURES)}")
        if scope not in SCOPES and scope not in sites:
            problems.append(f"{where}: scope {scope!r} is not programme, each_site or a configured site id")
        low, high = _number(row["min"]), _number(row["max"])
        if low is not None and math.isnan(low) or high is not None and math.isnan(high):
            problems.append(f"{where}: min/max must be numbers (got {row['min']!r}, {row['max']!r})")
        elif low is None and high is None:
            problems.append(f"{where}: give a min, a max or both for {measure!r}")
        elif low is not None and high is not None and low > high:
            problems.append(f"{where}: min {low:g} is above max {high:g}")
        if not (row["source"] or "").strip():
            problems.append(f"{where}: say where the target comes from (source is empty)")
        key = (measure, scope, group)
        if key in seen:
            problems.append(f"{where}: {measure} for {scope} / {group} appears twice")
        seen.add(key)
    present = {(m, s) for m, s, _ in seen}
    for measure in REQUIRED:
        if not any(m == measure for m, _ in present):
            problems.append(f"measure {measure!r} is missing: add a row ({MEASURES[measure]})")
    if not problems:
        targets = Targets._parse(table)
        if targets.planned_months != 3 * targets.phase_months:
            problems.append(
                f"planned_months {targets.planned_months} must be three phases of phase_months "
                f"{targets.phase_months} (a CTI course has three phases)"
            )
    return problems


@dataclass(frozen=True, slots=True)
class Targets:
    """The parsed targets table: the course plan, the delivery deadline and the thresholds."""

    table: pl.DataFrame  # measure, scope, delmaalgruppe, min, max (Float64), unit, source
    planned_months: int
    phase_months: int

    @classmethod
    def from_table(cls, table: pl.DataFrame, /, *, sites: tuple[str, ...] = ()) -> Targets:
        """Parse ``table`` (text columns, as configuration is read); ValueError lists every problem."""
        problems = target_problems(table, sites=sites)
        if problems:
            raise ValueError("monitoring_targets.csv is not usable: " + "; ".join(problems))
        return cls._parse(table)

    @classmethod
    def _parse(cls, table: pl.DataFrame) -> Targets:
        parsed = table.select(
            pl.col("measure").str.strip_chars(),
            pl.col("scope").str.strip_chars(),
            pl.col("delmaalgruppe").fill_null("*").str.strip_chars().replace("", "*"),
            *[
                pl.col(c).str.strip_chars().str.replace(",", ".").replace("", None).cast(pl.Float64)
                for c in ("min", "max")
            ],
            "unit",
            "source",
        )

        def one(measure: str, bound: str) -> float:
            return float(parsed.filter(pl.col("measure") == measure)[bound].drop_nulls()[0])

        planned = one("planned_months", "max")
        phase = one("phase_months", "max")
        return cls(parsed, int(planned), int(phase))

    @property
    def phases(self) -> int:
        """Number of phases of a course (three)."""
        return self.planned_months // self.phase_months

    def bound(self, measure: str, site: str, /) -> tuple[float | None, float | None]:
        """(min, max) of a delivery measure for ``site``: its own row, else each_site, else programme."""
        rows = self.table.filter((pl.col("measure") == measure) & (pl.col("delmaalgruppe") == "*"))
        for scope in (site, "each_site", "programme"):
            hit = rows.filter(pl.col("scope") == scope)
            if hit.height:
                return hit["min"][0], hit["max"][0]
        return None, None


# --- quarters ------------------------------------------------------------------------------------------


def quarter_label(day: date, /) -> str:
    """``date(2024, 5, 3)`` -> ``"2024Q2"``."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(label: str, /) -> tuple[date, date]:
    """First and last day of quarter ``"2024Q2"``."""
    year, q = int(label[:4]), int(label[-1])
    start = date(year, 3 * (q - 1) + 1, 1)
    following = date(year + (q == 4), (3 * q) % 12 + 1, 1)
    return start, following - timedelta(days=1)


def quarter_range(first: str, last: str, /) -> tuple[str, ...]:
    """Every quarter label from ``first`` to ``last`` inclusive."""
    out, index = [], int(first[:4]) * 4 + int(first[-1]) - 1
    stop = int(last[:4]) * 4 + int(last[-1]) - 1
    while index <= stop:
        out.append(f"{index // 4}Q{index % 4 + 1}")
        index += 1
    return tuple(out)


def _quarter_expr(column: str) -> pl.Expr:
    d = pl.col(column)
    return pl.format("{}Q{}", d.dt.year(), ((d.dt.month() - 1) // 3 + 1))


# --- the monitoring tables -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Monitoring:
    """Quarterly monitoring of the programme (see the module docstring); every count exact."""

    quarters: tuple[str, ...]
    flows: pl.DataFrame  # FLOWS: per site (and PROGRAMME) and quarter
    mix: pl.DataFrame  # site, quarter, delmaalgruppe, new_starts, open_at_end
    #: site, quarter, phase (the phase a course ended in), completion (completed/early/unknown), courses
    endings: pl.DataFrame
    #: target, measure, scope, delmaalgruppe, site, quarter, value, min, max, status, source
    targets: pl.DataFrame
    delivery: pl.DataFrame  # DELIVERY: per site and expected quarter
    sites: tuple[str, ...]
    plan: Targets

    def to_frame(self) -> pl.DataFrame:
        """Return the flows table (one row per site, programme included, and quarter)."""
        return self.flows

    @property
    def through(self) -> str:
        """The last quarter monitored."""
        return self.quarters[-1]

    @classmethod
    def from_frames(
        cls,
        *,
        flows: pl.DataFrame,
        mix: pl.DataFrame,
        endings: pl.DataFrame,
        targets: pl.DataFrame,
        delivery: pl.DataFrame,
        sites: tuple[str, ...],
        plan: Targets,
    ) -> Monitoring:
        """Rebuild the monitoring from its persisted tables (the assets' outputs) and the parsed targets."""
        if not flows.height:
            raise ValueError("the monitoring tables are empty: programme_monitoring could not be computed")
        quarters = tuple(sorted(flows["quarter"].unique().to_list()))
        return cls(quarters, flows, mix, endings, targets, delivery, sites, plan)


DELIVERY = pl.Schema(
    {
        "site": pl.String,
        "quarter": pl.String,
        "status": pl.String,
        "versions": pl.Int64,
        "resubmissions": pl.Int64,
        "first_received": pl.Date,
        "days_after_quarter": pl.Int64,
        "deadline_days": pl.Int64,
        "late": pl.Boolean,
        "last_received": pl.Date,
        "rows_in": pl.Int64,
        "quarantined": pl.Int64,
        "quarantine_rate": pl.Float64,
        "quarantine_target": pl.Float64,
        "quarantine_above": pl.Boolean,
        "participants": pl.Int64,
        "linked": pl.Int64,
        "link_rate": pl.Float64,
        "link_target": pl.Float64,
        "link_below": pl.Boolean,
        "flags": pl.String,
    }
)


def _phase(reference: pl.Expr, plan: Targets) -> pl.Expr:
    """Phase label of a course on ``reference`` (a date): phase_k while reference <= start + k phases."""
    expr = pl.lit(PHASES[-1])
    for k in range(plan.phases, 0, -1):
        bound = pl.col("start_date").dt.offset_by(f"{k * plan.phase_months}mo")
        expr = pl.when(reference <= bound).then(pl.lit(PHASES[k - 1])).otherwise(expr)
    return expr


def monitor(
    courses: pl.DataFrame,
    /,
    *,
    submissions: pl.DataFrame,
    stats: pl.DataFrame,
    link_rate: pl.DataFrame,
    sites: pl.DataFrame,
    targets: Targets,
    through: str | None = None,
    failures: pl.DataFrame | None = None,
) -> Monitoring:
    """Quarterly monitoring of ``courses`` (``analysis.schema.COURSES``) and the sites' deliveries.

    Parameters
    ----------
    courses
        The consolidated courses (every site and quarter).
    submissions
        The ``submission_log`` (one row per received file version: site, quarter, received, version,
        superseded, readable).
    stats
        ``submission_stats`` (per readable version: rows_in, quarantined, superseded).
    link_rate
        ``link_rate`` (site, quarter of first report, participants, linked).
    sites
        The ``sites`` configuration table (site, joined): a site is expected to deliver from the quarter it
        joined.
    targets
        Parsed targets (:meth:`Targets.from_table`).
    through
        Last quarter to monitor (default: the latest quarter in the submission log, else of the courses).
    failures
        Partitions whose latest file could not be read (site, quarter, message): status "failed".
    """
    need = ("site", "start_date", "end_date", "completed", "delmaalgruppe", "pseudonym")
    missing = [c for c in need if c not in courses.columns]
    if missing:
        raise ValueError(f"courses lack columns {missing} (see analysis.schema.COURSES)")
    site_ids = tuple(sites["site"].to_list())
    unknown = sorted(set(courses["site"].unique().to_list()) - set(site_ids))
    if unknown:
        raise ValueError(
            f"courses name sites that sites.csv lacks: {', '.join(unknown)}; add them to sites.csv"
        )
    quarters = _window(courses, submissions, through)
    frame = pl.DataFrame(
        {
            "quarter": list(quarters),
            "q_start": [quarter_bounds(q)[0] for q in quarters],
            "q_end": [quarter_bounds(q)[1] for q in quarters],
            "q_index": list(range(len(quarters))),
        }
    )
    last_end = quarter_bounds(quarters[-1])[1]
    late_starts = courses.filter(pl.col("start_date") > last_end)
    if late_starts.height:
        raise ValueError(
            f"{late_starts.height} course(s) start after {quarters[-1]}, the last quarter monitored; "
            "monitor through a later quarter"
        )
    flows = _flows(courses, frame, targets, site_ids)
    return Monitoring(
        quarters=quarters,
        flows=flows,
        mix=_mix(courses, frame, site_ids),
        endings=_endings(courses, frame, targets, site_ids),
        targets=_targets(courses, frame, targets, site_ids),
        delivery=_delivery(submissions, stats, link_rate, sites, quarters, targets, failures),
        sites=site_ids,
        plan=targets,
    )


def _window(courses: pl.DataFrame, submissions: pl.DataFrame, through: str | None) -> tuple[str, ...]:
    firsts = [quarter_label(d) for d in (courses["start_date"].min(),) if d is not None]
    if submissions.height:
        firsts.append(str(submissions["quarter"].min()))
    if through is None:
        lasts = [str(submissions["quarter"].max())] if submissions.height else []
        lasts += (
            [str(courses["last_reported"].max())]
            if "last_reported" in courses.columns and courses.height
            else []
        )
        lasts += [quarter_label(courses["start_date"].max())] if courses.height else []
        if not lasts:
            raise ValueError("nothing to monitor: no courses and no submissions")
        through = max(lasts)
    if not firsts:
        raise ValueError("nothing to monitor: no courses and no submissions")
    return quarter_range(min(firsts), through)


def _by_site_and_programme(frame: pl.DataFrame, keys: list[str], aggs: list[pl.Expr]) -> pl.DataFrame:
    per_site = frame.group_by("site", *keys).agg(aggs)
    programme = frame.group_by(*keys).agg(aggs).with_columns(site=pl.lit(PROGRAMME))
    return pl.concat([per_site, programme.select(per_site.columns)])


def _flows(
    courses: pl.DataFrame, quarters: pl.DataFrame, plan: Targets, site_ids: tuple[str, ...]
) -> pl.DataFrame:
    start, end = pl.col("start_date"), pl.col("end_date")
    grid = courses.select("site", "start_date", "end_date", "completed").join(quarters, how="cross")
    started = start.is_between(pl.col("q_start"), pl.col("q_end"))
    active = (start <= pl.col("q_end")) & (end.is_null() | (end >= pl.col("q_start")))
    ended = end.is_between(pl.col("q_start"), pl.col("q_end"))
    open_end = (start <= pl.col("q_end")) & (end.is_null() | (end > pl.col("q_end")))
    open_phase = _phase(pl.col("q_end"), plan)
    ended_phase = _phase(end, plan)
    months = (end - start).dt.total_days().cast(pl.Float64) / (365.25 / 12)
    count = lambda cond: cond.sum().cast(pl.Int64)  # noqa: E731
    aggs = [
        count(started).alias("new_starts"),
        count(active).alias("active"),
        count(ended & (pl.col("completed") == True)).alias("ended_completed"),  # noqa: E712 (null = unknown)
        count(ended & (pl.col("completed") == False)).alias("ended_early"),  # noqa: E712
        count(ended & pl.col("completed").is_null()).alias("ended_unknown"),
        count(open_end).alias("open_at_end"),
        *[count(open_end & (open_phase == p)).alias(f"open_{p}") for p in PHASES],
        *[count(ended & (ended_phase == p)).alias(f"ended_{p}") for p in PHASES],
        months.filter(ended).mean().alias("mean_months_ended"),
    ]
    counted = _by_site_and_programme(grid, ["quarter"], aggs)
    # every site and quarter, also where a site has no course yet (zeros, not missing rows)
    full = pl.DataFrame({"site": [*site_ids, PROGRAMME]}).join(
        quarters.select("quarter", "q_index"), how="cross"
    )
    out = (
        full.join(counted, on=["site", "quarter"], how="left", validate="1:1")
        .with_columns([pl.col(c).fill_null(0) for c in COUNT_COLUMNS if c != "cumulative_starts"])
        .sort("site", "q_index")
        .with_columns(cumulative_starts=pl.col("new_starts").cum_sum().over("site"))
    )
    return out.select([pl.col(c).cast(t) for c, t in FLOWS.items()])


COMPLETION = ("completed", "early", "unknown")


def _endings(
    courses: pl.DataFrame, quarters: pl.DataFrame, plan: Targets, site_ids: tuple[str, ...]
) -> pl.DataFrame:
    """Count ended courses by site, quarter, the phase they ended in and completion (zeros included)."""
    done = pl.col("completed")
    ended = courses.join(quarters, how="cross").filter(
        pl.col("end_date").is_between(pl.col("q_start"), pl.col("q_end"))
    )
    labelled = ended.with_columns(
        phase=_phase(pl.col("end_date"), plan),
        completion=pl.when(done.is_null())
        .then(pl.lit("unknown"))
        .when(done)
        .then(pl.lit("completed"))
        .otherwise(pl.lit("early")),
    )
    counted = _by_site_and_programme(
        labelled, ["quarter", "phase", "completion"], [pl.len().cast(pl.Int64).alias("courses")]
    )
    full = (
        pl.DataFrame({"site": [*site_ids, PROGRAMME]})
        .join(quarters.select("quarter", "q_index"), how="cross")
        .join(pl.DataFrame({"phase": list(PHASES)}), how="cross")
        .join(pl.DataFrame({"completion": list(COMPLETION)}), how="cross")
    )
    out = full.join(counted, on=["site", "quarter", "phase", "completion"], how="left", validate="1:1")
    return (
        out.with_columns(pl.col("courses").fill_null(0))
        .sort("site", "q_index", "phase", "completion")
        .drop("q_index")
    )


def _mix(courses: pl.DataFrame, quarters: pl.DataFrame, site_ids: tuple[str, ...]) -> pl.DataFrame:
    start, end = pl.col("start_date"), pl.col("end_date")
    grid = courses.select("site", "start_date", "end_date", "delmaalgruppe").join(quarters, how="cross")
    aggs = [
        start.is_between(pl.col("q_start"), pl.col("q_end")).sum().cast(pl.Int64).alias("new_starts"),
        ((start <= pl.col("q_end")) & (end.is_null() | (end > pl.col("q_end"))))
        .sum()
        .cast(pl.Int64)
        .alias("open_at_end"),
    ]
    counted = _by_site_and_programme(grid, ["quarter", "delmaalgruppe"], aggs)
    groups = sorted(courses["delmaalgruppe"].drop_nulls().unique().to_list())
    full = (
        pl.DataFrame({"site": [*site_ids, PROGRAMME]})
        .join(quarters.select("quarter", "q_index"), how="cross")
        .join(pl.DataFrame({"delmaalgruppe": groups}, schema={"delmaalgruppe": pl.String}), how="cross")
    )
    out = full.join(counted, on=["site", "quarter", "delmaalgruppe"], how="left", validate="1:1")
    return (
        out.with_columns(pl.col("new_starts", "open_at_end").fill_null(0))
        .sort("site", "q_index", "delmaalgruppe")
        .drop("q_index")
    )


def _targets(
    courses: pl.DataFrame, quarters: pl.DataFrame, plan: Targets, site_ids: tuple[str, ...]
) -> pl.DataFrame:
    rows = plan.table.filter(pl.col("measure") == "participants")
    schema = {
        "target": pl.String,
        "measure": pl.String,
        "scope": pl.String,
        "delmaalgruppe": pl.String,
        "site": pl.String,
        "quarter": pl.String,
        "value": pl.Int64,
        "min": pl.Float64,
        "max": pl.Float64,
        "status": pl.String,
        "source": pl.String,
    }
    out = []
    for row in rows.iter_rows(named=True):
        chosen = (
            courses
            if row["delmaalgruppe"] == "*"
            else courses.filter(pl.col("delmaalgruppe") == row["delmaalgruppe"])
        )
        if row["scope"] == "programme":
            scopes = [(PROGRAMME, chosen)]
        else:
            names = site_ids if row["scope"] == "each_site" else (row["scope"],)
            scopes = [(s, chosen.filter(pl.col("site") == s)) for s in names]
        group = row["delmaalgruppe"] if row["delmaalgruppe"] != "*" else "all groups"
        label = f"participants {group}, {row['scope']}"
        for site, mine in scopes:
            counted = (
                quarters.join(mine.select("pseudonym", "start_date"), how="cross")
                .filter(pl.col("start_date") <= pl.col("q_end"))
                .group_by("quarter")
                .agg(value=pl.col("pseudonym").n_unique().cast(pl.Int64))
            )
            values = quarters.select("quarter", "q_index").join(
                counted, on="quarter", how="left", validate="1:1"
            )
            for quarter, value in (
                values.sort("q_index").select("quarter", pl.col("value").fill_null(0)).iter_rows()
            ):
                low, high = row["min"], row["max"]
                status = (
                    "above maximum"
                    if high is not None and value > high
                    else "not yet reached"
                    if low is not None and value < low
                    else "reached"
                )
                out.append(
                    {
                        "target": label,
                        "measure": "participants",
                        "scope": row["scope"],
                        "delmaalgruppe": row["delmaalgruppe"],
                        "site": site,
                        "quarter": quarter,
                        "value": value,
                        "min": low,
                        "max": high,
                        "status": status,
                        "source": row["source"],
                    }
                )
    return pl.DataFrame(out, schema=schema)


def _delivery(
    submissions: pl.DataFrame,
    stats: pl.DataFrame,
    link_rate: pl.DataFrame,
    sites: pl.DataFrame,
    quarters: tuple[str, ...],
    plan: Targets,
    failures: pl.DataFrame | None,
) -> pl.DataFrame:
    expected = []
    for row in sites.iter_rows(named=True):
        joined = quarter_label(date.fromisoformat(str(row["joined"])))
        for quarter in quarters:
            if quarter >= joined:
                expected.append(
                    {"site": row["site"], "quarter": quarter, "q_end": quarter_bounds(quarter)[1]}
                )
    grid = pl.DataFrame(expected, schema={"site": pl.String, "quarter": pl.String, "q_end": pl.Date})
    log = submissions.with_columns(
        received_day=pl.col("received").cast(pl.String).str.slice(0, 10).str.to_date()
    )
    files = log.group_by("site", "quarter").agg(
        versions=pl.len().cast(pl.Int64),
        first_received=pl.col("received_day").min(),
        last_received=pl.col("received_day").max(),
    )
    current = stats.filter(~pl.col("superseded")) if "superseded" in stats.columns else stats
    quality = current.group_by("site", "quarter").agg(
        pl.col("rows_in").sum().cast(pl.Int64), pl.col("quarantined").sum().cast(pl.Int64)
    )
    links = link_rate.select(
        "site", "quarter", pl.col("participants").cast(pl.Int64), pl.col("linked").cast(pl.Int64)
    )
    out = (
        grid.join(files, on=["site", "quarter"], how="left", validate="1:1")
        .join(quality, on=["site", "quarter"], how="left", validate="1:1")
        .join(links, on=["site", "quarter"], how="left", validate="1:1")
    )
    if failures is not None and failures.height:
        out = out.join(
            failures.select("site", "quarter", failed=pl.lit(True)),
            on=["site", "quarter"],
            how="left",
            validate="1:1",
        )
    else:
        out = out.with_columns(failed=pl.lit(None, pl.Boolean))
    bounds = {
        site: {m: plan.bound(m, site) for m in ("delivery_days", "quarantine_rate", "link_rate")}
        for site in sites["site"].to_list()
    }
    limit = lambda measure, side: pl.col("site").replace_strict(  # noqa: E731
        {s: b[measure][side] for s, b in bounds.items()}, default=None, return_dtype=pl.Float64
    )
    out = out.with_columns(
        status=pl.when(pl.col("failed").fill_null(False))
        .then(pl.lit("failed"))
        .when(pl.col("versions").is_null())
        .then(pl.lit("missing"))
        .otherwise(pl.lit("received")),
        versions=pl.col("versions").fill_null(0),
        days_after_quarter=(pl.col("first_received") - pl.col("q_end")).dt.total_days().cast(pl.Int64),
        deadline_days=limit("delivery_days", 1).cast(pl.Int64),
        quarantine_rate=pl.when(pl.col("rows_in") > 0).then(pl.col("quarantined") / pl.col("rows_in")),
        quarantine_target=limit("quarantine_rate", 1),
        link_rate=pl.when(pl.col("participants") > 0).then(pl.col("linked") / pl.col("participants")),
        link_target=limit("link_rate", 0),
    ).with_columns(
        resubmissions=(pl.col("versions") - 1).clip(lower_bound=0),
        late=pl.col("days_after_quarter") > pl.col("deadline_days"),
        quarantine_above=pl.col("quarantine_rate") > pl.col("quarantine_target"),
        link_below=pl.col("link_rate") < pl.col("link_target"),
    )
    out = out.with_columns(flags=delivery_flags())
    return out.select([pl.col(c).cast(t) for c, t in DELIVERY.items()]).sort("site", "quarter")


def delivery_flags() -> pl.Expr:
    """Return a delivery row's flags ("late; quarantine above target") from its status and flag columns.

    A flag column that is null (not known, or withheld by disclosure control) raises no flag.
    """
    flag = lambda cond, text: pl.when(cond.fill_null(False)).then(pl.lit(text))  # noqa: E731
    return pl.concat_str(
        [
            flag(pl.col("status") == "missing", "missing file"),
            flag(pl.col("status") == "failed", "unreadable file"),
            flag(pl.col("late"), "late"),
            flag(pl.col("resubmissions") > 0, "resubmitted"),
            flag(pl.col("quarantine_above"), "quarantine above target"),
            flag(pl.col("link_below"), "link rate below target"),
        ],
        separator="; ",
        ignore_nulls=True,
    )


def slipping_sites(monitoring: Monitoring, /, *, recent: int = 2) -> pl.DataFrame:
    """Per site: quarters expected, late, missing, resubmitted and flagged, and the latest flags.

    ``recent_flags`` are the flags of the ``recent`` last quarters. ``slipping`` is true when a file is
    missing, late or unreadable, or a quality target is missed, in any of
    the last ``recent`` quarters the site was expected to deliver (resubmissions alone are not slipping:
    a correction is what a steward asks for).
    """
    d = monitoring.delivery
    recent_quarters = monitoring.quarters[-recent:]
    serious = (
        (pl.col("status") != "received")
        | pl.col("late").fill_null(False)
        | pl.col("quarantine_above").fill_null(False)
        | pl.col("link_below").fill_null(False)
    )
    return (
        d.group_by("site")
        .agg(
            expected=pl.len().cast(pl.Int64),
            late=pl.col("late").fill_null(False).sum().cast(pl.Int64),
            missing=(pl.col("status") == "missing").sum().cast(pl.Int64),
            failed=(pl.col("status") == "failed").sum().cast(pl.Int64),
            resubmitted=(pl.col("resubmissions") > 0).sum().cast(pl.Int64),
            quality_missed=(
                pl.col("quarantine_above").fill_null(False) | pl.col("link_below").fill_null(False)
            )
            .sum()
            .cast(pl.Int64),
            slipping=(serious & pl.col("quarter").is_in(list(recent_quarters))).any(),
            recent_flags=pl.col("flags")
            .filter(pl.col("quarter").is_in(list(recent_quarters)) & (pl.col("flags") != ""))
            .str.split("; ")
            .explode()
            .unique(maintain_order=True)
            .str.join("; "),
        )
        .sort("site")
    )


# --- reconciliation ------------------------------------------------------------------------------------


def reconcile(monitoring: Monitoring, courses: pl.DataFrame, /) -> list[str]:
    """Every way the monitoring counts disagree with ``courses`` (empty: they reconcile exactly).

    Independent of :func:`monitor`'s own expressions: counts are taken per course from its start and end
    quarter labels, then compared with the flows table; the stock-flow identities, the programme = sum of
    sites, the phase and delmålgruppe breakdowns and the cumulative starts are checked on the flows.
    """
    problems: list[str] = []
    flows = monitoring.flows
    first, last = monitoring.quarters[0], monitoring.through
    last_end = quarter_bounds(last)[1]
    labelled = courses.with_columns(start_q=_quarter_expr("start_date"), end_q=_quarter_expr("end_date"))
    sites = [*monitoring.sites, PROGRAMME]
    for site in sites:
        mine = labelled if site == PROGRAMME else labelled.filter(pl.col("site") == site)
        rows = flows.filter(pl.col("site") == site)
        if rows.height != len(monitoring.quarters):
            problems.append(
                f"{site}: {rows.height} quarters in the flows, expected {len(monitoring.quarters)}"
            )
            continue
        starts = dict(mine.group_by("start_q").len().iter_rows())
        for quarter, value in rows.select("quarter", "new_starts").iter_rows():
            if value != starts.get(quarter, 0):
                problems.append(f"{site} {quarter}: new starts {value}, courses say {starts.get(quarter, 0)}")
        outside = sum(v for q, v in starts.items() if not first <= q <= last)
        if outside:
            problems.append(
                f"{site}: {outside} course(s) start outside the monitored quarters {first}..{last}"
            )
        ended = mine.filter(pl.col("end_date") <= last_end)
        for column, condition in (
            ("ended_completed", pl.col("completed") == True),  # noqa: E712
            ("ended_early", pl.col("completed") == False),  # noqa: E712
            ("ended_unknown", pl.col("completed").is_null()),
        ):
            by_quarter = dict(ended.filter(condition).group_by("end_q").len().iter_rows())
            for quarter, value in rows.select("quarter", column).iter_rows():
                if value != by_quarter.get(quarter, 0):
                    problems.append(
                        f"{site} {quarter}: {column} {value}, courses say {by_quarter.get(quarter, 0)}"
                    )
        still_open = mine.filter(pl.col("end_date").is_null() | (pl.col("end_date") > last_end)).height
        if rows["open_at_end"][-1] != still_open:
            problems.append(
                f"{site}: {rows['open_at_end'][-1]} open at the end of {last}, courses say {still_open}"
            )
        if rows["cumulative_starts"][-1] != mine.height:
            problems.append(
                f"{site}: cumulative starts {rows['cumulative_starts'][-1]}, courses {mine.height}"
            )
        previous = 0
        for row in rows.iter_rows(named=True):
            ended_q = row["ended_completed"] + row["ended_early"] + row["ended_unknown"]
            if row["active"] != previous + row["new_starts"]:
                problems.append(
                    f"{site} {row['quarter']}: active {row['active']} != open before {previous} "
                    f"+ starts {row['new_starts']}"
                )
            if row["open_at_end"] != row["active"] - ended_q:
                problems.append(
                    f"{site} {row['quarter']}: open {row['open_at_end']} != active {row['active']} "
                    f"- ended {ended_q}"
                )
            if sum(row[f"open_{p}"] for p in PHASES) != row["open_at_end"]:
                problems.append(
                    f"{site} {row['quarter']}: open courses by phase do not sum to {row['open_at_end']}"
                )
            if sum(row[f"ended_{p}"] for p in PHASES) != ended_q:
                problems.append(f"{site} {row['quarter']}: ended courses by phase do not sum to {ended_q}")
            previous = row["open_at_end"]
    by_sites = flows.filter(pl.col("site") != PROGRAMME).group_by("quarter").agg(pl.col(COUNT_COLUMNS).sum())
    programme = flows.filter(pl.col("site") == PROGRAMME).select("quarter", *COUNT_COLUMNS)
    joined = programme.join(by_sites, on="quarter", how="left", suffix="_sites", validate="1:1")
    for column in COUNT_COLUMNS:
        bad = joined.filter(pl.col(column) != pl.col(f"{column}_sites").fill_null(0))
        for quarter in bad["quarter"].to_list():
            problems.append(f"programme {quarter}: {column} is not the sum over sites")
    ends = monitoring.endings.group_by("site", "quarter").agg(
        *[
            pl.col("courses")
            .filter(pl.col("completion") == c)
            .sum()
            .alias(f"ended_{'early' if c == 'early' else c}")
            for c in COMPLETION
        ],
        *[pl.col("courses").filter(pl.col("phase") == p).sum().alias(f"ended_{p}") for p in PHASES],
    )
    columns = ["ended_completed", "ended_early", "ended_unknown", *[f"ended_{p}" for p in PHASES]]
    both = flows.select("site", "quarter", *columns).join(
        ends, on=["site", "quarter"], how="left", suffix="_ends", validate="1:1"
    )
    for column in columns:
        for site, quarter in (
            both.filter(pl.col(column) != pl.col(f"{column}_ends").fill_null(0))
            .select("site", "quarter")
            .iter_rows()
        ):
            problems.append(f"{site} {quarter}: ended courses by phase and completion do not give {column}")
    mix = monitoring.mix.group_by("site", "quarter").agg(pl.col("new_starts", "open_at_end").sum())
    check = flows.select("site", "quarter", "new_starts", "open_at_end").join(
        mix, on=["site", "quarter"], how="left", suffix="_mix", validate="1:1"
    )
    for column in ("new_starts", "open_at_end"):
        for site, quarter in (
            check.filter(pl.col(column) != pl.col(f"{column}_mix").fill_null(0))
            .select("site", "quarter")
            .iter_rows()
        ):
            problems.append(f"{site} {quarter}: {column} by delmålgruppe does not sum to the flows")
    return problems
