"""Read a quarterly submission exactly as delivered: detect encoding and separator, map header variants.

``source_row`` convention: the 1-based number of the data row in the file, counting every line after the
header that is not blank; a line whose fields are all empty (``;;;;``, trailing spreadsheet rows) is blank
and is counted in ``blank_lines_skipped`` instead. For Excel files the same holds for sheet rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
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
    """The file cannot be read at all; the message is written for a data steward."""


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
            "Please resend the file with one header row: CPR, Startdato, Slutdato, Delmålgruppe, Gennemført."
        )
    return positions, header_map


def _frame(records: list[tuple[int, list[str]]], positions: dict[int, str]) -> pl.DataFrame:
    data: dict[str, list] = {c: [] for c in SUBMISSION_COLUMNS}
    rows = []
    for number, values in records:
        rows.append(number)
        for column in SUBMISSION_COLUMNS:
            data[column].append(None)
        for i, column in positions.items():
            value = values[i] if i < len(values) else None
            data[column][-1] = None if value is None or str(value).strip() == "" else str(value).strip()
    frame = pl.DataFrame({"source_row": rows, **data}, schema={"source_row": pl.Int64, **{c: pl.String for c in SUBMISSION_COLUMNS}})
    return frame


def _read_csv(content: bytes, filename: str):
    if _looks_binary(content):
        raise SubmissionError(
            f"{filename}: the file is not a text (CSV) file - it looks like a binary or damaged file. "
            "Please export the quarter again as CSV (semicolon-separated) or as an Excel .xlsx file."
        )
    text, encoding = _decode(content, filename)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip(" ;,\t")), None)
    if first is None:
        raise SubmissionError(f"{filename}: the file is empty. Please resend the quarter's file with its header and rows.")
    header_line = lines[first]
    counts = {sep: header_line.count(sep) for sep in (";", ",", "\t", "|")}
    delimiter = max(counts, key=lambda s: counts[s]) if max(counts.values()) > 0 else ";"
    reader = csv.reader(io.StringIO("\n".join(lines[first:])), delimiter=delimiter)
    try:
        parsed = list(reader)
    except csv.Error as error:
        raise SubmissionError(f"{filename}: the file could not be split into rows ({error}). Please export it again.") from None
    header, body = parsed[0], parsed[1:]
    positions, header_map = _map_header(header, filename)
    records, blank, number = [], 0, 0
    for values in body:
        if not any(v.strip() for v in values):
            blank += 1
            continue
        number += 1
        records.append((number, values))
    return _frame(records, positions), encoding, delimiter, None, header_map, blank


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
            "not really an .xlsx file. Please save it again as Excel (.xlsx) or CSV and resend."
        ) from None
    problems = []
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        first = next((i for i, r in enumerate(rows) if any(_cell_text(v) for v in r)), None)
        if first is None:
            continue
        header = [_cell_text(v) or "" for v in rows[first]]
        try:
            positions, header_map = _map_header(header, f"{filename} (sheet '{sheet.title}')")
        except SubmissionError as error:
            problems.append(str(error))
            continue
        records, blank, number = [], 0, 0
        for values in rows[first + 1 :]:
            texts = [_cell_text(v) for v in values]
            if not any(t and t.strip() for t in texts):
                blank += 1
                continue
            number += 1
            records.append((number, texts))
        book.close()
        return _frame(records, positions), "xlsx", "", sheet.title, header_map, blank
    book.close()
    raise SubmissionError(
        problems[0] if problems else f"{filename}: the Excel file has no sheet with data. Please resend the quarter's file."
    )


def read_submission(content: bytes, /, *, filename: str) -> RawSubmission:
    """Read one delivered file; raise :class:`SubmissionError` with a steward-readable message if impossible."""
    digest = hashlib.sha256(content).hexdigest()
    if not content.strip():
        raise SubmissionError(f"{filename}: the file is empty. Please resend the quarter's file with its header and rows.")
    is_zip = content[:4] == b"PK\x03\x04"
    if filename.lower().endswith((".xlsx", ".xlsm")) or is_zip:
        if not is_zip:
            raise SubmissionError(
                f"{filename}: the file is named .xlsx but is not an Excel workbook. Please resend it as .xlsx or .csv."
            )
        rows, encoding, delimiter, sheet, header_map, blank = _read_xlsx(content, filename)
    elif filename.lower().endswith(".xls"):
        raise SubmissionError(f"{filename}: old Excel (.xls) files are not supported. Please save as .xlsx or CSV and resend.")
    else:
        rows, encoding, delimiter, sheet, header_map, blank = _read_csv(content, filename)
    notes = tuple(f"column {c} missing: treated as empty" for c in SUBMISSION_COLUMNS if c not in header_map.values())
    return RawSubmission(rows, filename, digest, len(content), encoding, delimiter, sheet, header_map, blank, notes)
