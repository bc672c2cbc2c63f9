"""The data stewards' view and the workbook sent to each site.

Both are built from :class:`analysis.publish.feedback.Feedback` (what is wrong, new, outstanding since when,
corrected) worded by :func:`analysis.publish.feedback_text.describe`. The page is organised by site and then
quarter, the site's current quarter first, older quarters folded; it lists only the checks a steward can act
on (ingest and linkage: the caller filters, the methods checks belong to the analysts). The workbook is in
Danish whatever the staff language (``language`` is a switch for SBST's own English copy), starts with a
cover sheet (what is new, what is outstanding since when, the deadline for the next file, the contact) and
says recurring file-level problems once.

The general page and workbook show no CPR number (masked to its shape; the site finds the row by its line or
sheet row); the restricted ones show the raw value and must only be written under ``restricted/``.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.ingest import reasons as texts
from analysis.masking import mask_text
from analysis.publish.feedback import (
    NEW,
    OUTSTANDING,
    RESOLVED,
    Feedback,
    FeedbackSettings,
    local_time,
    masked,
    quarter_code,
)
from analysis.publish.feedback_text import ITEM_TEXTS, Described, describe
from analysis.publish.safe_export import csv_bytes, escape_frame, xlsx_bytes

DANISH, ENGLISH = texts.DANISH, texts.ENGLISH

#: Failed checks as the page shows them (``pipelines.checks_log.CHECK_COLUMNS`` plus ``site``/``quarter``).
CHECK_VIEW = pl.Schema({"asset": pl.String, "check": pl.String, "site": pl.String, "quarter": pl.String,
                        "severity": pl.String, "description": pl.String, "description_da": pl.String,
                        "unexpected_count": pl.Int64})

SHEETS = {DANISH: {"cover": "Forside", "rows": "Rækker der skal rettes", "conflicts": "Forløbskonflikter",
                   "unlinked": "Ikke fundet i CPR", "rules": "Fejltyper", "submissions": "Indberetninger"},
          ENGLISH: {"cover": "Cover", "rows": "Rows to correct", "conflicts": "Course conflicts",
                    "unlinked": "Not found in CPR", "rules": "Rules", "submissions": "Submissions"}}

#: Column headers per language (internal name -> header).
HEADERS = {DANISH: {"status": "Status", "since": "Udestående siden", "quarter": "Kvartal", "filename": "Fil",
                    "sheet": "Ark", "line": "Linje/række", "cells": "Celle", "labels": "Fejl",
                    "message": "Hvad er galt", "advice": "Sådan retter I det", "cpr": "CPR-nummer",
                    "start_date": "Startdato", "end_date": "Slutdato", "delmaalgruppe": "Delmålgruppe",
                    "completed": "Gennemført", "label": "Type", "todo": "Sådan gør I", "start": "Startdato",
                    "rule": "Regel", "count": "Antal nu", "received": "Modtaget", "rows_in": "Rækker i filen",
                    "clean": "Godkendt", "quarantined": "Skal rettes", "duplicates": "Dubletter fjernet",
                    "note": "Bemærkning", "topic": "Emne", "text": "Tekst", "site": "Indberetter",
                    "round": "Seneste kvartal", "new": "Nye", "outstanding": "Udestående",
                    "resolved": "Rettet", "oldest": "Ældste udestående", "deadline": "Frist for næste fil",
                    "missing": "Mangler", "check": "Kontrol", "asset": "Trin", "severity": "Alvor",
                    "description": "Hvad kontrollen sikrer", "unexpected_count": "Afvigelser",
                    "cross_site": "På tværs", "entry": "I indbakken"},
           ENGLISH: {"status": "Status", "since": "Outstanding since", "quarter": "Quarter",
                     "filename": "File", "sheet": "Sheet", "line": "Line/row", "cells": "Cell",
                     "labels": "Problem", "message": "What is wrong", "advice": "How to fix it",
                     "cpr": "CPR number", "start_date": "Start date", "end_date": "End date",
                     "delmaalgruppe": "Delmålgruppe", "completed": "Completed", "label": "Kind",
                     "todo": "What to do", "start": "Start date", "rule": "Rule", "count": "Open now",
                     "received": "Received", "rows_in": "Rows in file", "clean": "Accepted",
                     "quarantined": "To correct", "duplicates": "Duplicates removed", "note": "Note",
                     "topic": "Topic", "text": "Text", "site": "Site", "round": "Latest quarter",
                     "new": "New", "outstanding": "Outstanding", "resolved": "Corrected",
                     "oldest": "Oldest outstanding", "deadline": "Next file due", "missing": "Missing",
                     "check": "Check", "asset": "Step", "severity": "Severity",
                     "description": "What the check ensures", "unexpected_count": "Deviations",
                     "cross_site": "Across sites", "entry": "In the inbox"}}

_WORDS = {DANISH: {"nothing": "Intet at rette.", "none": "Ingen",
                   "title": "Tilbagemelding på CTI-indberetning", "to": "Tilbagemelding til",
                   "latest": "Seneste fil", "latest_file": "{filename} for {quarter}, modtaget {when}",
                   "no_file": "Ingen fil modtaget endnu", "generated": "Dannet",
                   "new": "Nyt siden sidste tilbagemelding", "outstanding": "Stadig udestående",
                   "resolved": "Rettet siden sidste tilbagemelding", "count_new": "{items} (status 'Ny')",
                   "count_none": "Intet nyt",
                   "count_outstanding": "{items}; den ældste er fra tilbagemeldingen for {since}",
                   "count_resolved": "{items} – tak",
                   "kinds": {"row": ("række", "rækker"), "conflict": ("forløbskonflikt", "forløbskonflikter"),
                             "unlinked": ("forløb ikke fundet i CPR", "forløb ikke fundet i CPR"),
                             "file": ("problem med filen", "problemer med filerne"),
                             "unreadable": ("ulæselig fil", "ulæselige filer")},
                   "missing_files": "Manglende filer",
                   "missing_text": "Vi har ikke modtaget filen for {quarters}.", "unreadable": "Ulæselig fil",
                   "how": "Sådan retter I",
                   "how_text": "Ret fejlene i jeres fagsystem, og send hele kvartalets fil igen – samme "
                               "filnavn eller med '_rettet' i navnet (fx {example}). Den nye fil erstatter "
                               "den gamle for kvartalet. Linje/række er nummeret, som I ser det i Excel "
                               "eller en teksteditor (overskriftsrækken er nummer 1).",
                   "deadline": "Frist for næste fil",
                   "deadline_text": "Filen for {quarter} skal være modtaget senest {day}.",
                   "no_deadline": "Fristen for filen for {quarter} oplyses af Social- og Boligstyrelsen.",
                   "cpr": "CPR-numre",
                   "cpr_masked": "CPR-numre er skjult i denne udgave (som XXXXXX-XXXX); find rækken ud fra "
                                 "fil og linje/række.",
                   "cpr_raw": "Denne udgave indeholder CPR-numre og må kun sendes via sikker e-mail.",
                   "contact": "Kontakt", "recurring": "Gennemgående problem",
                   "unlinked_rule": "Hele forløbet", "current": "aktuelt kvartal", "missing": "ingen fil",
                   "superseded": ("erstatter 1 tidligere fil", "erstatter {n} tidligere filer"),
                   "unreadable_note": "kunne ikke læses"},
          ENGLISH: {"nothing": "Nothing to correct.", "none": "None",
                    "title": "Feedback on the CTI submission", "to": "Feedback to", "latest": "Latest file",
                    "latest_file": "{filename} for {quarter}, received {when}",
                    "no_file": "No file received yet", "generated": "Generated",
                    "new": "New since the last feedback", "outstanding": "Still outstanding",
                    "resolved": "Corrected since the last feedback", "count_new": "{items} (status 'New')",
                    "count_none": "Nothing new",
                    "count_outstanding": "{items}; the oldest is from the feedback for {since}",
                    "count_resolved": "{items} – thank you",
                    "kinds": {"row": ("row", "rows"), "conflict": ("course conflict", "course conflicts"),
                              "unlinked": ("course not found in CPR", "courses not found in CPR"),
                              "file": ("problem with the file", "problems with the files"),
                              "unreadable": ("unreadable file", "unreadable files")},
                    "missing_files": "Missing files",
                    "missing_text": "We have not received the file for {quarters}.",
                    "unreadable": "Unreadable file", "how": "How to correct",
                    "how_text": "Correct the problems in the case system and resend the whole quarter's file "
                                "– same name or with '_rettet' in it (e.g. {example}). The new file replaces "
                                "the old one for the quarter. Line/row is the number Excel or a text editor "
                                "shows (the header row is number 1).", "deadline": "Next file due",
                    "deadline_text": "The file for {quarter} is due by {day}.", "cpr": "CPR numbers",
                    "no_deadline": "No deadline is configured for the file for {quarter} (delivery_days).",
                    "cpr_masked": "CPR numbers are masked in this version (as XXXXXX-XXXX); find the row by "
                                  "file and line/row.",
                    "cpr_raw": "This version holds CPR numbers: send it only by secure e-mail.",
                    "contact": "Contact", "recurring": "Recurring problem",
                    "unlinked_rule": "The whole course", "current": "current quarter", "missing": "no file",
                    "superseded": ("replaces 1 earlier file", "replaces {n} earlier files"),
                    "unreadable_note": "could not be read"}}


def _site_name(feedback: Feedback, site: str) -> str:
    found = feedback.sites.filter(pl.col("site") == site)
    return found["name"][0] if found.height and found["name"][0] else site


def _mine(frame: pl.DataFrame, site: str) -> pl.DataFrame:
    return frame.filter(pl.col("site") == site)


def _round_of(feedback: Feedback, site: str) -> str | None:
    found = feedback.overview.filter(pl.col("site") == site)
    return found["round"][0] if found.height else None


def _join(items: list[str], language: str) -> str:
    word = " og " if language == DANISH else " and "
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + word + items[-1] if items else ""


def _empty_note(frame: pl.DataFrame, language: str) -> pl.DataFrame:
    """Say so in the first cell of a sheet with nothing to list, instead of showing bare headers."""
    if frame.height:
        return frame
    first = frame.columns[0]
    return pl.DataFrame({c: [_WORDS[language]["nothing"] if c == first else None] for c in frame.columns},
                        schema={c: pl.String for c in frame.columns})


def _counts(feedback: Feedback, site: str) -> dict[str, int | str | None]:
    found = feedback.overview.filter(pl.col("site") == site)
    if found.height:
        return found.row(0, named=True)
    return {"new": 0, "outstanding": 0, "resolved": 0, "oldest": None}


def _items(feedback: Feedback, site: str, status: str, language: str) -> str:
    """``2 rækker og 1 forløbskonflikt``: the current round's items of ``status`` by kind (empty: none)."""
    current = feedback.state.filter(pl.col("site") == site)
    current = current.filter(pl.col("round") == current["round"].max()) if current.height else current
    kinds = _WORDS[language]["kinds"]
    parts = []
    for kind in ("row", "conflict", "unlinked", "file", "unreadable"):
        n = current.filter((pl.col("status") == status) & (pl.col("kind") == kind)).height
        if n:
            parts.append(f"{n} {kinds[kind][n > 1]}")
    return _join(parts, language)


def _cover(feedback: Feedback, described: Described, site: str, *, language: str, restricted: bool,
           settings: FeedbackSettings, generated_at: str) -> pl.DataFrame:
    words = _WORDS[language]
    subs = _mine(feedback.submissions, site)
    files = subs.filter(pl.col("status") == "ok").sort("quarter", "received")
    round_label = _round_of(feedback, site) or (files["quarter"].max() if files.height else None)
    lines: list[tuple[str, str]] = [(words["to"], _site_name(feedback, site))]
    if files.height:
        last = files.filter(pl.col("quarter") == files["quarter"].max()).row(0, named=True)
        lines.append((words["latest"], words["latest_file"].format(
            filename=last["filename"], quarter=texts.quarter_name(last["quarter"], language=language),
            when=local_time(last["received"], language=language))))
    else:
        lines.append((words["latest"], words["no_file"]))
    lines.append((words["generated"], generated_at))
    counts = _counts(feedback, site)
    new, outstanding, resolved = (_items(feedback, site, s, language) for s in (NEW, OUTSTANDING, RESOLVED))
    lines.append((words["new"], words["count_new"].format(items=new) if new else words["count_none"]))
    lines.append((words["outstanding"], words["count_outstanding"].format(
        items=outstanding, since=texts.quarter_name(counts["oldest"], language=language)) if outstanding
        else words["none"]))
    lines.append((words["resolved"],
                  words["count_resolved"].format(items=resolved) if resolved else words["none"]))
    for row in _mine(described.files, site).iter_rows(named=True):
        lines.append((f"{words['recurring']}: {row['label']}", f"{row['message']} {row['advice']}"))
    for row in _mine(described.unreadable, site).iter_rows(named=True):
        lines.append((f"{words['unreadable']} ({quarter_code(row['quarter'], language=language)})",
                      f"{row['message']} {row['advice']}"))
    missing = subs.filter(pl.col("status") == "missing")["quarter"].to_list()
    if missing:
        lines.append((words["missing_files"], words["missing_text"].format(
            quarters=_join([texts.quarter_name(q, language=language) for q in missing], language))))
    example = f"{site}_rettet.{(files['filename'][-1].rsplit('.', 1)[-1] if files.height else 'csv')}"
    lines.append((words["how"], words["how_text"].format(example=example)))
    if round_label:
        upcoming = texts.next_quarter(round_label)
        due = settings.deadline(upcoming, site)
        quarter = texts.quarter_name(upcoming, language=language)
        lines.append((words["deadline"], words["deadline_text"].format(
            quarter=quarter, day=texts.long_date(due, language=language)) if due
            else words["no_deadline"].format(quarter=quarter)))
    lines.append((words["cpr"], words["cpr_raw"] if restricted else words["cpr_masked"]))
    lines.append((words["contact"], settings.contact))
    head = HEADERS[language]
    return pl.DataFrame(lines, schema={head["topic"]: pl.String, head["text"]: pl.String}, orient="row")


def _rules(feedback: Feedback, described: Described, site: str, language: str) -> pl.DataFrame:
    head = HEADERS[language]
    rows = _mine(described.rows, site)
    items = []
    for reason, text in texts.reason_texts(language, codes=feedback.codes).items():
        if reason == "not_a_data_row":
            open_now = _mine(feedback.files, site).filter(pl.col("problem") == "totals").height
        else:
            open_now = rows.filter(pl.col("labels").str.contains(text.label, literal=True)).height
        items.append((text.label, text.rule, text.advice, open_now))
    for kind in ("overlapping_courses", "changed_start_date", "changed_field"):
        label, rule, advice = ITEM_TEXTS[language][kind]
        count = _mine(described.conflicts, site).filter(pl.col("label") == label).height
        items.append((label, rule, advice, count))
    label, rule, advice = ITEM_TEXTS[language]["unlinked"]
    items.append((label, rule, advice, _mine(described.unlinked, site).height))
    return pl.DataFrame(items, schema={head["labels"]: pl.String, head["rule"]: pl.String,
                                       head["advice"]: pl.String, head["count"]: pl.Int64}, orient="row")


def _submission_rows(submissions: pl.DataFrame, language: str) -> pl.DataFrame:
    """One site's submissions (``Feedback.submissions`` rows), newest quarter first, in ``language``."""
    words, head = _WORDS[language], HEADERS[language]
    subs = submissions.sort("quarter", descending=True)
    notes = []
    for row in subs.iter_rows(named=True):
        if row["status"] == "missing":
            notes.append(words["missing"])
        elif row["status"] == "unreadable":
            notes.append(words["unreadable_note"])
        elif (row.get("versions") or 1) > 1:
            earlier = row["versions"] - 1
            notes.append(words["superseded"][earlier > 1].format(n=earlier))
        else:
            notes.append(None)
    return subs.select(
        pl.col("quarter").map_elements(lambda q: quarter_code(q, language=language), return_dtype=pl.String)
        .alias(head["quarter"]),
        pl.col("filename").alias(head["filename"]),
        pl.col("received").map_elements(lambda s: local_time(s, language=language), return_dtype=pl.String)
        .alias(head["received"]),
        *(pl.col(c).cast(pl.Int64).alias(head[c]) for c in ("rows_in", "clean", "quarantined", "duplicates")),
        pl.Series(head["note"], notes, dtype=pl.String),
    )


def _quarter_labels(frame: pl.DataFrame, language: str) -> pl.DataFrame:
    return frame.with_columns(pl.col("quarter").map_elements(lambda q: quarter_code(q, language=language),
                                                             return_dtype=pl.String))


def _select(frame: pl.DataFrame, columns: tuple[str, ...], headers: Mapping[str, str], /,
            **renamed: str) -> pl.DataFrame:
    """``columns`` of ``frame`` under their headers (``renamed`` maps a column to another header key)."""
    return frame.select(pl.col(c).alias(headers[renamed.get(c, c)]) for c in columns)


_ROW_COLUMNS = ("status_label", "since_label", "quarter", "filename", "sheet", "line", "cells", "labels",
                "message", "advice", "cpr", "start_date", "end_date", "delmaalgruppe", "completed")
_CONFLICT_COLUMNS = ("status_label", "since_label", "quarter", "label", "message", "advice")
_UNLINKED_COLUMNS = ("status_label", "since_label", "quarter", "filename", "sheet", "line", "start",
                     "message", "advice")
_LABELS = {"status_label": "status", "since_label": "since"}


def feedback_sheets(feedback: Feedback, described: Described, site: str, /, *, language: str,
                    restricted: bool, settings: FeedbackSettings,
                    generated_at: str) -> dict[str, pl.DataFrame]:
    """Build the workbook for ``site``: cover, rows, conflicts, not found in CPR, rules, submissions.

    Every string cell is escaped for spreadsheets; cross-site conflicts are left out (a site is not told
    about a citizen's course elsewhere: the steward takes them up).
    """
    head, names = HEADERS[language], SHEETS[language]
    rows = _quarter_labels(_mine(described.rows, site), language).sort(["quarter", "line"],
                                                                          descending=[True, False])
    conflicts = _mine(described.conflicts, site).filter(~pl.col("cross_site"))
    conflicts = _quarter_labels(conflicts, language).sort("quarter", descending=True)
    unlinked = _quarter_labels(_mine(described.unlinked, site), language).sort("quarter", descending=True)
    sheets = {
        names["cover"]: _cover(feedback, described, site, language=language, restricted=restricted,
                               settings=settings, generated_at=generated_at),
        names["rows"]: _select(rows, _ROW_COLUMNS, head, **_LABELS),
        names["conflicts"]: _select(conflicts, _CONFLICT_COLUMNS, head, advice="todo", **_LABELS),
        names["unlinked"]: _select(unlinked, _UNLINKED_COLUMNS, head, advice="todo", **_LABELS),
        names["rules"]: _rules(feedback, described, site, language),
        names["submissions"]: _submission_rows(_mine(feedback.submissions, site), language),
    }
    for key in ("rows", "conflicts", "unlinked"):
        sheets[names[key]] = _empty_note(sheets[names[key]], language)
    return {name: escape_frame(frame) for name, frame in sheets.items()}


# --- the steward page ------------------------------------------------------------------------------------

def steward_checks(checks: pl.DataFrame, /, *, assets: Collection[str],
                   danish: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Failed checks of ``assets`` (those a steward can act on), with ``site``/``quarter`` from the partition.

    ``checks`` has ``pipelines.checks_log.CHECK_COLUMNS``; a partition ``2024-07-01|aarhus`` becomes quarter
    ``2024Q3`` and site ``aarhus``. ``danish`` words each check for the Danish page (by check name).
    """
    if not checks.height:
        return pl.DataFrame(schema=CHECK_VIEW)
    failed = checks.filter(~pl.col("passed") & pl.col("asset").is_in(list(assets)))
    parts = pl.col("partition").fill_null("").str.split("|")
    start = parts.list.first()
    month = start.str.slice(5, 2).cast(pl.Int32, strict=False)
    return failed.with_columns(
        description_da=pl.col("check").replace_strict(dict(danish or {}), default=pl.col("description")),
        site=pl.when(parts.list.len() > 1).then(parts.list.last()),
        quarter=pl.when(month.is_not_null()).then(
            start.str.slice(0, 4) + pl.lit("Q") + ((month - 1) // 3 + 1).cast(pl.String)),
    ).select([pl.col(c).cast(t) for c, t in CHECK_VIEW.items()]).sort("asset", "check", "site", "quarter")


_PAGE = {DANISH: {"title": "CTI – dataansvarliges oversigt", "generated": "Dannet {when}.",
                  "badge_raw": "BEGRÆNSET ADGANG: viser CPR-numre. Må kun ligge under restricted/.",
                  "badge_masked": "Almindelig udgave: ingen CPR-numre (vist som XXXXXXXXXX).",
                  "overview": "Overblik pr. indberetter", "unreadable": "Filer, der ikke kunne læses",
                  "strays": "Filer i indbakken, som ikke blev læst",
                  "checks": "Fejlede kontroller (indlæsning og kobling)", "nothing": "Intet at rapportere.",
                  "current": "Aktuelt kvartal: {quarter}", "older": "Udestående fra tidligere kvartaler",
                  "history": "Historik: indberetninger og tilbagemeldinger",
                  "rounds": "Tilbagemeldinger pr. kvartal", "file_problems": "Om filerne",
                  "rows": "Rækker der skal rettes", "conflicts": "Forløbskonflikter",
                  "unlinked": "Ikke fundet i befolkningsregistret", "site_checks": "Fejlede kontroller",
                  "latest": "Seneste fil: {file}, modtaget {when}.", "no_file": "Ingen fil modtaget endnu.",
                  "deadline": "Frist for næste fil ({quarter}): {day}.",
                  "counts": "Nye: {new} · Udestående: {outstanding} · Rettet siden sidst: {resolved}",
                  "workbook": "Tilbagemeldingen til indberetteren: feedback/{site}.xlsx.",
                  "cross": "Forløbskonflikter på tværs af indberettere står kun her, ikke i indberetternes "
                           "filer: afklar dem med begge.", "yes": "ja", "round_col": "Tilbagemelding"},
         ENGLISH: {"title": "CTI data steward view", "generated": "Generated {when}.",
                   "badge_raw": "RESTRICTED: shows raw CPR numbers. Keep under restricted/.",
                   "badge_masked": "General version: no CPR numbers (shown as XXXXXXXXXX).",
                   "overview": "Overview by site", "unreadable": "Files that could not be read",
                   "strays": "Inbox files that were not read", "checks": "Failed checks (ingest and linkage)",
                   "nothing": "Nothing to report.", "current": "Current quarter: {quarter}",
                   "older": "Outstanding from earlier quarters",
                   "history": "History: submissions and feedback rounds", "rounds": "Feedback rounds",
                   "file_problems": "About the files", "rows": "Rows to correct",
                   "conflicts": "Course conflicts", "unlinked": "Not found in the population register",
                   "site_checks": "Failed checks", "latest": "Latest file: {file}, received {when}.",
                   "no_file": "No file received yet.", "deadline": "Next file ({quarter}) due: {day}.",
                   "counts": "New: {new} · Outstanding: {outstanding} · Corrected since last: {resolved}",
                   "workbook": "The site's feedback: feedback/{site}.xlsx (always in Danish).",
                   "cross": "Course conflicts across sites appear only here, not in the sites' files: settle "
                            "them with both.", "yes": "yes", "round_col": "Feedback round"}}

_CSS = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:110rem}"
        "table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem}"
        "td,th{border:1px solid #ccc;padding:.2rem .45rem;vertical-align:top;text-align:left}"
        "th{background:#f2f2f2}.badge{padding:.4rem .6rem;background:#fff3cd;display:inline-block}"
        ".ok{color:#060}.site{border-top:3px solid #345;margin-top:2rem;padding-top:.5rem}.meta{color:#444}"
        ".counts{font-weight:600}tr.new td:first-child{background:#fde2c4;font-weight:600}"
        "tr.outstanding td:first-child{background:#f8d0d0;font-weight:600}"
        "tr.resolved td:first-child{background:#d6efd6}details{margin:.6rem 0 1rem}"
        "summary{cursor:pointer;font-weight:600}h3{margin-bottom:.2rem}"
        "@media print{section{break-inside:avoid}details{display:block}}")


def _table(frame: pl.DataFrame, headers: Mapping[str, str], *, language: str,
           status: str | None = None) -> str:
    """Render ``frame`` as an HTML table (every cell escaped); rows get their ``status`` as class."""
    if not frame.height:
        return f'<p class="ok">{html.escape(_PAGE[language]["nothing"])}</p>'
    shown = [c for c in frame.columns if c != status]
    head = "".join(f"<th>{html.escape(headers.get(c, c))}</th>" for c in shown)
    body = []
    for row in frame.iter_rows(named=True):
        css = f' class="{html.escape(row[status])}"' if status and row.get(status) else ""
        cells = "".join(f"<td>{html.escape('' if row[c] is None else str(row[c]))}</td>" for c in shown)
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _checks_shown(checks: pl.DataFrame, language: str) -> pl.DataFrame:
    described = checks.with_columns(description=pl.col("description_da")) if language == DANISH else checks
    return _quarter_labels(described.drop("description_da"), language)


#: The columns of each item table on the page (``status`` only styles the row).
_PAGE_COLUMNS = {
    "rows": ("status", "status_label", "since_label", "quarter", "filename", "sheet", "line", "cells",
             "labels", "message", "advice", "cpr"),
    "conflicts": ("status", "status_label", "since_label", "quarter", "label", "cross_site", "message",
                  "advice"),
    "unlinked": ("status", "status_label", "since_label", "quarter", "filename", "sheet", "line", "start",
                 "message", "advice"),
    "unreadable": ("status", "status_label", "since_label", "quarter", "message", "advice"),
}


def _items_html(described: Described, checks: pl.DataFrame, site: str, selector: pl.Expr, *,
                language: str) -> str:
    """Render the tables of one site's items that ``selector`` picks (and its failed checks)."""
    page, head = _PAGE[language], {**HEADERS[language], "status_label": HEADERS[language]["status"],
                                   "since_label": HEADERS[language]["since"]}
    out = []
    for key in ("rows", "conflicts", "unlinked", "unreadable"):
        mine = _mine(getattr(described, key), site).filter(selector)
        if not mine.height:
            continue
        if key == "rows":
            mine = mine.sort("quarter", "line", descending=[True, False])
        if key == "conflicts":
            mine = mine.with_columns(cross_site=pl.when(pl.col("cross_site")).then(pl.lit(page["yes"])))
        shown = _quarter_labels(mine, language).select(_PAGE_COLUMNS[key])
        headers = head if key == "rows" else head | {"advice": head["todo"]}
        table = _table(shown, headers, language=language, status="status")
        out.append(f"<h4>{html.escape(page[key])}</h4>{table}")
    failed = _checks_shown(_mine(checks, site).filter(selector), language)
    if failed.height:
        out.append(f"<h4>{html.escape(page['site_checks'])}</h4>" + _table(failed.drop("site"), head,
                                                                           language=language))
    return "".join(out) or f'<p class="ok">{html.escape(page["nothing"])}</p>'


def _site_meta(feedback: Feedback, site: str, *, language: str, settings: FeedbackSettings) -> str:
    page = _PAGE[language]
    files = _mine(feedback.submissions, site).filter(pl.col("status") == "ok").sort("quarter")
    meta = [page["no_file"]]
    if files.height:
        last = files.row(files.height - 1, named=True)
        shown = f"{last['filename']} ({quarter_code(last['quarter'], language=language)})"
        meta = [page["latest"].format(file=shown, when=local_time(last["received"], language=language))]
    round_label = _round_of(feedback, site)
    if round_label:
        upcoming = texts.next_quarter(round_label)
        due = settings.deadline(upcoming, site)
        if due is not None:
            day = texts.long_date(due, language=language)
            meta.append(page["deadline"].format(quarter=quarter_code(upcoming, language=language), day=day))
    meta.append(page["workbook"].format(site=site))
    counts = _counts(feedback, site)
    summary = page["counts"].format(**{k: counts[k] or 0 for k in (NEW, OUTSTANDING, RESOLVED)})
    return f'<p class="meta">{html.escape(" ".join(meta))}</p><p class="counts">{html.escape(summary)}</p>'


def _site_section(feedback: Feedback, described: Described, checks: pl.DataFrame, site: str, *, language: str,
                  settings: FeedbackSettings) -> str:
    page, head = _PAGE[language], HEADERS[language]
    round_label = _round_of(feedback, site)
    subs = _mine(feedback.submissions, site)
    name = html.escape(_site_name(feedback, site))
    parts = [f'<section class="site" id="site-{html.escape(site)}"><h2>{name} '
             f"<small>({html.escape(site)})</small></h2>",
             _site_meta(feedback, site, language=language, settings=settings)]
    notes = _mine(described.files, site)
    if notes.height:
        items = "".join(f"<li><b>{html.escape(r['label'])}</b> ({html.escape(r['status_label'] or '')}): "
                        f"{html.escape(r['message'])} {html.escape(r['advice'])}</li>"
                        for r in notes.iter_rows(named=True))
        parts.append(f"<h3>{html.escape(page['file_problems'])}</h3><ul>{items}</ul>")
    if round_label:
        title = page["current"].format(quarter=texts.quarter_name(round_label, language=language))
        this = _submission_rows(subs.filter(pl.col("quarter") == round_label), language)
        current = _items_html(described, checks, site, pl.col("quarter") == round_label, language=language)
        parts.append(f"<h3>{html.escape(title)}</h3>{_table(this, {}, language=language)}{current}")
        older = _items_html(described, checks, site, pl.col("quarter") < round_label, language=language)
        parts.append(f"<h3>{html.escape(page['older'])}</h3>{older}")
    else:
        parts.append(_items_html(described, checks, site, pl.lit(True), language=language))
    counted = feedback.state.filter(pl.col("site") == site).group_by("round").agg(
        *((pl.col("status") == s).sum().cast(pl.Int64).alias(s) for s in (NEW, OUTSTANDING, RESOLVED)))
    every = pl.concat([_mine(feedback.rounds, site).select("round"), counted.select("round")])
    rounds = every.unique().join(counted, on="round", how="left", validate="1:1").with_columns(
        pl.col(NEW, OUTSTANDING, RESOLVED).fill_null(0))
    rounds = rounds.sort("round", descending=True).with_columns(
        pl.col("round").map_elements(lambda q: quarter_code(q, language=language), return_dtype=pl.String))
    history = (f"<h4>{html.escape(page['rounds'])}</h4>"
               + _table(rounds, head | {"round": page["round_col"]}, language=language)
               + f"<h4>{html.escape(SHEETS[language]['submissions'])}</h4>"
               + _table(_submission_rows(subs, language), {}, language=language))
    parts.append(f"<details><summary>{html.escape(page['history'])}</summary>{history}</details></section>")
    return "".join(parts)


def _overview(feedback: Feedback, language: str, settings: FeedbackSettings) -> pl.DataFrame:
    missing = feedback.submissions.filter(pl.col("status") == "missing").group_by("site").agg(
        missing=pl.col("quarter").sort().map_elements(lambda q: quarter_code(q, language=language),
                                                      return_dtype=pl.String).str.join(", "))
    shown = []
    for row in feedback.overview.join(missing, on="site", how="left", validate="1:1").iter_rows(named=True):
        upcoming = texts.next_quarter(row["round"]) if row["round"] else None
        shown.append({"site": row["name"] or row["site"],
                      "round": quarter_code(row["round"], language=language), "new": row["new"],
                      "outstanding": row["outstanding"],
                      "oldest": quarter_code(row["oldest"], language=language), "resolved": row["resolved"],
                      "deadline": texts.format_date(settings.deadline(upcoming, row["site"])) if upcoming
                      else "",
                      "missing": row["missing"]})
    return pl.DataFrame(shown)


#: What the steward reads for an inbox entry that was not ingested as it is (``pipelines.inbox.STRAY_KINDS``
#: kinds): why, and what to do. The English account's own wording (with its hints) is the English text.
STRAY_TEXTS = {
    "not_a_quarter_folder": (
        "Mappenavnet er ikke et kvartal i formen ÅÅÅÅQn (fx 2025Q1).",
        "Flyt indberetternes filer ind i kvartalets mappe, eller flyt mappen ud af indbakken.",
    ),
    "quarter_out_of_range": (
        "Kvartalet ligger uden for overvågningsperioden.",
        "Tjek kvartalet i mappenavnet; filer uden for perioden indlæses ikke.",
    ),
    "loose_file": (
        "En fil direkte i indbakken, ikke i en kvartalsmappe.",
        "Flyt den ind i kvartalets mappe.",
    ),
    "nested_folder": (
        "En mappe inde i en kvartalsmappe.",
        "Flyt filerne op i kvartalsmappen, eller flyt mappen ud af indbakken.",
    ),
    "unknown_site": (
        "Filnavnet begynder ikke med en kendt indberetter (sites.csv).",
        "Omdøb filen til <indberetter>.csv eller <indberetter>_<noget>.csv, eller tilføj "
        "indberetteren i sites.csv.",
    ),
    "unsupported_type": (
        "Ikke en .csv-, .txt- eller .xlsx-fil.",
        "Bed indberetteren sende kvartalet som CSV eller Excel (.xlsx).",
    ),
    "hidden": ("En skjult eller midlertidig fil (fx en Excel-låsefil).", "Intet at gøre: den indlæses ikke."),
    "cpr_in_name": (
        "Filnavnet indeholder et CPR-lignende tal; filen indlæses og vises med skjult navn.",
        "Bed indberetteren navngive filerne uden CPR-numre.",
    ),
    "unreadable_entry": ("Posten kan ikke læses.", "Tjek filens rettigheder i indbakken."),
}


def stray_rows(strays: pl.DataFrame, /, *, language: str, restricted: bool) -> pl.DataFrame:
    """Show the inbox account (``analysis.schema.INBOX_ENTRIES``) as the page does.

    Columns: entry, quarter, why, what to do.

    The entry is the site's own text (a path): masked in the general version.
    """
    rows = []
    for row in strays.iter_rows(named=True):
        danish = STRAY_TEXTS.get(row["kind"])
        reason, action = (danish if language == DANISH and danish else (row["reason"], row["action"]))
        rows.append({"entry": row["entry"] if restricted else mask_text(row["entry"]),
                     "quarter": row["quarter"] or "", "message": reason, "advice": action})
    return pl.DataFrame(rows, schema={c: pl.String for c in ("entry", "quarter", "message", "advice")})


def render_steward_page(feedback: Feedback, described: Described, checks: pl.DataFrame, /, *,
                        restricted: bool, language: str, generated_at: str, settings: FeedbackSettings,
                        strays: pl.DataFrame | None = None) -> str:
    """One self-contained HTML page (no external resources, no script) in ``language``.

    ``checks`` comes from :func:`steward_checks` (only what a steward can act on); ``strays`` optionally is
    the inbox account (``analysis.schema.INBOX_ENTRIES``): entries that were not ingested as they are.
    """
    page, head = _PAGE[language], HEADERS[language]
    checks = checks if set(CHECK_VIEW) <= set(checks.columns) else pl.DataFrame(schema=CHECK_VIEW)
    unreadable = described.unreadable.select("site", "quarter", "message", "advice")
    unreadable = _quarter_labels(unreadable, language)
    general = _checks_shown(checks.filter(pl.col("site").is_null()), language).drop("site", "quarter")
    sections = [("overview", page["overview"], _table(_overview(feedback, language, settings), head,
                                                      language=language)),
                ("unreadable", page["unreadable"], _table(unreadable, head | {"advice": head["todo"]},
                                                          language=language))]
    if strays is not None:
        shown = stray_rows(strays, language=language, restricted=restricted)
        sections.append(("strays", page["strays"], _table(shown, head | {"advice": head["todo"]},
                                                          language=language)))
    sections.append(("checks", page["checks"], _table(general, head, language=language)))
    body = "".join(f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for key, title, content in sections)
    body += f'<p class="meta">{html.escape(page["cross"])}</p>'
    body += "".join(_site_section(feedback, described, checks, site, language=language, settings=settings)
                    for site in feedback.sites["site"].to_list())
    badge = page["badge_raw"] if restricted else page["badge_masked"]
    title = html.escape(page["title"])
    return (f'<!doctype html><html lang="{language}"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body><h1>{title}</h1><p class=\"badge\">{html.escape(badge)}</p>"
            f"<p>{html.escape(page['generated'].format(when=generated_at))}</p>{body}</body></html>\n")


@dataclass(frozen=True, slots=True)
class SiteWorkbook:
    """One site's feedback as file contents: the workbook and its rows sheet as CSV."""

    site: str
    language: str
    restricted: bool
    xlsx: bytes
    rows_csv: bytes

    @property
    def csv_name(self) -> str:
        """``aarhus_raekker.csv`` (Danish) or ``aarhus_rows.csv``: the rows sheet as CSV."""
        return f"{self.site}_{'raekker' if self.language == DANISH else 'rows'}.csv"


@dataclass(frozen=True, slots=True)
class StewardOutputs:
    """The steward pages (general and restricted, by ``restricted``) and every site workbook."""

    pages: Mapping[bool, str]
    workbooks: tuple[SiteWorkbook, ...]


def steward_outputs(feedback: Feedback, checks: pl.DataFrame, /, *, settings: FeedbackSettings, now: datetime,
                    sites: Sequence[str], strays: pl.DataFrame | None = None) -> StewardOutputs:
    """Render both versions of the page (in the staff language) and of each site's workbook.

    The workbook a site receives is Danish; with ``settings.staff_language == "en"`` an English copy of each
    is made for SBST staff too. A site gets a workbook once it is expected to deliver (it has a file or a
    missing quarter). ``strays`` is the inbox account (entries not ingested as they are), shown on the page.
    """
    staff = settings.staff_language
    stamp = now.isoformat(timespec="seconds")
    pages, workbooks = {}, []
    for restricted in (False, True):
        shown = feedback if restricted else masked(feedback)
        described = describe(shown, language=staff, restricted=restricted)
        when = local_time(stamp, language=staff)
        pages[restricted] = render_steward_page(shown, described, checks, restricted=restricted,
                                                language=staff, generated_at=when, settings=settings,
                                                strays=strays)
        for language in dict.fromkeys((DANISH, staff)):
            described = describe(shown, language=language, restricted=restricted)
            for site in sites:
                if not _mine(feedback.submissions, site).height:
                    continue
                sheets = feedback_sheets(shown, described, site, language=language, restricted=restricted,
                                         settings=settings, generated_at=local_time(stamp, language=language))
                workbooks.append(SiteWorkbook(site, language, restricted, xlsx_bytes(sheets),
                                              csv_bytes(sheets[SHEETS[language]["rows"]])))
    return StewardOutputs(pages, tuple(workbooks))
