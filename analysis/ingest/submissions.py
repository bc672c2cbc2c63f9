"""Read a quarterly submission exactly as delivered: detect encoding and separator, map header variants.

``source_row`` convention: the 1-based number of the data row in the file, counting every line after the
header that is not blank; a line whose fields are all empty (``;;;;``, trailing spreadsheet rows) is blank
and is counted in ``blank_lines_skipped`` instead. For Excel files the same holds for sheet rows. The
pipeline keys rows by ``(sha256, source_row)``.

The site cannot find a ``source_row`` (it skips blank lines and the header), so every row also carries where
the site sees it (``LOCATION_COLUMNS``): ``file_line``, the line of a CSV file on which the row starts,
counting the header and every line above it from 1 (what a text editor shows, and the row Excel shows
when it opens the CSV); or ``sheet`` and ``sheet_row``, the sheet's name and the row number Excel shows
for a workbook (the data sheet need not be the first).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from analysis.schema import SUBMISSION_COLUMNS

#: Header variants seen in municipal exports, by canonical column (compared after ``_key``).
HEADER_VARIANTS: dict[str, tuple[str, ...]] = {
    "cpr": ("cpr", "cprnr", "cprnummer", "personnummer", "cpr_nr", "personnr", "cprno"),
    "start_date": ("startdato", "start", "opstart", "opstartsdato", "startdatoddmmaaaa", "forlobstart", "start_dato"),
    "end_date": ("slutdato", "slut", "afslutningsdato", "ophorsdato", "ophoersdato", "slut_dato", "forlobslut"),
    "delmaalgruppe": ("delmalgruppe", "delmaalgruppe", "malgruppe", "maalgruppe", "delmalgruppekode", "delmaalgruppekode", "delmalgruppe_kode"),
    "completed": ("gennemfort", "gennemfoert", "afsluttetjanej", "afsluttet", "fuldfort", "fuldfoert", "gennemfortjanej"),
}
_LOOKUP = {variant.replace("_", ""): canonical for canonical, variants in HEADER_VARIANTS.items() for variant in variants}
REQUIRED = ("cpr", "start_date", "delmaalgruppe")


class SubmissionError(ValueError):
    """The file cannot be read at all; the message is written for a data steward.

    ``reason`` names the problem (``not_text``, ``empty``, ``unsplittable``, ``xlsx_damaged``, ``not_xlsx``,
    ``old_xls``, ``no_sheet_data``, ``header_columns_missing``; ``unreadable`` when none applies) and
    ``details`` holds its parameters (``filename``, ``sheet``, ``missing``), so the site's feedback can say it
    in Danish (``analysis.ingest.reasons.unreadable_text``).
    """

    def __init__(self, message: str, /, *, reason: str = "unreadable", **details: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.details = details


@dataclass(frozen=True, slots=True)
class RawSubmission:
    """A submission as delivered: text rows in canonical columns plus what is known about the file."""

    rows: pl.DataFrame
    filename: str
    sha256: str
    size_bytes: int
    encoding: str
    delimiter: str
    sheet: str | None
    header_map: dict[str, str]
    blank_lines_skipped: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The header row as read, and the 0-based position of each canonical column in it.
    header: tuple[str, ...] = field(default_factory=tuple)
    positions: dict[str, int] = field(default_factory=dict)


#: Where the site finds a row: CSV line (header = line 1), or Excel sheet name and row number.
LOCATION_COLUMNS = {"file_line": pl.Int64, "sheet": pl.String, "sheet_row": pl.Int64}


def _key(text: str) -> str:
    """Header comparison key: lower case, æøå folded, accents and punctuation removed, '(...)' dropped."""
    text = str(text).strip().lower().replace("æ", "ae").replace("ø", "oe").replace("å", "aa")
    text = re.sub(r"\(.*?\)", "", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", text)


def _canonical(header: str) -> str | None:
    key = _key(header)
    if key in _LOOKUP:
        return _LOOKUP[key]
    # Folded variants (å -> aa, ø -> oe) and plain ASCII spellings (å -> a, ø -> o) both occur.
    alt = key.replace("aa", "a").replace("oe", "o")
    return _LOOKUP.get(alt)


def _decode(content: bytes, filename: str) -> tuple[str, str]:
    """Decode the whole file once: BOM -> utf-8-sig; valid UTF-8 -> utf-8; else cp1252; else latin-1."""
    if content.startswith(b"\xef\xbb\xbf"):
        try:
            return content[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:  # a BOM but damaged bytes: keep every row, mark the damage visibly
            return content[3:].decode("utf-8", errors="replace"), "utf-8-sig (damaged bytes replaced)"
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return content.decode("latin-1"), "latin-1"


def _looks_binary(content: bytes) -> bool:
    sample = content[:4096]
    return b"\x00" in sample or sum(b < 9 or 13 < b < 32 for b in sample) > len(sample) * 0.05


def _map_header(header: list[str], filename: str) -> tuple[dict[int, str], dict[str, str]]:
    positions: dict[int, str] = {}
    header_map: dict[str, str] = {}
    for i, name in enumerate(header):
        canonical = _canonical(name)
        if canonical and canonical not in header_map.values():
            positions[i] = canonical
            header_map[str(name).strip()] = canonical
    missing = [c for c in REQUIRED if c not in header_map.values()]
    if missing:
        expected = {c: ", ".join(HEADER_VARIANTS[c][:3]) for c in missing}
        found = ", ".join(str(h).strip() for h in header if str(h).strip()) or "(nothing)"
        wanted = "; ".join(f"{c.replace('_', ' ')} (e.g. {v})" for c, v in expected.items())
        raise SubmissionError(
            f"{filename}: the header row has no column for {wanted}. Found: {found}. "
            "Please resend the file with one header row: CPR, Startdato, Slutdato, Delmålgruppe, Gennemført.",
            reason="header_columns_missing", filename=filename, missing=",".join(missing),
        )
    return positions, header_map


def _frame(records: list[tuple[int, int, list[str]]], positions: dict[int, str], *,
           sheet: str | None) -> pl.DataFrame:
    """Rows in canonical columns; ``records`` are (source_row, CSV line or sheet row, values)."""
    data: dict[str, list] = {c: [] for c in SUBMISSION_COLUMNS}
    rows, lines = [], []
    for number, line, values in records:
        rows.append(number)
        lines.append(line)
        for column in SUBMISSION_COLUMNS:
            data[column].append(None)
        for i, column in positions.items():
            value = values[i] if i < len(values) else None
            data[column][-1] = None if value is None or str(value).strip() == "" else str(value).strip()
    none = [None] * len(rows)
    where = ({"file_line": none, "sheet": [sheet] * len(rows), "sheet_row": lines} if sheet
             else {"file_line": lines, "sheet": none, "sheet_row": none})
    schema = {"source_row": pl.Int64, **LOCATION_COLUMNS, **{c: pl.String for c in SUBMISSION_COLUMNS}}
    return pl.DataFrame({"source_row": rows, **where, **data}, schema=schema)


def _physical_lines(text: str) -> list[str]:
    """Split ``text`` into lines as an editor counts them (CRLF, LF or CR).

    ``str.splitlines`` also breaks at form feeds, U+2028 and other characters a field may hold, which would
    split a row in two and misnumber every later line.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _read_csv(content: bytes, filename: str):
    if _looks_binary(content):
        raise SubmissionError(
            f"{filename}: the file is not a text (CSV) file - it looks like a binary or damaged file. "
            "Please export the quarter again as CSV (semicolon-separated) or as an Excel .xlsx file.",
            reason="not_text", filename=filename,
        )
    text, encoding = _decode(content, filename)
    lines = _physical_lines(text)
    first = next((i for i, line in enumerate(lines) if line.strip(" ;,\t")), None)
    if first is None:
        raise SubmissionError(f"{filename}: the file is empty. Please resend the quarter's file with its "
                              "header and rows.", reason="empty", filename=filename)
    header_line = lines[first]
    counts = {sep: header_line.count(sep) for sep in (";", ",", "\t", "|")}
    delimiter = max(counts, key=lambda s: counts[s]) if max(counts.values()) > 0 else ";"
    reader = csv.reader(io.StringIO("\n".join(lines[first:])), delimiter=delimiter)
    records, blank, number = [], 0, 0
    try:
        header = next(reader)
        consumed = reader.line_num  # lines read so far; a quoted field may span several
        for values in reader:
            line, consumed = first + consumed + 1, reader.line_num  # the file line this record starts on
            if not any(v.strip() for v in values):
                blank += 1
                continue
            number += 1
            records.append((number, line, values))
    except csv.Error as error:
        raise SubmissionError(f"{filename}: the file could not be split into rows ({error}). "
                              "Please export it again.", reason="unsplittable", filename=filename) from None
    positions, header_map = _map_header(header, filename)
    return (_frame(records, positions, sheet=None), encoding, delimiter, None, header_map, blank,
            tuple(h.strip() for h in header), positions)


def _cell_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_xlsx(content: bytes, filename: str):
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as error:
        raise SubmissionError(
            f"{filename}: the Excel file could not be opened ({type(error).__name__}); it may be damaged or "
            "not really an .xlsx file. Please save it again as Excel (.xlsx) or CSV and resend.",
            reason="xlsx_damaged", filename=filename,
        ) from None
    problems: list[SubmissionError] = []
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        first = next((i for i, r in enumerate(rows) if any(_cell_text(v) for v in r)), None)
        if first is None:
            continue
        header = [_cell_text(v) or "" for v in rows[first]]
        try:
            positions, header_map = _map_header(header, f"{filename} (sheet '{sheet.title}')")
        except SubmissionError as error:
            error.details["sheet"] = sheet.title
            problems.append(error)
            continue
        records, blank, number = [], 0, 0
        # iter_rows starts at row 1 whatever the sheet's dimension says, so index + 1 is Excel's row number
        for index, values in enumerate(rows[first + 1 :], start=first + 2):
            texts = [_cell_text(v) for v in values]
            if not any(t and t.strip() for t in texts):
                blank += 1
                continue
            number += 1
            records.append((number, index, texts))
        book.close()
        return (_frame(records, positions, sheet=sheet.title), "xlsx", "", sheet.title, header_map, blank,
                tuple(h.strip() for h in header), positions)
    book.close()
    if problems:
        raise problems[0]
    raise SubmissionError(f"{filename}: the Excel file has no sheet with data. Please resend the quarter's "
                          "file.", reason="no_sheet_data", filename=filename)


def read_submission(content: bytes, /, *, filename: str) -> RawSubmission:
    """Read one delivered file; raise :class:`SubmissionError` with a steward-readable message if impossible."""
    digest = hashlib.sha256(content).hexdigest()
    if not content.strip():
        raise SubmissionError(f"{filename}: the file is empty. Please resend the quarter's file with its "
                              "header and rows.", reason="empty", filename=filename)
    is_zip = content[:4] == b"PK\x03\x04"
    if filename.lower().endswith((".xlsx", ".xlsm")) or is_zip:
        if not is_zip:
            raise SubmissionError(
                f"{filename}: the file is named .xlsx but is not an Excel workbook. "
                "Please resend it as .xlsx or .csv.",
                reason="not_xlsx", filename=filename,
            )
        rows, encoding, delimiter, sheet, header_map, blank, header, positions = _read_xlsx(content, filename)
    elif filename.lower().endswith(".xls"):
        raise SubmissionError(f"{filename}: old Excel (.xls) files are not supported. "
                              "Please save as .xlsx or CSV and resend.", reason="old_xls", filename=filename)
    else:
        rows, encoding, delimiter, sheet, header_map, blank, header, positions = _read_csv(content, filename)
    notes = tuple(f"column {c} missing: treated as empty" for c in SUBMISSION_COLUMNS if c not in header_map.values())
    return RawSubmission(rows, filename, digest, len(content), encoding, delimiter, sheet, header_map, blank,
                         notes, header, {column: i for i, column in positions.items()})


def columns_record(raw: RawSubmission, /) -> str:
    """Return the file's header row and column positions as JSON (``received_files.columns``).

    Header cells the reader did not recognise are kept so the site can be told what it called a column,
    with any run of 6 or more digits masked: a header cell is file content and could hold a CPR number.
    """
    mapped = set(raw.header_map)
    header = [h if h in mapped else re.sub(r"\d{6,}", lambda m: "9" * len(m[0]), h) for h in raw.header]
    return json.dumps({"header": header, "positions": raw.positions}, ensure_ascii=False, sort_keys=True)
