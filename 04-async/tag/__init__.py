"""The tag service: users tag posts. Owns the taggings and each post's tag counts."""

from typing import Any

from quart import Quart

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the tag service."""
    from tag.service import service

    return create_service(service, __name__, test_config)
