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
