"""The single Dagster ``Definitions`` of the CTI pipeline (loaded by ``workspace.yaml``).

:func:`build_definitions` wires the assets, jobs, sensors and schedule to the resources a
:class:`pipelines.settings.Settings` describes; ``cti run`` calls it with the settings it built from its
options, and :func:`defs` (what the code location loads) with the settings of the environment. Nothing
reads the environment at import.
"""

from __future__ import annotations

import dagster as dg

from assets import effects, ingest, linkage, monitoring, registers, reporting, som
from pipelines import automation, jobs
from pipelines.resources import CodeLists, LayoutResource, PseudonymKey
from pipelines.settings import ExtractSource, Settings
from pipelines.sources import ExtractRegisters, MockRegisters, RegisterSource
from pipelines.storage import ParquetIOManager


def register_source(settings: Settings, /) -> RegisterSource:
    """Return the register source the settings choose: real extracts, or the mock world."""
    if isinstance(settings.source, ExtractSource):
        return ExtractRegisters(extracts_dir=str(settings.source.directory))
    source = settings.source
    return MockRegisters(persons=source.persons, seed=source.seed, first_year=source.first_year,
                         last_year=source.last_year, config_dir=str(settings.config.path or ""),
                         world_settings=source.world)


def build_resources(settings: Settings, /) -> dict[str, object]:
    """Return resources for ``settings``; the key is read when a run starts, never stored."""
    key = (PseudonymKey(key_file=str(settings.key.file)) if settings.key.file is not None
           else PseudonymKey(key=dg.EnvVar(settings.key.variable)))
    return {
        "io_manager": ParquetIOManager(base_dir=str(settings.layout.root)),
        "layout": LayoutResource(data_dir=str(settings.layout.root)),
        "pseudonym_key": key,
        "code_lists": CodeLists(config_dir=str(settings.config.path or "")),
        "register_source": register_source(settings),
    }


def build_definitions(settings: Settings, /) -> dg.Definitions:
    """Every asset, job, sensor and schedule, with the resources of ``settings``."""
    return dg.Definitions(
        sensors=[
            automation.inbox_sensor,
            automation.downstream_chain_sensor([jobs.ingest_job, jobs.analysis_job, jobs.effects_job,
                                                jobs.outcome_effects_job, jobs.report_job]),
        ],
        schedules=[automation.quarterly_refresh],
        assets=[*registers.assets, *ingest.assets, *linkage.assets, *effects.assets, *monitoring.assets,
                *som.assets, *reporting.assets],
        jobs=jobs.JOBS,
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Return what the code location loads: the definitions for the environment's settings (``CTI_*``)."""
    return build_definitions(Settings.from_env())
