"""Consolidate pseudonymised rows of every quarter into one record per person and course.

* A resubmitted quarter supersedes the earlier file of that site and quarter (the log keeps both).
* A course reported ongoing in one quarter and with an end date in a later one is one course: the latest
  quarter's report wins for end date, completion and delmålgruppe.
* Conflicts (overlapping courses of one person, a start date that seems to have changed, a delmålgruppe that
  changed between quarters) are flagged for stewards and never silently resolved: both courses are kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from analysis.schema import COURSES

CHANGED_START_WINDOW_DAYS = 60


@dataclass(frozen=True, slots=True)
class Consolidated:
    """Courses, conflicts for stewards, and the log of every received file."""

    courses: pl.DataFrame
    conflicts: pl.DataFrame
    submission_log: pl.DataFrame


def course_ids(frame: pl.DataFrame, /) -> pl.Series:
    """Return the stable ``course_id`` of each row: a hash of (pseudonym, site, start date), no CPR."""
    keys = frame.select(pl.format("{}|{}|{}", "pseudonym", "site", "start_date")).to_series()
    return pl.Series("course_id", [hashlib.sha256(k.encode()).hexdigest()[:16] for k in keys.to_list()],
                     dtype=pl.String)



def consolidate_courses(history: pl.DataFrame, /, *, received: pl.DataFrame | None = None) -> Consolidated:
    """Return courses (``analysis.schema.COURSES``), conflicts and the submission log.

    Parameters
    ----------
    history
        Pseudonymised clean rows of every received file: pseudonym, key_id, site, quarter, start_date,
        end_date, delmaalgruppe, completed, sex, birth_date, sha256, filename, received (and optionally
        version/superseded; without them the latest received file per site and quarter counts).
    received
        Optional log of every received file (site, quarter, filename, sha256, received, ...), including
        files with no clean rows; it becomes the submission log. Without it the log is derived
        from ``history``.
    """
    needed = ["pseudonym", "key_id", "site", "quarter", "start_date", "end_date", "delmaalgruppe",
              "completed", "sex", "birth_date", "sha256", "received"]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise ValueError(f"consolidate_courses needs columns {missing}")
    key_ids = sorted(history["key_id"].drop_nulls().unique().to_list())
    if len(key_ids) > 1:  # pseudonyms of two keys never match: the same person would count twice
        raise ValueError(f"the pseudonymised rows carry {len(key_ids)} key ids ({', '.join(key_ids)}); "
                         "courses cannot be consolidated across keys. Rerun the partitions made with the "
                         "other key using the data directory's key, or re-pseudonymise everything with "
                         "`cti rotate-key`.")
    rows = history
    if "filename" not in rows.columns:
        rows = rows.with_columns(filename=pl.lit(None, pl.String))
    # otherwise ingest decided it from every receipt, empty files included
    if "superseded" not in rows.columns:
        latest = rows.group_by("site", "quarter").agg(pl.col("received").max().alias("_latest"))
        rows = rows.join(latest, on=["site", "quarter"], how="left", validate="m:1").with_columns(
            superseded=pl.col("received") < pl.col("_latest")
        )
    if received is not None:
        log = received.sort("site", "quarter", "received", "sha256")
    else:
        log = (
            rows.group_by("site", "quarter", "sha256")
            .agg(pl.col("filename").first(), pl.col("received").first(), pl.col("superseded").first(),
                 rows=pl.len())
            .sort("site", "quarter", "received", "sha256")
        )
    current = rows.filter(~pl.col("superseded")).unique(
        subset=["pseudonym", "site", "quarter", "start_date", "end_date", "delmaalgruppe", "completed"],
        keep="first"
    )
    ordered = current.sort("pseudonym", "site", "start_date", "quarter", "received")
    courses = ordered.group_by("pseudonym", "site", "start_date", maintain_order=True).agg(
        pl.col("key_id").last(),
        pl.col("end_date").last(),
        pl.col("delmaalgruppe").last(),
        pl.col("completed").last(),
        pl.col("sex").first(),
        pl.col("birth_date").first(),
        first_reported=pl.col("quarter").min(),
        last_reported=pl.col("quarter").max(),
        _groups=pl.col("delmaalgruppe").n_unique(),
    )
    courses = courses.with_columns(course_ids(courses))
    conflicts = _conflicts(courses)
    out = (courses.select([pl.col(c).cast(t) for c, t in COURSES.items()])
           .sort("pseudonym", "site", "start_date"))
    return Consolidated(out, conflicts, log)


def _conflicts(courses: pl.DataFrame) -> pl.DataFrame:
    schema = {"pseudonym": pl.String, "key_id": pl.String, "kind": pl.String, "sites": pl.String,
              "course_ids": pl.String, "message": pl.String}
    found = []
    changed = courses.filter(pl.col("_groups") > 1)
    for row in changed.iter_rows(named=True):
        found.append({"pseudonym": row["pseudonym"], "key_id": row["key_id"], "kind": "changed_field",
                      "sites": row["site"],
                      "course_ids": row["course_id"],
                      "message": "delmålgruppe differs between quarters for the same course; the latest "
                                 "report is used"})
    pairs = (
        courses.select("pseudonym", "key_id", "site", "start_date", "end_date", "course_id")
        .join(courses.select("pseudonym", "site", "start_date", "end_date", "course_id"), on="pseudonym",
              suffix="_b")
        .filter(pl.col("course_id") < pl.col("course_id_b"))
    )
    far = pl.date(9999, 12, 31)
    overlap = (pl.col("start_date") <= pl.col("end_date_b").fill_null(far)) & (
        pl.col("start_date_b") <= pl.col("end_date").fill_null(far)
    )
    near = (pl.col("start_date") - pl.col("start_date_b")).dt.total_days().abs() <= CHANGED_START_WINDOW_DAYS
    for row in pairs.with_columns(_overlap=overlap, _near=near).iter_rows(named=True):
        if row["site"] == row["site_b"] and row["_near"]:
            kind, text = ("changed_start_date",
                          "two start dates close together at one site: probably a corrected start date")
        elif row["_overlap"]:
            kind, text = "overlapping_courses", "the person has overlapping courses"
        else:
            continue
        sites = row["site"] if row["site"] == row["site_b"] else f"{row['site']},{row['site_b']}"
        found.append({"pseudonym": row["pseudonym"], "key_id": row["key_id"], "kind": kind, "sites": sites,
                      "course_ids": f"{row['course_id']},{row['course_id_b']}",
                      "message": text + "; both are kept until a steward decides"})
    return pl.DataFrame(found, schema=schema).sort("pseudonym", "kind", "course_ids")
