"""The inbox on disk: which submission files exist, what else is there, and the archive of all received.

Layout: ``$CTI_DATA_DIR/inbox/<YYYY>Q<n>/<site>.csv|.xlsx`` (a corrected resubmission may replace the file
or sit beside it as ``<site>_<anything>.<ext>``). Every file read is copied, content-addressed by sha256,
to ``restricted/received/<quarter>/<site>/`` with a receipt, so the history of what was received when
survives a site overwriting its file, and re-delivering the same bytes changes nothing.

Every entry of the inbox is accounted for (:func:`account`): a submission file becomes an :class:`InboxFile`;
anything else (a file of an unknown site, ``aarhus .csv``, a ``misc/`` or ``backup_2025Q1/`` folder, a
quarter outside the monitoring period such as ``2023Q4/`` or ``2025Q5/``) becomes a :class:`Stray` that the
steward view lists with what to do. Nothing in the inbox is ignored silently and nothing makes a run crash.
A file name is site text like any other: it is stored and shown masked (``analysis.masking``), so a CPR
number in a name (``esbjerg_6701901236.csv``) never leaves ``restricted/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from analysis import schema
from analysis.masking import is_masked, mask_text
from pipelines.storage import write_bytes, write_json

SUFFIXES = (".csv", ".txt", ".xlsx", ".xls")
QUARTER_FOLDER = re.compile(r"^\d{4}Q[1-4]$")

#: What a steward reads for each kind of inbox entry that was not ingested as it is (reason, what to do).
STRAY_KINDS: dict[str, tuple[str, str]] = {
    "not_a_quarter_folder": ("the folder name is not a quarter (YYYYQn, e.g. 2025Q1)",
                             "Move the site files into their quarter's folder, or move the folder out of the "
                             "inbox."),
    "quarter_out_of_range": ("the quarter is outside the monitoring period ({first} to {last})",
                             "Check the quarter in the folder name; files outside the period are not "
                             "ingested."),
    "loose_file": ("a file directly in the inbox, not in a quarter folder",
                   "Move it into its quarter's folder (YYYYQn)."),
    "nested_folder": ("a folder inside a quarter folder",
                      "Move the site files up into the quarter folder, or move the folder out of the inbox."),
    "unknown_site": ("the file name does not start with a configured site id{hint}",
                     "Rename the file to <site>.csv or <site>_<anything>.csv (site ids: sites.csv), or add "
                     "the site to sites.csv."),
    "unsupported_type": ("not a .csv, .txt or .xlsx file",
                         "Ask the site to send the quarter as CSV or Excel (.xlsx)."),
    "hidden": ("a hidden or temporary file (e.g. an Excel lock file)", "Nothing to do: it is not ingested."),
    "cpr_in_name": ("the file name contains a CPR-shaped number; it is ingested and shown under the "
                    "masked name",
                    "Ask the site to name its files without CPR numbers (the original name stays in "
                    "restricted/)."),
    "unreadable_entry": ("the entry cannot be read ({detail})", "Check the file's permissions in the inbox."),
}

#: Columns of the inbox account (:meth:`InboxAccount.to_frame`), the steward view's "inbox" table.
INBOX_ENTRIES = schema.INBOX_ENTRIES


@dataclass(frozen=True, slots=True)
class InboxFile:
    """One delivered file as seen in the inbox."""

    quarter: str  # "2024Q1"
    site: str
    path: Path

    @property
    def name(self) -> str:
        """The file name as stored and shown everywhere outside ``restricted/`` (masked)."""
        return mask_text(self.path.name)

    @property
    def signature(self) -> str:
        """Changes whenever the file is replaced (used by the sensor's cursor)."""
        stat = self.path.stat()
        return f"{stat.st_mtime_ns}:{stat.st_size}"


@dataclass(frozen=True, slots=True)
class Stray:
    """An inbox entry that is not ingested as it is (or is ingested under a masked name), with what to do."""

    entry: str  # relative to the inbox, masked; folders end with "/"
    kind: str
    reason: str
    action: str
    quarter: str | None = None
    site: str | None = None
    ingested: bool = False


@dataclass(frozen=True, slots=True)
class InboxAccount:
    """Every entry of the inbox: the submission files, and everything else with a reason and an action."""

    files: tuple[InboxFile, ...]
    strays: tuple[Stray, ...]

    def to_frame(self) -> pl.DataFrame:
        """Return the strays as the steward view shows them: :data:`INBOX_ENTRIES`, sorted by entry."""
        rows = [(s.entry, s.quarter, s.site, s.kind, s.ingested, s.reason, s.action) for s in self.strays]
        return pl.DataFrame(rows, schema=INBOX_ENTRIES, orient="row").sort("entry", "kind")


def site_of(filename: str, sites: tuple[str, ...]) -> str | None:
    """Return the site a file belongs to: its stem is the site id, or starts with ``<site>_``/``<site>-``."""
    stem = Path(filename).stem.lower()
    for site in sorted(sites, key=len, reverse=True):
        if stem == site or stem.startswith((f"{site}_", f"{site}-", f"{site}.")):
            return site
    return None


def _near_site(filename: str, sites: tuple[str, ...]) -> str:
    """Return a hint for a name that almost names a site (``aarhus .csv``, ``Aarhus kommune.csv``)."""
    stem = Path(filename).stem.lower()
    for site in sorted(sites, key=len, reverse=True):
        if stem.startswith(site):
            rest = stem[len(site):]
            what = "a space" if rest[:1].isspace() else f"'{mask_text(rest[:1])}'"
            return (f" (it starts with '{site}' followed by {what}: did you mean {site}.csv or "
                    f"{site}_<anything>?)")
    return ""


def _stray(entry: str, kind: str, *, quarter: str | None = None, site: str | None = None,
           ingested: bool = False, **detail: str) -> Stray:
    reason, action = STRAY_KINDS[kind]
    return Stray(mask_text(entry), kind, reason.format(**detail), action.format(**detail), quarter, site,
                 ingested)


def classify(entries: Iterable[tuple[str, bool]], sites: tuple[str, ...], *,
             quarters: Collection[str] | None = None) -> InboxAccount:
    """Account for inbox entries given as ``(path relative to the inbox, is_dir)`` (pure: no file access).

    ``quarters`` are the quarter folders that are partitions (default: every well-formed ``YYYYQn``);
    entries below a folder that is not a quarter, or out of range, are reported once, for the folder.
    """
    files: list[InboxFile] = []
    strays: list[Stray] = []
    valid = None if quarters is None else sorted(quarters)
    skip: set[str] = set()
    for relative, is_dir in sorted(entries):
        parts = Path(relative).parts
        if not parts or any(relative.startswith(f"{s}/") for s in skip):
            continue
        name = parts[-1]
        if len(parts) == 1 and is_dir:
            if not QUARTER_FOLDER.match(name):
                strays.append(_stray(f"{name}/", "not_a_quarter_folder"))
                skip.add(name)
            elif valid is not None and name not in valid:
                strays.append(_stray(f"{name}/", "quarter_out_of_range", quarter=name,
                                     first=valid[0] if valid else "-", last=valid[-1] if valid else "-"))
                skip.add(name)
            continue
        if len(parts) == 1:
            strays.append(_stray(name, "hidden" if name.startswith((".", "~$")) else "loose_file"))
            continue
        quarter = parts[0]
        if len(parts) > 2 or is_dir:
            if len(parts) == 2:
                strays.append(_stray(f"{relative}/", "nested_folder", quarter=quarter))
                skip.add(relative)
            continue
        if name.startswith((".", "~$")):
            strays.append(_stray(relative, "hidden", quarter=quarter))
            continue
        if Path(name).suffix.lower() not in SUFFIXES:
            strays.append(_stray(relative, "unsupported_type", quarter=quarter))
            continue
        site = site_of(name, sites)
        if site is None:
            strays.append(_stray(relative, "unknown_site", quarter=quarter, hint=_near_site(name, sites)))
            continue
        files.append(InboxFile(quarter, site, Path(relative)))
        if not is_masked(name):
            strays.append(_stray(relative, "cpr_in_name", quarter=quarter, site=site, ingested=True))
    return InboxAccount(tuple(files), tuple(strays))


def _entries(inbox: Path) -> tuple[list[tuple[str, bool]], list[Stray]]:
    """Every entry under ``inbox`` as ``(relative path, is_dir)``; entries that cannot be listed as strays."""
    found: list[tuple[str, bool]] = []
    problems: list[Stray] = []
    if not inbox.is_dir():
        return found, problems
    todo = [inbox]
    while todo:
        folder = todo.pop()
        try:
            children = sorted(folder.iterdir())
        except OSError as error:
            problems.append(_stray(f"{folder.relative_to(inbox)}/", "unreadable_entry",
                                   detail=error.strerror or "error"))
            continue
        for child in children:
            relative = child.relative_to(inbox).as_posix()
            is_dir = child.is_dir()
            found.append((relative, is_dir))
            if is_dir:
                todo.append(child)
    return found, problems


def account(inbox: Path, sites: tuple[str, ...], *, quarters: Collection[str] | None = None) -> InboxAccount:
    """Account for every entry of the inbox directory (see :func:`classify`); paths of files are absolute.

    ``quarters`` defaults to the quarters that are partitions (``pipelines.partitions.quarter_labels``).
    """
    if quarters is None:
        from pipelines.partitions import quarter_labels

        quarters = quarter_labels()
    entries, problems = _entries(inbox)
    listed = classify(entries, sites, quarters=quarters)
    files = tuple(InboxFile(f.quarter, f.site, inbox / f.path) for f in listed.files)
    return InboxAccount(files, (*listed.strays, *problems))


def scan(inbox: Path, sites: tuple[str, ...], *, quarters: Collection[str] | None = None) -> list[InboxFile]:
    """Every submission file in the inbox: in a quarter folder that is a partition, named after a site."""
    return list(account(inbox, sites, quarters=quarters).files)


def partitions_in_archive(archive: Path, /) -> set[tuple[str, str]]:
    """Return ``(quarter, site)`` of every partition with a received file in the archive (its receipts)."""
    return {(p.parent.parent.name, p.parent.name) for p in archive.glob("*/*/*.json")
            if QUARTER_FOLDER.match(p.parent.parent.name)}


@dataclass(frozen=True, slots=True)
class Receipt:
    """A received version of a site's quarterly file (content-addressed)."""

    quarter: str
    site: str
    filename: str  # masked (see the module docstring); the receipt in restricted/ keeps the original
    sha256: str
    size_bytes: int
    received: str  # ISO timestamp: the file's modification time when first received
    archived: Path

    def content(self) -> bytes:
        """Return the archived bytes of this version."""
        return self.archived.read_bytes()


def receive(inbox: Path, archive: Path, *, quarter: str, site: str, sites: tuple[str, ...]) -> list[Receipt]:
    """Archive the partition's current inbox files and return every version ever received, oldest first."""
    folder = archive / quarter / site
    for item in scan(inbox, sites):
        if item.quarter != quarter or item.site != site:
            continue
        content = item.path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        receipt_path = folder / f"{digest}.json"
        mtime = datetime.fromtimestamp(item.path.stat().st_mtime, tz=UTC)
        if receipt_path.exists():
            # Same bytes already received: re-ingest is a no-op, unless a site re-delivers an earlier version
            # after a later (e.g. broken) one; then the re-delivery is the current version again.
            _redeliver(receipt_path, mtime, history(archive, quarter=quarter, site=site))
            continue
        archived = write_bytes(folder / f"{digest}{item.path.suffix.lower()}", content)
        receipt = {"quarter": quarter, "site": site, "filename": item.name, "sha256": digest,
                   "size_bytes": len(content), "received": mtime.isoformat(timespec="seconds"),
                   "archived": archived.name}
        if item.name != item.path.name:  # the name held a CPR: the original stays here, in restricted/ only
            receipt["original_filename"] = item.path.name
        write_json(receipt_path, receipt)
    return history(archive, quarter=quarter, site=site)


def _redeliver(receipt_path: Path, mtime: datetime, versions: list[Receipt]) -> None:
    """Move a known version's receipt time forward when re-delivered after a newer, different version."""
    data = json.loads(receipt_path.read_text())
    received = mtime.isoformat(timespec="seconds")
    if not versions or versions[-1].sha256 == data["sha256"] or received <= versions[-1].received:
        return
    write_json(receipt_path,
               {**data, "received": received, "first_received": data.get("first_received", data["received"])})


def history(archive: Path, *, quarter: str, site: str) -> list[Receipt]:
    """All received versions of one site's quarter, ordered by receipt time (then file name, then hash)."""
    folder = archive / quarter / site
    receipts = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        receipts.append(
            Receipt(
                quarter=data["quarter"],
                site=data["site"],
                filename=mask_text(data["filename"]),  # receipts written before names were masked
                sha256=data["sha256"],
                size_bytes=data["size_bytes"],
                received=data["received"],
                archived=folder / data["archived"],
            )
        )
    return sorted(receipts, key=lambda r: (r.received, r.filename, r.sha256))


def already_received(archive: Path, item: InboxFile, /) -> bool:
    """Whether the archive already holds ``item``'s bytes as a version that still counts.

    True when the file's sha256 is the latest received version of its partition, or an earlier version
    whose file is not newer than the latest (a re-delivery of an old version after a newer one is new).
    """
    versions = history(archive, quarter=item.quarter, site=item.site)
    if not versions:
        return False
    digest = hashlib.sha256(item.path.read_bytes()).hexdigest()
    if versions[-1].sha256 == digest:
        return True
    mtime = datetime.fromtimestamp(item.path.stat().st_mtime, tz=UTC).isoformat(timespec="seconds")
    return any(v.sha256 == digest for v in versions) and mtime <= versions[-1].received

