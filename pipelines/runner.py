"""``cti run``: walk the flow's stages (``pipelines.flow``) on the local instance.

Each site/quarter submission is its own run, so an unreadable file fails only its own partition; the
downstream stages then run on whatever was ingested, and the report lists what is missing. Fan-out stages
run in spawned worker processes, ``Settings.partition_workers()`` at a time, each with its share of the
cores; other stages run in a fresh process each (so linkage's memory goes back to the machine before the
outcome workers start), except those the flow marks as light. The settings travel to every worker as an
argument; nothing is passed through the environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg

from pipelines import flow, inbox, worker
from pipelines.instance import QUIET, get_instance
from pipelines.partitions import QUARTER_DIM, SITE_DIM, SUBMISSIONS, quarter_label, submission_key, sync_sites
from pipelines.settings import Settings


def submission_partitions(settings: Settings, /) -> list[dg.MultiPartitionKey]:
    """Partition keys of every (quarter, site) with a file in the inbox."""
    keys = {(f.quarter, f.site) for f in inbox.scan(settings.layout.inbox, settings.config.site_ids())}
    return [submission_key(q, s) for q, s in sorted(keys)]


def _run_partition(settings: Settings, job_name: str, key: str | None, tags: dict[str, str]) -> tuple[str | None, bool]:
    """Execute ``job_name`` (one partition ``key``, or the whole job) on the settings' instance."""
    from pipelines.definitions import build_definitions

    result = build_definitions(settings).resolve_job_def(job_name).execute_in_process(
        instance=get_instance(settings.layout, storage=settings.storage), partition_key=key, raise_on_error=False,
        tags=tags, run_config=QUIET,
    )
    return key, result.success


def _pool(workers: int):
    """Spawned worker processes (not forked: the parent holds polars and Dagster thread pools mid-flight)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker.init, initargs=(worker.threads_per_worker(workers),))


def _run_isolated(settings: Settings, job_name: str, tags: dict[str, str]) -> bool:
    """Run one unpartitioned job in its own process, so its memory is returned to the machine when it ends.

    Population-scale linkage holds about 10 GiB at its peak; a long-lived parent would keep much of that
    (allocators rarely give it back) while the outcome workers start beside it.
    """
    with _pool(1) as pool:
        return pool.submit(_run_partition, settings, job_name, None, tags).result()[1]


def _run_partitions(settings: Settings, job_name: str, keys: list[str], tags: dict[str, str], workers: int,
                    echo: Callable[[str], None] = print) -> Iterator[tuple[str, bool]]:
    """Yield ``(key, success)`` for every partition, ``workers`` processes at a time (same instance)."""
    workers = max(1, min(workers, len(keys)))
    with _pool(workers) as pool:
        futures = [pool.submit(_run_partition, settings, job_name, key, tags) for key in keys]
        for key, future in zip(keys, futures, strict=True):
            try:
                yield future.result()
            except Exception as error:  # the worker died (out of memory, killed): that partition failed
                echo(f"  worker for {job_name} [{key}] stopped: {type(error).__name__}: {error}")
                yield key, False


def _submission_keys(settings: Settings, quarters: tuple[str, ...], sites: tuple[str, ...]) -> list[str]:
    return [
        str(k) for k in submission_partitions(settings)
        if (not quarters or quarter_label(k.keys_by_dimension[QUARTER_DIM]) in quarters)
        and (not sites or k.keys_by_dimension[SITE_DIM] in sites)
    ]


def run_all(
    settings: Settings,
    /,
    *,
    echo: Callable[[str], None] = print,
    tags: dict[str, str] | None = None,
    quarters: tuple[str, ...] = (),
    sites: tuple[str, ...] = (),
    downstream: bool = True,
) -> bool:
    """Ingest the inbox partitions (all, or only ``quarters``/``sites``), then every later stage in order.

    Return False if a stage failed. Every run carries ``tags`` (who and what) for the Dagster UI.
    """
    from pipelines.definitions import build_definitions

    instance = get_instance(settings.layout, storage=settings.storage)  # creates the storage before workers open it
    sync_sites(instance, settings.config.site_ids())
    run_tags = {flow.DRIVER_TAG: flow.CLI_DRIVER, **(tags or {})}
    order = flow.stage_order(build_definitions(settings).get_repository_def())
    started = time.perf_counter()
    failed: list[str] = []
    for index, stage in enumerate(order if downstream else order[:1]):
        job_started = time.perf_counter()
        if stage.fan_out is SUBMISSIONS:
            keys = _submission_keys(settings, quarters, sites)
            if (quarters or sites) and not keys:
                echo(f"no inbox file matches quarter {', '.join(quarters) or 'any'} and site {', '.join(sites) or 'any'}")
                return False
        elif stage.fan_out is not None:
            keys = stage.fan_out.get_partition_keys()
        if stage.fan_out is not None:  # one partition failing leaves the others and the later stages
            bad = [key for key, ok in (_run_partitions(settings, stage.job, keys, run_tags, settings.partition_workers(),
                                                       echo) if keys else ()) if not ok]
            failed += [f"{stage.job}[{key}]" for key in bad]
            for key in bad:
                echo(f"  ingest FAILED for {key} (see the steward view); the other partitions continue"
                     if stage.fan_out is SUBMISSIONS else f"{stage.job} [{key}] FAILED; see `make ui` for the run log")
            took = f"{time.perf_counter() - job_started:.0f} s"
            if stage.fan_out is SUBMISSIONS:
                echo(f"ingest: {len(keys) - len(bad)}/{len(keys)} submission partitions ok ({took})")
            else:
                echo(f"{stage.job}: {'partly failed' if bad else 'ok'} ({took})")
            continue
        try:
            ok = (_run_isolated(settings, stage.job, run_tags) if stage.own_process
                  else _run_partition(settings, stage.job, None, run_tags)[1])
        except Exception as error:  # the process died (out of memory, killed)
            echo(f"  {stage.job} stopped: {type(error).__name__}: {error}")
            ok = False
        if not ok:
            echo(f"{stage.job} FAILED; see `make ui` for the run log")
            return False
        echo(f"{stage.job}: ok ({time.perf_counter() - job_started:.0f} s)")
    echo(f"done in {time.perf_counter() - started:.0f} s")
    _print_outputs(settings, echo)
    if failed:
        echo(f"{len(failed)} partition(s) failed: {', '.join(failed)}")
    return True


def _print_outputs(settings: Settings, echo: Callable[[str], None]) -> None:
    layout = settings.layout
    for name in ("effect_report.html", "steward_view.html"):
        if (layout.reports / name).exists():
            echo(f"  report: {layout.reports / name}")
    places: tuple[tuple[str, Path], ...] = (
        ("courses", layout.asset_file(("courses",))),
        ("outcome panel", layout.asset_file(("outcome_panel",))),
        ("quarantine (restricted)", layout.asset_dir(("quarantine",), store="restricted")),
    )
    for label, path in places:
        if path.exists():
            echo(f"  {label}: {path}")
    restricted = layout.steward_reports(restricted=True)
    if restricted.exists():
        echo(f"  restricted steward view (shows CPR): {restricted}")
