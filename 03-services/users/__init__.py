"""The users service: registration, tokens and preferences. Owns the users database."""

from typing import Any

from flask import Flask

from chassis.service import create_service


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the users service."""
    from users import store
    from users.service import service

    app = create_service(service, __name__, test_config)

    def known_user(username: str, _token: str | None) -> bool:
        return store.get_user(username) is not None

    # The owner of users refuses a token whose user it does not have (an emptied store).
    app.extensions["known_user"] = known_user
    return app
