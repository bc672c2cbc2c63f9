"""Three quarters of deliveries from two sites, ingested the way the ingest assets do it, without Dagster.

aarhus sends CSV, odense an .xlsx whose data sheet is the second. Every CPR is synthetic (day + 60).

=========  ======================================================================================
2024Q1     aarhus: impossible date (A, line 3), unknown code (B, line 5), totals row (line 6);
           odense: impossible ISO date (C, sheet 'Forløb' row 3), a CPR not in the register (U, row 5)
2024Q2     aarhus: unreadable date (D, line 3), a changed start date of an ongoing course (E), totals row;
           odense: the same courses again
2024Q3     aarhus: a two-digit-year impossible date (F), no totals row; and a corrected 2024Q1 file
           (``aarhus_rettet.csv``, A corrected, B not) received during the round;
           odense: nothing new
=========  ======================================================================================
"""

from __future__ import annotations

import io
from datetime import date

import polars as pl
from openpyxl import Workbook

from analysis.ingest import pseudonym
from analysis.ingest.courses import consolidate_courses
from analysis.ingest.submissions import columns_record, read_submission
from analysis.ingest.validate import validate_rows
from analysis.publish.feedback import FeedbackInputs, FeedbackSettings
from analysis.publish.monitoring import Targets
from pipelines.configuration import ConfigDir

KEY = b"test-key-" + b"0123456789abcdef" * 3
CONFIG = ConfigDir()
HEADER = "CPR-nr.;Startdato;Slutdato;Delmålgruppe;Gennemført"
UNREGISTERED = "660190-1230"  # not in the (pretend) population register


def _csv(*lines: str) -> bytes:
    return ("\r\n".join([HEADER, *lines]) + "\r\n;;;;\r\n").encode("cp1252")


def _xlsx(*rows: list) -> bytes:
    book = Workbook()
    book.active.title = "Vejledning"
    book.active.append(["Indberetning af CTI-forløb. Udfyld arket 'Forløb'."])
    sheet = book.create_sheet("Forløb")
    sheet.append(["CPR", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


#: The CPR numbers the files use (the asset test maps them onto the mock world's persons).
CPRS = ("610190-1235", "710285-2346", "620190-1236", "630190-1237", "670190-1231", "640190-1238",
        "650190-1239", UNREGISTERED)


def files(cpr=lambda c: c) -> dict[str, bytes]:
    """The delivered files by name (``cpr`` maps each fixture CPR to the one to write)."""
    a, b, c, d, f, g, h, u = (cpr(x) for x in CPRS)
    return {
        "aarhus_q1": _csv(f"{a};15-01-2024;;GRL;", f"{b};31-02-2024;;OVG;", ";;;;", f"{c};01-02-2024;;ZZ9;",
                          "I alt;3;;;"),
        "aarhus_q1_corrected": _csv(f"{a};15-01-2024;;GRL;", f"{b};28-02-2024;;OVG;",
                                    f"{c};01-02-2024;;ZZ9;"),
        "aarhus_q2": _csv(f"{a};20-01-2024;;GRL;", f"{d};primo 05/2024;;GRL;", "I alt;2;;;"),
        "aarhus_q3": _csv(f"{a};20-01-2024;;GRL;", f"{f};31-02-24;;PSY;"),
        "odense_q1": _xlsx([g, "01-03-2024", None, "PSY", None], [h, "2024-02-30", None, "FAE", None],
                           [None, None, None, None, None], [u, "15-03-2024", None, "GRL", None]),
        "odense_q2": _xlsx([g, "01-03-2024", None, "PSY", None], [u, "15-03-2024", None, "GRL", None]),
    }


def deliveries(cpr=lambda c: c) -> list[tuple[str, str, str, bytes, str]]:
    """(quarter, site, file name, content, received) in the order they arrive."""
    content = files(cpr)
    return [
        ("2024Q1", "aarhus", "aarhus.csv", content["aarhus_q1"], "2024-04-20T00:00:00+00:00"),
        ("2024Q1", "odense", "odense.xlsx", content["odense_q1"], "2024-04-21T00:00:00+00:00"),
        ("2024Q2", "aarhus", "aarhus.csv", content["aarhus_q2"], "2024-07-20T00:00:00+00:00"),
        ("2024Q2", "odense", "odense.xlsx", content["odense_q2"], "2024-07-19T00:00:00+00:00"),
        ("2024Q3", "aarhus", "aarhus.csv", content["aarhus_q3"], "2024-10-20T00:00:00+00:00"),
        ("2024Q3", "odense", "odense.xlsx", content["odense_q2"], "2024-10-20T00:00:00+00:00"),
        ("2024Q1", "aarhus", "aarhus_rettet.csv", content["aarhus_q1_corrected"],
         "2024-10-25T00:00:00+00:00"),
    ]


DELIVERIES = deliveries()
_FILES = files()
AARHUS_Q1, AARHUS_Q1_CORRECTED, AARHUS_Q2, AARHUS_Q3 = (_FILES[k] for k in (
    "aarhus_q1", "aarhus_q1_corrected", "aarhus_q2", "aarhus_q3"))
ODENSE_Q1 = _FILES["odense_q1"]
def settings(targets: pl.DataFrame | None = None, /, **feedback: str) -> FeedbackSettings:
    """The packaged feedback settings (``feedback`` replaces the rows); deadlines from ``targets``."""
    table = CONFIG.table("feedback")
    if feedback:
        table = pl.DataFrame({"setting": list(feedback), "value": list(feedback.values())})
    plan = Targets.from_table(CONFIG.table("monitoring_targets") if targets is None else targets,
                              sites=("aarhus", "odense"))
    return FeedbackSettings.from_tables(table, targets=plan, sites=("aarhus", "odense"))


SITES = pl.DataFrame({"site": ["aarhus", "odense"], "name": ["Aarhus Kommune", "Odense Kommune"],
                      "kom": ["751", "461"], "joined": ["2024-01-01", "2024-01-01"]})


def _quarter_end(label: str) -> date:
    from analysis.ingest.reasons import quarter_bounds

    return quarter_bounds(label)[1]


def ingest(delivered=DELIVERIES, /, *, unreadable: pl.DataFrame | None = None) -> FeedbackInputs:
    """What the ingest, courses and linkage assets would hold after ``delivered``."""
    key_id = pseudonym.key_id(KEY)
    codes = CONFIG.table("delmaalgrupper")
    quarantine, clean, received, stats = [], [], [], []
    by_partition: dict[tuple[str, str], list] = {}
    for delivery in delivered:
        by_partition.setdefault(delivery[:2], []).append(delivery)
    for (quarter, site), versions in by_partition.items():
        versions = sorted(versions, key=lambda d: d[4])
        for number, (_, _, filename, content, when) in enumerate(versions, start=1):
            raw = read_submission(content, filename=filename)
            tags = pl.DataFrame({"sha256": [raw.sha256], "filename": [filename], "received": [when],
                                 "version": [number], "superseded": [number < len(versions)]},
                                schema={"sha256": pl.String, "filename": pl.String, "received": pl.String,
                                        "version": pl.Int32, "superseded": pl.Boolean})
            result = validate_rows(raw.rows, quarter=quarter, site=site, codes=codes,
                                   today=_quarter_end(quarter))
            quarantine.append(result.quarantine.join(tags, how="cross"))
            clean.append(result.clean.join(tags, how="cross"))
            received.append(tags.with_columns(
                quarter=pl.lit(quarter), site=pl.lit(site), readable=pl.lit(True),
                note=pl.lit("; ".join(raw.notes)), columns=pl.lit(columns_record(raw)),
                sheet=pl.lit(raw.sheet, pl.String)))
            stats.append(tags.with_columns(
                quarter=pl.lit(quarter), site=pl.lit(site), rows_in=pl.lit(result.rows_in, pl.Int64),
                clean=pl.lit(result.clean.height, pl.Int64),
                quarantined=pl.lit(result.quarantine.height, pl.Int64),
                duplicates=pl.lit(result.exact_duplicates_removed, pl.Int64)))
    history = pseudonym.pseudonymise(pl.concat(clean, how="diagonal_relaxed"), key=KEY, key_id=key_id)
    unregistered = pseudonym.pseudonym_of(UNREGISTERED.replace("-", ""), KEY)
    registered = history.select("pseudonym").unique().filter(pl.col("pseudonym") != unregistered)
    consolidated = consolidate_courses(history)
    unlinked = consolidated.courses.join(registered, on="pseudonym", how="anti").select(
        "pseudonym", "site", "start_date", "first_reported")
    return FeedbackInputs(
        quarantine=pl.concat(quarantine, how="diagonal_relaxed"),
        received=pl.concat(received, how="diagonal_relaxed"),
        stats=pl.concat(stats, how="diagonal_relaxed"), history=history, registered=registered,
        conflicts=consolidated.conflicts, unlinked=unlinked, sites=SITES, codes=codes, unreadable=unreadable)


def until(when: str) -> list:
    """The deliveries received before ``when``."""
    return [d for d in DELIVERIES if d[4] < when]
