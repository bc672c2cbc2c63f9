"""Exports researchers open directly: an ``.xlsx`` workbook with numeric cells, and CSV the Danish way.

**Workbook.** One sheet per published table, an "About" sheet first (what each sheet holds, the units, the
CSV convention). Numbers stay numbers: every numeric cell is a number with the number format of its unit
(:data:`analysis.publish.labels.UNITS`: ``0.0`` for percentage points, ``#,##0`` for kroner and counts,
``0.000`` for rates and p-values, ...), so a researcher can sort, sum and chart without converting text.
The values are written as given (the report passes published values: scaled to their unit, rounded, after
disclosure control); ``-0.0`` is written as 0, NaN and infinities as empty cells. Text cells are stored as
text, never as formulas: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'`` (:func:`analysis.publish.safe_export.escape_frame`), and the control characters XML cannot
hold are dropped. The bytes are deterministic (fixed timestamps).

**CSV** (:func:`published_csv_bytes`): UTF-8 with a byte-order mark, ``;`` between fields and ``,`` as
the decimal mark, the convention Danish Excel (da-DK list separator ``;``, decimal ``,``) opens correctly by
double-click, and R's ``read.csv2``, ``readr::read_csv2``, pandas ``read_csv(sep=";", decimal=",")`` and
polars ``read_csv(separator=";", decimal_comma=True)`` read (:func:`read_published_csv`). The old ";" with
"." decimals was misread by Danish Excel ("1.5" becomes a date or text). Numbers carry no thousands
separator, negative numbers an ASCII minus, dates ISO 8601 (``2024-03-01``); text fields containing ``;``,
quotes or line breaks are quoted; text is formula-escaped as in the workbook.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from datetime import date, datetime

import polars as pl

from analysis.publish.labels import UNITS
from analysis.publish.safe_export import _fixed_zip_times, escape_frame

CSV_SEPARATOR = ";"
CSV_DECIMAL = ","
#: Said in the report's methods section and on the workbook's "About" sheet.
CSV_CONVENTION = (
    "CSV files are UTF-8 with a byte-order mark, ';' between fields and ',' as the decimal mark (the Danish "
    "convention: Danish Excel opens them by double-click; in R use read.csv2 or readr::read_csv2, in Python "
    "pandas.read_csv(sep=';', decimal=',')). Numbers have no thousands separator; dates are YYYY-MM-DD."
)

_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def published_csv_bytes(frame: pl.DataFrame, /, *, float_precision: int | None = 6) -> bytes:
    """Return ``frame`` as CSV in the documented convention (``;`` fields, ``,`` decimals, UTF-8 with BOM)."""
    safe = _clean_floats(escape_frame(_strip_controls(frame)), decimals=float_precision)
    text = safe.write_csv(separator=CSV_SEPARATOR, decimal_comma=True, float_precision=float_precision,
                          date_format="%Y-%m-%d")
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def read_published_csv(content: bytes, /) -> pl.DataFrame:
    """Read a file written by :func:`published_csv_bytes` (the way a script should read the report's CSVs)."""
    text = content.decode("utf-8-sig")
    return pl.read_csv(text.encode("utf-8"), separator=CSV_SEPARATOR, decimal_comma=True,
                       try_parse_dates=True)


def _strip_controls(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).str.replace_all(_ILLEGAL_XML.pattern, "")
                              for c, t in frame.schema.items() if t == pl.String)


def _clean_floats(frame: pl.DataFrame, *, decimals: int | None = None) -> pl.DataFrame:
    """Round to ``decimals`` (if given); -0.0 becomes 0.0, NaN and inf become null (no NaN in a sheet)."""
    def clean(c: str) -> pl.Expr:
        value = pl.col(c).round(decimals) if decimals is not None else pl.col(c)
        return (pl.when(~pl.col(c).is_finite()).then(None).when(value == 0).then(pl.lit(0.0))
                .otherwise(value).alias(c))

    return frame.with_columns(clean(c) for c, t in frame.schema.items() if t.is_float())


def _sheet_title(name: str) -> str:
    title = _SHEET_FORBIDDEN.sub("_", name).strip("'")[:31]
    if not title:
        raise ValueError(f"sheet name {name!r} is empty once Excel's forbidden characters are removed")
    return title


def workbook_bytes(sheets: Mapping[str, pl.DataFrame], /, *,
                   units: Mapping[str, Mapping[str, str]] | None = None,
                   descriptions: Mapping[str, str] | None = None, title: str = "Published tables") -> bytes:
    """Return an ``.xlsx`` workbook of ``sheets`` with numeric cells and one number format per unit.

    Parameters
    ----------
    sheets
        Sheet name -> table (names are cut to Excel's 31 characters and must stay distinct).
    units
        Sheet name -> column -> unit code of :data:`analysis.publish.labels.UNITS` (``"pp"``, ``"dkk"``,
        ``"count"``, ...), or ``"@<column>"`` to take each row's unit from a column of unit codes (tables
        mixing outcomes). Numeric columns without a unit get Excel's general format.
    descriptions
        Sheet name -> one sentence for the "About" sheet.
    title
        The "About" sheet's heading.

    Returns
    -------
    bytes
        The workbook, byte-identical for identical input.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    units = units or {}
    descriptions = descriptions or {}
    titles = {name: _sheet_title(name) for name in sheets}
    if len(set(titles.values())) != len(titles) or "About" in titles.values():
        raise ValueError("sheet names must stay distinct (and not be 'About') once cut to 31 characters: "
                         f"{sorted(titles.values())}")
    for name, spec in units.items():
        if name not in sheets:
            raise ValueError(f"units given for {name!r}, which is not a sheet")
        for column, unit in spec.items():
            if column not in sheets[name].columns:
                raise ValueError(f"units given for column {column!r}, which sheet {name!r} lacks")
            if unit.startswith("@"):
                if unit[1:] not in sheets[name].columns:
                    raise ValueError(f"sheet {name!r}: the unit column {unit[1:]!r} is missing")
            elif unit not in UNITS:
                raise ValueError(f"unknown unit {unit!r} for {name}.{column}; use one of {', '.join(UNITS)}")

    # write-only: rows go to the file as they are appended, with no cell object kept per value (the
    # report's workbook has some 590,000 cells on the default run)
    book = Workbook(write_only=True)
    fixed = datetime(2000, 1, 1)
    book.properties.created = fixed
    book.properties.modified = fixed
    about = book.create_sheet("About")
    about.column_dimensions["A"].width = 32
    about.column_dimensions["B"].width = 100

    def bold(value: object, size: float | None = None) -> WriteOnlyCell:
        cell = WriteOnlyCell(about, value=value)
        cell.font = Font(bold=True, size=size) if size else Font(bold=True)
        return cell

    about.append([bold(title, 13)])
    about.append([])
    about.append([bold("Sheet"), bold("What it holds")])
    for name in sheets:
        about.append([titles[name], _strip(descriptions.get(name, ""))])
    about.append([])
    about.append([bold("Units"), "Numbers are stored as numbers, in the unit of their column or row"])
    for unit in UNITS.values():
        about.append([unit.code, f"{unit.label} (format {unit.excel_format})"])
    about.append([])
    about.append(["CSV", CSV_CONVENTION])

    for name, frame in sheets.items():
        sheet = book.create_sheet(title=titles[name])
        # 6 decimals, as the CSV: a float's long digit run would look like a CPR number to any scan
        safe = _clean_floats(escape_frame(_strip_controls(frame)), decimals=6)
        values = [[_cell_value(v) for v in row] for row in safe.iter_rows()]
        for c, column in enumerate(safe.columns):
            width = max((len(str(row[c])) for row in values if row[c] is not None), default=0)
            width = max(width, len(column))
            sheet.column_dimensions[get_column_letter(c + 1)].width = min(max(width + 2, 8), 60)
        sheet.freeze_panes = "A2"
        if safe.height:
            sheet.auto_filter.ref = f"A1:{get_column_letter(max(1, safe.width))}{safe.height + 1}"
        header = []
        for column in safe.columns:
            cell = WriteOnlyCell(sheet, value=column)
            cell.font = Font(bold=True)
            header.append(cell)
        sheet.append(header)
        spec = units.get(name, {})
        formats = []
        for column in safe.columns:
            unit = spec.get(column)
            if unit is None:
                formats.append(None)
            elif unit.startswith("@"):
                formats.append(safe[unit[1:]].to_list())
            else:
                formats.append(UNITS[unit].excel_format)
        for r, row in enumerate(values):
            cells = []
            for c, value in enumerate(row):
                if value is None or isinstance(value, bool):
                    cells.append(value)
                    continue
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # never a formula, whatever the text starts with
                elif isinstance(value, date | datetime):
                    cell.number_format = "yyyy-mm-dd"
                else:
                    fmt = formats[c]
                    if isinstance(fmt, list):
                        fmt = UNITS[fmt[r]].excel_format if fmt[r] in UNITS else None
                    if fmt is not None:
                        cell.number_format = fmt
                cells.append(cell)
            sheet.append(cells)
    buf = io.BytesIO()
    book.save(buf)
    return _fixed_zip_times(buf.getvalue())


def _strip(text: str) -> str:
    return _ILLEGAL_XML.sub("", text)


def _cell_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, bool | int | date | datetime):
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else value + 0.0
    return str(value)
