"""Jobs: mock world, ingest of one submission partition, and the downstream stages."""

from __future__ import annotations

import dagster as dg

from pipelines.partitions import (
    EFFECTS_GROUP,
    INGEST_GROUP,
    LINKAGE_GROUP,
    REGISTERS_GROUP,
    REPORTING_GROUP,
    SUBMISSIONS,
)

MOCK_WORLD_JOB = "mock_world_job"
INGEST_JOB = "ingest_submission_job"
ANALYSIS_JOB = "linkage_job"
EFFECTS_JOB = "effects_by_outcome_job"
POOLED_EFFECTS_JOB = "effects_pooled_job"
REPORT_JOB = "report_job"

#: Jobs ``cti run`` executes after ingest, in order; outcome-partitioned jobs run once per outcome.
DOWNSTREAM_JOBS = (ANALYSIS_JOB, EFFECTS_JOB, POOLED_EFFECTS_JOB, REPORT_JOB)
OUTCOME_JOBS = (EFFECTS_JOB,)

mock_world_job = dg.define_asset_job(
    MOCK_WORLD_JOB,
    selection=dg.AssetSelection.groups(REGISTERS_GROUP),
    description="Generate (or load) every register extract and the restricted CPR key.",
)

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.groups(INGEST_GROUP).required_multi_asset_neighbors()
    - dg.AssetSelection.assets("courses", "course_conflicts", "submission_log", "quarantine_summary"),
    partitions_def=SUBMISSIONS,
    description="Read, validate, quarantine and pseudonymise one site's quarterly submission.",
    tags={"cti/stage": "ingest"},
)
