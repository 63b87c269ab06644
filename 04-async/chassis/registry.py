"""Where the running instances are: Redis keys with a time-to-live, kept alive by heartbeats.

Each instance writes `registry:<service>:<address>` every HEARTBEAT_SECONDS with a TTL of
TTL_SECONDS. An instance that stops (or hangs) stops writing, its key expires, and the
gateway stops sending it traffic. REGISTRY_URL names the Redis; unset, there is no
registry and the gateway uses the addresses `workshop up` gives it (SEARCH_URL, ...).
ADVERTISE_URL is the address an instance registers (default http://127.0.0.1:$PORT).
The entry also says which code the instance runs (`version`) and since when (`started`);
an entry written without them reads as null.

Async: the heartbeat is a task on the service's event loop and a lookup is awaited, so
neither holds a thread. A Redis client belongs to the loop it first ran on: make these
objects where they are used (at serving start) and close them when serving ends.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from workshop import config
from workshop.platform.instances import about, entry

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
TTL_SECONDS = 3
PREFIX = "registry"


def registry_url() -> str | None:
    """Return REGISTRY_URL (a redis:// URL), or None when no registry is used."""
    return config.env("REGISTRY_URL")


def advertise_url() -> str | None:
    """Return the address other processes reach this instance at, to register it under.

    ADVERTISE_URL when set: in containers 127.0.0.1 is the container itself, so each one
    names its own (http://search:8000, a pod's address). Else http://127.0.0.1:$PORT, as
    `workshop up` runs every process on one machine; None without a PORT either.
    """
    port = config.env("PORT")
    return config.env("ADVERTISE_URL") or (f"http://127.0.0.1:{port}" if port else None)


class Heartbeat:
    """Keep one instance's registry entry alive while the process runs and is ready.

    `ready` keeps a new instance out of the registry until its start-up data is in, so
    the gateway sends it no traffic it would answer wrongly.
    """

    def __init__(
        self, url: str, service: str, address: str, ready: Callable[[], bool] = lambda: True
    ) -> None:
        self.ready = ready
        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.key = f"{PREFIX}:{service}:{address}"
        self.value = json.dumps({"service": service, "address": address, **about()})
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.key}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task
        with contextlib.suppress(redis.RedisError):
            await self.client.delete(self.key)  # leave at once rather than after the TTL
        await self.client.aclose()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.ready():
                    await self.client.set(self.key, self.value, ex=TTL_SECONDS)
            except redis.RedisError:
                log.warning("registry unreachable; %s keeps trying", self.key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HEARTBEAT_SECONDS)


class Registry:
    """Read the live instances of each service (cached briefly: lookups are per request)."""

    CACHE_SECONDS = 0.5

    def __init__(self, url: str) -> None:
        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        # One event loop, no lock: nothing else runs between reading the cache and using it.
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def instances(self, service: str) -> list[str]:
        """Return the addresses of a service's live instances, sorted."""
        cached = self._cache.get(service)
        if cached and time.monotonic() - cached[0] < self.CACHE_SECONDS:
            return cached[1]
        try:
            keys = self.client.scan_iter(match=f"{PREFIX}:{service}:*", count=100)
            addresses = sorted([key.decode().split(":", 2)[2] async for key in keys])
        except redis.RedisError:
            # No registry to ask: keep the last known instances (or none: the gateway then
            # falls back to the addresses it was started with).
            log.warning("registry unreachable; using what was known of %s", service)
            return cached[1] if cached else []
        self._cache[service] = (time.monotonic(), addresses)
        return addresses

    async def entries(self, service: str) -> list[dict[str, Any]]:
        """Return each live instance of a service as its entry says: address, version and
        start (null where an older entry does not say), sorted by address.

        Not cached, unlike `instances`: /readyz asks it, not every call.
        """
        try:
            keys = self.client.scan_iter(match=f"{PREFIX}:{service}:*", count=100)
            keys = sorted([key async for key in keys])
            values = await self.client.mget(keys) if keys else []
        except redis.RedisError:
            log.warning("registry unreachable; using what was known of %s", service)
            cached = self._cache.get(service)
            return [entry(address, None) for address in (cached[1] if cached else [])]
        # A key that expired between the scan and the read is gone: left out.
        return [
            entry(key.decode().split(":", 2)[2], value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        ]

    async def close(self) -> None:
        """Close the connections (they belong to the loop that opened them)."""
        await self.client.aclose()
