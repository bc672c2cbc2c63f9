"""The one masking rule for every general output: nothing CPR-shaped survives it.

Steward pages, feedback files, failure messages, reports, run tags and console lines all pass text that came
from a delivered file (values, file names, sheet titles) through :func:`mask_text` before it leaves
``restricted/``. The rule is deliberately wider than a CPR number:

* a CPR number written with any separator (``610190-1238``, ``610190 1238``, ``61 01 90 12 38``,
  ``610190–1238``): a run of digit groups joined by single separators (whitespace, hyphens and dashes,
  ``.``, ``/``, ``_``) is masked when it holds 9 or more digits in all;
* any run of 6 or more consecutive digits, whatever follows it (``690489-33``, ``69048933123``), so no part
  of a 9- or 11-digit value stays visible.

Masking keeps the shape: every digit of a masked span becomes ``X`` and separators stay, so a steward can
still see that a value had a space or one digit too many (``XXXXXX XXXX``), and no detector of digit runs
(the CPR scan, the blocking check on pseudonymised rows) mistakes the mask for a number. Dates
(``2024-01-31``, ``31.01.2024``: 8 digits, no run of 6) and short numbers are left as they are.
"""

from __future__ import annotations

import re

import polars as pl

#: Characters that may separate the digit groups of a CPR number (normalisation strips whitespace and dashes).
SEPARATORS = r"\s\-\u2010-\u2015./_"
#: Digit groups joined by one or two separator characters (the widest span a CPR number could be written as).
_SPAN = re.compile(rf"\d+(?:[{SEPARATORS}]{{1,2}}\d+)*")
#: A span is masked with this many digits in all (a CPR number has 10; 9 when a spreadsheet dropped the 0).
MIN_SPAN_DIGITS = 9
#: ... or with a run of this many consecutive digits anywhere in it.
MIN_RUN = 6
_RUN = re.compile(rf"\d{{{MIN_RUN},}}")


#: What a masked digit becomes.
MASK = "X"
_DIGIT = re.compile(r"\d")


def mask_digits(text: str | None, /) -> str | None:
    """Mask every digit of ``text`` (a cell that holds a CPR number: ``610190-1238`` -> ``XXXXXX-XXXX``)."""
    return None if text is None else _DIGIT.sub(MASK, str(text))


def _mask_span(match: re.Match[str]) -> str:
    span = match.group(0)
    digits = sum(c.isdigit() for c in span)
    if digits >= MIN_SPAN_DIGITS or _RUN.search(span):
        return _DIGIT.sub(MASK, span)
    return span


def mask_text(text: str | None, /) -> str | None:
    """``text`` with every CPR-shaped span and every run of 6+ digits masked (digits become ``X``).

    ``None`` stays ``None``, so the function can be mapped over nullable columns.

    Examples
    --------
    >>> mask_text("Row 3: CPR '610190 1238' has 10 digits; start '2024-01-31'")
    "Row 3: CPR 'XXXXXX XXXX' has 10 digits; start '2024-01-31'"
    >>> mask_text("esbjerg_6701901236.csv")
    'esbjerg_XXXXXXXXXX.csv'
    """
    if text is None:
        return None
    return _SPAN.sub(_mask_span, str(text))


def is_masked(text: str | None, /) -> bool:
    """Whether ``text`` is unchanged by :func:`mask_text` (holds nothing CPR-shaped)."""
    return text is None or mask_text(text) == str(text)


def mask_column(column: str | pl.Expr, /) -> pl.Expr:
    """Return a polars expression applying :func:`mask_text` to a String column (nulls stay null).

    The masking keeps each span's shape, which a regular-expression replacement cannot express in polars,
    so the values are masked in Python, once per distinct value (the texts here are messages and file
    names: thousands, not millions).
    """
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.map_batches(lambda values: pl.Series(values.name, [mask_text(v) for v in values.to_list()],
                                                     dtype=pl.String), return_dtype=pl.String)


def mask_frame(frame: pl.DataFrame, /, *, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """``frame`` with :func:`mask_text` applied to ``columns`` (default: every String column)."""
    names = columns if columns is not None else tuple(c for c, t in frame.schema.items() if t == pl.String)
    present = [c for c in names if c in frame.columns]
    return frame.with_columns(mask_column(c).alias(c) for c in present) if present and frame.height else frame
