"""Shared fixtures: an isolated data directory and CTI environment per test that needs one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import TEST_KEY


@pytest.fixture
def cti_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every CTI_* variable and DAGSTER_HOME at a fresh data directory under tmp_path."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CTI_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv("CTI_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("CTI_REGISTER_SOURCE", "mock")
    monkeypatch.setenv("CTI_PERSONS", "4000")
    monkeypatch.setenv("CTI_SEED", "7")
    monkeypatch.delenv("CTI_EXTRACTS_DIR", raising=False)
    monkeypatch.delenv("CTI_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("CTI_CONFIG_DIR", raising=False)
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    return data


def pytest_configure(config: pytest.Config) -> None:  # noqa: D103
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the end-to-end runs in the background when a selected test uses them (see tests/e2e_world.py).

    They are whole pipelines of a few minutes each, mostly waiting on Dagster's per-run work; started now,
    they run on the second core while the unit tests run, instead of after them.
    """
    config, items = session.config, session.items  # after -k / -m deselection
    if config.option.collectonly or not any("full_run" in getattr(i, "fixturenames", ()) for i in items):
        return
    import e2e_world

    base = config._tmp_path_factory.getbasetemp()  # pytest's own temporary tree (kept for a failed run)
    e2e_world.start("first", base / "e2e-first" / "data")
    if any(item.name == "test_same_inputs_give_identical_parquet" for item in items):  # its second run
        e2e_world.start("second", base / "e2e-second" / "data")


def pytest_unconfigure(config: pytest.Config) -> None:  # noqa: D103 - end a background run left going
    import sys

    if "e2e_world" in sys.modules:
        sys.modules["e2e_world"].stop_all()


#: The deliveries the small operation world keeps (a quarter with rows, a resubmission, three partitions).
SMALL_WORLD_FILES = ("2025Q1/aarhus.csv", "2025Q1/koebenhavn.csv", "2025Q1/koebenhavn_rettet.csv",
                     "2025Q1/randers.csv")


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,000-person mock world, ingested by ``cti run --demo-key --ingest-only`` (three partitions).

    Shared read-only by the operation and UI tests: a test that changes data works on a copy. The key is the
    demo key file (``restricted/demo_pseudonym.key``), as ``make run`` makes it.
    """
    import shutil
    import subprocess
    import sys

    data = tmp_path_factory.mktemp("small_world") / "data"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data.parent), "CTI_DATA_DIR": str(data),
           "GX_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "1", "CTI_WORKERS": "2"}
    cli = [sys.executable, "-m", "pipelines.cli"]
    made = subprocess.run([*cli, "mock-world", "--persons", "1000", "--seed", "5"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-2000:]
    keep = {data / "inbox" / f for f in SMALL_WORLD_FILES}
    for path in sorted((data / "inbox").rglob("*"), reverse=True):
        if path.is_file() and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            shutil.rmtree(path)
    run = subprocess.run([*cli, "run", "--demo-key", "--ingest-only"], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "ingest: 3/3 submission partitions ok" in run.stdout, run.stdout
    return data
