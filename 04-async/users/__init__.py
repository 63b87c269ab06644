"""The users service: registration, tokens and preferences. Owns the users database."""

from typing import Any

from quart import Quart

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the users service."""
    from users.service import service

    return create_service(service, __name__, test_config)
