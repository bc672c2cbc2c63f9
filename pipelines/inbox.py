"""The inbox on disk: which submission files exist, and the archive of everything ever received.

Layout: ``$CTI_DATA_DIR/inbox/<YYYY>Q<n>/<site>.csv|.xlsx`` (a corrected resubmission may replace the file
or sit beside it as ``<site>_<anything>.<ext>``). Every file read is copied, content-addressed by sha256,
to ``restricted/received/<quarter>/<site>/`` with a receipt, so the history of what was received when
survives a site overwriting its file, and re-delivering the same bytes changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.storage import write_bytes, write_json

SUFFIXES = (".csv", ".txt", ".xlsx", ".xls")


@dataclass(frozen=True, slots=True)
class InboxFile:
    """One delivered file as seen in the inbox."""

    quarter: str  # "2024Q1"
    site: str
    path: Path

    @property
    def signature(self) -> str:
        """Changes whenever the file is replaced (used by the sensor's cursor)."""
        stat = self.path.stat()
        return f"{stat.st_mtime_ns}:{stat.st_size}"


@dataclass(frozen=True, slots=True)
class Receipt:
    """A received version of a site's quarterly file (content-addressed)."""

    quarter: str
    site: str
    filename: str
    sha256: str
    size_bytes: int
    received: str  # ISO timestamp: the file's modification time when first received
    archived: Path

    def content(self) -> bytes:
        return self.archived.read_bytes()


def site_of(filename: str, sites: tuple[str, ...]) -> str | None:
    """The site a file belongs to: its stem is the site id, or starts with ``<site>_``/``<site>-``."""
    stem = Path(filename).stem.lower()
    for site in sorted(sites, key=len, reverse=True):
        if stem == site or stem.startswith((f"{site}_", f"{site}-", f"{site}.")):
            return site
    return None


def scan(inbox: Path, sites: tuple[str, ...]) -> list[InboxFile]:
    """Every submission file in the inbox whose name starts with a configured site id, sorted."""
    found = []
    for quarter_dir in sorted(inbox.glob("*Q[1-4]")):
        for path in sorted(quarter_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SUFFIXES:
                site = site_of(path.name, sites)
                if site is not None:
                    found.append(InboxFile(quarter_dir.name, site, path))
    return found


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
        write_json(
            receipt_path,
            {
                "quarter": quarter,
                "site": site,
                "filename": item.path.name,
                "sha256": digest,
                "size_bytes": len(content),
                "received": mtime.isoformat(timespec="seconds"),
                "archived": archived.name,
            },
        )
    return history(archive, quarter=quarter, site=site)


def _redeliver(receipt_path: Path, mtime: datetime, versions: list[Receipt]) -> None:
    """Move a known version's receipt time forward when it is re-delivered after a newer, different version."""
    data = json.loads(receipt_path.read_text())
    received = mtime.isoformat(timespec="seconds")
    if not versions or versions[-1].sha256 == data["sha256"] or received <= versions[-1].received:
        return
    write_json(receipt_path, {**data, "received": received, "first_received": data.get("first_received", data["received"])})


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
                filename=data["filename"],
                sha256=data["sha256"],
                size_bytes=data["size_bytes"],
                received=data["received"],
                archived=folder / data["archived"],
            )
        )
    return sorted(receipts, key=lambda r: (r.received, r.filename, r.sha256))
