"""Which service answers which call, and which instance of it: the gateway's routing.

Addresses come from the registry (REGISTRY_URL: Redis keys kept alive by heartbeats) or,
without one, from the environment `workshop up` sets (SEARCH_URL, ...). Each upstream has a
circuit breaker: after BREAKER_THRESHOLD failures in a row the gateway stops calling it for
BREAKER_TTL seconds and answers at once, so no page waits on a service that is down.

Async: the registry lookup is awaited, and everything here belongs to the event loop that
serves (the registry's connections): the gateway makes it at serving start.

An instance gets calls only once its /readyz has said its start-up data is in (the
registry lists only such instances; the addresses from the environment are asked): until
then a call answers 503 `service_starting` rather than half the answer.
"""

import itertools
import random
from pathlib import Path
from typing import Any

from purgatory import AsyncCircuitBreakerFactory

from chassis.registry import Registry, registry_url
from workshop import config
from workshop.contract import ApiError
from workshop.platform import procfile
from workshop.platform.instances import Admissions

# The stage's Procfile is its one list of services: a line there, and the gateway calls,
# checks (/readyz) and counts (/metrics) one more.
SERVICES = procfile.services(
    Path(__file__).resolve().parents[1] / config.env(procfile.PROCFILE_ENV, procfile.DEFAULT)
)
BREAKER_THRESHOLD = 5
BREAKER_TTL = 5.0


class NoInstance(LookupError):
    """No live instance of a service is known."""


class Starting(ApiError):
    """The instance a call would go to still loads its start-up data (its /readyz says so).

    Not a failure the circuit breaker counts, as a service's own 503 is not: it is there.
    """

    def __init__(self, service: str) -> None:
        message = f"the {service} service is starting: try again in a moment"
        super().__init__(503, "service_starting", message, {"Retry-After": "1"})


class Upstreams:
    """Pick an address for each call; hold each upstream's circuit breaker."""

    def __init__(self, canary_percent: int, static: dict[str, str]) -> None:
        self.canary_percent = canary_percent
        self.static = static
        url = registry_url()
        self.registry = Registry(url) if url else None
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=BREAKER_THRESHOLD, default_ttl=BREAKER_TTL, exclude=[Starting]
        )
        self.admissions = Admissions()
        self._turns: dict[str, Any] = {}

    @classmethod
    def from_environment(cls) -> "Upstreams":
        """Build from SEARCH_URL, RECOMMEND_V1_URL, ... and RECOMMEND_CANARY_PERCENT."""
        static = {}
        for service in SERVICES:
            url = config.env(service.upper().replace("-", "_") + "_URL")
            if url:
                static[service] = url.rstrip("/")
        return cls(int(config.env("RECOMMEND_CANARY_PERCENT", "0") or 0), static)

    def recommend_version(self, asked: str | None) -> str:
        """Return the recommend version for a request: the header's, or the canary's draw."""
        if asked in ("1", "2"):
            return asked
        return "2" if random.uniform(0, 100) < self.canary_percent else "1"

    async def address(self, service: str) -> str:
        """Return the address of a live instance, taking turns (round robin)."""
        instances = await self.registry.instances(service) if self.registry else []
        if not instances:
            if service not in self.static:
                raise NoInstance(service)
            return self.static[service]
        # One that said just now it is still loading waits its turn, if others can answer.
        instances = [a for a in instances if not self.admissions.loading(a)] or instances
        # One event loop, no lock: nothing else runs between these lines.
        key = (service, tuple(instances))
        if key not in self._turns:
            self._turns[key] = itertools.cycle(instances)
        return next(self._turns[key])

    async def instances(self, service: str) -> list[dict[str, Any]]:
        """Return every instance of a service there is to call, for /readyz to check: the
        registry's live ones (address, version, started), else the address it was started
        with (version and start unknown here: the instance's /readyz says them)."""
        entries = await self.registry.entries(service) if self.registry else []
        if not entries and service in self.static:
            entries = [{"address": self.static[service], "version": None, "started": None}]
        return entries

    async def instance_counts(self) -> dict[str, int]:
        """Return how many instances of each service calls go to (for /metrics): the
        registry's live ones, else the one address it was started with, else none."""
        counts: dict[str, int] = {}
        for service in SERVICES:
            live = await self.registry.instances(service) if self.registry else []
            counts[service] = len(live) or int(service in self.static)
        return counts

    async def breaker(self, service: str) -> Any:
        """Return the circuit breaker guarding calls to a service."""
        return await self.breakers.get_breaker(service)

    def breaker_states(self) -> dict[str, str]:
        """Return the state of each breaker made so far ("closed", "opened", ...)."""
        contexts = self.breakers.uow.contexts.breakers  # purgatory's in-memory store
        return {name: context.state for name, context in contexts.items()}

    async def close(self) -> None:
        """Close the registry's connections (they belong to the serving loop)."""
        if self.registry:
            await self.registry.close()
