"""``make ui`` agrees with ``cti run``: the same key, ``cti run``'s runs under their jobs, one stop for all.

Starts the real Dagster UI and daemon (``cti ui``, what ``make ui`` runs) on a free port against a copy of the
session's small world (``conftest.small_world``, made with the demo key) and talks to it through GraphQL.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(data.parent), "CTI_DATA_DIR": str(data),
            "GX_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "1"}  # no CTI_PSEUDONYM_KEY


def _gql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["data"]


def _wait(port: int, run_id: str, seconds: float = 600) -> str:
    """The run's final status (the daemon dequeues and launches it)."""
    status, deadline = "QUEUED", time.monotonic() + seconds
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(2)
        status = _gql(port, "query($id: ID!){ runOrError(runId: $id){ ... on Run { status } } }",
                      {"id": run_id})["runOrError"]["status"]
    return status


def _session(sid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.fixture
def demo_data(small_world: Path, tmp_path: Path) -> Path:
    """A copy of the session's small world, made by ``cti run --demo-key`` (no CTI_PSEUDONYM_KEY anywhere)."""
    data = tmp_path / "data"
    shutil.copytree(small_world, data)
    return data


def test_make_ui_runs_cti_ui() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\nui:", 1)[1].split("\n\n", 1)[0]
    assert ".venv/bin/cti ui" in recipe


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_ui_has_the_key_and_cti_runs_under_their_jobs(demo_data: Path) -> None:
    port = _free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--port", str(port)],
        env=_env(demo_data),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 400
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert ui.poll() is None and time.monotonic() < deadline, "the UI did not start"
                time.sleep(1)
        # the Jobs page lists a job's runs by job name and repository label: cti run's runs are there
        runs = _gql(port, """query($f: RunsFilter){ runsOrError(filter: $f){ ... on Runs { results {
                                 runId status tags { key value } } } } }""",
                    {"f": {"pipelineName": "ingest_submission_job",
                           "tags": [{"key": ".dagster/repository", "value": "__repository__@cti"}]}})
        results = runs["runsOrError"]["results"]
        assert len(results) == 3 and {r["status"] for r in results} == {"SUCCESS"}
        assert all({"key": "cti/trigger", "value": "cti run"} in r["tags"] for r in results)
        # an ingest run launched in the UI finds the same (demo) key the CLI used, and succeeds
        launched = _gql(port, """mutation($p: ExecutionParams!){ launchRun(executionParams: $p){ __typename
                                   ... on LaunchRunSuccess { run { runId } } } }""", {"p": {
            "selector": {"repositoryLocationName": "cti", "repositoryName": "__repository__",
                         "jobName": "ingest_submission_job"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2025-01-01|aarhus"},
                                           {"key": "dagster/partition/quarter", "value": "2025-01-01"},
                                           {"key": "dagster/partition/site", "value": "aarhus"}]}}})
        assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
        assert _wait(port, launched["launchRun"]["run"]["runId"]) == "SUCCESS"
        # and a run cti made can be re-executed from the UI (its origin is the code location's)
        again = _gql(
            port,
            "mutation($p: ReexecutionParams!){ launchRunReexecution(reexecutionParams: $p){\n"
            "                                __typename ... on LaunchRunSuccess { run { runId } }"
            " ... on PythonError { message } } }",
            {"p": {"parentRunId": results[0]["runId"], "strategy": "ALL_STEPS"}},
        )
        assert again["launchRunReexecution"]["__typename"] == "LaunchRunSuccess", again
        assert _wait(port, again["launchRunReexecution"]["run"]["runId"]) == "SUCCESS"
    finally:
        os.kill(ui.pid, signal.SIGTERM)  # what Ctrl-C on `make ui` does: the whole group stops
        out, _ = ui.communicate(timeout=60)
    group = int(re.search(r"dg dev runs as process group (\d+)", out).group(1))
    stop = time.monotonic() + 20
    while (_session(ui.pid) or _session(group)) and time.monotonic() < stop:
        time.sleep(0.5)
    assert _session(ui.pid) == [] and _session(group) == [], "a process of dg dev outlived cti ui"
    assert "key from file" in out and "demo_pseudonym.key" in out
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
