"""The ingest service: imports and fetches posts. Owns the master post data."""

from typing import Any

from flask import Flask

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the ingest service."""
    from ingest.service import service

    return create_service(service, __name__, test_config)
