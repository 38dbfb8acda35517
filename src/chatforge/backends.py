"""The swappable backends: in-process on one machine, Redis when ``CHATFORGE_REDIS_URL`` is set.

Everything that several server processes must share goes through here: the broker (events and
signals), presence, rate-limit counters and leases for once-only work.
"""

from __future__ import annotations

from dataclasses import dataclass

from limits.aio.storage import RedisStorage, Storage
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from chatforge.realtime.broker import Broker, MemoryBroker
from chatforge.realtime.redis_broker import RedisBroker
from chatforge.services.coordination import Leases, LocalLeases, RedisLeases
from chatforge.services.presence import MemoryPresence, Presence, RedisPresence
from chatforge.services.window_storage import MemoryWindows
from chatforge.settings import Settings


@dataclass
class Backends:
    broker: Broker
    presence: Presence
    limits: Storage
    leases: Leases
    redis: Redis | None = None


def build_backends(settings: Settings) -> Backends:
    if not settings.redis_url:
        return Backends(MemoryBroker(), MemoryPresence(), MemoryWindows(), LocalLeases())
    redis = redis_client(settings.redis_url)
    return Backends(
        broker=RedisBroker(redis),
        presence=RedisPresence(redis),
        limits=RedisStorage(
            _limits_uri(settings.redis_url), implementation="redispy", key_prefix="chatforge"
        ),
        leases=RedisLeases(redis),
        redis=redis,
    )


def redis_client(url: str) -> Redis:
    """A Redis client that fails fast.

    Short socket timeouts and few, quick retries: a Redis that stops answering must not stall
    requests (the broker notices and reconnects, and everything durable is in the database),
    while a pooled connection that died with a restarted Redis gets one fresh try.
    """
    return Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        retry_on_error=[RedisConnectionError],
    )


def _limits_uri(url: str) -> str:
    # The limits library names its asyncio Redis storage with an "async+" scheme prefix.
    return url if url.startswith("async+") else f"async+{url}"
