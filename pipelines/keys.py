"""The pseudonymisation key in operation: read it, apply the key rules, and keep one key per data directory.

The rules themselves live in :mod:`analysis.ingest.pseudonym` (``key_problem``). Here:

* :func:`read_secret` reads the key from where the settings say (``CTI_PSEUDONYM_KEY`` or a key file) and
  refuses it, naming the source but never the key, when it breaks a rule. ``cti`` calls it before any file
  is read, archived or written; the key resource calls it again when a run starts (UI, sensors).
* The key id (a fingerprint) the data directory's pseudonyms were made with is recorded in
  ``Layout.key_record``. :func:`require_same_key` stops a run whose key has another id before it writes
  anything, naming both ids: pseudonyms of two keys cannot be linked, so mixing them would silently unlink
  participants. Changing the key is a deliberate act: ``cti rotate-key``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from analysis.ingest import pseudonym
from pipelines.layout import Layout
from pipelines.settings import KeySource
from pipelines.storage import write_json

#: Assets that hold pseudonyms and their key id (``key_id`` column), checked when no record exists yet.
PSEUDONYM_ASSETS = (("pseudonymised_courses",), ("courses",), ("person_index",))


class KeyRefused(ValueError):
    """The key is missing, unusable, or not the key of the data directory (message for the operator)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """The key id a data directory's pseudonyms were made with, and since when."""

    key_id: str
    since: str
    #: Key ids used before a rotation, oldest first (their pseudonyms were all replaced).
    previous: tuple[str, ...] = ()


def read_secret(source: KeySource, /, *, env: Mapping[str, str] | None = None) -> bytes | None:
    """Return the key bytes from ``source`` (None when it is not configured); :class:`KeyRefused` if unusable.

    A key file may end with one newline (editors add it); nothing else is stripped: a key with stray
    whitespace is refused rather than quietly becoming another key.
    """
    env = os.environ if env is None else env
    if source.file is not None:
        try:
            raw = Path(source.file).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise KeyRefused(f"the key file {source.file} cannot be read ({error.strerror})") from None
        secret = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    else:
        value = env.get(source.variable or "")
        if value is None or value == "":
            return None
        secret = value.encode("utf-8")
    problem = pseudonym.key_problem(secret)
    if problem is not None:
        raise KeyRefused(f"the pseudonymisation key from {source.describe()} is refused: {problem}.")
    return secret


def recorded(layout: Layout, /) -> KeyRecord | None:
    """Return the data directory's key record (None when no pseudonyms were made yet)."""
    import json

    if not layout.key_record.exists():
        return None
    data = json.loads(layout.key_record.read_text())
    return KeyRecord(str(data["key_id"]), str(data.get("since", "")), tuple(data.get("previous", ())))


def stored_key_ids(layout: Layout, /) -> tuple[str, ...]:
    """Distinct key ids in the stored pseudonym-bearing assets (for data made before the record existed)."""
    found: set[str] = set()
    for key in PSEUDONYM_ASSETS:
        files = [layout.asset_file(key)] if layout.asset_file(key).exists() else []
        if layout.asset_dir(key).is_dir():
            files += sorted(layout.asset_dir(key).rglob("*.parquet"))
        for path in files:
            if "key_id" in pl.read_parquet_schema(path):
                found |= set(pl.read_parquet(path, columns=["key_id"])["key_id"]
                             .drop_nulls().unique().to_list())
    return tuple(sorted(found))


def data_key_ids(layout: Layout, /) -> tuple[str, ...]:
    """Return the key id(s) the data directory's pseudonyms carry: the record, else the stored assets'."""
    record = recorded(layout)
    return (record.key_id,) if record is not None else stored_key_ids(layout)


def require_same_key(layout: Layout, key_id: str, /) -> None:
    """Raise :class:`KeyRefused` (naming both ids) if the data directory's pseudonyms carry another key id."""
    existing = [k for k in data_key_ids(layout) if k != key_id]
    if existing:
        raise KeyRefused(
            f"key mismatch: the pseudonyms in {layout.root} were made with key id {', '.join(existing)}, but "
            f"the key given has key id {key_id}. Nothing was written. Provide the key with id {existing[0]} "
            "(from your key store), or change keys deliberately with `cti rotate-key`, which "
            "re-pseudonymises the whole history with the new key."
        )


def record(layout: Layout, key_id: str, /, *, previous: tuple[str, ...] = ()) -> KeyRecord:
    """Record ``key_id`` as the data directory's key (idempotent for the same id)."""
    current = recorded(layout)
    if current is not None and current.key_id == key_id and not previous:
        return current
    entry = KeyRecord(key_id, datetime.now(UTC).isoformat(timespec="seconds"), previous)
    write_json(layout.key_record,
               {"key_id": entry.key_id, "since": entry.since, "previous": list(entry.previous)})
    return entry


def missing_key_message(layout: Layout, source: KeySource, /) -> str:
    """Say what to do when no key is configured: never suggest a new key where pseudonyms exist already."""
    existing = data_key_ids(layout)
    if existing:
        return (
            f"no pseudonymisation key: {source.describe()} is not set. The data in {layout.root} were "
            f"pseudonymised with key id {', '.join(existing)}: provide THAT key (from your key store). Do "
            "not generate a new one: pseudonyms made with another key cannot be linked to the existing ones. "
            "To change keys deliberately, use `cti rotate-key`."
        )
    return (
        f"no pseudonymisation key: {source.describe()} is not set. For a new data directory set it to a "
        f"secret of at least {pseudonym.MIN_KEY_BYTES} bytes, e.g.\n"
        f"  export CTI_PSEUDONYM_KEY=$({pseudonym.GENERATE_HINT})\n"
        "and keep it in your key store (the same key is needed for every later run), or use --demo-key for "
        "the mock-world demo."
    )
