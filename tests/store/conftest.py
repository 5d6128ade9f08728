"""Session-store tests run against a real redis-server (see tests/support/redis.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.redis import RedisServer


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    return redis_server


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[Any]:
    """A redis-py client of the test's own, to look at what Aperture stored."""
    client = redis_server.client()
    yield client
    client.close()
