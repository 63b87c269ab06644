"""The recommend service's routes: recommendations, anonymous or personal."""

import functools
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from chassis.service import Database, Service
from recommend import store
from workshop import contract
from workshop.domain.recommend import FORMULAS
from workshop.platform.messages import POST_UPSERTED, PREFERENCES_UPDATED, TAGS_CHANGED

bp = Blueprint("recommend", __name__, url_prefix="/api")


@bp.get("/recommendations")
def recommendations() -> Any:
    limit = contract.limit_param(request.args)
    items, topics = store.recommendations(g.user, limit)
    headers = {
        "X-Recommend-Version": current_app.config["RECOMMEND_VERSION"],
        # Which of the user's topics this answer used (from our copy), for the home page.
        "X-Personal": str(bool(topics)).lower(),
        "X-Topics": ",".join(topics),
    }
    return jsonify({"user": g.user, "items": items}), 200, headers


def make_service(version: str, name: str) -> Service:
    """Return the recommend service of one version: its own name, queue and database."""

    def setup(database: Database) -> None:
        current_app.config["RECOMMEND_VERSION"] = version
        store.setup(database)

    return Service(
        name=name,
        blueprint=bp,
        subscribes={
            # Each version stores the rank its own formula gives.
            POST_UPSERTED: functools.partial(store.on_post_upserted, formula=FORMULAS[version]),
            TAGS_CHANGED: store.on_tags_changed,
            PREFERENCES_UPDATED: store.on_preferences_updated,
        },
        # Version 2 reads post.upserted's version 2 too (it has the upvote ratio); version 1
        # reads only the first, and sync hands it every post in that one.
        reads={POST_UPSERTED: (1, 2)} if version == "2" else {},
        setup=setup,
    )
