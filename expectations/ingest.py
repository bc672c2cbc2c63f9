"""Suites for the ingest group: raw submissions, validated rows, pseudonymised rows, consolidated courses.

``raw_submission`` and ``validated_rows`` hold raw CPR numbers, so their suites are ``raw_cpr=True``
(GX runs them with ``BOOLEAN_ONLY`` and collects no values). ``pseudonymised_courses`` carries the
blocking guarantee that no CPR-like value survives pseudonymisation.
"""

from __future__ import annotations

import dagster as dg
import polars.selectors as cs

from analysis.schema import SUBMISSION_COLUMNS
from expectations import names
from expectations.adapter import ForEachColumn, Gx, Suite, When, check_spec

#: A CPR number anywhere in a text: 10 digits with an optional hyphen/space after DDMMYY, or 9 digits
#: (leading zero lost in Excel), not part of a longer alphanumeric run (so a hex digest never matches).
#: No look-around (pyarrow-backed pandas strings use RE2); no capture groups (pandas warns on those).
CPR_IN_TEXT = r"(?:^|[^0-9A-Za-z])(?:\d{6}[- ]?\d{4}|\d{9})(?:[^0-9A-Za-z]|$)"
NORMALISED_CPR = r"^\d{10}$"
PSEUDONYM = r"^[0-9a-f]{64}$"

RAW_SUBMISSION = [
    Suite(
        name=names.RAW_SUBMISSION_STRUCTURE,
        expectations=[
            *(Gx("ExpectColumnToExist", column=column) for column in SUBMISSION_COLUMNS),
            Gx("ExpectColumnValuesToNotBeNull", column="source_row"),
            # Several received versions of one quarter's file each number their rows from 1.
            Gx("ExpectCompoundColumnsToBeUnique", column_list=["sha256", "source_row"]),
        ],
        raw_cpr=True,
        blocking=True,
        description="Every canonical column exists after header mapping; "
                    "(file, source_row) is a unique row id.",
    ),
]
"""Suites of ``raw_submission`` (raw CPR)."""

VALIDATED_ROWS = [
    Suite(
        name=names.VALIDATED_ROWS_CLEAN,
        expectations=[
            Gx("ExpectColumnValuesToNotBeNull", column="cpr_norm"),
            Gx("ExpectColumnValuesToMatchRegex", column="cpr_norm", regex=NORMALISED_CPR),
            Gx("ExpectColumnValuesToNotBeNull", column="start_date"),
            Gx(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                column_A="end_date",
                column_B="start_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
        ],
        raw_cpr=True,
        blocking=True,
        description="Clean rows have a 10-digit CPR, a start date, and no end before the start.",
    ),
]
"""Suites of the clean rows of ``validated_rows`` (raw CPR)."""

PSEUDONYMISED = [
    Suite(
        name=names.NO_CPR_AFTER_PSEUDONYMISATION,
        expectations=[
            ForEachColumn(
                "ExpectColumnValuesToNotMatchRegex", selector=cs.string() | cs.integer(), regex=CPR_IN_TEXT
            ),
            Gx("ExpectColumnValuesToNotBeNull", column="pseudonym"),
            Gx("ExpectColumnValuesToMatchRegex", column="pseudonym", regex=PSEUDONYM),
            Gx("ExpectColumnValuesToNotBeNull", column="key_id"),
        ],
        # Run as if raw: if a CPR did survive, GX must not collect it into a result.
        raw_cpr=True,
        blocking=True,
        description=(
            "No text or integer column holds a CPR-like value (10 digits, with or without hyphen, or 9); "
            "every row has a 64-hex pseudonym and a key id."
        ),
    ),
]
"""Suites of ``pseudonymised_courses``: the guarantee that raw CPR stops here."""

COURSES = [
    Suite(
        name=names.COURSES_KEYS,
        expectations=[
            Gx("ExpectColumnValuesToNotBeNull", column="course_id"),
            Gx("ExpectColumnValuesToBeUnique", column="course_id"),
            Gx("ExpectColumnValuesToNotBeNull", column="start_date"),
        ],
        blocking=True,
        description="Every course has a unique course_id and a start date.",
    ),
    Suite(
        name=names.COURSES_COMPLETION,
        expectations=[
            Gx("ExpectColumnValuesToNotBeNull", column="completed", row_condition=When.not_null("end_date")),
            Gx("ExpectColumnValuesToBeNull", column="completed", row_condition=When.null("end_date")),
        ],
        description="The completed flag is set exactly when the course has ended (warning: a site may lag).",
    ),
]
"""Suites of ``courses``."""


def conservation_spec(
    asset_key: dg.AssetKey | str = "validated_rows",
    /,
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetCheckSpec:
    """Declare the blocking row-conservation check (pass the asset's ``partitions_def`` if it has one)."""
    return check_spec(
        name=names.ROW_CONSERVATION,
        asset=dg.AssetKey.from_coercible(asset_key),
        blocking=True,
        description="Every row read is clean, quarantined or an exact duplicate: nothing dropped silently.",
        partitions_def=partitions_def,
    )


def conservation_check(
    rows_in: int,
    clean: int,
    quarantined: int,
    duplicates: int,
    *,
    asset_key: dg.AssetKey | str | None = None,
) -> dg.AssetCheckResult:
    """Check ``rows_in == clean + quarantined + duplicates`` (blocking; metadata are the four counts)."""
    counts = {"rows_in": rows_in, "clean": clean, "quarantined": quarantined, "duplicates": duplicates}
    for label, value in counts.items():
        if int(value) < 0:
            raise ValueError(f"{label} is a row count and cannot be negative (got {value})")
    accounted = clean + quarantined + duplicates
    return dg.AssetCheckResult(
        check_name=names.ROW_CONSERVATION,
        asset_key=dg.AssetKey.from_coercible(asset_key) if asset_key is not None else None,
        passed=rows_in == accounted,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **{k: int(v) for k, v in counts.items()},
            "element_count": int(rows_in),
            "unexpected_count": abs(int(rows_in) - int(accounted)),
        },
    )
