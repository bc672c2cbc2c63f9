"""The feedback items in words, in Danish (what a site reads) or English (for SBST staff).

Row-level sentences come from ``analysis.ingest.reasons``; this module words the other items (a file-level
problem, a course conflict, a course not found in the population register, an unreadable file) and turns
every item frame of :class:`analysis.publish.feedback.Feedback` into display-ready frames. The general
version masks CPR numbers to their shape; the restricted one (for ``restricted/``) keeps them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import polars as pl

from analysis.ingest import reasons as texts
from analysis.ingest.courses import CHANGED_START_WINDOW_DAYS
from analysis.publish.feedback import (
    NEW,
    OUTSTANDING,
    RESOLVED,
    Feedback,
    mask_cpr,
    mask_text,
    quarter_code,
    quarter_span,
)

DANISH, ENGLISH = texts.DANISH, texts.ENGLISH

STATUS = {DANISH: {NEW: "Ny", OUTSTANDING: "Udestående", RESOLVED: "Rettet"},
          ENGLISH: {NEW: "New", OUTSTANDING: "Outstanding", RESOLVED: "Corrected"}}

#: (label, rule, advice) of the items that are not quarantined rows.
ITEM_TEXTS = {
    DANISH: {
        "overlapping_courses": (
            "Overlappende forløb", "En borger kan kun være i ét CTI-forløb ad gangen.",
            "Kontrollér datoerne. Er det det samme forløb, så brug samme startdato i alle kvartaler; er det "
            "to forløb, så ret slutdatoen på det første, så de ikke overlapper."),
        "changed_start_date": (
            "Ændret startdato",
            f"To startdatoer højst {CHANGED_START_WINDOW_DAYS} dage fra hinanden for samme borger hos samme "
            f"indberetter regnes for det samme forløb med en rettet startdato.",
            "Brug den rigtige startdato for forløbet i alle kvartaler: ret den forkerte, og send det "
            "kvartals fil igen."),
        "changed_field": (
            "Ændret delmålgruppe", "Et forløbs delmålgruppe er den samme i alle kvartaler.",
            "Er ændringen rigtig, skal I ikke gøre noget. Ellers ret delmålgruppen i den seneste fil, og "
            "send den igen."),
        "unlinked": (
            "Ikke fundet i befolkningsregistret",
            "Alle CPR-numre skal findes i befolkningsregistret (CPR); ellers kan forløbet ikke følges i "
            "registrene.",
            "Kontrollér CPR-nummeret i rækken, fx for byttede cifre. Har borgeren et "
            "erstatningspersonnummer, så send det rigtige CPR-nummer, når borgeren har fået det."),
        "totals": (
            "Sumrække i filen", "Filen må kun indeholde forløb: ingen rækker med i alt, total, antal eller "
                                "sum.",
            "Fjern sum- og totalrækken fra kommende filer. Tidligere filer skal ikke sendes igen af den "
            "grund."),
        "missing_column": (
            "Kolonne mangler", "Filen har en kolonne for hver af CPR-nr., Startdato, Slutdato, Delmålgruppe "
                               "og "
            "Gennemført.", "Giv kolonnen overskriften '{standard}', og send filerne for {quarters} igen."),
    },
    ENGLISH: {
        "overlapping_courses": (
            "Overlapping courses", "A person can be in one CTI course at a time.",
            "Check the dates. If it is the same course, use the same start date in every quarter; if they "
            "are two courses, correct the end date of the first so they do not overlap."),
        "changed_start_date": (
            "Changed start date",
            f"Two start dates at most {CHANGED_START_WINDOW_DAYS} days apart for the same person at the same "
            "site are taken for one course whose start date was corrected.",
            "Use the right start date for the course in every quarter: correct the wrong one and resend that "
            "quarter's file."),
        "changed_field": (
            "Changed delmålgruppe", "A course's delmålgruppe is the same in every quarter.",
            "If the change is right, nothing needs doing. Otherwise correct the delmålgruppe in the latest "
            "file and resend it."),
        "unlinked": (
            "Not found in the population register",
            "Every CPR number must be in the population register (CPR); otherwise the course cannot be "
            "followed in the registers.",
            "Check the CPR number on the row, e.g. for swapped digits. If the person has a replacement "
            "number, send the real CPR number once the person has one."),
        "totals": (
            "Totals row in the file", "The file may only hold courses: no rows of totals, counts or sums.",
            "Remove the totals row from future files. Earlier files need not be resent for this."),
        "missing_column": (
            "Column missing", "The file has a column for each of CPR-nr., Startdato, Slutdato, Delmålgruppe "
                              "and "
            "Gennemført.", "Name the column '{standard}' and resend the files for {quarters}."),
    },
}

_WORDS = {
    DANISH: {
        "course": "forløbet med start {start}{end} ({ref})", "ended": " og slut {end}",
        "ref": "{filename} for {quarter}, {where}",
        "overlapping_courses": "To forløb for samme borger overlapper: {a} og {b}.",
        "changed_start_date": "Samme borger har to startdatoer {days} dage fra hinanden: {a} og {b}. Det er "
                              "sandsynligvis det samme forløb med en rettet startdato.",
        "changed_field": "Delmålgruppen for {a} er ændret mellem kvartalerne ({history}). Vi bruger den "
                         "seneste, {latest}.",
        "cross_site": "Borgeren har også et forløb hos en anden indberetter ({sites}) i samme periode.",
        "unlinked": "CPR-nummeret for forløbet, der starter {start} ({ref}), findes ikke i "
                    "befolkningsregistret, så forløbet kan ikke følges i registrene.",
        "totals": "Filen har en sum- eller totalrække ({where}: '{text}'); den tælles ikke som et "
                  "forløb.{also}",
        "totals_also": " Det samme gjaldt filerne for {quarters}.",
        "missing_column": "Filen {filename} har ingen kolonne for {field}, så {consequence}. Kolonnerne i "
                          "filen er: {headers}. Det gælder filerne for {quarters}.",
        "end_date": "alle forløb står, som om de stadig var i gang",
        "completed": "det kan ikke ses, om de afsluttede forløb blev gennemført",
        "and": " og ",
    },
    ENGLISH: {
        "course": "the course starting {start}{end} ({ref})", "ended": " and ending {end}",
        "ref": "{filename} for {quarter}, {where}",
        "overlapping_courses": "Two courses of the same person overlap: {a} and {b}.",
        "changed_start_date": "The same person has two start dates {days} days apart: {a} and {b}. Probably "
                              "one course whose start date was corrected.",
        "changed_field": "The delmålgruppe of {a} changed between quarters ({history}). The latest, "
                         "{latest}, is used.",
        "cross_site": "The person also has a course at another site ({sites}) in the same period.",
        "unlinked": "The CPR number of the course starting {start} ({ref}) is not in the population "
                    "register, so the course cannot be followed in the registers.",
        "totals": "The file has a totals or summary row ({where}: '{text}'); it is not counted as a "
                  "course.{also}",
        "totals_also": " The same held for the files of {quarters}.",
        "missing_column": "The file {filename} has no column for the {field}, so {consequence}. Its columns "
                          "are: {headers}. This holds for the files of {quarters}.",
        "end_date": "every course looks ongoing", "completed": "it cannot be seen whether ended courses were "
                                                               "completed",
        "and": " and ",
    },
}

#: (message, advice) per ``SubmissionError.reason``; placeholders ``{filename}``, ``{sheet}``, ``{missing}``,
#: ``{quarter}`` and ``{message}`` (the steward's English message, used in the English fallback only).
UNREADABLE_TEXTS = {
    DANISH: {
        "not_text": (
            "Filen {filename} er ikke en tekstfil (CSV); den ligner en binær eller beskadiget fil.",
            "Eksportér kvartalet igen som CSV (semikolonsepareret) eller som Excel-fil (.xlsx), og "
            "send den igen.",
        ),
        "empty": ("Filen {filename} er tom.", "Send kvartalets fil igen med overskriftsrække og rækker."),
        "unsplittable": (
            "Filen {filename} kunne ikke deles op i rækker (fx et citationstegn, der ikke lukkes).",
            "Eksportér filen igen fra fagsystemet, og send den igen.",
        ),
        "xlsx_damaged": (
            "Excel-filen {filename} kunne ikke åbnes; den er måske beskadiget eller ikke en "
            "rigtig "
            ".xlsx-fil.",
            "Gem filen igen som Excel (.xlsx) eller CSV, og send den igen.",
        ),
        "not_xlsx": (
            "Filen {filename} hedder .xlsx, men er ikke en Excel-projektmappe.",
            "Send filen igen som .xlsx eller .csv.",
        ),
        "old_xls": (
            "Filen {filename} er i det gamle Excel-format (.xls), som vi ikke kan læse.",
            "Gem filen som .xlsx eller CSV, og send den igen.",
        ),
        "no_sheet_data": (
            "Excel-filen {filename} har intet ark med data.",
            "Send kvartalets fil igen med overskriftsrække og rækker.",
        ),
        "header_columns_missing": (
            "Overskriftsrækken i {filename}{sheet} har ingen kolonne for {missing}.",
            "Send filen igen med én overskriftsrække: CPR-nr., Startdato, Slutdato, "
            "Delmålgruppe, Gennemført.",
        ),
        "header_missing": (
            "Filen {filename}{sheet} ser ud til at mangle overskriftsrækken: første linje "
            "ligner en række med data.",
            "Sæt overskriftsrækken ind øverst: CPR-nr., Startdato, Slutdato, Delmålgruppe, "
            "Gennemført, og send filen igen.",
        ),
        "too_large": (
            "Filen {filename} er for stor til at blive læst (for mange rækker, kolonner eller bytes).",
            "Eksportér kun kvartalets forløb med kolonnerne CPR-nr., Startdato, Slutdato, "
            "Delmålgruppe og Gennemført, og send filen igen.",
        ),
        "unreadable": (
            "Filen for {quarter} kunne ikke læses.",
            "Send filen igen; hjælper det ikke, så skriv til os, så finder vi årsagen sammen.",
        ),
        "sheet": " (arket '{sheet}')",
    },
    ENGLISH: {
        "not_text": (
            "The file {filename} is not a text (CSV) file; it looks binary or damaged.",
            "Export the quarter again as CSV (semicolon-separated) or as an Excel file (.xlsx) and resend.",
        ),
        "empty": ("The file {filename} is empty.", "Resend the quarter's file with its header row and rows."),
        "unsplittable": (
            "The file {filename} could not be split into rows (e.g. a quote that is never closed).",
            "Export the file again from the case system and resend it.",
        ),
        "xlsx_damaged": (
            "The Excel file {filename} could not be opened; it may be damaged or not really .xlsx.",
            "Save it again as Excel (.xlsx) or CSV and resend it.",
        ),
        "not_xlsx": (
            "The file {filename} is named .xlsx but is not an Excel workbook.",
            "Resend it as .xlsx or .csv.",
        ),
        "old_xls": (
            "The file {filename} is in the old Excel format (.xls), which cannot be read.",
            "Save it as .xlsx or CSV and resend it.",
        ),
        "no_sheet_data": (
            "The Excel file {filename} has no sheet with data.",
            "Resend the quarter's file with its header row and rows.",
        ),
        "header_columns_missing": (
            "The header row of {filename}{sheet} has no column for {missing}.",
            "Resend the file with one header row: CPR-nr., Startdato, Slutdato, Delmålgruppe, Gennemført.",
        ),
        "header_missing": (
            "The file {filename}{sheet} seems to lack its header row: the first line looks like a data row.",
            "Add the header row at the top: CPR-nr., Startdato, Slutdato, Delmålgruppe, "
            "Gennemført, and resend the file.",
        ),
        "too_large": (
            "The file {filename} is too large to read (too many rows, columns or bytes).",
            "Export only the quarter's courses with the columns CPR-nr., Startdato, Slutdato, "
            "Delmålgruppe and Gennemført, and resend the file.",
        ),
        "unreadable": (
            "The file for {quarter} could not be read: {message}",
            "Ask the site to resend it; if that does not help, look at the run in the Dagster UI.",
        ),
        "sheet": " (sheet '{sheet}')",
    },
}


@dataclass(frozen=True, slots=True)
class Described:
    """Display-ready items of the current round: text in one language, CPR masked unless restricted.

    Every frame has ``site``, ``quarter``, ``status``, ``since`` and their labels (``status_label``,
    ``since_label``); ``rows`` adds where the row is (``filename``, ``sheet``, ``line``, ``cells``), the texts
    (``labels``, ``message``, ``advice``), the CPR and the other raw values as delivered.
    """

    rows: pl.DataFrame
    files: pl.DataFrame  # site quarter status since label message advice
    conflicts: pl.DataFrame  # site quarter status since label cross_site message advice
    unlinked: pl.DataFrame  # site quarter status since filename sheet line start message advice
    unreadable: pl.DataFrame  # site quarter status since message advice


def _ref(course: dict, language: str) -> str:
    where = texts.location(course, language=language)
    return _WORDS[language]["ref"].format(filename=course.get("ref_filename") or "",
                                          quarter=quarter_code(course.get("ref_quarter"), language=language),
                                          where=where)


def _day(value) -> str:
    return texts.format_date(date.fromisoformat(value)) if value else ""


def _course(course: dict, language: str) -> str:
    words = _WORDS[language]
    end = _day(course.get("end_date"))
    ended = words["ended"].format(end=end) if end else ""
    return words["course"].format(start=_day(course.get("start_date")), end=ended, ref=_ref(course, language))


def _conflict_text(row: dict, language: str) -> tuple[str, str, str]:
    words, (label, _, advice) = _WORDS[language], ITEM_TEXTS[language][row["conflict"]]
    courses = json.loads(row["courses"])
    a = _course(courses[0], language) if courses else ""
    b = _course(courses[1], language) if len(courses) > 1 else ""
    if row["cross_site"]:
        message = words["cross_site"].format(sites=", ".join(sorted({c["ref_site"] for c in courses})))
        if courses:
            message = f"{a[:1].upper()}{a[1:]}: {message}"
    elif row["conflict"] == "changed_start_date" and len(courses) > 1:
        first, second = (date.fromisoformat(c["start_date"]) for c in courses[:2])
        message = words["changed_start_date"].format(days=abs((first - second).days), a=a, b=b)
    elif row["conflict"] == "changed_field":
        history = (courses[0].get("groups") or "") if courses else ""
        shown = ", ".join(f"{quarter_code(q, language=language)}: {g}" for q, _, g in
                          (part.partition(":") for part in history.split(",") if part))
        latest = history.split(",")[-1].partition(":")[2] if history else ""
        message = words["changed_field"].format(a=a, history=shown, latest=latest)
    else:
        message = words["overlapping_courses"].format(a=a, b=b)
    return label, message, advice


def _file_text(row: dict, language: str) -> tuple[str, str, str]:
    words, (label, _, advice) = _WORDS[language], ITEM_TEXTS[language][row["problem"]]
    others = [q for q in (row["quarters"] or []) if q != row["quarter"]]
    if row["problem"] == "totals":
        example = json.loads(row["example"])
        also = words["totals_also"].format(quarters=quarter_span(others, language=language)) if others else ""
        where = texts.location(example, language=language)
        return label, words["totals"].format(where=where, text=example["text"], also=also), advice
    parsed = json.loads(row["columns"]) if row.get("columns") else {}
    headers = ", ".join(f"'{h}'" for h in parsed.get("header", []) if h) or "?"
    quarters = quarter_span(row["quarters"], language=language)
    column = row["column"]
    field = texts.FIELDS[language][column][1]
    message = words["missing_column"].format(filename=row["filename"], field=field, consequence=words[column],
                                             headers=headers, quarters=quarters)
    return label, message, advice.format(standard=texts.STANDARD_HEADERS[column], quarters=quarters)


def _unreadable_text(row: dict, language: str) -> tuple[str, str]:
    table, fields = UNREADABLE_TEXTS[language], texts.FIELDS[language]
    details = json.loads(row["details"]) if row.get("details") else {}
    reason = row.get("reason") if row.get("reason") in table else "unreadable"
    missing = ", ".join(fields[c][1] for c in (details.get("missing") or "").split(",") if c in fields)
    values = {"filename": details.get("filename") or "", "missing": missing,
              "message": row.get("message") or "",
              "quarter": texts.quarter_name(row["quarter"], language=language),
              "sheet": table["sheet"].format(sheet=details["sheet"]) if details.get("sheet") else ""}
    message, advice = table[reason]
    return message.format(**values), advice.format(**values)


_ITEM = {"site": pl.String, "quarter": pl.String, "status": pl.String, "since": pl.String}
_ROWS = pl.Schema({**_ITEM, "filename": pl.String, "sheet": pl.String, "line": pl.Int64,
                   "source_row": pl.Int64, "cells": pl.String, "labels": pl.String, "message": pl.String,
                   "advice": pl.String, "cpr": pl.String, "start_date": pl.String, "end_date": pl.String,
                   "delmaalgruppe": pl.String, "completed": pl.String})
_TEXT = {"label": pl.String, "message": pl.String, "advice": pl.String}


def _status(records: list[dict], schema: dict, language: str) -> pl.DataFrame:
    """Frame the records, adding the status and since in words (``status_label``, ``since_label``)."""
    frame = pl.DataFrame(records, schema={**_ITEM, **schema})
    return frame.with_columns(
        status_label=pl.col("status").replace_strict(STATUS[language], default=None),
        since_label=pl.col("since").map_elements(lambda q: quarter_code(q, language=language),
                                                 return_dtype=pl.String),
    )


def _item(row: dict) -> dict:
    return {k: row[k] for k in _ITEM}


def _rows(feedback: Feedback, language: str, mask) -> list[dict]:
    out = []
    for row in feedback.rows.iter_rows(named=True):
        text = texts.row_text(row, language=language, columns=feedback.columns.get(row.get("sha256") or ""),
                              codes=feedback.codes, quarter_end=texts.quarter_bounds(row["quarter"])[1])
        out.append(_item(row) | {
            "filename": row.get("filename"), "sheet": row.get("sheet"), "line": texts.site_line(row),
            "source_row": row["source_row"], "cells": text.cells, "labels": text.labels,
            "message": mask(text.message), "advice": mask(text.advice), "cpr": row["cpr"],
            **{c: None if row[c] is None else mask(row[c]) for c in
               ("start_date", "end_date", "delmaalgruppe", "completed")},
        })
    return out


def _unlinked(feedback: Feedback, language: str) -> list[dict]:
    label, _, advice = ITEM_TEXTS[language]["unlinked"]
    out = []
    for row in feedback.unlinked.iter_rows(named=True):
        course = json.loads(row["course"])
        start = _day(course.get("start_date"))
        out.append(_item(row) | {
            "filename": course.get("ref_filename"), "sheet": course.get("sheet"),
            "line": texts.site_line(course), "start": start, "label": label, "advice": advice,
            "message": _WORDS[language]["unlinked"].format(start=start, ref=_ref(course, language))})
    return out


def describe(feedback: Feedback, /, *, language: str, restricted: bool) -> Described:
    """Every current item in ``language``; CPR masked (also inside messages) unless ``restricted``."""
    if language not in texts.LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(texts.LANGUAGES)}, not {language!r}")
    mask = (lambda t: t) if restricted else mask_text
    rows = _rows(feedback, language, mask)
    if not restricted:
        rows = [r | {"cpr": mask_cpr(r["cpr"])} for r in rows]
    files = []
    for row in feedback.files.iter_rows(named=True):
        label, message, advice = _file_text(row, language)
        files.append(_item(row) | {"label": label, "message": mask(message), "advice": advice})
    conflicts = []
    for row in feedback.conflicts.iter_rows(named=True):
        label, message, advice = _conflict_text(row, language)
        conflicts.append(_item(row) | {"label": label, "cross_site": row["cross_site"], "message": message,
                                       "advice": advice})
    unreadable = []
    for row in feedback.unreadable.iter_rows(named=True):
        message, advice = _unreadable_text(row, language)
        unreadable.append(_item(row) | {"message": mask(message), "advice": advice})
    return Described(
        _status(rows, dict(_ROWS), language),
        _status(files, _TEXT, language),
        _status(conflicts, {"label": pl.String, "cross_site": pl.Boolean, "message": pl.String,
                            "advice": pl.String}, language),
        _status(_unlinked(feedback, language), {"filename": pl.String, "sheet": pl.String, "line": pl.Int64,
                                                "start": pl.String, **_TEXT}, language),
        _status(unreadable, {"message": pl.String, "advice": pl.String}, language),
    )
