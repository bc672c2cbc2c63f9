"""Validate submission rows: every row becomes clean, quarantined with reasons, or an exact duplicate.

Row conservation holds by construction: ``rows_in == clean + quarantined + exact_duplicates_removed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from analysis.ingest import reasons as texts
from analysis.ingest.cpr import normalise_cpr
from analysis.ingest.rules import (
    DATE_FORMATS,
    EXCEL_EPOCH,
    EXCEL_MAX,
    EXCEL_MIN,
    MAX_COURSE_MONTHS,
    MAX_YEAR,
    MIN_YEAR,
    NO,
    SHORT_DATE_FORMATS,
    TOTALS_PATTERN,
    YES,
)
from analysis.ingest.submissions import LOCATION_COLUMNS
from analysis.schema import SUBMISSION_COLUMNS

#: Columns the quarantine carries besides the raw text, so a message can be written in any language later:
#: where the row is (``LOCATION_COLUMNS``), the dates as parsed (null when unreadable), the normalised CPR
#: and, for ``duplicate_in_file``, the site-facing line numbers of the other rows with that CPR and start.
QUARANTINE_EXTRA = {**LOCATION_COLUMNS, "start_parsed": pl.Date, "end_parsed": pl.Date, "cpr_norm": pl.String,
                    "duplicate_lines": pl.List(pl.Int64)}


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
    parsed = [pl.when(four_digit_year).then(text.str.to_date(fmt, strict=False)) for fmt in DATE_FORMATS]
    short = [
        pl.when(text.str.contains(r"^\d{1,2}[-./]\d{1,2}[-./]\d{2}$"))
        .then(text.str.to_date(fmt, strict=False))
        for fmt in SHORT_DATE_FORMATS
    ]
    serial = text.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)
    excel = pl.when(serial.is_between(EXCEL_MIN, EXCEL_MAX)).then(
        pl.lit(date(*EXCEL_EPOCH)) + pl.duration(days=serial)
    )
    found = pl.coalesce(*parsed, *short, excel.cast(pl.Date))
    # "%Y" also reads "-2024" or "0024": a year no course can have is unparseable, not a date
    return pl.when(found.dt.year().is_between(MIN_YEAR, MAX_YEAR)).then(found)


def validate_rows(
    raw: pl.DataFrame,
    /,
    *,
    quarter: str,
    site: str,
    codes: pl.DataFrame,
    today: date,
    max_course_months: int = MAX_COURSE_MONTHS,
) -> Validated:
    """Validate one submission's rows.

    Parameters
    ----------
    raw
        ``source_row`` plus the text columns of ``analysis.schema.SUBMISSION_COLUMNS``, and optionally where
        the site sees each row (``analysis.ingest.submissions.LOCATION_COLUMNS``; null when absent), which
        the clean rows and the quarantine carry on.
    quarter, site
        The partition the file belongs to (recorded on every output row).
    codes
        Delmålgruppe code list: ``code``, ``label``, ``valid_from``, ``valid_to`` (empty = still valid).
    today
        Reference date for "start in the future": the last day of the reported quarter.
    max_course_months
        Longest plausible course in calendar months (``end > start + months`` is quarantined as too long);
        the default, ``rules.MAX_COURSE_MONTHS``, is the CTI course's 9 months plus one 3-month phase.
    """
    missing = [c for c in ("source_row", *SUBMISSION_COLUMNS) if c not in raw.columns]
    if missing:
        raise ValueError(f"validate_rows needs columns {missing}; read the file with read_submission first")
    rows_in = raw.height
    where = [pl.col(c).cast(t) if c in raw.columns else pl.lit(None, t).alias(c)
             for c, t in LOCATION_COLUMNS.items()]
    frame = raw.select("source_row", *where, *SUBMISSION_COLUMNS).sort("source_row")
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
        _totals=pl.any_horizontal([pl.col(c).str.contains(TOTALS_PATTERN).fill_null(False)
                                   for c in SUBMISSION_COLUMNS]),
    )
    frame = frame.join(code_list, on="code", how="left", validate="m:1")
    valid_code = pl.col("valid_from").is_not_null() & (pl.col("valid_from") <= pl.col("start")) & (
        pl.col("valid_to").is_null() | (pl.col("start") <= pl.col("valid_to"))
    )
    completed = (
        pl.when(pl.col("_done").is_in(YES)).then(True)
        .when(pl.col("_done").is_in(NO)).then(False)
        .when(pl.col("_done").is_null() & pl.col("end").is_not_null()).then(False)
    )
    frame = frame.with_columns(completed_flag=completed)
    key_dup = (
        pl.col("cpr_norm").is_not_null() & pl.col("start").is_not_null()
        & (pl.len().over("cpr_norm", "start") > 1)
    )
    line = pl.coalesce("file_line", "sheet_row", "source_row")
    others = pl.when(key_dup).then(
        line.implode().over("cpr_norm", "start").list.set_difference(pl.concat_list(line)))
    reasons = pl.concat_list(
        pl.col("cpr_issue"),
        pl.when(pl.col("start_date").is_null() | pl.col("delmaalgruppe").is_null())
        .then(pl.lit("missing_required_field")),
        pl.when(
            (pl.col("start_date").is_not_null() & pl.col("start").is_null())
            | (pl.col("end_date").is_not_null() & pl.col("end").is_null())
        ).then(pl.lit("date_unparseable")),
        pl.when(pl.col("end") < pl.col("start")).then(pl.lit("end_before_start")),
        pl.when(pl.col("start") > pl.lit(today)).then(pl.lit("start_in_future")),
        pl.when(pl.col("end") > pl.col("start").dt.offset_by(f"{max_course_months}mo"))
        .then(pl.lit("course_too_long")),
        pl.when(pl.col("delmaalgruppe").is_not_null() & pl.col("start").is_not_null() & ~valid_code).then(
            pl.lit("unknown_delmaalgruppe")
        ),
        pl.when(pl.col("_done").is_not_null() & pl.col("completed_flag").is_null())
        .then(pl.lit("completed_unparseable")),
        pl.when(key_dup).then(pl.lit("duplicate_in_file")),
    ).list.drop_nulls().list.unique().list.sort()
    frame = frame.with_columns(
        reasons=pl.when(pl.col("_totals")).then(pl.lit(["not_a_data_row"], dtype=pl.List(pl.String)))
        .otherwise(reasons),
        duplicate_lines=others.list.sort(),
    )
    bad = frame.filter(pl.col("reasons").list.len() > 0)
    good = frame.filter(pl.col("reasons").list.len() == 0)
    clean = good.select(
        "source_row", *LOCATION_COLUMNS, "cpr_norm", "sex", "birth_date",
        start_date=pl.col("start"), end_date=pl.col("end"), delmaalgruppe=pl.col("code"),
        completed=pl.when(pl.col("end").is_not_null()).then(pl.col("completed_flag")),
        warnings=pl.col("cpr_warning"),
    ).with_columns(quarter=pl.lit(quarter), site=pl.lit(site))
    quarantine = bad.select(
        "source_row", *SUBMISSION_COLUMNS, "reasons", *LOCATION_COLUMNS, start_parsed="start",
        end_parsed="end", cpr_norm="cpr_norm", duplicate_lines="duplicate_lines",
    )
    quarantine = quarantine.with_columns(
        message=_messages(quarantine, codes=codes, quarter_end=today), quarter=pl.lit(quarter),
        site=pl.lit(site),
    )
    return Validated(clean, quarantine, duplicates_removed, rows_in)


def _messages(bad: pl.DataFrame, /, *, codes: pl.DataFrame, quarter_end: date) -> pl.Series:
    """Word each row in English for the steward: where it is, what is wrong, what to do (``reasons``)."""
    sentences = []
    # dates outside Python's range never reach here: parse_dates keeps only years 1900-2100
    for row in bad.iter_rows(named=True):
        text = texts.row_text(row, language=texts.ENGLISH, codes=codes, quarter_end=quarter_end)
        where = texts.location(row, language=texts.ENGLISH)
        resend = "" if row["reasons"] == ["not_a_data_row"] else " Then resend the quarter's file."
        sentences.append(f"{where[:1].upper()}{where[1:]}: {text.message} {text.advice}{resend}")
    return pl.Series("message", sentences, dtype=pl.String)
