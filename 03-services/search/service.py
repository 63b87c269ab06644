"""The search service's routes: search, a post, a tag's posts."""

from typing import Any

from flask import Blueprint, jsonify, request

from chassis.service import Service
from search import store
from workshop import contract
from workshop.contract import not_found
from workshop.domain.posts import is_valid_post_id
from workshop.platform.messages import POST_UPSERTED, TAGS_CHANGED

bp = Blueprint("search", __name__, url_prefix="/api")


@bp.get("/search")
def search() -> Any:
    query, terms, page, per_page = contract.search_params(request.args)
    total, items = store.search(terms, page, per_page)
    return jsonify(contract.search_answer(query, page, per_page, total, items))


@bp.get("/posts/<post_id>")
def post(post_id: str) -> Any:
    found = store.get_post(post_id) if is_valid_post_id(post_id) else None
    if found is None:
        raise not_found("post")
    return jsonify(found)


@bp.get("/tags/<tag>/posts")
def tagged_posts(tag: str) -> Any:
    return jsonify({"tag": tag, "items": store.posts_with_tag(contract.checked_tag(tag))})


service = Service(
    name="search",
    blueprint=bp,
    subscribes={POST_UPSERTED: store.on_post_upserted, TAGS_CHANGED: store.on_tags_changed},
    setup=store.setup,
)
