"""Production instance storage: the same jobs on PostgreSQL (dagster-postgres), chosen by configuration only.

A throwaway PostgreSQL cluster is created with ``initdb`` under /tmp and started on a free loopback port
(as the ``postgres`` system user when the tests run as root, since the server refuses root). Skipped, with
the reason, only when the PostgreSQL server binaries are not installed (``scripts/setup_system.sh``
installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """A running throwaway PostgreSQL server; yields the ``DAGSTER_PG_*`` environment for it."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed and "
                    "scripts/setup_system.sh could not install them (needs root or passwordless sudo and "
                    "Debian's apt)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="cti-pg-"))
    if os.geteuid() == 0:  # postgres will not run as root: hand the directory to the postgres system user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        shutil.chown(base, user="postgres", group="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster, port = base / "cluster", _free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{cmd[0]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"

    run(initdb, "-D", str(cluster), "-U", "cti", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    run(pg_ctl, "-D", str(cluster), "-o", options, "-l", str(base / "server.log"), "-w", "-t", "60", "start")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="cti", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE dagster")
        conn.close()
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_DB": "dagster",
               "DAGSTER_PG_USER": "cti", "DAGSTER_PG_PASSWORD": "not-used-with-trust-auth"}
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(cluster), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _query(env: dict[str, str], sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=int(env["DAGSTER_PG_PORT"]),
                            user=env["DAGSTER_PG_USER"], dbname=env["DAGSTER_PG_DB"])
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_runs_events_and_checks_go_to_postgres_by_configuration_only(
    cti_env: Path, postgres: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from pipelines import world
    from pipelines.definitions import build_definitions
    from pipelines.instance import QUIET, get_instance
    from pipelines.partitions import INGEST_JOB, sync_sites
    from pipelines.runner import submission_partitions
    from pipelines.settings import Settings

    monkeypatch.setenv("CTI_DAGSTER_STORAGE", "postgres")
    for name, value in postgres.items():
        monkeypatch.setenv(name, value)

    settings = Settings.from_env()
    assert settings.storage == "postgres"
    world.generate(settings, persons=1000, seed=11)  # the mock-world job, run on the PostgreSQL instance
    settings = settings.with_generated_world()
    instance = get_instance(settings.layout, storage=settings.storage)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert "postgres" in (cti_env / "dagster_home" / "dagster.yaml").read_text()

    sync_sites(instance, settings.config.site_ids())
    key = submission_partitions(settings)[0]
    result = build_definitions(settings).resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance, partition_key=key, run_config=QUIET,
        tags={"cti/trigger": "test", "cti/user": "analyst"}
    )
    assert result.success

    # What the UI reads now lives in PostgreSQL: runs with their tags, materialisations, check results.
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"cti/user": "analyst"}))
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
    assert _query(postgres, "SELECT count(*) FROM runs")[0][0] >= 2
    materialised = _query(postgres, "SELECT count(*) FROM event_logs WHERE dagster_event_type = "
                                    "'ASSET_MATERIALIZATION'")
    assert materialised[0][0] > 0
    assert _query(postgres, "SELECT count(*) FROM asset_check_executions")[0][0] > 0
    # ...and nothing fell back to the embedded SQLite files.
    assert not list((cti_env / "dagster_home").rglob("*.db"))
