"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, live_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (memory store) for the integration tests; each test makes its own session."""
    with live_server(Path(tmp_path_factory.mktemp("live"))) as running:
        yield running
