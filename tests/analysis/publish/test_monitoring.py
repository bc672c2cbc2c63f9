"""Programme monitoring on a hand-built programme whose every count is known (see the comments)."""

from datetime import date

import polars as pl
import pytest

from analysis.publish.monitoring import (
    PROGRAMME,
    Targets,
    monitor,
    quarter_bounds,
    quarter_range,
    reconcile,
    slipping_sites,
    target_problems,
)
from analysis.schema import COURSES

SITES = pl.DataFrame(
    {"site": ["a", "b"], "name": ["A", "B"], "kom": ["101", "751"], "joined": ["2024-01-01", "2024-07-01"]}
)

TARGETS = pl.DataFrame(
    [
        ("planned_months", "programme", "*", "", "9", "months", "seed"),
        ("phase_months", "programme", "*", "3", "3", "months", "seed"),
        ("participants", "each_site", "GRL", "1", "", "citizens", "test"),
        ("participants", "programme", "*", "3", "4", "citizens", "test"),
        ("delivery_days", "each_site", "*", "", "30", "days", "test"),
        ("quarantine_rate", "each_site", "*", "", "0.1", "share", "test"),
        ("link_rate", "each_site", "*", "0.98", "", "share", "test"),
    ],
    schema=["measure", "scope", "delmaalgruppe", "min", "max", "unit", "source"],
    orient="row",
)


def _courses() -> pl.DataFrame:
    rows = [
        # c1: site a, Feb..Nov 2024, completed: spans four quarters; ends in phase 3 (before start + 9 months)
        ("p1", "a", date(2024, 2, 10), date(2024, 11, 5), "OVG", True),
        # c2: site a, ended early in Q2 inside phase 1; the same citizen restarts in c3
        ("p2", "a", date(2024, 3, 1), date(2024, 5, 20), "PSY", False),
        ("p2", "a", date(2024, 5, 15), None, "PSY", None),
        # c4: site b, ended in Q3 with no completion flag; c5 open, delmålgruppe GRL
        ("p4", "b", date(2024, 8, 1), date(2024, 9, 30), "OVG", None),
        ("p5", "b", date(2024, 9, 15), None, "GRL", None),
    ]
    frame = pl.DataFrame(
        rows,
        schema=["pseudonym", "site", "start_date", "end_date", "delmaalgruppe", "completed"],
        orient="row",
    )
    return frame.with_columns(
        course_id=pl.format("c{}", pl.int_range(1, pl.len() + 1)),
        key_id=pl.lit("k"),
        sex=pl.lit(1, pl.Int8),
        birth_date=pl.lit(date(1980, 1, 1)),
        first_reported=pl.lit("2024Q1"),
        last_reported=pl.lit("2024Q4"),
    ).select([pl.col(c).cast(t) for c, t in COURSES.items()])


def _log() -> pl.DataFrame:
    rows = [
        ("a", "2024Q1", "2024-04-20T00:00:00+00:00", 1, False),  # 20 days after the quarter: on time
        ("a", "2024Q2", "2024-08-15T00:00:00+00:00", 1, False),  # 46 days: late
        ("a", "2024Q3", "2024-10-20T00:00:00+00:00", 1, True),
        ("a", "2024Q3", "2024-11-01T00:00:00+00:00", 2, False),  # a resubmission
        # a 2024Q4: no file (missing)
        ("b", "2024Q3", "2024-10-10T00:00:00+00:00", 1, False),
        ("b", "2024Q4", "2025-01-25T00:00:00+00:00", 1, False),
    ]
    return pl.DataFrame(
        rows, schema=["site", "quarter", "received", "version", "superseded"], orient="row"
    ).with_columns(readable=pl.lit(True), version=pl.col("version").cast(pl.Int32))


def _stats() -> pl.DataFrame:
    rows = [
        ("a", "2024Q1", False, 10, 0),
        ("a", "2024Q2", False, 20, 4),
        ("a", "2024Q3", True, 10, 5),
        ("a", "2024Q3", False, 10, 0),
        ("b", "2024Q3", False, 2, 0),
        ("b", "2024Q4", False, 2, 0),
    ]
    return pl.DataFrame(
        rows, schema=["site", "quarter", "superseded", "rows_in", "quarantined"], orient="row"
    )


def _links() -> pl.DataFrame:
    rows = [("a", "2024Q1", 2, 2), ("a", "2024Q2", 1, 0), ("b", "2024Q3", 2, 2)]
    return pl.DataFrame(rows, schema=["site", "quarter", "participants", "linked"], orient="row")


@pytest.fixture
def result():
    return monitor(
        _courses(),
        submissions=_log(),
        stats=_stats(),
        link_rate=_links(),
        sites=SITES,
        targets=Targets.from_table(TARGETS, sites=("a", "b")),
    )


def _row(result, site: str, quarter: str) -> dict:
    return result.flows.filter((pl.col("site") == site) & (pl.col("quarter") == quarter)).row(0, named=True)


def test_quarters_cover_every_start_and_delivery() -> None:
    assert quarter_range("2024Q3", "2025Q2") == ("2024Q3", "2024Q4", "2025Q1", "2025Q2")
    assert quarter_bounds("2024Q4") == (date(2024, 10, 1), date(2024, 12, 31))


@pytest.mark.parametrize(
    ("site", "quarter", "expected"),
    [
        (
            "a",
            "2024Q1",
            {
                "new_starts": 2,
                "active": 2,
                "ended_completed": 0,
                "ended_early": 0,
                "open_at_end": 2,
                "open_phase_1": 2,
                "open_phase_2": 0,
            },
        ),
        (
            "a",
            "2024Q2",
            {
                "new_starts": 1,
                "active": 3,
                "ended_early": 1,
                "ended_phase_1": 1,
                "open_at_end": 2,
                "open_phase_1": 1,
                "open_phase_2": 1,
            },
        ),
        (
            "a",
            "2024Q3",
            {
                "new_starts": 0,
                "active": 2,
                "ended_early": 0,
                "open_at_end": 2,
                "open_phase_2": 1,
                "open_phase_3": 1,
            },
        ),
        (
            "a",
            "2024Q4",
            {
                "active": 2,
                "ended_completed": 1,
                "ended_phase_3": 1,
                "open_at_end": 1,
                "open_phase_3": 1,
                "cumulative_starts": 3,
            },
        ),
        ("b", "2024Q2", {"new_starts": 0, "active": 0, "open_at_end": 0}),
        (
            "b",
            "2024Q3",
            {"new_starts": 2, "active": 2, "ended_unknown": 1, "ended_phase_1": 1, "open_at_end": 1},
        ),
        ("b", "2024Q4", {"active": 1, "open_at_end": 1, "open_phase_2": 1}),
        (PROGRAMME, "2024Q3", {"new_starts": 2, "active": 4, "ended_unknown": 1, "open_at_end": 3}),
        (PROGRAMME, "2024Q4", {"active": 3, "ended_completed": 1, "open_at_end": 2, "cumulative_starts": 5}),
    ],
)
def test_flows_have_the_hand_counted_values(result, site: str, quarter: str, expected: dict) -> None:
    row = _row(result, site, quarter)
    assert {k: row[k] for k in expected} == expected


def test_time_in_course_of_ended_courses(result) -> None:
    assert _row(result, "a", "2024Q2")["mean_months_ended"] == pytest.approx(80 / (365.25 / 12))
    assert _row(result, "a", "2024Q4")["mean_months_ended"] == pytest.approx(269 / (365.25 / 12))
    assert _row(result, "a", "2024Q3")["mean_months_ended"] is None


def test_sub_target_group_mix(result) -> None:
    mix = result.mix.filter(pl.col("quarter") == "2024Q3")
    got = {
        (r["site"], r["delmaalgruppe"]): (r["new_starts"], r["open_at_end"])
        for r in mix.iter_rows(named=True)
    }
    assert got[("b", "GRL")] == (1, 1) and got[("b", "OVG")] == (1, 0)
    assert got[("a", "PSY")] == (0, 1) and got[(PROGRAMME, "OVG")] == (1, 1)


def test_targets_count_distinct_citizens(result) -> None:
    final = result.targets.filter(pl.col("quarter") == "2024Q4")
    got = {(r["target"], r["site"]): (r["value"], r["status"]) for r in final.iter_rows(named=True)}
    # p2 had two courses: four citizens, inside 3..4
    assert got[("participants all groups, programme", PROGRAMME)] == (4, "reached")
    assert got[("participants GRL, each_site", "a")] == (0, "not yet reached")
    assert got[("participants GRL, each_site", "b")] == (1, "reached")
    first = result.targets.filter((pl.col("quarter") == "2024Q1") & (pl.col("site") == PROGRAMME))
    assert first["value"].to_list() == [2] and first["status"].to_list() == ["not yet reached"]


def test_a_programme_above_its_maximum_is_said(result) -> None:
    strict = TARGETS.with_columns(
        pl.when(pl.col("scope") == "programme").then(pl.lit("3")).otherwise(pl.col("max")).alias("max")
    )
    again = monitor(
        _courses(),
        submissions=_log(),
        stats=_stats(),
        link_rate=_links(),
        sites=SITES,
        targets=Targets.from_table(
            strict.filter(pl.col("measure") != "planned_months").vstack(
                TARGETS.filter(pl.col("measure") == "planned_months")
            ),
            sites=("a", "b"),
        ),
    )
    last = again.targets.filter((pl.col("site") == PROGRAMME) & (pl.col("quarter") == "2024Q4"))
    assert last["status"].to_list() == ["above maximum"]


def test_delivery_discipline_flags_the_site_that_slips(result) -> None:
    d = {(r["site"], r["quarter"]): r for r in result.delivery.iter_rows(named=True)}
    assert ("b", "2024Q2") not in d  # b joined in 2024Q3
    assert d[("a", "2024Q1")]["flags"] == "" and d[("a", "2024Q1")]["days_after_quarter"] == 20
    q2 = d[("a", "2024Q2")]
    assert q2["days_after_quarter"] == 46 and q2["late"]
    assert q2["quarantine_rate"] == pytest.approx(0.2) and q2["link_rate"] == 0.0
    assert q2["flags"] == "late; quarantine above target; link rate below target"
    q3 = d[("a", "2024Q3")]  # the current (second) version counts for quality; the first for timeliness
    assert (q3["versions"], q3["resubmissions"], q3["quarantine_rate"], q3["flags"]) == (
        2,
        1,
        0.0,
        "resubmitted",
    )
    assert q3["last_received"] == date(2024, 11, 1)
    assert d[("a", "2024Q4")]["status"] == "missing" and d[("a", "2024Q4")]["flags"] == "missing file"
    slips = {r["site"]: r for r in slipping_sites(result).iter_rows(named=True)}
    assert slips["a"]["slipping"] and slips["a"]["late"] == 1 and slips["a"]["missing"] == 1
    assert not slips["b"]["slipping"] and slips["b"]["expected"] == 2


def test_an_unreadable_latest_file_is_failed_not_received() -> None:
    failures = pl.DataFrame({"site": ["b"], "quarter": ["2024Q4"], "message": ["not a spreadsheet"]})
    again = monitor(
        _courses(),
        submissions=_log(),
        stats=_stats(),
        link_rate=_links(),
        sites=SITES,
        targets=Targets.from_table(TARGETS, sites=("a", "b")),
        failures=failures,
    )
    row = again.delivery.filter((pl.col("site") == "b") & (pl.col("quarter") == "2024Q4")).row(0, named=True)
    assert row["status"] == "failed" and "unreadable file" in row["flags"]


def test_counts_reconcile_exactly_with_courses(result) -> None:
    assert reconcile(result, _courses()) == []


def test_reconcile_finds_a_count_that_disagrees(result) -> None:
    from dataclasses import replace

    wrong = result.flows.with_columns(
        pl.when((pl.col("site") == "a") & (pl.col("quarter") == "2024Q2"))
        .then(pl.col("ended_early") + 1)
        .otherwise(pl.col("ended_early"))
        .alias("ended_early")
    )
    problems = reconcile(replace(result, flows=wrong), _courses())
    assert any("a 2024Q2: ended_early 2, courses say 1" in p for p in problems)
    assert any("programme 2024Q2: ended_early is not the sum over sites" in p for p in problems)
    assert any("open 2 != active 3 - ended 2" in p for p in problems)
    # a course the monitoring never saw
    extra = _courses().vstack(
        _courses()
        .head(1)
        .with_columns(pl.lit("c9").alias("course_id"), pl.lit(date(2024, 4, 2)).alias("start_date"))
    )
    assert any("a 2024Q2: new starts 1, courses say 2" in p for p in reconcile(result, extra))


def test_courses_from_an_unknown_site_are_a_clear_error() -> None:
    courses = _courses().with_columns(pl.lit("nowhere").alias("site"))
    with pytest.raises(ValueError, match="sites.csv lacks: nowhere"):
        monitor(
            courses,
            submissions=_log(),
            stats=_stats(),
            link_rate=_links(),
            sites=SITES,
            targets=Targets.from_table(TARGETS, sites=("a", "b")),
        )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.filter(pl.col("measure") != "delivery_days"), "measure 'delivery_days' is missing"),
        (lambda t: t.vstack(t.tail(1)), "link_rate for each_site / * appears twice"),
        (
            lambda t: t.with_columns(
                pl.when(pl.col("measure") == "participants")
                .then(pl.lit("9"))
                .otherwise(pl.col("min"))
                .alias("min")
            ),
            "min 9 is above max 4",
        ),
        (
            lambda t: t.with_columns(
                pl.when(pl.col("measure") == "link_rate")
                .then(pl.lit(""))
                .otherwise(pl.col("source"))
                .alias("source")
            ),
            "source is empty",
        ),
        (
            lambda t: t.with_columns(
                pl.when(pl.col("measure") == "link_rate")
                .then(pl.lit("lots"))
                .otherwise(pl.col("min"))
                .alias("min")
            ),
            "must be numbers",
        ),
        (
            lambda t: t.with_columns(
                pl.when(pl.col("measure") == "link_rate")
                .then(pl.lit("mars"))
                .otherwise(pl.col("scope"))
                .alias("scope")
            ),
            "scope 'mars'",
        ),
        (
            lambda t: t.with_columns(
                pl.when(pl.col("measure") == "planned_months")
                .then(pl.lit("12"))
                .otherwise(pl.col("max"))
                .alias("max")
            ),
            "three phases",
        ),
        (lambda t: t.drop("source"), "lacks column(s) source"),
    ],
)
def test_an_incomplete_targets_table_is_refused_with_the_reason(edit, message: str) -> None:
    broken = edit(TARGETS)
    assert any(message in p for p in target_problems(broken, sites=("a", "b"))), target_problems(
        broken, sites=("a", "b")
    )
    with pytest.raises(ValueError, match="monitoring_targets.csv is not usable"):
        Targets.from_table(broken, sites=("a", "b"))


def test_the_packaged_targets_are_complete_and_cti_config_check_sees_a_broken_copy(tmp_path) -> None:
    from pipelines.configuration import ConfigDir

    assert ConfigDir().check() == []
    sites = tuple(ConfigDir().site_ids())
    packaged = Targets.from_table(ConfigDir().table("monitoring_targets"), sites=sites)
    assert (packaged.planned_months, packaged.phase_months) == (9, 3)
    TARGETS.filter(pl.col("measure") != "link_rate").vstack(TARGETS.head(1)).write_csv(
        tmp_path / "monitoring_targets.csv"
    )
    problems = [str(p) for p in ConfigDir(tmp_path).check()]
    assert any("monitoring_targets.csv: measure 'link_rate' is missing" in p for p in problems), problems
    assert any(
        "monitoring_targets.csv row 7: planned_months for programme / * appears twice" in p for p in problems
    )


def test_ended_courses_by_phase_and_completion(result) -> None:
    ends = result.endings.filter(pl.col("courses") > 0)
    got = {
        (r["site"], r["quarter"], r["phase"], r["completion"]): r["courses"]
        for r in ends.iter_rows(named=True)
    }
    assert got == {
        ("a", "2024Q2", "phase_1", "early"): 1,
        ("a", "2024Q4", "phase_3", "completed"): 1,
        ("b", "2024Q3", "phase_1", "unknown"): 1,
        (PROGRAMME, "2024Q2", "phase_1", "early"): 1,
        (PROGRAMME, "2024Q4", "phase_3", "completed"): 1,
        (PROGRAMME, "2024Q3", "phase_1", "unknown"): 1,
    }


def test_recent_flags_name_each_problem_once(result) -> None:
    from dataclasses import replace

    twice = result.delivery.with_columns(
        pl.when(pl.col("site") == "b").then(pl.lit("late")).otherwise(pl.col("flags")).alias("flags"))
    slips = {r["site"]: r for r in slipping_sites(replace(result, delivery=twice)).iter_rows(named=True)}
    assert slips["b"]["recent_flags"] == "late"
    assert slips["a"]["recent_flags"] == "resubmitted; missing file"
