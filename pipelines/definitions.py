"""The single Dagster ``Definitions`` of the CTI pipeline (loaded by ``workspace.yaml``)."""

from __future__ import annotations

import dagster as dg

from assets import effects, ingest, linkage, registers, reporting
from pipelines import automation, jobs
from pipelines.jobs import JOBS
from pipelines.partitions import OUTCOME_PARTITIONS
from pipelines.resources import CodeLists, ProjectPaths, PseudonymKey, RegisterSource
from pipelines.storage import ParquetIOManager


def build_resources() -> dict[str, object]:
    """Resources wired from the environment (values are read when a run starts, never at import)."""
    data_dir = dg.EnvVar("CTI_DATA_DIR")
    return {
        "io_manager": ParquetIOManager(base_dir=data_dir),
        "paths": ProjectPaths(data_dir=data_dir),
        "pseudonym_key": PseudonymKey(key=dg.EnvVar("CTI_PSEUDONYM_KEY")),
        "code_lists": CodeLists(),
        "register_source": RegisterSource(
            kind=dg.EnvVar("CTI_REGISTER_SOURCE"),
            persons=dg.EnvVar.int("CTI_PERSONS"),
            seed=dg.EnvVar.int("CTI_SEED"),
            extracts_dir=dg.EnvVar("CTI_EXTRACTS_DIR"),
        ),
    }


defs = dg.Definitions(
    sensors=[
        automation.inbox_sensor,
        automation.after_ingest_sensor(jobs.ingest_job, jobs.analysis_job),
        automation.downstream_chain_sensor(
            [jobs.effects_job, jobs.outcome_effects_job, jobs.report_job], tuple(OUTCOME_PARTITIONS.get_partition_keys())
        ),
    ],
    schedules=[automation.quarterly_refresh],
    assets=[*registers.assets, *ingest.assets, *linkage.assets, *effects.assets, *reporting.assets],
    jobs=JOBS,
    resources=build_resources(),
)
