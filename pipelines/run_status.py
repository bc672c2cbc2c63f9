"""What the instance knows about failed partitions, for reports that must name what is missing.

A failed partition leaves no new output (and may leave an older one in place), so the report cannot learn of
the failure from the data; the run storage is the record. These helpers read it through the public
``DagsterInstance`` API, so they work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class PartitionFailure:
    """The latest run of ``partition`` failed with ``message`` (the step failure a user would read)."""

    partition: str
    run_id: str
    message: str


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        if data is not None and data.error is not None:
            return (data.user_failure_data.description if data.user_failure_data and data.user_failure_data.description
                    else data.error.message).strip()
    return "the run failed before a step started (see the run in the Dagster UI)"


def failed_partitions(instance: dg.DagsterInstance, *, job_name: str | None = None) -> dict[str, PartitionFailure]:
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
            out[key] = PartitionFailure(key, run_id, _failure_message(instance, run_id))
    return out
