"""The sites' quarterly submission files, with deliberately bad rows and resubmissions."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from analysis.mockworld.registers import cpr_key
from analysis.mockworld.world import SubmissionFile, World

# --- the sites' quarterly submission files ---------------------------------------------------------------

#: How each site's case system exports (deterministic by the site's position in sites.csv). ``encoding`` is
#: the codec the bytes are written in (``utf-8-sig`` = UTF-8 with BOM); xlsx files have none.
_STYLES = (
    {
        "ext": "csv",
        "encoding": "cp1252",
        "sep": ";",
        "headers": ("CPR-nr.", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"),
        "date": "%d-%m-%Y",
        "yes": ("Ja", "Nej"),
        "cpr": "hyphen",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "utf-8-sig",
        "sep": ";",
        "headers": ("Personnummer", "Start dato", "Slut dato", "Målgruppe", "Afsluttet (ja/nej)"),
        "date": "%d.%m.%Y",
        "yes": ("J", "N"),
        "cpr": "plain",
        "totals": True,
    },
    {
        "ext": "xlsx",
        "encoding": None,
        "sep": None,
        "headers": ("CPR", "Startdato", "Slutdato", "Delmaalgruppe", "Gennemført"),
        "date": "excel",
        "yes": ("1", "0"),
        "cpr": "number",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "latin-1",
        "sep": ",",
        "headers": ("cpr_nr", "startdato", "slutdato", "delmålgruppe", "gennemført"),
        "date": "%Y-%m-%d",
        "yes": ("x", ""),
        "cpr": "spaces",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "utf-8",
        "sep": ";",
        "headers": ("CPR nr", "Startdato", "Ophørsdato", "Delmålgruppe (kode)", "Gennemført"),
        "date": "%Y-%m-%d",
        "yes": ("Ja", "Nej"),
        "cpr": "hyphen",
        "totals": False,
    },
    {
        "ext": "csv",
        "encoding": "cp1252",
        "sep": ";",
        "headers": ("CPR-nr.", "Opstart", "Afslutningsdato", "Målgruppe", "Fuldført"),
        "date": "%d-%m-%Y",
        "yes": ("Ja", "Nej"),
        "cpr": "drop_zero",
        "totals": True,
    },
    {
        "ext": "csv",
        "encoding": "utf-8-sig",
        "sep": ",",
        "headers": ("Personnummer", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"),
        "date": "%d.%m.%Y",
        "yes": ("Ja", "Nej"),
        "cpr": "plain",
        "totals": False,
    },
)

#: Deliberate defects: (kind, the quarantine reason the ingest must give).
BAD_KINDS = (
    ("cpr_invalid_date", "cpr_invalid_date"),
    ("cpr_wrong_length", "cpr_wrong_length"),
    ("end_before_start", "end_before_start"),
    ("unknown_code", "unknown_delmaalgruppe"),
    ("missing_start", "missing_required_field"),
    ("bad_date", "date_unparseable"),
)
#: The site and quarter whose file is resubmitted (corrected) two weeks after the first delivery.
RESUBMISSION = (0, "2025Q1")


def _quarters(reference: date) -> list[tuple[str, date, date]]:
    out, year, q = [], 2024, 1
    while True:
        start = date(year, 3 * q - 2, 1)
        end = (date(year + (q == 4), (3 * q) % 12 + 1, 1)) - timedelta(days=1)
        if start > reference:
            return out
        out.append((f"{year}Q{q}", start, end))
        year, q = (year + 1, 1) if q == 4 else (year, q + 1)


def _format_cpr(cpr: str, style: str) -> str | int:
    if style == "hyphen":
        return f"{cpr[:6]}-{cpr[6:]}"
    if style == "spaces":
        return f"{cpr[:6]} {cpr[6:]}"
    if style == "number":
        return int(cpr)  # Excel stores it as a number: a leading zero would be lost
    if style == "drop_zero":
        return cpr[1:] if cpr.startswith("0") else cpr
    return cpr


def submissions(world: World) -> list[SubmissionFile]:
    """Every quarterly file each site delivers, as bytes, with deliberate realistic mess.

    For each quarter 2024Q1..the reference quarter and each site that had joined by the quarter's end, one
    file lists every participant of the site whose course was active in the quarter (started on or before
    its end, not ended before its start). A course still running at the quarter's end has an empty end date
    and completion field; it is reported again, with its end date, in the quarter it ends. One site and
    quarter (``RESUBMISSION``) has a corrected second version (``<site>_rettet.<ext>``, version 2, received
    later) that supersedes the first. ``truth(world)["submissions"]`` lists every defect, in the same order.
    """
    return [f for f, _ in _submissions_with_truth(world)]


def _submissions_with_truth(world: World) -> list[tuple[SubmissionFile, dict]]:
    cfg = world.config
    part = world.participants
    key = cpr_key(world)
    cprs = key["CPR"].to_numpy()
    out = []
    rotation = [0]  # defect kinds rotate across all files, so every kind occurs once there are six bad rows
    for position, site_row in enumerate(world.sites.iter_rows(named=True)):
        style = _STYLES[position % len(_STYLES)]
        joined = date.fromisoformat(str(site_row["joined"]))
        mine = part.filter(pl.col("site") == site_row["site"]).sort("start", "PNR")
        for quarter, q_start, q_end in _quarters(cfg.reference_date):
            if joined > q_end:
                continue
            active = mine.filter((pl.col("start") <= q_end) & (pl.col("end") >= q_start))
            rng = np.random.default_rng([cfg.seed, 7, position, int(quarter[:4]), int(quarter[-1])])
            received = datetime.combine(q_end + timedelta(days=20), datetime.min.time(), tzinfo=UTC)
            versions = [(1, received, cfg.bad_row_share)]
            if (position, quarter) == RESUBMISSION:  # a corrected resubmission two weeks later
                versions = [
                    (1, received, -1.0),
                    (2, received + timedelta(days=14), 0.0),
                ]  # -1: v1 to be corrected
            first_name = site_row["site"] + "." + style["ext"]
            for version, when, bad_share in versions:
                rows, truth_rows = _rows(active, cprs, style, q_end, rng, bad_share, rotation)
                content = _encode(rows, style)
                name = first_name if version == 1 else site_row["site"] + "_rettet." + style["ext"]
                truth = {
                    "quarter": quarter,
                    "site": site_row["site"],
                    "filename": name,
                    "version": version,
                    "received": when.isoformat(),
                    "superseded": version < len(versions),
                    "supersedes": first_name if version > 1 else None,
                    "encoding": style["encoding"],
                    "delimiter": style["sep"],
                    **truth_rows,
                }
                sub = SubmissionFile(
                    quarter, site_row["site"], name, content, version, when, style["encoding"]
                )
                out.append((sub, truth))
    return out


def _rows(active, cprs, style, q_end, rng, bad_share, rotation):
    """Build the data rows of one file and their truth; see ``truth`` for the row-numbering convention."""
    rows, bad, duplicates, repaired, ongoing = [], [], 0, 0, 0
    warnings = []
    fmt_date = (lambda d: d) if style["date"] == "excel" else (lambda d: d.strftime(style["date"]))
    to_correct = bad_share < 0  # the first version of a resubmitted file: its first row is always defective
    bad_share = 0.25 if to_correct else bad_share
    for rec in active.iter_rows(named=True):
        cpr = cprs[rec["PNR"]]
        ended = rec["end"] <= q_end
        ongoing += not ended
        row = [
            _format_cpr(cpr, style["cpr"]),
            fmt_date(rec["start"]),
            fmt_date(rec["end"]) if ended else "",
            rec["delmaalgruppe"],
            (style["yes"][0] if rec["completed"] else style["yes"][1]) if ended else "",
        ]
        reason = None
        if rng.random() < bad_share or (to_correct and not rows):
            kind, reason = BAD_KINDS[rotation[0] % len(BAD_KINDS)]
            rotation[0] += 1
            variant = rng.random() < 0.5
            if kind == "cpr_invalid_date":  # month 13, or a day beyond 91 (no date even with day + 60)
                row[0] = (
                    f"{cpr[:2]}13{cpr[4:6]}-{cpr[6:]}"
                    if variant
                    else f"{92 + int(rng.integers(0, 8))}{cpr[2:6]}-{cpr[6:]}"
                )
            elif kind == "cpr_wrong_length":  # a digit too many, or two missing
                row[0] = cpr + "7" if variant else f"{cpr[:6]}-{cpr[6:8]}"
            elif kind == "end_before_start":
                row[2] = fmt_date(rec["start"] - timedelta(days=30))
                row[4] = style["yes"][1]
            elif kind == "unknown_code":
                row[3] = "ZZ9" if variant else "GRØ"
            elif kind == "missing_start":
                row[1] = ""
            else:
                row[1] = (
                    "primo " + rec["start"].strftime("%m/%Y")
                    if variant
                    else rec["start"].strftime("%d-%m-%Y") + "?"
                )
        elif style["cpr"] in ("number", "drop_zero") and cpr.startswith(
            "0"
        ):  # pragma: no cover - see truth()
            repaired += 1
            warnings.append({"source_row": len(rows) + 1, "warning": "cpr_repaired_leading_zero"})
        rows.append(row)
        if reason is not None:
            bad.append({"source_row": len(rows), "reason": reason})
        elif rng.random() < 0.01:  # an exact duplicate line (copy-paste in the case system)
            rows.append(list(row))
            duplicates += 1
    good = len(rows) - len(bad) - duplicates
    if (style["totals"] and rows) or (to_correct and not rows):
        rows.append(["I alt", str(len(rows)), "", "", ""])
        bad.append({"source_row": len(rows), "reason": "not_a_data_row"})
    return rows, {
        "rows_total": len(rows),
        "good_rows": good,
        "exact_duplicates": duplicates,
        "ongoing_rows": ongoing,
        "repaired_cpr": repaired,
        "warnings": warnings,
        "bad_rows": bad,
    }


def _encode(rows: list[list], style: dict) -> bytes:
    if style["ext"] == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        guide = book.active
        guide.title = "Vejledning"
        guide.append(["Indberetning af CTI-forløb. Udfyld arket 'Forløb'. Én række pr. borger."])
        sheet = book.create_sheet("Forløb")
        sheet.append(list(style["headers"]))
        for row in rows:
            sheet.append(row)
        for cell in sheet["B"][1:] + sheet["C"][1:]:
            if isinstance(cell.value, date):
                cell.number_format = "DD-MM-YYYY"
        buffer = io.BytesIO()
        book.properties.created = datetime(2024, 1, 1)
        book.properties.modified = datetime(2024, 1, 1)
        book.save(buffer)
        return _fixed_zip_times(buffer.getvalue())
    sep = style["sep"]
    lines = [sep.join(style["headers"])] + [sep.join(str(v) for v in row) for row in rows]
    lines += [sep * 4, sep * 4]  # empty trailing rows, as spreadsheet exports leave them
    return ("\r\n".join(lines) + "\r\n").encode(style["encoding"])


def _fixed_zip_times(content: bytes) -> bytes:
    """Rewrite an .xlsx (zip) with fixed member timestamps so the same world gives the same bytes."""
    import zipfile

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = source.read(item.filename)
            if item.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                data = re.sub(
                    rb"(<dcterms:(?:modified|created)[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z", data
                )
            target.writestr(info, data)
    return out.getvalue()
