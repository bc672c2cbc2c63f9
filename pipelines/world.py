"""Generating the mock world on disk: registers (through the asset job), inbox files and truth.json."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from pipelines.storage import write_bytes, write_json

MANIFEST = Path("world") / "manifest.json"
TRUTH = Path("world") / "truth.json"
#: Derived outputs that belong to one world; regenerating the world removes them so nothing stale remains.
DERIVED = ("assets", "restricted/assets", "restricted/received", "restricted/quarantine", "inbox", "reports")


def exists(root: Path) -> bool:
    """Whether a mock world has been generated under ``root``."""
    return (root / MANIFEST).exists()


def manifest(root: Path) -> dict:
    """The settings the existing world was generated with."""
    return json.loads((root / MANIFEST).read_text())


def generate(root: Path, *, persons: int, seed: int, force: bool = False) -> str:
    """Generate the mock world under ``root`` unless one with the same settings exists; return a summary."""
    from analysis import mockworld
    from pipelines.definitions import defs
    from pipelines.instance import QUIET, get_instance
    from pipelines.jobs import MOCK_WORLD_JOB
    from pipelines.resources import RegisterSource

    settings = {"persons": persons, "seed": seed}
    if exists(root) and not force and {k: manifest(root).get(k) for k in settings} == settings:
        return f"mock world already present ({persons:,} persons, seed {seed}) under {root}"
    if exists(root):
        for name in DERIVED:  # a new world invalidates everything derived from the old one
            shutil.rmtree(root / name, ignore_errors=True)
    os.environ["CTI_PERSONS"], os.environ["CTI_SEED"] = str(persons), str(seed)
    os.environ["CTI_REGISTER_SOURCE"] = "mock"
    started = time.perf_counter()
    result = defs.resolve_job_def(MOCK_WORLD_JOB).execute_in_process(
        instance=get_instance(root), tags={"cti/trigger": "cti mock-world"}, run_config=QUIET
    )
    if not result.success:
        raise RuntimeError("generating the mock registers failed; see the Dagster run log")
    state = RegisterSource(kind="mock", persons=persons, seed=seed).world()  # cached: same world as the job
    files = mockworld.submissions(state)
    for f in files:
        path = root / "inbox" / f.quarter / f.filename
        write_bytes(path, f.content)
        received = getattr(f, "received", None)
        if received is not None:  # the file's modification time is when the site delivered it
            stamp = received.timestamp() if hasattr(received, "timestamp") else float(received)
            os.utime(path, (stamp, stamp))
    write_json(root / TRUTH, mockworld.truth(state))
    write_json(root / MANIFEST, {**settings, "submission_files": len(files)})
    return (
        f"mock world: {persons:,} persons (seed {seed}) in {time.perf_counter() - started:.0f} s; "
        f"{len(files)} submission files in {root / 'inbox'}; truth in {root / TRUTH}"
    )
