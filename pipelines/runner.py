"""``cti run``: walk the flow's stages (``pipelines.flow``) on the local instance; stop cleanly when told to.

Each site/quarter submission is its own run, so an unreadable file fails only its own partition; the
downstream stages then run on whatever was ingested, and the report lists what is missing. Fan-out stages
run in spawned worker processes, ``Settings.partition_workers()`` at a time, each with its share of the
cores; other stages run in a fresh process each (so linkage's memory goes back to the machine before the
outcome workers start), except those the flow marks as light, which run in a thread of this process. The
settings travel to every worker as an argument; nothing is passed through the environment.

Every run is created with the ``cti`` code location's origin (``pipelines.instance.execute_job``), so the UI
lists it under its job, and carries the pid of the process executing it (``pipelines.runlock``), so a run
whose process is killed is marked failed at the next start instead of staying STARTED.

Stopping: SIGTERM and SIGINT (Ctrl-C) stop the pool (workers get SIGTERM, then SIGKILL after a grace
period), mark the runs this command started and did not finish as failed with the reason, say what was
left unfinished and end with ``128 + signal``. Workers also end on their own when this process dies,
however it dies (``pipelines.worker``).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from pipelines import flow, inbox, runlock, worker
from pipelines.instance import RunOutcome, execute_job, get_instance
from pipelines.partitions import (
    ANALYSIS_JOB,
    QUARTER_DIM,
    SITE_DIM,
    SUBMISSIONS,
    quarter_label,
    quarter_labels,
    submission_key,
    sync_sites,
)
from pipelines.run_status import STOPPED_TAG
from pipelines.settings import Settings

#: Exit statuses of ``cti`` (documented in ``cti --help`` and the README).
EXIT_OK = 0
EXIT_PARTLY_FAILED = 1  # finished, but some partitions failed (named on the console and in the reports)
EXIT_USAGE = 2  # bad option, configuration, key or inbox: refused before anything ran
EXIT_STAGE_FAILED = 3  # an unpartitioned stage failed: the later stages did not run
EXIT_BUSY = 4  # another cti command is using the data directory
#: Stopped by a signal: 128 + its number (130 for SIGINT / Ctrl-C, 143 for SIGTERM).
EXIT_SIGNAL_BASE = 128
#: How long stopped workers get to record their runs as failed before they are killed.
STOP_GRACE_SECONDS = 3.0
#: Length of a failure message on the console (the whole message and the trace are in the run's log).
MESSAGE_CHARS = 300


class Stopped(BaseException):
    """Signal that the process received SIGTERM or SIGINT (raised in the main thread by the handler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.at = time.time()  # when the signal arrived: runs that failed after it, failed because of it

    @property
    def name(self) -> str:
        """The signal's name (``SIGTERM``)."""
        return signal.Signals(self.signum).name


@dataclass(frozen=True, slots=True)
class Result:
    """One run of a stage: its job, partition (None for unpartitioned jobs) and outcome."""

    job: str
    key: str | None
    ok: bool
    run_id: str = ""
    message: str = ""


@dataclass(slots=True)
class RunReport:
    """What a ``cti run`` did: every run's result, where it stopped, and its exit status."""

    results: list[Result] = field(default_factory=list)
    failed_stage: str | None = None
    stopped: int | None = None
    not_run: list[str] = field(default_factory=list)
    nothing_matched: bool = False

    @property
    def failed_partitions(self) -> list[Result]:
        """Partition runs that failed."""
        return [r for r in self.results if not r.ok and r.key is not None]

    @property
    def exit_code(self) -> int:
        """The documented exit status for this report."""
        if self.stopped is not None:
            return EXIT_SIGNAL_BASE + self.stopped
        if self.failed_stage is not None or self.nothing_matched:
            return EXIT_STAGE_FAILED
        return EXIT_PARTLY_FAILED if self.failed_partitions else EXIT_OK


def submission_partitions(settings: Settings, /) -> list[dg.MultiPartitionKey]:
    """Partition keys of every (quarter, site) with a file in the inbox or a version in the archive."""
    sites = settings.config.site_ids()
    keys = {(f.quarter, f.site) for f in inbox.scan(settings.layout.inbox, sites)}
    valid = set(quarter_labels())
    keys |= {
        (q, s) for q, s in inbox.partitions_in_archive(settings.layout.received) if q in valid and s in sites
    }
    return [submission_key(q, s) for q, s in sorted(keys)]


_CACHE: dict[Settings, tuple[dg.Definitions, dg.DagsterInstance]] = {}


def _definitions(settings: Settings) -> tuple[dg.Definitions, dg.DagsterInstance]:
    """Return the definitions and instance of ``settings``, built once per process."""
    if settings not in _CACHE:
        import warnings

        from pipelines.definitions import build_definitions

        # as in the CLI: preview/beta notices of APIs used deliberately would be console noise in every worker
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        warnings.filterwarnings("ignore", category=dg.BetaWarning)

        _CACHE[settings] = (
            build_definitions(settings),
            get_instance(settings.layout, storage=settings.storage),
        )
    return _CACHE[settings]


def execute(settings: Settings, job_name: str, key: str | None, tags: dict[str, str],
            asset_selection: tuple[tuple[str, ...], ...] = ()) -> tuple[str | None, RunOutcome]:
    """Execute one run of ``job_name`` (partition ``key``) in this process; the run names this process."""
    worker.busy(True)
    try:
        defs, instance = _definitions(settings)
        outcome = execute_job(defs.resolve_job_def(job_name), instance, partition_key=key,
                              tags={**tags, **runlock.process_tags()},
                              asset_selection=[dg.AssetKey(list(k)) for k in asset_selection] or None)
        return key, outcome
    finally:
        worker.busy(False)


class _Pool:
    """Spawned worker processes (not forked: the parent holds polars and Dagster thread pools mid-flight).

    Leaving the block by an exception (a stop signal) stops the workers instead of waiting for them.
    """

    def __init__(self, workers: int) -> None:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=worker.init,
            initargs=(worker.threads_per_worker(workers), os.getpid()))

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, kind, value, trace) -> None:  # noqa: ANN001
        if kind is None:
            self.executor.shutdown(wait=True)
        else:
            self.stop()

    def stop(self) -> None:
        """SIGTERM every worker, SIGKILL what is left after the grace period, drop the queued tasks."""
        import os

        processes = list(getattr(self.executor, "_processes", {}).values())  # CPython's pool keeps them here
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_isolated(settings: Settings, job_name: str, tags: dict[str, str],
                  asset_selection: tuple[tuple[str, ...], ...] = ()) -> RunOutcome:
    """Run one unpartitioned job in its own process, so its memory is returned to the machine when it ends.

    Population-scale linkage holds about 10 GiB at its peak; a long-lived parent would keep much of that
    (allocators rarely give it back) while the outcome workers start beside it.
    """
    with _Pool(1) as pool:
        return pool.executor.submit(execute, settings, job_name, None, tags, asset_selection).result()[1]


def _run_in_thread(settings: Settings, job_name: str, tags: dict[str, str]) -> RunOutcome:
    """Run a light job in a thread, so this (main) thread keeps its stop handlers while it runs."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["outcome"] = execute(settings, job_name, None, tags)[1]
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            box["error"] = error

    thread = threading.Thread(target=target, name=f"cti-{job_name}", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["outcome"]  # type: ignore[return-value]


def _run_partitions(settings: Settings, job_name: str, keys: list[str], tags: dict[str, str], workers: int,
                    echo: Callable[[str], None] = print) -> Iterator[Result]:
    """Yield every partition's :class:`Result`, ``workers`` processes at a time (same instance)."""
    workers = max(1, min(workers, len(keys)))
    with _Pool(workers) as pool:
        futures = [pool.executor.submit(execute, settings, job_name, key, tags) for key in keys]
        for key, future in zip(keys, futures, strict=True):
            try:
                _, outcome = future.result()
                yield Result(job_name, key, outcome.success, outcome.run_id, outcome.message)
            except Exception as error:  # the worker died (out of memory, killed): that partition failed
                echo(
                    f"  worker for {job_name} [{key}] stopped: "
                    f"{type(error).__name__}: {_one_line(str(error))}"
                )
                yield Result(job_name, key, False, "", f"the worker process stopped ({type(error).__name__})")


def _submission_keys(settings: Settings, quarters: tuple[str, ...], sites: tuple[str, ...]) -> list[str]:
    return [
        str(k) for k in submission_partitions(settings)
        if (not quarters or quarter_label(k.keys_by_dimension[QUARTER_DIM]) in quarters)
        and (not sites or k.keys_by_dimension[SITE_DIM] in sites)
    ]


@contextmanager
def stop_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise :class:`Stopped` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _one_line(message: str) -> str:
    """Return a failure message as one console line (masked: it may come from any exception)."""
    from analysis.masking import mask_text

    text = " ".join(mask_text(message).split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


def _label(key: str) -> str:
    """``2024-01-01|aarhus`` -> ``2024Q1 aarhus``; other keys as they are."""
    quarter, _, site = key.partition("|")
    try:
        return f"{quarter_label(quarter)} {site}" if site else key
    except ValueError:
        return key


def _mark_unfinished(instance: dg.DagsterInstance, invocation: str, reason: str, since: float) -> int:
    """Mark this command's unfinished runs failed with ``reason``; note it on runs the stop made fail.

    A run that failed after the signal (``since``) failed because of it, whatever error its step recorded
    (an interrupt inside an import leaves, say, a pydantic error behind): it is tagged so that its reason
    reads "interrupted" (``run_status.STOPPED_TAG``).
    """
    marked = 0
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={runlock.INVOCATION_TAG: invocation})):
        run = record.dagster_run
        if run.status in flow.FINISHED:
            if run.status == dg.DagsterRunStatus.FAILURE and (record.end_time or 0) >= since:
                instance.report_engine_event(reason, run)
                instance.add_run_tags(run.run_id, {STOPPED_TAG: "true"})
            continue
        instance.report_run_failed(run, message=reason)
        marked += 1
    return marked


def run_all(
    settings: Settings,
    /,
    *,
    echo: Callable[[str], None] = print,
    tags: dict[str, str] | None = None,
    quarters: tuple[str, ...] = (),
    sites: tuple[str, ...] = (),
    downstream: bool = True,
) -> RunReport:
    """Ingest the inbox partitions (all, or only ``quarters``/``sites``), then every later stage in order.

    With ``downstream=False`` (``--ingest-only``) the courses are consolidated after ingest and nothing else
    runs. Every run carries ``tags`` (who and what) for the Dagster UI. Returns what happened
    (:attr:`RunReport.exit_code` is the command's exit status).
    """
    instance = get_instance(
        settings.layout, storage=settings.storage
    )  # creates the storage before workers open it
    sync_sites(instance, settings.config.site_ids())
    invocation = uuid.uuid4().hex
    run_tags = {flow.DRIVER_TAG: flow.CLI_DRIVER, runlock.INVOCATION_TAG: invocation, **(tags or {})}
    order = flow.stage_order(_definitions(settings)[0].get_repository_def())
    started, wall_started = time.perf_counter(), time.time()
    report = RunReport()
    stages = list(order if downstream else order[:1])
    current = ""
    try:
        with stop_signals():
            _report_strays(settings, echo)
            for index, stage in enumerate(stages):
                current = stage.job
                if not _run_stage(settings, stage, report, run_tags, echo, quarters=quarters, sites=sites):
                    report.not_run = [s.job for s in stages[index + 1:]]
                    if report.nothing_matched:
                        return report
                    break
            else:
                current = "courses"
                if not downstream:
                    _consolidate(settings, report, run_tags, echo)
    except Stopped as stop:
        report.stopped = stop.signum
        done = {r.job for r in report.results}
        report.not_run = [s.job for s in stages if s.job not in done or s.job == current]
        reason = (f"stopped: cti run received {stop.name} (pid {_pid()}) before this run finished; rerun the "
                  "partition or `cti run`")
        marked = _mark_unfinished(instance, invocation, reason, stop.at)
        echo(
            f"STOPPED by {stop.name} during {current or 'start-up'}: {_progress(report, current)}; "
            f"{marked} unfinished run(s) marked failed. "
            f"Not finished: {', '.join(report.not_run) or 'nothing'}. "
            "Rerun `cti run` to finish."
        )
        return report
    echo(f"done in {time.perf_counter() - started:.0f} s")
    _print_outputs(settings, echo, since=wall_started)
    if report.failed_partitions:
        names = ", ".join(f"{r.job}[{r.key}]" for r in report.failed_partitions)
        echo(f"{len(report.failed_partitions)} partition(s) failed: {names}")
    if report.failed_stage:
        echo(f"{report.failed_stage} FAILED, so these did not run: {', '.join(report.not_run) or 'nothing'}. "
             "The run's log (with the stack trace) is in the Dagster UI: `make ui`.")
    return report


def _pid() -> int:
    import os

    return os.getpid()


def _progress(report: RunReport, current: str) -> str:
    here = [r for r in report.results if r.job == current]
    finished = [r.job for r in report.results if r.job != current and r.key is None and r.ok]
    parts = [f"finished: {', '.join(dict.fromkeys(finished))}"] if finished else []
    if here and here[0].key is not None:
        parts.append(f"{current}: {len(here)} partition(s) finished before the stop")
    return "; ".join(parts) or "nothing had finished"


def _report_strays(settings: Settings, echo: Callable[[str], None]) -> None:
    """Say which inbox entries are not ingested as they are (the steward view lists them with what to do)."""
    strays = inbox.account(settings.layout.inbox, settings.config.site_ids()).strays
    if strays:
        shown = ", ".join(f"{s.entry} ({s.kind.replace('_', ' ')})" for s in strays[:6])
        more = f" and {len(strays) - 6} more" if len(strays) > 6 else ""
        echo(f"inbox: {len(strays)} entr{'y' if len(strays) == 1 else 'ies'} need a steward's attention: "
             f"{shown}{more} (listed with what to do in the steward view)")


def _run_stage(settings: Settings, stage: flow.Stage, report: RunReport, run_tags: dict[str, str],
               echo: Callable[[str], None], *, quarters: tuple[str, ...], sites: tuple[str, ...]) -> bool:
    """Run one stage; False when the flow must stop (an unpartitioned stage failed, or nothing matched)."""
    job_started = time.perf_counter()
    if stage.fan_out is SUBMISSIONS:
        keys = _submission_keys(settings, quarters, sites)
        if (quarters or sites) and not keys:
            echo(
                f"no inbox file matches quarter {', '.join(quarters) or 'any'} "
                f"and site {', '.join(sites) or 'any'}"
            )
            report.nothing_matched = True
            return False
    elif stage.fan_out is not None:
        keys = stage.fan_out.get_partition_keys()
    if stage.fan_out is not None:  # one partition failing leaves the others and the later stages
        bad = 0
        for result in (
            _run_partitions(settings, stage.job, keys, run_tags, settings.partition_workers(), echo)
            if keys
            else ()
        ):
            report.results.append(result)
            if not result.ok:
                bad += 1
                what = "ingest" if stage.fan_out is SUBMISSIONS else stage.job
                echo(f"  {what} FAILED for {_label(result.key)}: {_one_line(result.message)}")
        took = f"{time.perf_counter() - job_started:.0f} s"
        if stage.fan_out is SUBMISSIONS:
            echo(f"ingest: {len(keys) - bad}/{len(keys)} submission partitions ok ({took})")
        else:
            echo(f"{stage.job}: {'partly failed' if bad else 'ok'} ({took})")
        return True
    try:
        outcome = (_run_isolated(settings, stage.job, run_tags) if stage.own_process
                   else _run_in_thread(settings, stage.job, run_tags))
    except Exception as error:  # the process died (out of memory, killed)
        outcome = RunOutcome("", False, f"the process running it stopped ({type(error).__name__}: {error})")
    report.results.append(Result(stage.job, None, outcome.success, outcome.run_id, outcome.message))
    if not outcome.success:
        echo(f"{stage.job} FAILED: {_one_line(outcome.message)}")
        report.failed_stage = stage.job
        return False
    echo(f"{stage.job}: ok ({time.perf_counter() - job_started:.0f} s)")
    return True


def consolidation_keys() -> tuple[tuple[str, ...], ...]:
    """Return the consolidation's asset keys (``courses``, ``course_conflicts``, ``submission_log``)."""
    from assets.ingest import CONSOLIDATION_ASSETS

    return tuple(tuple(key.path) for a in CONSOLIDATION_ASSETS for key in a.keys)


def _consolidate(
    settings: Settings, report: RunReport, run_tags: dict[str, str], echo: Callable[[str], None]
) -> None:
    """``--ingest-only``: consolidate the courses from every ingested partition, and say what was done."""
    job_started = time.perf_counter()
    outcome = _run_isolated(settings, ANALYSIS_JOB, run_tags, consolidation_keys())
    report.results.append(Result(f"{ANALYSIS_JOB} (courses only)", None, outcome.success, outcome.run_id,
                                 outcome.message))
    if not outcome.success:
        echo(f"courses FAILED: {_one_line(outcome.message)}")
        report.failed_stage = "courses"
        return
    instance = get_instance(settings.layout, storage=settings.storage)
    counts = {}
    for name in ("courses", "course_conflicts", "submission_log"):
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
        value = next(iter(meta.values()), None) if meta else None
        counts[name] = getattr(value, "value", value)
    echo(
        f"courses: consolidated ({counts['courses']} courses, {counts['course_conflicts']} conflicts, "
        f"{counts['submission_log']} received files) in {settings.layout.asset_file(('courses',))} "
        f"({time.perf_counter() - job_started:.0f} s). "
        "--ingest-only: linkage, effects and the reports were not "
        "run; the steward view and the reports are rebuilt by a full `cti run`."
    )


def _newer(path: Path, since: float) -> bool:
    """Whether ``path`` (a file, or any file under a directory) was written at or after ``since``."""
    if path.is_file():
        return path.stat().st_mtime >= since
    return path.is_dir() and any(p.stat().st_mtime >= since for p in path.rglob("*") if p.is_file())


def _print_outputs(settings: Settings, echo: Callable[[str], None], *, since: float) -> None:
    """List the outputs this run (re)wrote, and only those."""
    layout = settings.layout
    places: tuple[tuple[str, Path], ...] = (
        ("report", layout.reports / "effect_report.html"),
        ("report", layout.steward_reports(restricted=False) / "steward_view.html"),
        ("courses", layout.asset_file(("courses",))),
        ("outcome panel", layout.asset_file(("outcome_panel",))),
        ("quarantine (restricted)", layout.asset_dir(("quarantine",), store="restricted")),
        (
            "restricted steward view (shows CPR)",
            layout.steward_reports(restricted=True) / "steward_view.html",
        ),
    )
    for label, path in places:
        if _newer(path, since - 1.0):  # file systems keep mtimes to the second on some platforms
            echo(f"  {label}: {path}")
