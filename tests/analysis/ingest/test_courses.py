from datetime import date

import polars as pl

from analysis.ingest.courses import consolidate_courses
from analysis.schema import COURSES

P1, P2 = "a" * 64, "b" * 64


def _row(pseudonym, quarter, start, end=None, completed=None, site="aarhus", sha="s1",
         received="2024-04-20T00:00:00", group="GRL", superseded=False):
    return {"pseudonym": pseudonym, "key_id": "k1", "site": site, "quarter": quarter, "start_date": start,
            "end_date": end, "delmaalgruppe": group, "completed": completed, "sex": 1,
            "birth_date": date(1990, 1, 1), "sha256": sha, "filename": f"{site}.csv", "received": received,
            "superseded": superseded}


def _history(*rows):
    return pl.DataFrame(list(rows), schema_overrides={"end_date": pl.Date, "completed": pl.Boolean})


def test_ongoing_then_ended_is_one_course() -> None:
    result = consolidate_courses(_history(
        _row(P1, "2024Q1", date(2024, 2, 1), sha="q1"),
        _row(P1, "2024Q4", date(2024, 2, 1), date(2024, 11, 1), True, sha="q4",
             received="2025-01-20T00:00:00"),
    ))
    assert result.courses.schema == COURSES
    row = result.courses.row(0, named=True)
    assert result.courses.height == 1
    assert ((row["end_date"], row["completed"], row["first_reported"], row["last_reported"])
            == (date(2024, 11, 1), True, "2024Q1", "2024Q4"))


def test_resubmission_supersedes_earlier_file_of_the_quarter() -> None:
    result = consolidate_courses(_history(
        _row(P1, "2024Q2", date(2024, 5, 1), group="OVG", sha="v1", superseded=True),
        _row(P1, "2024Q2", date(2024, 5, 2), group="GRL", sha="v2", received="2024-08-01T00:00:00"),
    ))
    assert result.courses["start_date"].to_list() == [date(2024, 5, 2)]
    assert set(result.submission_log["sha256"]) == {"v1", "v2"}


def test_reingesting_the_same_rows_changes_nothing() -> None:
    rows = [_row(P1, "2024Q1", date(2024, 2, 1)), _row(P2, "2024Q1", date(2024, 3, 1))]
    once = consolidate_courses(_history(*rows))
    twice = consolidate_courses(_history(*rows, *rows))
    assert once.courses.equals(twice.courses)


def test_conflicts_are_flagged_and_both_courses_kept() -> None:
    result = consolidate_courses(_history(
        _row(P1, "2024Q1", date(2024, 2, 1), site="aarhus"),
        _row(P1, "2024Q1", date(2024, 3, 1), site="odense"),  # overlapping course at another site
        _row(P2, "2024Q1", date(2024, 2, 1)),
        _row(P2, "2024Q2", date(2024, 2, 20), sha="x2", received="2024-07-20T00:00:00"),  # start date changed
    ))
    assert result.courses.height == 4
    assert sorted(result.conflicts["kind"].to_list()) == ["changed_start_date", "overlapping_courses"]
    assert result.courses["course_id"].n_unique() == 4
