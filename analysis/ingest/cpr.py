"""Danish CPR numbers: normalise, validate (century table, day + 60 replacements), derive sex and birth date.

Rules (see DOMAIN.md): DDMMYY-SSSS; the 7th digit and YY give the century; replacement numbers add 60 to the
day; the modulus-11 check is not required since 2007 (a failure is only a warning); a 9-digit value whose
leading zero a spreadsheet dropped is padded only when the padded value is a valid date, and that is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from analysis.ingest.rules import CPR_REPLACEMENT_DAY_OFFSET

_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def _birth_date(digits: pl.Expr) -> pl.Expr:
    """Birth date of a 10-digit string expression (null when DDMMYY is no date under the century rule)."""
    day = digits.str.slice(0, 2).cast(pl.Int32, strict=False)
    day = pl.when(day > CPR_REPLACEMENT_DAY_OFFSET).then(day - CPR_REPLACEMENT_DAY_OFFSET).otherwise(day)
    month = digits.str.slice(2, 2).cast(pl.Int32, strict=False)
    yy = digits.str.slice(4, 2).cast(pl.Int32, strict=False)
    d7 = digits.str.slice(6, 1).cast(pl.Int32, strict=False)
    century = (
        pl.when(d7 <= 3).then(1900)
        .when(d7.is_in([4, 9])).then(pl.when(yy <= 36).then(2000).otherwise(1900))
        .otherwise(pl.when(yy <= 57).then(2000).otherwise(1800))
    )
    text = pl.format(
        "{}-{}-{}",
        (century + yy).cast(pl.String),
        month.cast(pl.String).str.zfill(2),
        day.cast(pl.String).str.zfill(2),
    )
    return text.str.to_date("%Y-%m-%d", strict=False)


def normalise_cpr(frame: pl.DataFrame, /, *, column: str = "cpr") -> pl.DataFrame:
    """Return ``frame`` with ``cpr_norm``, ``cpr_issue``, ``cpr_warning``, ``sex`` and ``birth_date`` added.

    ``cpr_norm`` is the 10-digit number (null when the value cannot be a CPR number); ``cpr_issue`` is a
    quarantine reason (``missing_required_field``, ``cpr_wrong_length``, ``cpr_invalid_date``) or null;
    ``cpr_warning`` notes a repaired leading zero and/or a failed modulus-11 check (comma-joined) or null.
    """
    raw = pl.col(column).cast(pl.String)
    cleaned = raw.str.strip_chars().str.replace_all(r"[\s\-\u2010-\u2015]", "")
    cleaned = cleaned.str.replace(r"^(\d+)\.0+$", "${1}")
    frame = frame.with_columns(_cpr_clean=cleaned)
    digits_only = pl.col("_cpr_clean").str.contains(r"^\d+$")
    length = pl.col("_cpr_clean").str.len_chars()
    padded = pl.lit("0") + pl.col("_cpr_clean")
    nine_ok = digits_only & (length == 9) & _birth_date(padded).is_not_null()
    frame = frame.with_columns(
        _cpr10=pl.when(digits_only & (length == 10)).then(pl.col("_cpr_clean")).when(nine_ok).then(padded),
        _repaired=nine_ok,
    )
    birth = _birth_date(pl.col("_cpr10"))
    mod11 = pl.sum_horizontal(
        [pl.col("_cpr10").str.slice(i, 1).cast(pl.Int32, strict=False) * w for i, w in enumerate(_WEIGHTS)]
    ) % 11 == 0
    issue = (
        pl.when(pl.col("_cpr_clean").is_null() | (length == 0)).then(pl.lit("missing_required_field"))
        .when(pl.col("_cpr10").is_null()).then(pl.lit("cpr_wrong_length"))
        .when(birth.is_null()).then(pl.lit("cpr_invalid_date"))
    )
    warnings = pl.concat_list(
        pl.when(pl.col("_repaired")).then(pl.lit("cpr_repaired_leading_zero")),
        pl.when(birth.is_not_null() & ~mod11).then(pl.lit("cpr_mod11_failed")),
    ).list.drop_nulls()
    valid = issue.is_null()
    return frame.with_columns(
        cpr_issue=issue,
        cpr_warning=pl.when(valid & (warnings.list.len() > 0)).then(warnings.list.join(",")),
        cpr_norm=pl.when(valid).then(pl.col("_cpr10")),
        sex=pl.when(valid).then(
            pl.when(pl.col("_cpr10").str.slice(9, 1).cast(pl.Int32, strict=False) % 2 == 1)
            .then(1).otherwise(2)
        ).cast(pl.Int8),
        birth_date=pl.when(valid).then(birth),
    ).drop("_cpr_clean", "_cpr10", "_repaired")


@dataclass(frozen=True, slots=True)
class CprResult:
    """The outcome of normalising one value (same rules as :func:`normalise_cpr`)."""

    normalised: str | None
    issue: str | None
    warning: str | None
    sex: int | None
    birth_date: date | None


def normalise_cpr_value(value: str | None) -> CprResult:
    """Normalise a single value; consistent with the vectorised :func:`normalise_cpr` by construction."""
    row = normalise_cpr(pl.DataFrame({"cpr": [value]}, schema={"cpr": pl.String})).row(0, named=True)
    return CprResult(row["cpr_norm"], row["cpr_issue"], row["cpr_warning"], row["sex"], row["birth_date"])
