"""Stage 01: the monolith. One Flask app serves the pages and the JSON API from one database."""

from typing import Any

from flask import Flask

from workshop import config, logs, web
from workshop import db as databases
from workshop.web.health import health_blueprint


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the monolith: pages, API and auth blueprints over one MongoDB database."""
    app = web.create_flask(__name__, test_config)
    logs.init_flask(app, "front")  # X-Request-ID; JSON log lines if WORKSHOP_LOG_FORMAT=json
    app.config.setdefault("DATABASE_NAME", "reddit")
    # On embedded defaults the store starts empty, so a stage loads the sample to be useful.
    app.config.setdefault("SEED_SAMPLE", config.env("WORKSHOP_SEED_SAMPLE", "1") == "1")

    from front import api, auth, pages, store
    from workshop import ingestion

    store.init_app(app)
    # A token or session names a user who must exist (an emptied store leaves old ones).
    app.extensions["known_user"] = lambda username, _token: store.get_user(username) is not None
    if app.config["SEED_SAMPLE"]:
        with app.app_context():
            if store.count_posts() == 0:
                store.upsert_posts(ingestion.sample().posts)
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health_blueprint({"mongodb": lambda: databases.ping(store.get_db())}))
    return app
