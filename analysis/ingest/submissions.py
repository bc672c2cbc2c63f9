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
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from analysis.masking import mask_text
from analysis.schema import SUBMISSION_COLUMNS

#: Header variants seen in municipal exports, by canonical column (compared after ``_key``).
HEADER_VARIANTS: dict[str, tuple[str, ...]] = {
    "cpr": ("cpr", "cprnr", "cprnummer", "personnummer", "cpr_nr", "personnr", "cprno"),
    "start_date": ("startdato", "start", "opstart", "opstartsdato", "startdatoddmmaaaa", "forlobstart",
                   "start_dato"),
    "end_date": ("slutdato", "slut", "afslutningsdato", "ophorsdato", "ophoersdato", "slut_dato",
                 "forlobslut"),
    "delmaalgruppe": ("delmalgruppe", "delmaalgruppe", "malgruppe", "maalgruppe", "delmalgruppekode",
                      "delmaalgruppekode", "delmalgruppe_kode"),
    "completed": ("gennemfort", "gennemfoert", "afsluttetjanej", "afsluttet", "fuldfort", "fuldfoert",
                  "gennemfortjanej"),
}
_LOOKUP = {variant.replace("_", ""): canonical
           for canonical, variants in HEADER_VARIANTS.items() for variant in variants}
REQUIRED = ("cpr", "start_date", "delmaalgruppe")


class SubmissionError(ValueError):
    """The file cannot be read at all; the message is written for a data steward and never quotes the file.

    ``reason`` names the problem (``not_text``, ``empty``, ``unsplittable``, ``xlsx_damaged``, ``not_xlsx``,
    ``old_xls``, ``no_sheet_data``, ``header_columns_missing``, ``header_missing``, ``too_large``;
    ``unreadable`` when none applies) and ``details`` holds its parameters (``filename``, ``sheet``,
    ``missing``), so the site's feedback can say it in Danish (``analysis.ingest.reasons.unreadable_text``).
    """

    def __init__(self, message: str, /, *, reason: str = "unreadable", **details: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.details = details


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bounds on the work one delivered file may cause; a file beyond them fails only its own partition.

    A municipality's quarterly file has hundreds of rows and a handful of columns; the defaults leave a wide
    margin and still stop a file that would take minutes (an .xlsx declaring column XFD on every row, a zip
    bomb, a runaway export) with a message saying which bound it broke.
    """

    max_bytes: int = 200_000_000
    #: an .xlsx is a zip archive: its members as they would be decompressed
    max_unzipped_bytes: int = 1_000_000_000
    max_rows: int = 2_000_000
    #: Excel's own limit (column XFD)
    max_columns: int = 16_384
    #: rows x columns actually present
    max_cells: int = 50_000_000
    max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_unzipped_bytes, self.max_rows, self.max_columns, self.max_cells) < 1:
            raise ValueError("every ReadLimits bound must be at least 1")
        if self.max_seconds < 0:
            raise ValueError("ReadLimits.max_seconds must be 0 or more")


#: Control characters no submission needs (tab, newline and carriage return are kept); removed and counted.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Budget:
    """Counts rows and cells of one file against its :class:`ReadLimits`, and the time spent."""

    __slots__ = ("cells", "deadline", "filename", "limits", "rows")

    def __init__(self, limits: ReadLimits, filename: str) -> None:
        self.limits, self.filename = limits, filename
        self.deadline = time.monotonic() + limits.max_seconds
        self.rows = self.cells = 0

    def row(self, width: int) -> None:
        self.rows += 1
        self.cells += width
        limits = self.limits
        if self.rows > limits.max_rows:
            self._fail(f"it has more than {limits.max_rows:,} rows")
        if width > limits.max_columns:
            self._fail(f"a row has {width:,} columns (at most {limits.max_columns:,} are read)")
        if self.cells > limits.max_cells:
            self._fail(f"it has more than {limits.max_cells:,} cells")
        if self.rows % 1024 == 0 or limits.max_seconds == 0:
            self.clock()

    def clock(self) -> None:
        if time.monotonic() >= self.deadline:
            self._fail(f"reading it took longer than {self.limits.max_seconds:g} s")

    def _fail(self, why: str) -> None:
        raise SubmissionError(
            f"{self.filename}: the file is too large to read: {why}. A quarterly file needs only the columns "
            "CPR, Startdato, Slutdato, Delmålgruppe, Gennemført; please export just those and resend.",
            reason="too_large", filename=self.filename,
        )


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
    """Tell whether more than 5 % of the bytes at the start or in the whole file are control bytes.

    Such a file is not text; a few stray control bytes are removed instead.
    """
    control = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13))
    sample = content[:4096]
    return (len(sample) - len(sample.translate(None, control)) > len(sample) * 0.05
            or len(content) - len(content.translate(None, control)) > len(content) * 0.05)


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
        wanted = "; ".join(f"{c.replace('_', ' ')} (e.g. {v})" for c, v in expected.items())
        shapes, data_like = _describe_first_line(header)
        what = (f"the header row is probably missing: the first line {shapes} and looks like a data row"
                if data_like else f"the header row has no column for {wanted}: the first line {shapes}")
        raise SubmissionError(
            f"{filename}: {what}. Please resend the file with one header row: CPR, Startdato, Slutdato, "
            "Delmålgruppe, Gennemført.",
            reason="header_missing" if data_like else "header_columns_missing", filename=filename,
            missing=",".join(missing),
        )
    return positions, header_map


def _shape(value: object) -> str:
    """Describe what a cell looks like, without its content (messages never quote a delivered file)."""
    text = "" if value is None else str(value).strip()
    if not text:
        return "empty"
    if mask_text(text) != text:
        return "CPR-shaped number"
    if re.fullmatch(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}( .*)?", text):
        return "date"
    if re.fullmatch(r"[-+]?\d+([.,]\d+)?", text):
        return "number"
    return "text"


def _describe_first_line(header: list) -> tuple[str, bool]:
    """Return the shapes of the first line's fields (never their content), and whether it is a data row."""
    shapes = [_shape(v) for v in header]
    if not any(s != "empty" for s in shapes):
        return "is empty", False
    counted = ", ".join(f"{shapes.count(s)} {s}" for s in dict.fromkeys(shapes))
    data_like = any(s in ("CPR-shaped number", "date") for s in shapes)
    return f"has {len(shapes)} field(s) ({counted}), none a known column name", data_like


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


def _read_csv(content: bytes, filename: str, budget: _Budget):
    if _looks_binary(content):
        raise SubmissionError(
            f"{filename}: the file is not a text (CSV) file - it looks like a binary or damaged file. "
            "Please export the quarter again as CSV (semicolon-separated) or as an Excel .xlsx file.",
            reason="not_text", filename=filename,
        )
    text, encoding = _decode(content, filename)
    text, removed = _CONTROL.subn("", text)  # anywhere in the file: a stray byte must not reach any output
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
        budget.row(len(header))
        positions, header_map = _map_header(header, filename)
        consumed = reader.line_num  # lines read so far; a quoted field may span several
        for values in reader:
            line, consumed = first + consumed + 1, reader.line_num  # the file line this record starts on
            budget.row(len(values))
            if not any(v.strip() for v in values):
                blank += 1
                continue
            number += 1
            records.append((number, line, values))
    except csv.Error as error:
        raise SubmissionError(f"{filename}: the file could not be split into rows ({error}). "
                              "Please export it again.", reason="unsplittable", filename=filename) from None
    budget.clock()
    notes = (f"{removed} control character(s) removed",) if removed else ()
    return (_frame(records, positions, sheet=None), encoding, delimiter, None, header_map, blank,
            tuple(h.strip() for h in header), positions, notes)


def _cell_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _CONTROL.sub("", str(value))


def _check_archive(content: bytes, filename: str, limits: ReadLimits) -> None:
    """Refuse an .xlsx whose members would decompress beyond the limit (a zip bomb), before opening it."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # openpyxl reports the damage with the usual message
    if unzipped > limits.max_unzipped_bytes:
        raise SubmissionError(
            f"{filename}: the file is too large to read: the workbook unpacks to {unzipped:,} bytes (at most "
            f"{limits.max_unzipped_bytes:,}). Please save only the sheet with the courses and resend."
        )


def _sheet_rows(sheet, budget: _Budget):
    """Yield the rows of a read-only sheet as they are stored, ignoring the dimension the file declares.

    A workbook may declare ``A1:XFD1048576``; openpyxl would then pad every row to 16,384 cells. After
    ``reset_dimensions`` each row is as wide as its last stored cell, so the work follows the real content.
    """
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()
    for values in sheet.iter_rows(values_only=True):
        budget.row(len(values))
        yield values


def _read_xlsx(content: bytes, filename: str, budget: _Budget):
    from openpyxl import load_workbook

    _check_archive(content, filename, budget.limits)
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as error:
        raise SubmissionError(
            f"{filename}: the Excel file could not be opened ({type(error).__name__}); it may be damaged or "
            "not really an .xlsx file. Please save it again as Excel (.xlsx) or CSV and resend.",
            reason="xlsx_damaged", filename=filename,
        ) from None
    problems: list[SubmissionError] = []
    for index, sheet in enumerate(book.worksheets, start=1):
        # numbered from 1: the rows come as stored from row 1, gaps as empty rows, so this is
        # Excel's row number
        rows = enumerate(_sheet_rows(sheet, budget), start=1)
        header = None
        for _, values in rows:
            if any(_cell_text(v) for v in values):
                header = [_cell_text(v) or "" for v in values]
                break
        if header is None:
            continue
        title = mask_text(sheet.title)  # a sheet title is the site's text too: never quoted unmasked
        try:
            positions, header_map = _map_header(header, f"{filename} (sheet {index} '{title}')")
        except SubmissionError as error:
            error.details["sheet"] = sheet.title
            problems.append(error)
            continue
        records, blank, number = [], 0, 0
        for row_number, values in rows:
            texts = [_cell_text(v) for v in values]
            if not any(t and t.strip() for t in texts):
                blank += 1
                continue
            number += 1
            records.append((number, row_number, texts))
        budget.clock()
        book.close()
        return (_frame(records, positions, sheet=title), "xlsx", "", title, header_map, blank,
                tuple(h.strip() for h in header), positions, ())
    book.close()
    if problems:
        raise problems[0]
    raise SubmissionError(f"{filename}: the Excel file has no sheet with data. Please resend the quarter's "
                          "file.", reason="no_sheet_data", filename=filename)


def read_submission(content: bytes, /, *, filename: str, limits: ReadLimits = ReadLimits()) -> RawSubmission:
    """Read one delivered file; raise :class:`SubmissionError` with a steward-readable message if impossible.

    Parameters
    ----------
    content
        The file's bytes as delivered.
    filename
        The file's name (shown in messages masked by ``analysis.masking.mask_text``).
    limits
        Bounds on bytes, rows, columns, cells and seconds (:class:`ReadLimits`); beyond them the file fails
        with a message naming the bound.
    """
    filename = mask_text(filename)
    digest = hashlib.sha256(content).hexdigest()
    if len(content) > limits.max_bytes:
        raise SubmissionError(
            f"{filename}: the file is too large to read: {len(content):,} bytes "
            f"(at most {limits.max_bytes:,}). Please send only the quarter's courses.",
            reason="too_large", filename=filename,
        )
    if not content.strip():
        raise SubmissionError(f"{filename}: the file is empty. Please resend the quarter's file with its "
                              "header and rows.", reason="empty", filename=filename)
    budget = _Budget(limits, filename)
    is_zip = content[:4] == b"PK\x03\x04"
    if filename.lower().endswith((".xlsx", ".xlsm")) or is_zip:
        if not is_zip:
            raise SubmissionError(
                f"{filename}: the file is named .xlsx but is not an Excel workbook. "
                "Please resend it as .xlsx or .csv.",
                reason="not_xlsx", filename=filename,
            )
        rows, encoding, delimiter, sheet, header_map, blank, header, positions, notes = _read_xlsx(
            content, filename, budget)
    elif filename.lower().endswith(".xls"):
        raise SubmissionError(f"{filename}: old Excel (.xls) files are not supported. "
                              "Please save as .xlsx or CSV and resend.", reason="old_xls", filename=filename)
    else:
        rows, encoding, delimiter, sheet, header_map, blank, header, positions, notes = _read_csv(
            content, filename, budget)
    notes = (*notes, *(f"column {c} missing: treated as empty" for c in SUBMISSION_COLUMNS
                       if c not in header_map.values()))
    return RawSubmission(rows, filename, digest, len(content), encoding, delimiter, sheet, header_map, blank,
                         notes, header, {column: i for i, column in positions.items()})


def columns_record(raw: RawSubmission, /) -> str:
    """Return the file's header row and column positions as JSON (``received_files.columns``).

    Header cells the reader did not recognise are kept so the site can be told what it called a column,
    masked (``analysis.masking``): a header cell is file content and could hold a CPR number.
    """
    mapped = set(raw.header_map)
    header = [h if h in mapped else mask_text(h) for h in raw.header]
    return json.dumps({"header": header, "positions": raw.positions}, ensure_ascii=False, sort_keys=True)
