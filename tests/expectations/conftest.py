"""Shared fixtures: one warm GX context for the whole test session, small synthetic frames."""

from __future__ import annotations

import pytest

from expectations import adapter


@pytest.fixture(scope="session", autouse=True)
def gx_context() -> object:
    """Import GX and build the cached ephemeral context once (GX import takes seconds)."""
    return adapter._batch_definition()
