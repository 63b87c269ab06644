"""The JSON API for programs: the same data as the pages, as the public contract says."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from front import client
from workshop import contract
from workshop.contract import not_found
from workshop.domain.posts import is_valid_post_id
from workshop.web import api_auth_required
from workshop.web.bodies import ingest_request, json_object

bp = Blueprint("api", __name__, url_prefix="/api")


def _existing_post_id(post_id: str) -> str:
    if not is_valid_post_id(post_id) or client.get_post(post_id) is None:
        raise not_found("post")
    return post_id


@bp.get("/search")
def search() -> Any:
    return jsonify(client.search(request.args))


@bp.get("/posts/<post_id>")
def post(post_id: str) -> Any:
    found = client.get_post(post_id) if is_valid_post_id(post_id) else None
    if found is None:
        raise not_found("post")
    return jsonify(found)


@bp.get("/recommendations")
def recommendations() -> Any:
    limit = contract.limit_param(request.args)
    items = client.recommendations(client.get_topics(g.user), limit)
    return jsonify({"user": g.user, "items": items})


@bp.get("/tags")
def tags() -> Any:
    contract.only_params(request.args, ())
    return jsonify({"items": client.tag_counts()})


@bp.get("/tags/<tag>/posts")
def tagged_posts(tag: str) -> Any:
    return jsonify({"tag": tag, "items": client.posts_with_tag(contract.checked_tag(tag))})


@bp.post("/posts/<post_id>/tags")
@api_auth_required
def add_tag(post_id: str) -> Any:
    data = json_object(request, allowed=("tag",), required=("tag",))
    tag = contract.checked_tag(data["tag"])
    client.add_tag(_existing_post_id(post_id), tag)
    return jsonify({"post_id": post_id, "tag": tag, "user": g.user}), 201


@bp.delete("/posts/<post_id>/tags/<tag>")
@api_auth_required
def remove_tag(post_id: str, tag: str) -> Any:
    client.remove_tag(_existing_post_id(post_id), contract.checked_tag(tag))
    return "", 204


@bp.route("/me/preferences", methods=("GET", "PUT"))
@api_auth_required
def preferences() -> Any:
    if request.method == "PUT":
        data = json_object(request, allowed=("topics",), required=("topics",))
        client.set_topics(contract.checked_topics(data["topics"]))
    return jsonify({"topics": client.get_topics(g.user)})


@bp.post("/ingest")
@api_auth_required
def start_ingest() -> Any:
    ingest_request(request)  # refuse a bad request here, before it crosses the network
    # The REST API does the work inside its call: the job is done when this returns.
    job_id = client.start_ingest(request.get_data(), request.content_type or "")
    return jsonify({"job_id": job_id}), 202


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    found = client.get_job(job_id)
    if found is None:
        raise not_found("job")
    return jsonify(found)
