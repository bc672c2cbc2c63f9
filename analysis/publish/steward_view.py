"""The data stewards' view: what each site must correct, and which expectations failed.

Inputs are the ingest assets (``quarantine``, restricted: it holds raw values; ``submission_stats``) and the
latest asset-check evaluations (``pipelines.checks_log.CHECK_COLUMNS``). The general page and feedback
files show no CPR number (the CPR cell is masked to its shape); the restricted version shows the raw value
so the municipality can find the person, and must only be written under ``restricted/``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import polars as pl

from analysis.masking import mask_column, mask_digits, mask_frame
from analysis.publish.safe_export import escape_frame
from analysis.schema import INBOX_ENTRIES

#: What the site must do, per quarantine reason (Danish: the feedback goes to municipal case workers).
INSTRUCTIONS = {
    "missing_required_field": "Udfyld CPR-nummer, startdato og delmålgruppe i rækken.",
    "cpr_wrong_length": "Ret CPR-nummeret: det skal have 10 cifre (DDMMÅÅ-XXXX).",
    "cpr_invalid_date": "Ret CPR-nummeret: de første 6 cifre er ikke en gyldig fødselsdato.",
    "date_unparseable": "Skriv datoen som DD-MM-ÅÅÅÅ.",
    "end_before_start": "Ret start- eller slutdatoen: forløbet slutter før det starter.",
    "start_in_future": "Ret startdatoen: den ligger efter kvartalets udløb.",
    "course_too_long": "Kontrollér datoerne: forløbet er længere end et CTI-forløb (9 måneder).",
    "unknown_delmaalgruppe": "Brug en gyldig delmålgruppekode (se kodelisten) for startdatoen.",
    "completed_unparseable": "Angiv 'Gennemført' som Ja eller Nej.",
    "duplicate_in_file": "Samme borger og startdato står flere gange med forskelligt indhold: behold én række.",
    "not_a_data_row": "Fjern sum- og totalrækker fra filen.",
}

def mask_cpr(value: str | None) -> str:
    """Shape only: every digit masked (``XXXXXX-XXXX``, ``analysis.masking``), so a steward sees what is wrong
    without the number."""
    return "" if value is None else mask_digits(value)


@dataclass(frozen=True, slots=True)
class StewardTables:
    summary: pl.DataFrame  # site, quarter, filename, received, rows_in, clean, quarantined, duplicates, failed_checks
    reasons: pl.DataFrame  # site, quarter, reason, instruction, rows
    rows: pl.DataFrame  # site, quarter, filename, source_row, reasons, message, cpr (masked unless restricted)
    check_failures: pl.DataFrame  # asset, partition, check, severity, description, unexpected_count
    #: Submissions that could not be ingested at all: site, quarter, message (what the site must resend).
    unreadable: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=UNREADABLE))
    #: Inbox entries not ingested as they are (``analysis.schema.INBOX_ENTRIES``), with what to do.
    inbox: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=INBOX_ENTRIES))


UNREADABLE = pl.Schema({"site": pl.String, "quarter": pl.String, "message": pl.String})


def steward_tables(quarantine: pl.DataFrame, stats: pl.DataFrame, checks: pl.DataFrame, /, *, restricted: bool,
                   unreadable: pl.DataFrame | None = None, inbox: pl.DataFrame | None = None) -> StewardTables:
    """Tables of the current (not superseded) submissions; ``unreadable`` lists files that failed to ingest,
    ``inbox`` the inbox entries that were not ingested as they are (``analysis.schema.INBOX_ENTRIES``)."""
    current = lambda f: f.filter(~pl.col("superseded")) if "superseded" in f.columns else f  # noqa: E731
    q, s = current(quarantine), current(stats)
    failures = checks.filter(~pl.col("passed")) if checks.height else checks
    by_partition = failures.group_by("partition").agg(failed_checks=pl.col("check").sort().str.join(", ")) if failures.height else None
    summary = s.select("site", "quarter", "filename", "received", "rows_in", "clean", "quarantined", "duplicates")
    if by_partition is not None:
        summary = summary.with_columns(partition=pl.concat_str(pl.col("quarter"), pl.lit("|"), pl.col("site"))).join(
            by_partition, on="partition", how="left").drop("partition")
    else:
        summary = summary.with_columns(failed_checks=pl.lit(None, pl.String))
    reasons = (
        q.explode("reasons").group_by("site", "quarter", reason=pl.col("reasons")).agg(rows=pl.len().cast(pl.Int64))
        .with_columns(instruction=pl.col("reason").replace_strict(INSTRUCTIONS, default="Kontakt SBST."))
        .select("site", "quarter", "reason", "instruction", "rows").sort("site", "quarter", "reason")
    )
    rows = q.select("site", "quarter", "filename", "source_row", reasons=pl.col("reasons").list.join(", "), message="message",
                    cpr=pl.col("cpr") if restricted else pl.col("cpr").map_elements(mask_cpr, return_dtype=pl.String))
    if not restricted:  # messages quote field values, file names are the site's text: one masking rule
        rows = rows.with_columns(message=mask_column("message"), filename=mask_column("filename"))
        summary = summary.with_columns(filename=mask_column("filename"))
    return StewardTables(
        summary.sort("site", "quarter"), reasons, rows.sort("site", "quarter", "source_row"),
        failures.select("asset", "partition", "check", "severity", "description", "unexpected_count").sort("asset", "partition")
        if failures.height else pl.DataFrame(schema={"asset": pl.String, "partition": pl.String, "check": pl.String,
                                                       "severity": pl.String, "description": pl.String, "unexpected_count": pl.Int64}),
        (mask_frame(unreadable.select(list(UNREADABLE)).sort("site", "quarter"), columns=("message",))
         if unreadable is not None and unreadable.height else pl.DataFrame(schema=UNREADABLE)),
        (mask_frame(inbox.select(list(INBOX_ENTRIES)), columns=("entry",)) if inbox is not None and inbox.height
         else pl.DataFrame(schema=INBOX_ENTRIES)),
    )


def _table(frame: pl.DataFrame) -> str:
    if not frame.height:
        return '<p class="ok">Nothing to report.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_steward_page(tables: StewardTables, /, *, restricted: bool, generated_at: str) -> str:
    """One self-contained HTML page (no external resources, no script)."""
    badge = ("RESTRICTED: shows raw CPR numbers. Keep under restricted/." if restricted
             else "General version: no CPR numbers (masked to their shape).")
    sections = [
        ("unreadable", "Files that could not be read (the site must send them again)", tables.unreadable),
        ("inbox", "Inbox entries not ingested as they are (and what to do)", tables.inbox),
        ("summary", "Submissions by site and quarter", tables.summary),
        ("checks", "Failed expectations (asset checks)", tables.check_failures),
        ("reasons", "Quarantine reasons and what the site must correct", tables.reasons),
        ("rows", "Quarantined rows (file and row number)", tables.rows),
    ]
    body = "".join(f'<section id="{k}"><h2>{html.escape(t)}</h2>{_table(f)}</section>' for k, t, f in sections)
    css = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;font-size:.85rem}"
           "td,th{border:1px solid #ccc;padding:.15rem .4rem}th{background:#f2f2f2}.badge{padding:.3rem;background:#fff3cd}"
           ".ok{color:#060}@media print{section{break-inside:avoid}}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CTI steward view</title><style>{css}</style>'
            f'</head><body><h1>CTI data steward view</h1><p class="badge">{html.escape(badge)}</p>'
            f"<p>Generated {html.escape(generated_at)}.</p>{body}</body></html>\n")


def feedback_sheets(tables: StewardTables, site: str, /) -> dict[str, pl.DataFrame]:
    """The workbook sent back to one site: overview, reasons with instructions, rows to correct (escaped)."""
    mine = lambda f: f.filter(pl.col("site") == site)  # noqa: E731
    return {
        "Oversigt": escape_frame(mine(tables.summary)),
        "Ulæselige filer": escape_frame(mine(tables.unreadable)),
        "Fejl pr. årsag": escape_frame(mine(tables.reasons)),
        "Rækker": escape_frame(mine(tables.rows)),
    }
