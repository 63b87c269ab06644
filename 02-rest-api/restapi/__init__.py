"""Stage 02's data layer: an Eve REST API over MongoDB, the only process with a database."""

from typing import Any

from eve import Eve
from flask import jsonify

from workshop import config, ingestion, logs, queries
from workshop import db as databases
from workshop.contract import ApiError
from workshop.web.bodies import BoundedJSONProvider
from workshop.web.health import health_blueprint


def create_app(test_config: dict[str, Any] | None = None) -> Eve:
    """Create the Eve app: the domain from settings.py, auth, hooks and custom endpoints."""
    from restapi import auth, endpoints, hooks, settings, store

    domain_settings = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    domain_settings.update(test_config or {})
    domain_settings.setdefault("SEED_SAMPLE", config.env("WORKSHOP_SEED_SAMPLE", "1") == "1")
    app = Eve(settings=domain_settings, data=store.Store, auth=auth.TokenAuth)
    # Eve reads bodies with request.get_json(): this provider refuses (400) JSON nested deeper
    # than the contract's bound, which Python's parser would fail on (RecursionError, 500).
    app.json = BoundedJSONProvider(app)
    app.json.sort_keys = False
    logs.init_flask(app, "restapi")  # the front's X-Request-ID; JSON log lines if asked for

    hooks.register(app)
    app.register_blueprint(endpoints.bp)
    app.register_blueprint(health_blueprint({"mongodb": lambda: databases.ping(store.get_db())}))
    app.register_error_handler(ApiError, _eve_style_error)

    with app.app_context():
        posts = store.get_db().posts
        queries.create_post_indexes(posts)
        queries.create_ranking_indexes(posts)
        database = store.get_db()
        queries.create_tagging_indexes(database.taggings, database.tag_totals)
        queries.count_tags_once(database.taggings, database.tag_totals)
        if app.config["SEED_SAMPLE"] and posts.count_documents({}) == 0:
            store.upsert_posts(ingestion.sample().posts)
    return app


def _eve_style_error(error: ApiError) -> Any:
    """Answer the shared request checks' errors in Eve's own error shape."""
    reason = {"code": error.status, "message": error.message, "reason": error.code}
    body = {"_status": "ERR", "_error": reason}
    return jsonify(body), error.status
