"""Scan outputs for CPR-shaped strings and for a secret, file by file (parquet and xlsx opened, not grepped).

Used by the no-raw-CPR and key-leak tests; an analyst can run it on a real data directory too:
``python -m pipelines.audit $CTI_DATA_DIR``.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.layout import RAW_CPR_DIRS

# Ten digits (DDMMYY-SSSS with or without a separator: hyphen, dash, space) or nine digits (a CPR whose
# leading zero was dropped), not inside a longer alphanumeric token (hex digests and ids are not CPR numbers);
# and ten digits written in groups (``61 01 90 12 38``). Separators as in ``analysis.masking``.
_SEP = r"[ \t\-\u2010-\u2015]"
_CANDIDATE = re.compile(rf"(?<![0-9A-Za-z])(\d{{6}}{_SEP}{{0,2}}\d{{4}}|\d{{9}}"
                        rf"|\d{{2}}(?:{_SEP}\d{{2}}){{3}}{_SEP}?\d{{2}})"
                        r"(?![0-9A-Za-z])")

#: Directories that may hold raw CPR by design: the delivered files and the restricted store.
ALLOWED = RAW_CPR_DIRS


def _plausible_cpr(digits: str) -> bool:
    """DDMMYY with a real day (1-31, or 61-91 for replacement numbers) and month."""
    digits = re.sub(r"\D", "", digits)
    if len(digits) == 9:
        digits = "0" + digits
    day, month = int(digits[:2]), int(digits[2:4])
    return (1 <= day <= 31 or 61 <= day <= 91) and 1 <= month <= 12


def cpr_like(text: str) -> list[str]:
    """Every CPR-shaped substring of ``text`` (plausible date part, 9 or 10 digits, hyphen optional)."""
    return [m for m in _CANDIDATE.findall(text) if _plausible_cpr(m)]


@dataclass(frozen=True, slots=True)
class Finding:
    """A suspicious string in a file (the value itself is masked: findings are shown in test output)."""

    path: Path
    count: int
    example_masked: str


def _texts(path: Path) -> Iterator[str]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pl.read_parquet(path)
        for name in frame.columns:
            yield name
            column = frame[name]
            if column.dtype == pl.String or column.dtype.is_integer():
                yield "\n".join(str(v) for v in column.drop_nulls().unique().to_list())
            elif column.dtype in (pl.List(pl.String),) or isinstance(column.dtype, pl.Struct | pl.List):
                yield str(column.to_list())
        return
    with path.open("rb") as handle:
        magic = handle.read(16)
    if magic == b"SQLite format 3\x00":
        # Scan every cell on its own: raw pages concatenate adjacent values (timestamps) into digit runs.
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in connection.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                for row in connection.execute(f'select * from "{table}"'):
                    for cell in row:
                        if cell is not None:
                            yield cell.decode("latin-1") if isinstance(cell, bytes) else str(cell)
        finally:
            connection.close()
        return
    if suffix in (".xlsx", ".zip") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                yield archive.read(member).decode("utf-8", errors="replace")
        return
    yield path.read_bytes().decode("latin-1")


def scan_cpr(root: Path, *, allowed: tuple[str, ...] = ALLOWED) -> list[Finding]:
    """Files under ``root`` (outside ``allowed`` top-level folders) that contain CPR-shaped strings."""
    findings = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if relative.parts and relative.parts[0] in allowed:
            continue
        hits = [hit for text in _texts(path) for hit in cpr_like(text)]
        if hits:
            findings.append(Finding(relative, len(hits), hits[0][:2] + "****" + hits[0][-2:]))
    return findings


def scan_values(root: Path, values: tuple[str, ...], *, allowed: tuple[str, ...] = ALLOWED) -> list[Path]:
    """Files under ``root`` (outside ``allowed`` top-level folders) whose text contains any of ``values``.

    For values the CPR scan does not see (a CPR cut short, one digit too long, a number in a file name).
    """
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if relative.parts and relative.parts[0] in allowed:
            continue
        if any(value in text for text in _texts(path) for value in values):
            found.append(relative)
    return found


def scan_secret(root: Path, secret: str) -> list[Path]:
    """Files under ``root`` (everything, restricted included) whose text contains ``secret``."""
    return [
        p.relative_to(root)
        for p in sorted(root.rglob("*"))
        if p.is_file() and any(secret in text for text in _texts(p))
    ]


if __name__ == "__main__":  # pragma: no cover - manual audit of a data directory
    found = scan_cpr(Path(sys.argv[1]))
    for item in found:
        print(f"{item.path}: {item.count} CPR-shaped value(s), e.g. {item.example_masked}")
    sys.exit(1 if found else 0)
