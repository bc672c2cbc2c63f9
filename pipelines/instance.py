"""The Dagster instance: embedded SQLite by default, PostgreSQL by configuration only.

The instance lives at ``Layout.dagster_home`` (``$CTI_DATA_DIR/dagster_home``). Its ``dagster.yaml`` is
written once (never overwritten, so an analyst's edits survive) with telemetry off. The ``postgres`` storage
setting (``CTI_DAGSTER_STORAGE=postgres``) selects the PostgreSQL storage of ``dagster-postgres``, configured
from the ``DAGSTER_PG_*`` environment variables.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pipelines.layout import Layout
from pipelines.storage import write_text

SQLITE_YAML = """\
# Embedded default: run, event-log and schedule storage in SQLite files under this directory.
telemetry:
  enabled: false
"""

POSTGRES_YAML = """\
# Production: instance storage in PostgreSQL (dagster-postgres). Credentials come from the environment.
telemetry:
  enabled: false
storage:
  postgres:
    postgres_db:
      # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which dagster-postgres does not support
      # (NOTIFY with bound parameters fails); name the psycopg2 driver it is built and tested with.
      scheme: postgresql+psycopg2
      hostname:
        env: DAGSTER_PG_HOST
      port:
        env: DAGSTER_PG_PORT
      db_name:
        env: DAGSTER_PG_DB
      username:
        env: DAGSTER_PG_USER
      password:
        env: DAGSTER_PG_PASSWORD
"""


def instance_yaml(storage: str) -> str:
    """Return the ``dagster.yaml`` text for ``storage`` ("sqlite" or "postgres")."""
    if storage == "sqlite":
        return SQLITE_YAML
    if storage == "postgres":
        return POSTGRES_YAML
    raise ValueError(f"unknown instance storage {storage!r}; use 'sqlite' (default) or 'postgres'")


def ensure_dagster_home(layout: Layout, /, *, storage: str = "sqlite") -> Path:
    """Create the instance directory and its ``dagster.yaml`` (telemetry off, ``storage``) if missing."""
    home = layout.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        write_text(config, instance_yaml(storage))
    return home


def get_instance(layout: Layout, /, *, storage: str = "sqlite") -> dg.DagsterInstance:
    """Return the persistent instance of the data directory (no ``DAGSTER_HOME`` needed in this process)."""
    return dg.DagsterInstance.from_config(str(ensure_dagster_home(layout, storage=storage)))


#: Run config for runs ``cti`` executes: nothing on the console (the CLI prints one line per failure), the
#: full event log, stack traces included, in the instance (the run's log in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: The workspace the UI (``make ui``) loads; runs ``cti`` executes carry the origin of its code location.
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
LOCATION_NAME = "cti"
DEFINITIONS_MODULE = "pipelines.definitions"
#: The repository name Dagster gives a module's single ``Definitions``.
REPOSITORY_NAME = "__repository__"


@functools.cache
def code_location_origin():  # -> dagster CodeLocationOrigin
    """Return the origin of the ``cti`` code location exactly as the UI loads it from ``workspace.yaml``.

    Runs created with it appear under their job in the UI (the Jobs page filters on the repository label
    ``__repository__@cti``) and can be re-executed there.
    """
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    if WORKSPACE.exists():
        for origin in WorkspaceFileTarget(paths=[str(WORKSPACE)]).create_origins():
            if origin.location_name == LOCATION_NAME:
                return origin
    # an installed package without the checkout's workspace.yaml
    return ManagedGrpcPythonEnvCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name=DEFINITIONS_MODULE),
        location_name=LOCATION_NAME)


def job_origins(job_name: str, /):  # -> (RemoteJobOrigin, JobPythonOrigin)
    """Return the remote (UI) and the Python origin of ``job_name`` in the ``cti`` code location."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin

    remote = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(code_location_origin=code_location_origin(),
                                                 repository_name=REPOSITORY_NAME),
        job_name=job_name,
    )
    python = JobPythonOrigin(job_name, RepositoryPythonOrigin(
        executable_path=sys.executable, code_pointer=ModuleCodePointer(DEFINITIONS_MODULE, "defs"),
        container_image=None, entry_point=None, container_context=None))
    return remote, python


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended: its id, whether it succeeded, and the failure a user would read (masked)."""

    run_id: str
    success: bool
    message: str = ""


def execute_job(job: dg.JobDefinition, instance: dg.DagsterInstance, /, *, partition_key: str | None = None,
                tags: Mapping[str, str] | None = None, asset_selection: Sequence[dg.AssetKey] | None = None,
                ) -> RunOutcome:
    """Execute ``job`` in this process as a run of the ``cti`` code location.

    This is what ``execute_in_process`` does, but the run carries the code location's origin, so the UI
    lists it under its job.
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    selection = list(asset_selection) if asset_selection else None
    run_tags = merge_run_tags(job, partition_key, tags, selection, instance, QUIET)
    remote, python = job_origins(job.name)
    # the in-process executor, same graph
    in_process = job.as_ephemeral_job(resource_defs={}, input_values={})
    run = instance.create_run_for_job(
        job_def=in_process, run_config=QUIET, tags=run_tags,
        asset_selection=frozenset(selection) if selection else None, remote_job_origin=remote,
        job_code_origin=python,
    )
    result = execute_run(InMemoryJob(in_process), run, instance)
    if result.success:
        return RunOutcome(run.run_id, True)
    from pipelines.run_status import failure_message

    return RunOutcome(run.run_id, False, failure_message(instance, run.run_id))
