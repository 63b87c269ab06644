"""The sync service: the ordered log of master-data changes, fanned out to subscribers."""

from typing import Any

from quart import Quart

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the sync service."""
    from sync.service import service

    return create_service(service, __name__, test_config)
