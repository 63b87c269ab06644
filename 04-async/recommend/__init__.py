"""The recommend service: suggests posts. Keeps its own copy of posts, tags and preferences.

RECOMMEND_VERSION picks the formula (1 or 2); each version is its own service with its own
database and queue ("recommend-v1", "recommend-v2"), so both run side by side. A new one
starts with an empty store and asks sync to replay the log into it.
"""

from typing import Any

from quart import Quart

from chassis.service import create_service
from workshop import config


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the recommend service, in the version RECOMMEND_VERSION names."""
    from recommend.service import make_service

    version = (test_config or {}).get("RECOMMEND_VERSION") or config.env("RECOMMEND_VERSION", "1")
    # RECOMMEND_NAME runs one more instance under its own name (and so its own store).
    name = config.env("RECOMMEND_NAME", f"recommend-v{version}")
    return create_service(make_service(version, name), __name__, test_config)
