"""Failed logins, limited per username and per client, wherever a front door takes them.

Without a limit, 200 wrong passwords in 15 seconds were all answered 401: a password could
be guessed at the speed of the server. The front door (01's and 02's front, 03's and 04's
gateway) asks before each login (the token call and the login page) whether the username
or the client has failed too often lately, and counts each failure:

- per username: PER_USER failures in the window, from anywhere (guessing one password);
- per client address: PER_CLIENT failures in the window, for any usernames (trying one
  password on many accounts).

Over either, the login answers 429 with Retry-After (seconds) before any password is
checked, even a right one. The counts live in Redis where the stage has it (REGISTRY_URL or
BROKER_URL, so every gateway instance shares them), else in the process's memory. The
`limits` package keeps them (a moving window).
"""

import logging
import math
import time

from limits import parse, storage, strategies
from limits.errors import StorageError
from redis.exceptions import RedisError

from workshop import config
from workshop.contract import ApiError

log = logging.getLogger(__name__)

PER_USER = parse("10 per 5 minutes")
PER_CLIENT = parse("100 per 5 minutes")
NAMESPACE = "login-failures"


def storage_uri() -> str:
    """Return where failures are counted: the stage's Redis if it has one, else memory."""
    for name in ("REGISTRY_URL", "BROKER_URL"):
        url = config.env(name) or ""
        if url.startswith(("redis://", "rediss://")):
            return url
    return "memory://"


class LoginLimiter:
    """Count failed logins and tell when one more attempt must wait."""

    def __init__(self, uri: str | None = None) -> None:
        self.window = strategies.MovingWindowRateLimiter(
            storage.storage_from_string(uri or storage_uri())
        )

    def _limits(self, username: str, client: str) -> list[tuple]:
        return [(PER_USER, "user", username), (PER_CLIENT, "client", client)]

    def retry_after(self, username: str, client: str) -> int:
        """Return how many seconds to wait before this login may be tried (0: now)."""
        wait = 0.0
        try:
            for limit, kind, key in self._limits(username, client):
                if not self.window.test(limit, NAMESPACE, kind, key):
                    reset = self.window.get_window_stats(limit, NAMESPACE, kind, key).reset_time
                    wait = max(wait, reset - time.time(), 1.0)
        except (StorageError, RedisError, OSError):  # the store is down: logins go on
            log.warning("login limits unavailable", exc_info=True)
            return 0
        return math.ceil(wait)

    def failed(self, username: str, client: str) -> None:
        """Count a failed login against the username and the client."""
        try:
            for limit, kind, key in self._limits(username, client):
                self.window.hit(limit, NAMESPACE, kind, key)
        except (StorageError, RedisError, OSError):
            log.warning("login limits unavailable", exc_info=True)


def client_address(peer: str | None, forwarded_for: str | None) -> str:
    """Return the client's address: the TCP peer, or behind WORKSHOP_PROXY_HOPS trusted
    proxies (nginx in the compose files: 1) the address they put in X-Forwarded-For.

    Each proxy appends the address it got the request from, so the last `hops` entries are
    trusted and the one before them is the client; what a client wrote itself is ignored.
    """
    hops = int(config.env("WORKSHOP_PROXY_HOPS", "0") or 0)
    entries = [e.strip() for e in (forwarded_for or "").split(",") if e.strip()]
    if hops > 0 and entries:
        return entries[-min(hops, len(entries))]
    return peer or ""


def too_many_attempts(seconds: int) -> ApiError:
    """Return the 429 a login answers while it must wait."""
    return ApiError(
        429,
        "too_many_attempts",
        f"too many failed logins; try again in {seconds} seconds",
        headers={"Retry-After": str(seconds)},
    )
