"""The monolith, kept running behind stage 03's gateway while its verbs move out (the
strangler fig: `workshop up 03-services --strangler`, docs/strangler-fig.md).

It is stage 01's JSON API over stage 01's one database, with one thing gained: an outbox.
Every write it makes is published as the same typed messages the services' owners publish,
so search and recommend fill their own copies from the monolith's writes before the
gateway sends them a single call.
"""

from typing import Any

from flask import Flask

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the monolith: stage 01's API, one database, and an outbox relay."""
    from monolith.service import service

    return create_service(service, __name__, test_config)
