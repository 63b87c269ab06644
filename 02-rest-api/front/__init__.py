"""Stage 02: the front. The same pages and JSON API as 01, with the data behind a REST API."""

from typing import Any

from flask import Flask

from workshop import config, logs, web
from workshop.web.health import health_blueprint


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the front: pages, API and auth blueprints over the REST API's data."""
    app = web.create_flask(__name__, test_config)
    logs.init_flask(app, "front")  # X-Request-ID, passed on to the REST API; JSON log lines
    # Where the REST API listens (`workshop up` sets RESTAPI_URL for every process).
    app.config.setdefault("RESTAPI_URL", config.env("RESTAPI_URL", "http://127.0.0.1:8100"))

    from front import api, auth, client, pages

    client.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health_blueprint({"restapi": client.ping}))
    return app
