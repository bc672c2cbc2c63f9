"""Spreadsheet-safe exports: CSV and Excel cells that a spreadsheet would run as formulas are escaped.

A string cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``
(OWASP CSV-injection advice). Numeric columns are data, not text, and stay as they are. The functions return
the file's bytes, deterministic (fixed workbook timestamps); ``pipelines.storage.write_bytes`` writes them.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

import polars as pl

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: str) -> str:
    """``'=1+1`` for ``=1+1``; other strings unchanged."""
    return "'" + value if value.startswith(DANGEROUS) else value


def escape_frame(frame: pl.DataFrame, /) -> pl.DataFrame:
    """Escape every String column (vectorised)."""
    pattern = "^[=+\\-@\t\r]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(pattern)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.String
    )


#: Characters an xlsx cell cannot hold (XML 1.0 forbids most control characters); openpyxl raises on them.
_NOT_IN_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: What such a character becomes: visible, so a steward sees that the delivered value held something odd.
REPLACEMENT = "\ufffd"


def xlsx_text(value: str, /) -> str:
    """Replace every character an xlsx cell cannot hold in ``value`` by U+FFFD.

    One site's stray byte must not stop the workbook of every site.
    """
    return _NOT_IN_XLSX.sub(REPLACEMENT, value)


def csv_bytes(frame: pl.DataFrame, /, *, separator: str = ";") -> bytes:
    """UTF-8 with BOM (Danish Excel opens it right), ``;``-separated, escaped."""
    text = escape_frame(frame).write_csv(
        separator=separator, float_precision=6
    )  # long digit runs look like CPR numbers
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def xlsx_bytes(sheets: dict[str, pl.DataFrame], /) -> bytes:
    """One sheet per frame; every string cell stored as text (never a formula); byte-identical on rerun."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    book.remove(book.active)
    fixed = datetime(2000, 1, 1)
    book.properties.created = fixed
    book.properties.modified = fixed
    for name, frame in sheets.items():
        sheet = book.create_sheet(title=name[:31])
        safe = escape_frame(frame)
        sheet.append([xlsx_text(c) for c in safe.columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in safe.iter_rows():
            sheet.append(
                [None if v is None else (v if isinstance(v, int | float) else xlsx_text(str(v))) for v in row]
            )
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        for column in sheet.columns:
            width = max((len(str(c.value)) for c in column if c.value is not None), default=8)
            sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 8), 60)
            # long text wraps inside its column instead of hiding under the next one; rows read from the top
            alignment = Alignment(wrap_text=width > 58, vertical="top")
            for cell in column[1:]:
                cell.alignment = alignment
        sheet.freeze_panes = "A2"
    buf = io.BytesIO()
    book.save(buf)
    return _fixed_zip_times(buf.getvalue())


def _fixed_zip_times(content: bytes) -> bytes:
    """Rewrite the archive with fixed member timestamps (and the fixed core.xml time) for determinism."""
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>2000-01-01T00:00:00Z", data
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=(2000, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, data)
    return out.getvalue()
