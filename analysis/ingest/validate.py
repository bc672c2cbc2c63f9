"""Validate submission rows: every row becomes clean, quarantined with reasons, or an exact duplicate.

Row conservation holds by construction: ``rows_in == clean + quarantined + exact_duplicates_removed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from analysis.ingest.cpr import normalise_cpr
from analysis.schema import SUBMISSION_COLUMNS

#: Nominal course length is 9 months; a course may run somewhat longer before it is implausible.
MAX_COURSE_DAYS = 366
_DATE_FORMATS = ("%d-%m-%Y", "%d.%m.%Y", "%d/%m/%Y", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y.%m.%d")
_SHORT_FORMATS = ("%d-%m-%y", "%d.%m.%y", "%d/%m/%y")  # two-digit years: 00-99 -> 2000-2099 (courses are recent)
_EXCEL_MIN, _EXCEL_MAX = 36_526, 55_153  # Excel serial days for 2000-01-01 .. 2050-12-31
_YES = ("ja", "j", "1", "x", "yes", "y", "true", "sand", "gennemført", "gennemfort", "fuldført")
_NO = ("nej", "n", "0", "no", "false", "falsk", "ikke gennemført", "afbrudt")
_TOTALS = r"(?i)^\s*(i alt|ialt|total|totalt|antal|sum|samlet)\b"

MESSAGES = {
    "missing_required_field": "a required field is empty ({detail}); fill in CPR number, start date and delmålgruppe",
    "cpr_wrong_length": "CPR number '{cpr}' is not 10 digits (DDMMYY-SSSS); correct the number",
    "cpr_invalid_date": "CPR number '{cpr}' does not start with a valid date (DDMMYY); correct the number",
    "date_unparseable": "a date could not be read ({detail}); write dates as dd-mm-yyyy",
    "end_before_start": "the end date {end_date} is before the start date {start_date}; correct one of them",
    "start_in_future": "the start date {start_date} is after the end of the reported quarter; report the course in the quarter it starts",
    "course_too_long": "the course runs from {start_date} to {end_date}, longer than a CTI course can last; check the dates",
    "unknown_delmaalgruppe": "delmålgruppe '{delmaalgruppe}' is not a valid code on the start date; use a code from the current code list",
    "completed_unparseable": "'gennemført' value '{completed}' is not yes/no; write Ja or Nej",
    "duplicate_in_file": "the same CPR number and start date appear on several rows with different content; keep one row",
    "not_a_data_row": "this is a totals/summary line, not a course; remove it from the file",
}


@dataclass(frozen=True, slots=True)
class Validated:
    """Clean rows, quarantined rows and the exact duplicates that were removed."""

    clean: pl.DataFrame
    quarantine: pl.DataFrame
    exact_duplicates_removed: int
    rows_in: int


def conservation_ok(result: Validated) -> bool:
    """Whether every row read is accounted for."""
    return result.rows_in == result.clean.height + result.quarantine.height + result.exact_duplicates_removed


def parse_dates(column: str) -> pl.Expr:
    """Parse a text date in any known format (incl. Excel serial numbers); null if none applies."""
    text = pl.col(column).str.strip_chars()
    four_digit_year = text.str.contains(r"(^\d{4}[-.])|([-./]\d{4}$)|(^\d{4}-\d{2}-\d{2}[T ])")
    parsed = [pl.when(four_digit_year).then(text.str.to_date(fmt, strict=False)) for fmt in _DATE_FORMATS]
    short = [
        pl.when(text.str.contains(r"^\d{1,2}[-./]\d{1,2}[-./]\d{2}$")).then(text.str.to_date(fmt, strict=False))
        for fmt in _SHORT_FORMATS
    ]
    serial = text.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)
    excel = pl.when(serial.is_between(_EXCEL_MIN, _EXCEL_MAX)).then(
        pl.lit(date(1899, 12, 30)) + pl.duration(days=serial)
    )
    found = pl.coalesce(*parsed, *short, excel.cast(pl.Date))
    # "%Y" also reads "-2024" or "0024": a year no course can have is unparseable, not a date
    return pl.when(found.dt.year().is_between(1900, 2100)).then(found)


def validate_rows(
    raw: pl.DataFrame,
    /,
    *,
    quarter: str,
    site: str,
    codes: pl.DataFrame,
    today: date,
    max_course_days: int = MAX_COURSE_DAYS,
) -> Validated:
    """Validate one submission's rows.

    Parameters
    ----------
    raw
        ``source_row`` plus the text columns of ``analysis.schema.SUBMISSION_COLUMNS``.
    quarter, site
        The partition the file belongs to (recorded on every output row).
    codes
        Delmålgruppe code list: ``code``, ``label``, ``valid_from``, ``valid_to`` (empty = still valid).
    today
        Reference date for "start in the future": the last day of the reported quarter.
    max_course_days
        Longest plausible course (start to end) before a row is quarantined as too long.
    """
    missing = [c for c in ("source_row", *SUBMISSION_COLUMNS) if c not in raw.columns]
    if missing:
        raise ValueError(f"validate_rows needs columns {missing}; read the file with read_submission first")
    rows_in = raw.height
    frame = raw.select("source_row", *SUBMISSION_COLUMNS).sort("source_row")
    first = frame.select(pl.struct(SUBMISSION_COLUMNS).is_first_distinct()).to_series()
    duplicates_removed = int((~first).sum())
    frame = frame.filter(first)
    code_list = codes.select(
        code=pl.col("code").str.strip_chars().str.to_uppercase(),
        valid_from=pl.col("valid_from").cast(pl.String).str.to_date(strict=False),
        valid_to=pl.col("valid_to").cast(pl.String).str.to_date(strict=False),
    )
    frame = normalise_cpr(frame, column="cpr").with_columns(
        start=parse_dates("start_date"),
        end=parse_dates("end_date"),
        code=pl.col("delmaalgruppe").str.strip_chars().str.to_uppercase(),
        _done=pl.col("completed").str.strip_chars().str.to_lowercase(),
        _totals=pl.any_horizontal([pl.col(c).str.contains(_TOTALS).fill_null(False) for c in SUBMISSION_COLUMNS]),
    )
    frame = frame.join(code_list, on="code", how="left", validate="m:1")
    valid_code = pl.col("valid_from").is_not_null() & (pl.col("valid_from") <= pl.col("start")) & (
        pl.col("valid_to").is_null() | (pl.col("start") <= pl.col("valid_to"))
    )
    completed = (
        pl.when(pl.col("_done").is_in(_YES)).then(True)
        .when(pl.col("_done").is_in(_NO)).then(False)
        .when(pl.col("_done").is_null() & pl.col("end").is_not_null()).then(False)
    )
    frame = frame.with_columns(completed_flag=completed)
    key_dup = (
        pl.col("cpr_norm").is_not_null() & pl.col("start").is_not_null()
        & (pl.len().over("cpr_norm", "start") > 1)
    )
    missing_fields = pl.concat_list(
        pl.when(pl.col("start_date").is_null()).then(pl.lit("start date")),
        pl.when(pl.col("delmaalgruppe").is_null()).then(pl.lit("delmålgruppe")),
        pl.when(pl.col("cpr").is_null()).then(pl.lit("CPR number")),
    ).list.drop_nulls().list.join(", ")
    reasons = pl.concat_list(
        pl.col("cpr_issue"),
        pl.when(pl.col("start_date").is_null() | pl.col("delmaalgruppe").is_null()).then(pl.lit("missing_required_field")),
        pl.when(
            (pl.col("start_date").is_not_null() & pl.col("start").is_null())
            | (pl.col("end_date").is_not_null() & pl.col("end").is_null())
        ).then(pl.lit("date_unparseable")),
        pl.when(pl.col("end") < pl.col("start")).then(pl.lit("end_before_start")),
        pl.when(pl.col("start") > pl.lit(today)).then(pl.lit("start_in_future")),
        pl.when((pl.col("end") - pl.col("start")).dt.total_days() > max_course_days).then(pl.lit("course_too_long")),
        pl.when(pl.col("delmaalgruppe").is_not_null() & pl.col("start").is_not_null() & ~valid_code).then(
            pl.lit("unknown_delmaalgruppe")
        ),
        pl.when(pl.col("_done").is_not_null() & pl.col("completed_flag").is_null()).then(pl.lit("completed_unparseable")),
        pl.when(key_dup).then(pl.lit("duplicate_in_file")),
    ).list.drop_nulls().list.unique().list.sort()
    frame = frame.with_columns(
        reasons=pl.when(pl.col("_totals")).then(pl.lit(["not_a_data_row"], dtype=pl.List(pl.String))).otherwise(reasons),
        _missing=missing_fields,
    )
    bad = frame.filter(pl.col("reasons").list.len() > 0)
    good = frame.filter(pl.col("reasons").list.len() == 0)
    clean = good.select(
        "source_row", "cpr_norm", "sex", "birth_date",
        start_date=pl.col("start"), end_date=pl.col("end"), delmaalgruppe=pl.col("code"),
        completed=pl.when(pl.col("end").is_not_null()).then(pl.col("completed_flag")),
        warnings=pl.col("cpr_warning"),
    ).with_columns(quarter=pl.lit(quarter), site=pl.lit(site))
    quarantine = bad.select(
        "source_row", *SUBMISSION_COLUMNS, "reasons", message=_messages(bad)
    ).with_columns(quarter=pl.lit(quarter), site=pl.lit(site))
    return Validated(clean, quarantine, duplicates_removed, rows_in)


def _messages(bad: pl.DataFrame) -> pl.Series:
    sentences = []
    # only text and flags leave polars: parsed dates never become Python dates (whose range is narrower)
    view = bad.select("source_row", *SUBMISSION_COLUMNS, "_missing", "reasons",
                      start=pl.col("start").cast(pl.String), end=pl.col("end").cast(pl.String))
    for row in view.iter_rows(named=True):
        values = {c: row[c] if row[c] is not None else "" for c in SUBMISSION_COLUMNS}
        detail = row["_missing"] or ", ".join(
            f"{label} '{row[c]}'" for c, label, parsed in (("start_date", "start", "start"), ("end_date", "end", "end"))
            if row[c] is not None and row[parsed] is None
        )
        parts = [MESSAGES[r].format(detail=detail, **values) for r in row["reasons"]]
        sentences.append(f"Row {row['source_row']}: " + "; ".join(parts) + ". Please correct it and resend the quarter's file.")
    return pl.Series("message", sentences, dtype=pl.String)
