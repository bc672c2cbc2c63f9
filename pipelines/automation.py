"""Sensors and schedules: new inbox files trigger their partitions; a quarterly schedule refreshes the rest."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from pipelines import inbox
from pipelines.jobs import ANALYSIS_JOB, INGEST_JOB
from pipelines.partitions import SITE_IDS, submission_key
from pipelines.resources import ProjectPaths

INBOX_SENSOR = "inbox_sensor"
AFTER_INGEST_SENSOR = "analysis_after_ingest"
QUARTERLY_SCHEDULE = "quarterly_refresh"


def inbox_requests(inbox_dir: Path, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    """Run requests for files that are new or changed since ``cursor``, and the new cursor.

    The cursor maps each file path to its ``mtime:size`` signature; a replaced file (a resubmission)
    gets a new signature and so a new run. ``run_key`` makes a request for the same version idempotent.
    """
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    current = {str(f.path): (f, f.signature) for f in inbox.scan(inbox_dir, SITE_IDS)}
    requests: dict[str, dg.RunRequest] = {}
    for path, (item, signature) in current.items():
        if seen.get(path) == signature:
            continue
        key = submission_key(item.quarter, item.site)
        requests[str(key)] = dg.RunRequest(
            run_key=f"{key}@{signature}",
            partition_key=key,
            tags={"cti/trigger": "inbox_sensor", "cti/file": Path(path).name},
        )
    return list(requests.values()), json.dumps({p: s for p, (_, s) in current.items()}, sort_keys=True)


@dg.sensor(
    name=INBOX_SENSOR,
    job_name=INGEST_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests an ingest run for each site/quarter whose inbox file is new or changed.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, paths: ProjectPaths) -> dg.SensorResult:
    """Watch ``$CTI_DATA_DIR/inbox`` for new or replaced submission files."""
    requests, cursor = inbox_requests(paths.inbox, context.cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def after_ingest_sensor(ingest_job, analysis_job) -> dg.RunStatusSensorDefinition:
    """After a successful ingest run, request one downstream refresh (deduplicated per ingest run)."""

    @dg.run_status_sensor(
        name=AFTER_INGEST_SENSOR,
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[ingest_job],
        request_job=analysis_job,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Refreshes courses, linkage and effects after new submissions were ingested.",
    )
    def _sensor(context: dg.RunStatusSensorContext):
        return dg.RunRequest(
            run_key=f"after:{context.dagster_run.run_id}", tags={"cti/trigger": AFTER_INGEST_SENSOR}
        )

    return _sensor


quarterly_refresh = dg.ScheduleDefinition(
    name=QUARTERLY_SCHEDULE,
    job_name=ANALYSIS_JOB,
    # Sites deliver within six weeks of the quarter's end: refresh on the 15th of the second month.
    cron_schedule="0 6 15 2,5,8,11 *",
    execution_timezone="Europe/Copenhagen",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    tags={"cti/trigger": QUARTERLY_SCHEDULE},
    description="Quarterly refresh of courses, linkage, effect estimates and reports.",
)
