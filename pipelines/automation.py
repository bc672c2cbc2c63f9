"""Sensors and schedules: new inbox files trigger their partitions; finished runs carry a refresh onwards.

What follows what comes from ``pipelines.flow`` (read from the asset graph), never from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import dagster as dg

from pipelines import flow, inbox
from pipelines.partitions import ANALYSIS_JOB, INGEST_JOB, SITES, submission_key
from pipelines.resources import CodeLists, LayoutResource

INBOX_SENSOR = "inbox_sensor"
DOWNSTREAM_SENSOR = "downstream_chain"
QUARTERLY_SCHEDULE = "quarterly_refresh"


def inbox_requests(inbox_dir: Path, cursor: str | None, sites: tuple[str, ...], *,
                   ingested: Callable[[inbox.InboxFile], bool] | None = None,
                   ) -> tuple[list[dg.RunRequest], str]:
    """Run requests for files that are new or changed since ``cursor``, and the new cursor.

    The cursor maps each file path to its ``mtime:size`` signature; a replaced file (a resubmission)
    gets a new signature and so a new run. A file the cursor has not seen yet (the first tick, e.g. after
    ``make run``) is requested only if ``ingested`` says its bytes were not ingested already, so switching
    the sensor on after a full run requests nothing. ``run_key`` makes a request for the same version
    idempotent.
    """
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    current = {str(f.path): (f, f.signature) for f in inbox.scan(inbox_dir, sites)}
    requests: dict[str, dg.RunRequest] = {}
    for path, (item, signature) in current.items():
        if seen.get(path) == signature or (ingested is not None and ingested(item)):
            continue
        key = submission_key(item.quarter, item.site)
        requests[str(key)] = dg.RunRequest(
            run_key=f"{key}@{signature}",
            partition_key=key,
            tags={flow.DRIVER_TAG: INBOX_SENSOR, "cti/file": item.name},
        )
    return list(requests.values()), json.dumps({p: s for p, (_, s) in current.items()}, sort_keys=True)


def ingested_check(instance: dg.DagsterInstance, archive: Path, /) -> Callable[[inbox.InboxFile], bool]:
    """Return a test of whether a file's bytes are already ingested.

    They are when archived as a current version and the partition's latest ingest run succeeded (a file
    whose run failed is requested again).
    """

    def check(item: inbox.InboxFile) -> bool:
        if not inbox.already_received(archive, item):
            return False
        key = str(submission_key(item.quarter, item.site))
        latest = instance.get_run_records(
            filters=dg.RunsFilter(job_name=INGEST_JOB, tags={flow.PARTITION_TAG: key}), limit=1)
        return bool(latest) and latest[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS

    return check


@dg.sensor(
    name=INBOX_SENSOR,
    job_name=INGEST_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests an ingest run for each site/quarter whose inbox file is new or changed.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, layout: LayoutResource,
                 code_lists: CodeLists) -> dg.SensorResult:
    """Watch the inbox for new or replaced submission files; the configuration gives the sites each tick."""
    sites = code_lists.site_ids()
    requests, cursor = inbox_requests(layout.inbox, context.cursor, sites,
                                      ingested=ingested_check(context.instance, layout.received))
    known = set(context.instance.get_dynamic_partitions(SITES.name))
    new_sites = [s for s in sites if s not in known]
    return dg.SensorResult(
        run_requests=requests, cursor=cursor,
        dynamic_partitions_requests=[SITES.build_add_request(new_sites)] if new_sites else None,
    )


def chain_requests(instance: dg.DagsterInstance, cursor: str | None, order: tuple[flow.Stage, ...],
                   ) -> tuple[list[dg.RunRequest], str | None]:
    """Next runs (``flow.next_requests``) after the runs that finished since ``cursor``, and the new cursor.

    The cursor is the newest update time seen; ``run_key`` makes each request idempotent, so it may overlap.
    """
    since = datetime.fromisoformat(cursor) if cursor else None
    finished = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
                              updated_after=since),
        order_by="update_timestamp", ascending=True,
    )
    requests: dict[str, dg.RunRequest] = {}
    newest = since
    for record in finished:
        newest = max(newest, record.update_timestamp) if newest else record.update_timestamp
        for request in flow.next_requests(instance, record.dagster_run, order, trigger=DOWNSTREAM_SENSOR):
            requests[request.run_key] = request
    return list(requests.values()), newest.isoformat() if newest else cursor


def downstream_chain_sensor(jobs: list) -> dg.SensorDefinition:
    """Return the sensor that carries a refresh (ingest, schedule or a UI launch) through to the reports."""

    @dg.sensor(
        name=DOWNSTREAM_SENSOR,
        jobs=jobs,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="After each stage of the flow (pipelines.flow), the next: ingest -> linkage -> effects "
                    "-> every outcome partition -> reports.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        order = flow.stage_order(context.repository_def)
        requests, cursor = chain_requests(context.instance, context.cursor, order)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


quarterly_refresh = dg.ScheduleDefinition(
    name=QUARTERLY_SCHEDULE,
    job_name=ANALYSIS_JOB,
    # Sites deliver within six weeks of the quarter's end: refresh on the 15th of the second month.
    cron_schedule="0 6 15 2,5,8,11 *",
    execution_timezone="Europe/Copenhagen",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    tags={flow.DRIVER_TAG: QUARTERLY_SCHEDULE},
    description="Quarterly refresh of courses, linkage, effect estimates and reports.",
)
