"""Helpers for tests that need a data directory with settings (``import support``: tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.layout import Layout
from pipelines.settings import KeySource, MockSource, Settings

# A synthetic test key (never used for real data). Tests that need the key leak check use their own canary.
TEST_KEY = "test-key-" + "0123456789abcdef" * 3


def settings_for(data: Path, /, *, persons: int = 4_000, seed: int = 7, key: str = TEST_KEY) -> Settings:
    """Settings for a test data directory: the mock world of ``persons``/``seed``, the key in a file."""
    key_file = data / "restricted" / "test_pseudonym.key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    return Settings(Layout.at(data), MockSource(persons=persons, seed=seed),
                    KeySource(variable=None, file=key_file))


def instance_with_sites(settings: Settings, /) -> dg.DagsterInstance:
    """An ephemeral instance that knows the configured sites (dynamic partitions)."""
    from pipelines.partitions import sync_sites

    instance = dg.DagsterInstance.ephemeral()
    sync_sites(instance, settings.config.site_ids())
    return instance
