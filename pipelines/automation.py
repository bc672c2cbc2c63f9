"""Sensors and schedules: new inbox files trigger their partitions; a quarterly schedule refreshes the rest."""

from __future__ import annotations

import json
from datetime import datetime
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


DOWNSTREAM_SENSOR = "downstream_chain"
CHAIN_TAG = "cti/chain"
#: ``cti run`` drives its own runs in order; the chain must not start a second copy of them.
SELF_DRIVEN = {"cti run"}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def chain_requests(
    instance: dg.DagsterInstance, cursor: str | None, *, outcomes: tuple[str, ...]
) -> tuple[list[dg.RunRequest], str | None]:
    """Next runs after finished ones: linkage -> effects -> every outcome partition -> report.

    The report waits until every outcome run of the same chain has finished, successfully or not: a failed
    outcome is named in the report, it does not hold it back. ``run_key`` makes each request idempotent, so
    the cursor (the newest update time seen) may safely overlap.
    """
    from pipelines.jobs import ANALYSIS_JOB, EFFECTS_JOB, OUTCOME_EFFECTS_JOB, REPORT_JOB

    since = datetime.fromisoformat(cursor) if cursor else None
    finished = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE], updated_after=since),
        order_by="update_timestamp", ascending=True,
    )
    requests: list[dg.RunRequest] = []
    newest = since
    for record in finished:
        run = record.dagster_run
        newest = max(newest, record.update_timestamp) if newest else record.update_timestamp
        if run.tags.get("cti/trigger") in SELF_DRIVEN:
            continue
        ok = run.status == dg.DagsterRunStatus.SUCCESS
        chain = run.tags.get(CHAIN_TAG, run.run_id)
        tags = {"cti/trigger": DOWNSTREAM_SENSOR, CHAIN_TAG: chain}
        if run.job_name == ANALYSIS_JOB and ok:
            requests.append(dg.RunRequest(job_name=EFFECTS_JOB, run_key=f"{EFFECTS_JOB}:{chain}", tags=tags))
        elif run.job_name == EFFECTS_JOB and ok:
            requests += [
                dg.RunRequest(job_name=OUTCOME_EFFECTS_JOB, partition_key=o, run_key=f"{OUTCOME_EFFECTS_JOB}:{o}:{chain}", tags=tags)
                for o in outcomes
            ]
        elif run.job_name == OUTCOME_EFFECTS_JOB and CHAIN_TAG in run.tags:
            siblings = instance.get_runs(filters=dg.RunsFilter(job_name=OUTCOME_EFFECTS_JOB, tags={CHAIN_TAG: chain}))
            done = {s.tags.get("dagster/partition") for s in siblings if s.status in FINISHED}
            if done >= set(outcomes):
                requests.append(dg.RunRequest(job_name=REPORT_JOB, run_key=f"{REPORT_JOB}:{chain}", tags=tags))
    unique = {r.run_key: r for r in requests}
    return list(unique.values()), newest.isoformat() if newest else cursor


def downstream_chain_sensor(jobs: list[dg.UnresolvedAssetJobDefinition], outcomes: tuple[str, ...]) -> dg.SensorDefinition:
    """The sensor that carries a refresh (schedule, ingest sensor or a UI launch of linkage) through to the report."""

    @dg.sensor(
        name=DOWNSTREAM_SENSOR,
        jobs=jobs,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="After linkage: effects; after effects: every outcome partition; after all outcomes: the reports.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        requests, cursor = chain_requests(context.instance, context.cursor, outcomes=outcomes)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor
