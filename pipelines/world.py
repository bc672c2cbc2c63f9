"""Generating the mock world on disk: registers (through the asset job), inbox files and truth.json."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace

from pipelines.settings import MockSource, Settings
from pipelines.storage import write_bytes, write_json


def exists(settings: Settings, /) -> bool:
    """Whether a mock world has been generated in the settings' data directory."""
    return settings.layout.manifest.exists()


def manifest(settings: Settings, /) -> dict:
    """The settings the existing world was generated with."""
    return json.loads(settings.layout.manifest.read_text())


def generate(settings: Settings, /, *, persons: int, seed: int, force: bool = False) -> str:
    """Generate the mock world in the settings' data directory unless one with these settings exists.

    Return a one-line summary. A new world removes every output derived from the old one.
    """
    from analysis import mockworld
    from pipelines.definitions import build_definitions, register_source
    from pipelines.instance import QUIET, get_instance
    from pipelines.jobs import MOCK_WORLD_JOB

    layout = settings.layout
    wanted = {"persons": persons, "seed": seed}
    if exists(settings) and not force and {k: manifest(settings).get(k) for k in wanted} == wanted:
        return f"mock world already present ({persons:,} persons, seed {seed}) under {layout.root}"
    if exists(settings):
        for path in layout.derived():  # a new world invalidates everything derived from the old one
            shutil.rmtree(path, ignore_errors=True)
    base = settings.source if isinstance(settings.source, MockSource) else MockSource()
    settings = replace(settings, source=replace(base, persons=persons, seed=seed))
    started = time.perf_counter()
    result = build_definitions(settings).resolve_job_def(MOCK_WORLD_JOB).execute_in_process(
        instance=get_instance(layout, storage=settings.storage), tags={"cti/trigger": "cti mock-world"},
        run_config=QUIET,
    )
    if not result.success:
        raise RuntimeError("generating the mock registers failed; see the Dagster run log")
    state = register_source(settings).world()  # cached: the same world the job just wrote
    files = mockworld.submissions(state)
    for f in files:
        path = layout.inbox / f.quarter / f.filename
        write_bytes(path, f.content)
        received = getattr(f, "received", None)
        if received is not None:  # the file's modification time is when the site delivered it
            stamp = received.timestamp() if hasattr(received, "timestamp") else float(received)
            os.utime(path, (stamp, stamp))
    write_json(layout.truth, mockworld.truth(state))
    write_json(layout.manifest, {**wanted, "submission_files": len(files)})
    return (
        f"mock world: {persons:,} persons (seed {seed}) in {time.perf_counter() - started:.0f} s; "
        f"{len(files)} submission files in {layout.inbox}; truth in {layout.truth}"
    )
