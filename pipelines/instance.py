"""The Dagster instance: embedded SQLite by default, PostgreSQL by configuration only.

The instance lives at ``Layout.dagster_home`` (``$CTI_DATA_DIR/dagster_home``). Its ``dagster.yaml`` is written
once (never overwritten, so an analyst's edits survive) with telemetry off. The ``postgres`` storage setting
(``CTI_DAGSTER_STORAGE=postgres``) selects the PostgreSQL storage of ``dagster-postgres``, configured from
the ``DAGSTER_PG_*`` environment variables.
"""

from __future__ import annotations

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
    """The persistent instance of the data directory (no ``DAGSTER_HOME`` needed in this process)."""
    return dg.DagsterInstance.from_config(str(ensure_dagster_home(layout, storage=storage)))


#: Run config for in-process runs started from the CLI: warnings and errors on the console, the full
#: event log in the instance (visible in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
