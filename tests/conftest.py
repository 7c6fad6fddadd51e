"""Fixtures shared by every test module, and how random tests run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.live import LiveServer, live_server
from tests.redis_fleet import RedisClusterFleet, redis_cluster
from tests.redis_server import RedisServer, redis_server

# In CI every random test runs the same examples every time, so a red build can be reproduced
# and a green one means the same thing twice; on a laptop they keep exploring new inputs.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (memory store) for the integration tests; each test makes its own session."""
    with live_server(Path(tmp_path_factory.mktemp("live"))) as running:
        yield running


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server with AOF on, shared by the tests that need one."""
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as running:
        yield running


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterFleet]:
    """A real Redis Cluster (three primaries, no replicas) shared by tests that never break it."""
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster")), replicas_per_primary=0) as fleet:
        yield fleet
