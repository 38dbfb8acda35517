"""Presence, leases and login throttling: the same contract in one process and over Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis

from chatforge.auth.throttle import LoginThrottle
from chatforge.errors import RateLimited
from chatforge.services.coordination import Leases, LocalLeases, RedisLeases
from chatforge.services.presence import MemoryPresence, Presence, RedisPresence
from chatforge.services.window_storage import MemoryWindows
from chatforge.store.models import Role
from tests.servers import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def presences(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Presence, Presence]]:
    """Presence as two processes see it (one process has only one)."""
    if request.param == "memory":
        presence = MemoryPresence()
        yield presence, presence
        return
    server: RedisServer = request.getfixturevalue("redis")
    client = Redis.from_url(server.url)
    await client.flushdb()
    a, b = RedisPresence(client), RedisPresence(client)
    yield a, b
    await a.close()
    await b.close()
    await client.aclose()


async def test_moderators_online_counts_sockets_everywhere(
    presences: tuple[Presence, Presence],
) -> None:
    a, b = presences
    assert await a.connected(1, Role.moderator) is True
    # A second socket: in one process the user is online already; elsewhere it is its first.
    assert await b.connected(1, Role.moderator) is (a is not b)
    assert await a.connected(2, Role.user) is True
    assert await b.online_moderators() == {1}
    assert await a.is_online(2)
    await a.disconnected(1, Role.moderator)
    assert await b.online_moderators() == {1}, "still connected through the other socket"
    await b.disconnected(1, Role.moderator)
    assert await a.online_moderators() == set()


@pytest.fixture(params=["memory", "redis"])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Leases, Leases]]:
    if request.param == "memory":
        yield LocalLeases(), LocalLeases()
        return
    server: RedisServer = request.getfixturevalue("redis")
    client = Redis.from_url(server.url)
    await client.flushdb()
    yield RedisLeases(client), RedisLeases(client)
    await client.aclose()


async def test_a_lease_is_held_by_one_process_at_a_time(leases: tuple[Leases, Leases]) -> None:
    a, b = leases
    first = await a.acquire("sweep", 5)
    second = await b.acquire("sweep", 5)
    assert first
    if isinstance(a, RedisLeases):
        assert not second, "the other process skips this round"
        assert await b.acquire("another-job", 5)
    else:
        assert second, "one process: always its turn"


@pytest.fixture(params=["memory", "redis"])
async def throttles(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[LoginThrottle, LoginThrottle]]:
    """Two processes' throttles sharing (or, in memory, being) one counter store."""
    if request.param == "memory":
        storage = MemoryWindows()
        throttle = LoginThrottle(storage, per_username=3, per_ip=100, window_minutes=15)
        yield throttle, throttle
        return
    server: RedisServer = request.getfixturevalue("redis")
    client = Redis.from_url(server.url)
    await client.flushdb()
    await client.aclose()
    stores = [RedisStorage(f"async+{server.url}", implementation="redispy") for _ in range(2)]
    yield (
        LoginThrottle(stores[0], per_username=3, per_ip=100, window_minutes=15),
        LoginThrottle(stores[1], per_username=3, per_ip=100, window_minutes=15),
    )
    for store in stores:
        await store.bridge.storage.aclose()  # type: ignore[attr-defined]


async def test_login_failures_count_across_processes(
    throttles: tuple[LoginThrottle, LoginThrottle],
) -> None:
    a, b = throttles
    for throttle in (a, b, a):
        await throttle.check("ada", "10.0.0.1")
        await throttle.record_failure("ada", "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        await b.check("ada", "10.0.0.2")
    assert 1 <= limited.value.retry_after <= 15 * 60 + 1
    await a.check("grace", "10.0.0.1")  # other usernames are not affected
