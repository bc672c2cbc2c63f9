"""Generating the mock world on disk: registers (through the asset job), inbox files and truth.json."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from analysis.masking import mask_text
from pipelines.settings import MockSource, Settings
from pipelines.storage import write_bytes, write_json


def exists(settings: Settings, /) -> bool:
    """Whether a mock world has been generated in the settings' data directory."""
    return settings.layout.manifest.exists()


def manifest(settings: Settings, /) -> dict:
    """Return the settings the existing world was generated with."""
    return json.loads(settings.layout.manifest.read_text())


class ForeignInbox(ValueError):
    """The inbox or the received-file archive holds files the mock world did not write (real deliveries)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_files(settings: Settings, /) -> list[str]:
    """Inbox files and archived receipts the mock world did not write (masked names, sorted).

    The manifest records every inbox file the world wrote with its sha256; a file that is not there, or whose
    bytes changed, was delivered by someone else and must never be overwritten or deleted.
    """
    layout = settings.layout
    made = manifest(settings) if exists(settings) else {}
    written: dict[str, str] | None = made.get("inbox_files")
    present = sorted(p for p in layout.inbox.rglob("*") if p.is_file()) if layout.inbox.is_dir() else []
    # a world made before 2026-12
    if written is None and made and len(present) == made.get("submission_files"):
        written = {p.relative_to(layout.inbox).as_posix(): _sha256(p) for p in present}
    written = written or {}
    foreign = [p.relative_to(layout.inbox).as_posix() for p in present
               if written.get(p.relative_to(layout.inbox).as_posix()) != _sha256(p)]
    mine = set(written.values())
    for receipt in sorted(layout.received.glob("*/*/*.json")) if layout.received.is_dir() else []:
        if json.loads(receipt.read_text()).get("sha256") not in mine:
            foreign.append(f"restricted/received/{receipt.parent.parent.name}/{receipt.parent.name}/ "
                           "(an archived file)")
    return sorted({mask_text(f) for f in foreign})


def generate(settings: Settings, /, *, persons: int, seed: int, force: bool = False,
             world: Mapping | None = None) -> str:
    """Generate the mock world in the settings' data directory unless one with this configuration exists.

    ``world`` holds any other ``analysis.mockworld.WorldConfig`` settings (``effects`` nested, e.g.
    ``{"site_capacity": 20, "effects": {"self_support_pp": 0.0}}``); everything not given keeps its default
    (the settings of a world already on disk are not carried over). The world is "already present" when the
    manifest's identity (a hash of the whole configuration, ``WorldConfig.identity``) is this one's.

    Return a one-line summary. A new world removes every output derived from the old one; it refuses
    (:class:`ForeignInbox`) when the inbox or the archive holds files it did not write, so a real delivery
    is never overwritten or deleted. Raises ValueError (naming the setting) for an invalid configuration.
    """
    from analysis import mockworld
    from pipelines.definitions import build_definitions, register_source
    from pipelines.instance import QUIET, get_instance
    from pipelines.jobs import MOCK_WORLD_JOB

    layout = settings.layout
    base = settings.source if isinstance(settings.source, MockSource) else MockSource()
    source = replace(base, world="").with_world({**dict(world or {}), "persons": persons, "seed": seed})
    config = source.config()  # ValueError for an unknown setting or a value out of range
    identity = config.identity()
    if exists(settings) and not force and manifest(settings).get("identity") == identity:
        return (f"mock world already present ({persons:,} persons, seed {seed}, configuration "
                f"{identity[:12]}) under {layout.root}")
    foreign = foreign_files(settings)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ForeignInbox(
            f"{layout.root} holds {len(foreign)} file(s) the mock world did not write ({shown}); they look "
            "like real deliveries, so no mock world is generated over them and nothing was changed. For real "
            "data set CTI_REGISTER_SOURCE=extracts and CTI_EXTRACTS_DIR (see README); for the mock world use "
            "another data directory (--data-dir)."
        )
    if exists(settings):
        for path in layout.derived():  # a new world invalidates everything derived from the old one
            shutil.rmtree(path, ignore_errors=True)
    settings = replace(settings, source=source)
    started = time.perf_counter()
    result = build_definitions(settings).resolve_job_def(MOCK_WORLD_JOB).execute_in_process(
        instance=get_instance(layout, storage=settings.storage), tags={"cti/trigger": "cti mock-world"},
        run_config=QUIET,
    )
    if not result.success:
        raise RuntimeError("generating the mock registers failed; see the Dagster run log")
    state = register_source(settings).world()  # cached: the same world the job just wrote
    files = mockworld.submissions(state)
    written: dict[str, str] = {}
    for f in files:
        path = layout.inbox / f.quarter / f.filename
        write_bytes(path, f.content)
        written[path.relative_to(layout.inbox).as_posix()] = hashlib.sha256(f.content).hexdigest()
        received = getattr(f, "received", None)
        if received is not None:  # the file's modification time is when the site delivered it
            stamp = received.timestamp() if hasattr(received, "timestamp") else float(received)
            os.utime(path, (stamp, stamp))
    write_json(layout.truth, mockworld.truth(state))
    write_json(layout.manifest, {"persons": persons, "seed": seed, "identity": identity,
                                 "config": config.to_mapping(), "submission_files": len(files),
                                 "inbox_files": written})
    defaults = mockworld.WorldConfig().to_mapping()
    changed = {k: v for k, v in config.to_mapping().items()
               if k not in ("persons", "seed") and v != defaults.get(k)}
    return (
        f"mock world: {persons:,} persons (seed {seed}"
        + "".join(f", {k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(changed.items()))
        + f") in {time.perf_counter() - started:.0f} s; "
        f"{len(files)} submission files in {layout.inbox}; truth in {layout.truth}"
    )
