"""The tag service's routes: tag, untag, and count."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from chassis.service import Service
from tag import store, strangler
from workshop import contract
from workshop.contract import not_found
from workshop.domain.posts import is_valid_post_id
from workshop.platform.messages import POST_UPSERTED
from workshop.web import api_auth_required
from workshop.web.bodies import json_object

bp = Blueprint("tag", __name__, url_prefix="/api")


def _existing_post_id(post_id: str) -> str:
    if not is_valid_post_id(post_id) or not store.post_exists(post_id):
        raise not_found("post")
    return post_id


@bp.get("/tags")
def tags() -> Any:
    contract.only_params(request.args, ())
    return jsonify({"items": store.tag_counts()})


@bp.post("/posts/<post_id>/tags")
@api_auth_required
def add_tag(post_id: str) -> Any:
    data = json_object(request, allowed=("tag",), required=("tag",))
    tag = contract.checked_tag(data["tag"])
    store.add_tag(_existing_post_id(post_id), tag, g.user)
    return jsonify({"post_id": post_id, "tag": tag, "user": g.user}), 201


@bp.delete("/posts/<post_id>/tags/<tag>")
@api_auth_required
def remove_tag(post_id: str, tag: str) -> Any:
    store.remove_tag(_existing_post_id(post_id), contract.checked_tag(tag), g.user)
    return "", 204


@bp.get("/posts/<post_id>/tags/mine")
@api_auth_required
def my_tags(post_id: str) -> Any:
    """The caller's own tags on a post (the gateway's post page shows them)."""
    return jsonify({"items": store.user_tags(post_id, g.user)})


service = Service(
    name="tag",
    blueprint=bp,
    subscribes={POST_UPSERTED: store.on_post_upserted},
    follows=strangler.FOLLOWS,
    owns=store.outbox,
    setup=store.setup,
)
