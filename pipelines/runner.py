"""``cti run``: materialise everything on the local instance.

Each site/quarter submission is its own run, so an unreadable file fails only its own partition; the
downstream jobs then run on whatever was ingested, and the report lists what is missing. Submissions and
outcomes run in spawned worker processes, ``partition_workers()`` at a time; linkage and effects each
in a fresh process so their memory goes back to the machine; the light report job runs here.
"""

from __future__ import annotations

import contextlib
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


def partition_workers() -> int:
    """Partitions (submissions, outcomes) run side by side: ``CTI_WORKERS``, default one per core up to 2.

    Each worker gets an equal share of the cores for polars and BLAS (``_thread_budget``), so workers do
    not oversubscribe the machine; ``1`` runs the outcomes one after the other in a single worker process
    with every core. At 5.9 million persons one outcome worker peaks at about 3 GiB; two workers ran the 13
    outcomes in 181 s (2026-11-25 benchmark); one alone was not timed end to end (one outcome's estimators
    take about 20 s, so about 13 x 25 s is the expectation).
    """
    name = "CTI_WORKERS" if os.environ.get("CTI_WORKERS", "").strip() else "CTI_OUTCOME_WORKERS"  # the old name still works
    value = os.environ.get(name, "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {value!r}") from None
        return max(1, workers)
    return max(1, min(2, os.cpu_count() or 1))


#: Thread-pool sizes a worker process reads at start-up (polars, OpenBLAS/MKL/OpenMP under numpy and scipy).
_THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _thread_budget(workers: int):
    """While worker processes start, give each ``cpu_count // workers`` threads (spawned children copy the environment)."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: threads for name in _THREAD_VARIABLES if saved[name] is None})  # an explicit setting wins
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def _run_partition(root: str, job_name: str, key: str | None, tags: dict[str, str]) -> tuple[str | None, bool]:
    """Execute ``job_name`` (one partition ``key``, or the whole job) on the instance of ``root``."""
    from pipelines.definitions import defs

    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=get_instance(Path(root)), partition_key=key, raise_on_error=False, tags=tags, run_config=QUIET
    )
    return key, result.success


def _pool(workers: int):
    """Spawned worker processes (not forked: the parent holds polars and Dagster thread pools mid-flight)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _run_job_isolated(root: Path, job_name: str, tags: dict[str, str]) -> bool:
    """Run one unpartitioned job in its own process, so its memory is returned to the machine when it ends.

    Population-scale linkage holds about 10 GiB at its peak; a long-lived parent would keep much of that
    (allocators rarely give it back) while the outcome workers start beside it.
    """
    with _pool(1) as pool:
        return pool.submit(_run_partition, str(root), job_name, None, tags).result()[1]


def _run_partitions(root: Path, job_name: str, keys: list[str], tags: dict[str, str], workers: int,
                    echo: Callable[[str], None] = print):
    """Yield ``(key, success)`` for every partition, ``workers`` processes at a time (same instance)."""
    workers = max(1, min(workers, len(keys)))
    with _thread_budget(workers), _pool(workers) as pool:
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
    from pipelines.jobs import DOWNSTREAM_JOBS, INGEST_JOB, OUTCOME_JOBS, REPORT_JOB

    get_instance(root).get_runs(limit=1)  # create the instance and its SQLite storage here, before workers open it
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
    keys = [str(k) for k in partitions]
    for key, ok in _run_partitions(root, INGEST_JOB, keys, run_tags, partition_workers(), echo) if keys else ():
        if not ok:
            failed.append(key)
            echo(f"  ingest FAILED for {key} (see the steward view); the other partitions continue")
    echo(f"ingest: {len(partitions) - len(failed)}/{len(partitions)} submission partitions ok "
         f"({time.perf_counter() - started:.0f} s)")
    for job_name in (name for name in DOWNSTREAM_JOBS if name in defined and downstream):
        job_started = time.perf_counter()
        if job_name in OUTCOME_JOBS:  # one outcome failing leaves the others and the report
            keys = OUTCOME_PARTITIONS.get_partition_keys()
            for key, ok in _run_partitions(root, job_name, keys, run_tags, partition_workers(), echo):
                if not ok:
                    echo(f"{job_name} [{key}] FAILED; see `make ui` for the run log")
                    failed.append(f"{job_name}[{key}]")
        else:
            try:
                # the report reads small tables: here it saves a process start; the heavy jobs get fresh processes
                ok = (_run_partition(str(root), job_name, None, run_tags)[1] if job_name == REPORT_JOB
                      else _run_job_isolated(root, job_name, run_tags))
            except Exception as error:  # the process died (out of memory, killed)
                echo(f"  {job_name} stopped: {type(error).__name__}: {error}")
                ok = False
            if not ok:
                echo(f"{job_name} FAILED; see `make ui` for the run log")
                return False
        took = f"{time.perf_counter() - job_started:.0f} s"
        partly = any(f.startswith(f"{job_name}[") for f in failed)
        echo(f"{job_name}: {'partly failed' if partly else 'ok'} ({took})")
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
