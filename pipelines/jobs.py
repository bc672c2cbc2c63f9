"""Jobs: the mock world, ingest of one submission partition, and the downstream stages.

What follows what is not written here: ``pipelines.flow`` reads it from the asset graph.
"""

from __future__ import annotations

import dagster as dg

from assets import effects, linkage, reporting
from assets.ingest import CONSOLIDATION_ASSETS, SUBMISSION_ASSETS
from pipelines.partitions import (
    ANALYSIS_JOB,
    EFFECTS_JOB,
    INGEST_JOB,
    MOCK_WORLD_JOB,
    OUTCOME_EFFECTS_JOB,
    REGISTERS_GROUP,
    REPORT_JOB,
)

mock_world_job = dg.define_asset_job(
    MOCK_WORLD_JOB,
    selection=dg.AssetSelection.groups(REGISTERS_GROUP),
    description="Generate (or load) every register extract and the restricted CPR key.",
)

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(*SUBMISSION_ASSETS),
    description="Read, validate, quarantine and pseudonymise one site's quarterly submission.",
    tags={"cti/stage": "ingest"},
)

analysis_job = dg.define_asset_job(
    ANALYSIS_JOB,
    selection=dg.AssetSelection.assets(*CONSOLIDATION_ASSETS, *linkage.assets),
    description="Consolidate courses across quarters, link to registers, build the outcome panel.",
    tags={"cti/stage": "linkage"},
)

effects_job = dg.define_asset_job(
    EFFECTS_JOB,
    selection=dg.AssetSelection.assets(effects.before_after, effects.matched_sample),
    description="Naive before/after and the matched comparison sample (balance, unmatched participants).",
    tags={"cti/stage": "effects"},
)

outcome_effects_job = dg.define_asset_job(
    OUTCOME_EFFECTS_JOB,
    selection=dg.AssetSelection.assets(effects.outcome_effects),  # partitioned by outcome (inferred)
    description="Event study, pooled DiD with sub-groups and staggered ATT for one outcome (the partition).",
    tags={"cti/stage": "effects"},
)

report_job = dg.define_asset_job(
    REPORT_JOB,
    selection=dg.AssetSelection.assets(*reporting.assets),
    description="Effect report for researchers and the steward view with per-site feedback files.",
    tags={"cti/stage": "report"},
)

JOBS = [mock_world_job, ingest_job, analysis_job, effects_job, outcome_effects_job, report_job]
