"""The search service: finds posts. Keeps its own copy of posts and their tags."""

from typing import Any

from quart import Quart

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the search service."""
    from search.service import service

    return create_service(service, __name__, test_config)
