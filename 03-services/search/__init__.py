"""The search service: finds posts. Keeps its own copy of posts and their tags."""

from typing import Any

from flask import Flask

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the search service."""
    from search.service import service

    return create_service(service, __name__, test_config)
