"""What the instance knows about failed partitions, for reports that must name what is missing.

A failed partition leaves no new output (and may leave an older one in place), so the report cannot learn of
the failure from the data; the run storage is the record. These helpers read it through the public
``DagsterInstance`` API, so they work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl

from analysis.schema import OUTCOMES
from pipelines.partitions import INGEST_JOB, quarter_label

PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class PartitionFailure:
    """The latest run of ``partition`` failed with ``message`` (the step failure a user would read)."""

    partition: str
    run_id: str
    message: str
    #: The failure's metadata as text (an unreadable file's ``reason``, ``filename``), for feedback texts.
    metadata: dict[str, str] = field(default_factory=dict)


#: The reason shown for a run whose step was interrupted by a stop signal.
INTERRUPTED = ("interrupted: the process running it was stopped (its `cti run` was stopped or killed, or the "
               "run was terminated in the UI); rerun the partition or `cti run`")


#: Tag of a run that failed after its ``cti run`` was told to stop (``runner._mark_unfinished``).
STOPPED_TAG = "cti/stopped"

#: Errors that mean the process was stopped, wherever in a step's error chain they are: a stop signal that
#: lands inside user code (a parquet read, a GX suite) reaches Dagster as the cause of a step error.
_STOPS = frozenset({"DagsterExecutionInterruptedError", "KeyboardInterrupt"})


def _interrupted(error) -> bool:  # noqa: ANN001 - dagster's SerializableErrorInfo
    """Return whether a stop is anywhere in ``error``'s chain of causes and contexts."""
    todo, seen = [error], 0
    while todo and seen < 50:
        current = todo.pop()
        seen += 1
        if current is None:
            continue
        if current.cls_name in _STOPS:
            return True
        todo += [current.cause, current.context]
    return False


def _user_error(error) -> str:  # noqa: ANN001 - dagster's SerializableErrorInfo
    """Return the error a user can act on (Dagster's 'Error occurred while executing op ...' wraps it)."""
    if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None:
        return error.cause.message
    return error.message


def _failure(instance: dg.DagsterInstance, run_id: str) -> tuple[str, dict[str, str]]:
    """Return the reason a run failed as a user reads it, and its failure metadata as text.

    Both are masked: they may quote a delivered file's name.

    The first step failure's description (or its error message); for a run that failed outside a step
    (stopped, or marked failed because its process is gone) the run failure's own message.
    """
    from analysis.masking import mask_text

    run = instance.get_run_by_id(run_id)
    if run is not None and run.tags.get(STOPPED_TAG):
        return INTERRUPTED, {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        if data is not None and data.error is not None:
            if _interrupted(data.error):
                return INTERRUPTED, {}
            user = data.user_failure_data
            message = (user.description if user and user.description else _user_error(data.error)).strip()
            pairs = (user.metadata or {}).items() if user else ()
            metadata = {k: mask_text(str(getattr(v, "value", v))) for k, v in pairs}
            return mask_text(message), metadata
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
        if record.dagster_event is not None and record.dagster_event.message:
            return mask_text(record.dagster_event.message.strip()), {}
    return "the run failed before a step started (see the run in the Dagster UI)", {}


def failure_message(instance: dg.DagsterInstance, run_id: str, /) -> str:
    """Return the reason a run failed, as a user reads it (masked; see :func:`_failure`)."""
    return _failure(instance, run_id)[0]


def failed_partitions(instance: dg.DagsterInstance, *,
                      job_name: str | None = None) -> dict[str, PartitionFailure]:
    """Partitions whose most recent run (of any job) failed; a later successful run clears a failure."""
    failed_runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.FAILURE])
    )
    candidates = {r.dagster_run.tags.get(PARTITION_TAG) for r in failed_runs} - {None}
    out: dict[str, PartitionFailure] = {}
    for key in sorted(candidates):
        latest = instance.get_run_records(filters=dg.RunsFilter(tags={PARTITION_TAG: key}), limit=1)
        if latest and latest[0].dagster_run.status == dg.DagsterRunStatus.FAILURE:
            run_id = latest[0].dagster_run.run_id
            out[key] = PartitionFailure(key, run_id, *_failure(instance, run_id))
    return out


def outcome_status(instance: dg.DagsterInstance, estimates: pl.DataFrame, /) -> pl.DataFrame:
    """Planned outcomes whose estimates are not current: their partition's latest run failed, or none exist.

    A failed outcome partition does not stop the report; this table makes the gap visible in it by name.
    """
    present = set(estimates["outcome"].unique().to_list()) if "outcome" in estimates.columns else set()
    failures = failed_partitions(instance)
    rows = []
    for outcome in OUTCOMES:
        if outcome in failures:
            stale = "; the estimates shown are from an earlier successful run" if outcome in present else ""
            failure = failures[outcome]
            rows.append((outcome, "failed", f"run {failure.run_id[:8]}: {failure.message[:200]}{stale}"))
        elif outcome not in present:
            rows.append((outcome, "missing", "never materialised (no estimates)"))
    return pl.DataFrame(rows, schema={"outcome": pl.String, "status": pl.String, "reason": pl.String},
                        orient="row")


def ingest_failures(instance: dg.DagsterInstance, /) -> pl.DataFrame:
    """List the submission partitions whose latest ingest run failed.

    Columns: quarter label, site, run id, message, and the ``SubmissionError`` reason and details (JSON) the
    failure carries, so the feedback can word it in Danish.
    """
    rows = []
    for key, failure in failed_partitions(instance, job_name=INGEST_JOB).items():
        quarter, _, site = key.partition("|")
        try:
            label = quarter_label(quarter)
        except ValueError:
            continue
        details = {k: v for k, v in failure.metadata.items() if k not in ("reason", "sha256")}
        rows.append((label, site, failure.run_id, failure.message, failure.metadata.get("reason"),
                     json.dumps(details, ensure_ascii=False, sort_keys=True)))
    schema = {"quarter": pl.String, "site": pl.String, "run_id": pl.String, "message": pl.String,
              "reason": pl.String, "details": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def code_version() -> str:
    """Return the git commit of the code that ran (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent.parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
