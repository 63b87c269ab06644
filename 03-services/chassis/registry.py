"""Where the running instances are: Redis keys with a time-to-live, kept alive by heartbeats.

Each instance writes `registry:<service>:<address>` every HEARTBEAT_SECONDS with a TTL of
TTL_SECONDS. An instance that stops (or hangs) stops writing, its key expires, and the
gateway stops sending it traffic. REGISTRY_URL names the Redis; unset, there is no
registry and the gateway uses the addresses `workshop up` gives it (SEARCH_URL, ...).
ADVERTISE_URL is the address an instance registers (default http://127.0.0.1:$PORT).
The entry also says which code the instance runs (`version`) and since when (`started`);
an entry written without them reads as null.
"""

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

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
        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.key = f"{PREFIX}:{service}:{address}"
        self.value = json.dumps({"service": service, "address": address, **about()})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{service}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self.key)  # leave at once rather than after the TTL

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.ready():
                    self.client.set(self.key, self.value, ex=TTL_SECONDS)
            except redis.RedisError:
                log.warning("registry unreachable; %s keeps trying", self.key)
            self._stop.wait(HEARTBEAT_SECONDS)


class Registry:
    """Read the live instances of each service (cached briefly: lookups are per request)."""

    CACHE_SECONDS = 0.5

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def instances(self, service: str) -> list[str]:
        """Return the addresses of a service's live instances, sorted."""
        with self._lock:
            cached = self._cache.get(service)
            if cached and time.monotonic() - cached[0] < self.CACHE_SECONDS:
                return cached[1]
        try:
            keys = self.client.scan_iter(match=f"{PREFIX}:{service}:*", count=100)
            addresses = sorted([key.decode().split(":", 2)[2] for key in keys])
        except redis.RedisError:
            # No registry to ask: keep the last known instances (or none: the gateway then
            # falls back to the addresses it was started with).
            log.warning("registry unreachable; using what was known of %s", service)
            return cached[1] if cached else []
        with self._lock:
            self._cache[service] = (time.monotonic(), addresses)
        return addresses

    def entries(self, service: str) -> list[dict[str, Any]]:
        """Return each live instance of a service as its entry says: address, version and
        start (null where an older entry does not say), sorted by address.

        Not cached, unlike `instances`: /readyz asks it, not every call.
        """
        try:
            keys = self.client.scan_iter(match=f"{PREFIX}:{service}:*", count=100)
            keys = sorted(keys)
            values = self.client.mget(keys) if keys else []
        except redis.RedisError:
            log.warning("registry unreachable; using what was known of %s", service)
            with self._lock:  # the gateway's request threads write the cache
                cached = self._cache.get(service)
            return [entry(address, None) for address in (cached[1] if cached else [])]
        # A key that expired between the scan and the read is gone: left out.
        return [
            entry(key.decode().split(":", 2)[2], value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        ]
