"""The users service: registration, tokens and preferences. Owns the users database."""

from typing import Any

from flask import Flask

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the users service."""
    from users.service import service

    return create_service(service, __name__, test_config)
