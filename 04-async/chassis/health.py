"""Liveness and readiness, the same two calls on every process of every stage.

workshop/web/health.py ported: each check is awaited, and /readyz runs them all at once.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from quart import Blueprint, jsonify

# A check returns {"ok": bool, ...details}; readiness is every check being ok.
Check = Callable[[], Awaitable[Mapping[str, Any]]]


def health_blueprint(
    checks: Mapping[str, Check],
    settled: Callable[[dict[str, dict[str, Any]]], bool] | None = None,
    about: Mapping[str, Any] | None = None,
) -> Blueprint:
    """Return a blueprint serving /healthz (alive) and /readyz (dependencies, with latency).

    `settled`, where messages flow between services, adds whether they have all arrived:
    ready means "can serve", settled means "serves the latest data" too. `about` is what
    the process says of itself besides (its code's version, since when it runs).
    """
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    async def healthz() -> Any:
        return jsonify({"status": "ok"})

    @blueprint.get("/readyz")
    async def readyz() -> Any:
        # Every check at once: readiness takes as long as the slowest, not the sum.
        results = await asyncio.gather(*(_timed(check) for check in checks.values()))
        states = dict(zip(checks, results, strict=True))
        ready = all(state.get("ok") for state in states.values())
        body: dict[str, Any] = {"status": "ready" if ready else "degraded", "dependencies": states}
        body.update(about or {})
        if settled is not None:
            body["settled"] = settled(states)
        return jsonify(body), 200 if ready else 503

    return blueprint


async def _timed(check: Check) -> dict[str, Any]:
    """Run one check and add how long it took (ms), unless it says so itself."""
    started = time.perf_counter()
    state = dict(await check())
    state.setdefault("ms", round((time.perf_counter() - started) * 1000, 1))
    return state
