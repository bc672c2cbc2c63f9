"""``cti run``: materialise everything on the local instance, one submission partition at a time.

Each site/quarter submission is its own run, so an unreadable file fails only its own partition; the
downstream jobs then run on whatever was ingested, and the report lists what is missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from pipelines import inbox
from pipelines.instance import QUIET, get_instance
from pipelines.partitions import (
    OUTCOME_PARTITIONS,
    QUARTER_DIM,
    SITE_DIM,
    SITE_IDS,
    quarter_label,
    submission_key,
)


def submission_partitions(root: Path) -> list[dg.MultiPartitionKey]:
    """Partition keys of every (quarter, site) with a file in the inbox."""
    keys = {(f.quarter, f.site) for f in inbox.scan(root / "inbox", SITE_IDS)}
    return [submission_key(q, s) for q, s in sorted(keys)]


def outcome_workers() -> int:
    """Outcome partitions run side by side: ``CTI_OUTCOME_WORKERS``, default one per core up to 2.

    Each outcome run is mostly single-threaded numpy, so two cores finish 13 outcomes in about half the
    time; each worker holds one outcome's stacked panel (about 4.5 GiB at full population scale), so two
    stay under half of a 24 GiB machine. ``1`` runs them one after the other in this process.
    """
    value = os.environ.get("CTI_OUTCOME_WORKERS", "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            raise ValueError(f"CTI_OUTCOME_WORKERS must be a whole number, got {value!r}") from None
        return max(1, workers)
    return max(1, min(2, os.cpu_count() or 1))


def _run_partition(root: str, job_name: str, key: str, tags: dict[str, str]) -> tuple[str, bool]:
    """Execute one partition of ``job_name`` on the instance of ``root`` (in a worker process or here)."""
    from pipelines.definitions import defs

    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=get_instance(Path(root)), partition_key=key, raise_on_error=False, tags=tags, run_config=QUIET
    )
    return key, result.success


def _run_partitions(root: Path, job_name: str, keys: list[str], tags: dict[str, str], workers: int,
                    echo: Callable[[str], None] = print):
    """Yield ``(key, success)`` for every partition, ``workers`` at a time (spawned processes, same instance)."""
    if workers <= 1 or len(keys) <= 1:
        for key in keys:
            yield _run_partition(str(root), job_name, key, tags)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent holds polars and Dagster thread pools that a fork would copy mid-flight
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_partition, str(root), job_name, key, tags) for key in keys]
        for key, future in zip(keys, futures, strict=True):
            try:
                yield future.result()
            except Exception as error:  # the worker died (out of memory, killed): that outcome failed
                echo(f"  worker for {job_name} [{key}] stopped: {type(error).__name__}: {error}")
                yield key, False


def run_all(
    root: Path,
    *,
    echo: Callable[[str], None] = print,
    tags: dict[str, str] | None = None,
    quarters: tuple[str, ...] = (),
    sites: tuple[str, ...] = (),
    downstream: bool = True,
) -> bool:
    """Ingest the inbox partitions (all, or only ``quarters``/``sites``), then linkage, effects and reports.

    Return False if a stage failed. Every run carries ``tags`` (who and what) for the Dagster UI.
    """
    from pipelines.definitions import defs
    from pipelines.jobs import DOWNSTREAM_JOBS, INGEST_JOB, OUTCOME_JOBS

    instance = get_instance(root)
    run_tags = {"cti/trigger": "cti run", **(tags or {})}
    started = time.perf_counter()
    failed: list[str] = []
    partitions = [
        k for k in submission_partitions(root)
        if (not quarters or quarter_label(k.keys_by_dimension[QUARTER_DIM]) in quarters)
        and (not sites or k.keys_by_dimension[SITE_DIM] in sites)
    ]
    if (quarters or sites) and not partitions:
        echo(f"no inbox file matches quarter {', '.join(quarters) or 'any'} and site {', '.join(sites) or 'any'}")
        return False
    defined = {job.name for job in defs.resolve_all_job_defs()}
    if INGEST_JOB not in defined:
        partitions = []
    else:
        ingest = defs.resolve_job_def(INGEST_JOB)
    for key in partitions:
        result = ingest.execute_in_process(
            instance=instance, partition_key=key, raise_on_error=False, tags=run_tags, run_config=QUIET
        )
        if not result.success:
            failed.append(str(key))
            echo(f"  ingest FAILED for {key} (see the steward view); the other partitions continue")
    echo(f"ingest: {len(partitions) - len(failed)}/{len(partitions)} submission partitions ok")
    for job_name in (name for name in DOWNSTREAM_JOBS if name in defined and downstream):
        job = defs.resolve_job_def(job_name)
        if job_name in OUTCOME_JOBS:  # one outcome failing leaves the others and the report
            keys = OUTCOME_PARTITIONS.get_partition_keys()
            for key, ok in _run_partitions(root, job_name, keys, run_tags, outcome_workers(), echo):
                if not ok:
                    echo(f"{job_name} [{key}] FAILED; see `make ui` for the run log")
                    failed.append(f"{job_name}[{key}]")
        else:
            result = job.execute_in_process(instance=instance, raise_on_error=False, tags=run_tags, run_config=QUIET)
            if not result.success:
                echo(f"{job_name} FAILED; see `make ui` for the run log")
                return False
        echo(f"{job_name}: ok" if not any(f.startswith(f"{job_name}[") for f in failed) else f"{job_name}: partly failed")
    echo(f"done in {time.perf_counter() - started:.0f} s")
    reports = root / "reports"
    for name in ("effect_report.html", "steward_view.html"):
        if (reports / name).exists():
            echo(f"  report: {reports / name}")
    for label, path in (
        ("courses", root / "assets" / "courses.parquet"),
        ("outcome panel", root / "assets" / "outcome_panel.parquet"),
        ("quarantine (restricted)", root / "restricted" / "assets" / "quarantine"),
    ):
        if path.exists():
            echo(f"  {label}: {path}")
    restricted = root / "restricted" / "reports"
    if restricted.exists():
        echo(f"  restricted steward view (shows CPR): {restricted}")
    if failed:
        echo(f"{len(failed)} partition(s) failed: {', '.join(failed)}")
    return True
