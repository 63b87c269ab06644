"""The monolith's routes: stage 01's JSON API, every verb in one place (no pages: the
gateway serves them, calling here for each verb not moved yet)."""

import collections
import threading
from typing import Any

from flask import Blueprint, g, jsonify, request

from chassis.service import Service
from monolith import store
from workshop import contract, ingestion, roles, tokens
from workshop.contract import ApiError, not_found, string_field
from workshop.domain import accounts
from workshop.domain.posts import is_valid_post_id
from workshop.web import api_auth_required
from workshop.web.bodies import ingest_request, json_object

bp = Blueprint("monolith", __name__, url_prefix="/api")

# Which verb each route answers. A verb that owns data moves only once no call of it is
# under way here: `workshop strangler move` reads the count on /readyz (`under_way`).
VERBS = {
    "search": "search", "post": "search", "tagged_posts": "search",
    "recommendations": "recommend",
    "tags": "tag", "add_tag": "tag", "remove_tag": "tag", "my_tags": "tag",
    "register": "users", "issue_token": "users", "preferences": "users",
    "start_ingest": "ingest", "job": "ingest",
}  # fmt: skip
_lock = threading.Lock()
_calls: collections.Counter[str] = collections.Counter()


@bp.before_request
def _call_starts() -> None:
    g.verb = VERBS.get((request.endpoint or "").rpartition(".")[2])
    if g.verb:
        with _lock:
            _calls[g.verb] += 1


@bp.teardown_request
def _call_ends(_error: BaseException | None) -> None:
    if g.get("verb"):
        with _lock:
            _calls[g.verb] -= 1


def under_way() -> dict[str, Any]:
    """Say how many calls of each verb the monolith is answering now (for /readyz)."""
    with _lock:
        return {"ok": True, "calls": {verb: n for verb, n in _calls.items() if n}}


def _existing_post_id(post_id: str) -> str:
    if not is_valid_post_id(post_id) or store.get_post(post_id) is None:
        raise not_found("post")
    return post_id


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


@bp.get("/recommendations")
def recommendations() -> Any:
    limit = contract.limit_param(request.args)
    items = store.recommendations(store.get_topics(g.user), limit)
    return jsonify({"user": g.user, "items": items})


@bp.get("/tags")
def tags() -> Any:
    contract.only_params(request.args, ())
    return jsonify({"items": store.tag_counts()})


@bp.get("/tags/<tag>/posts")
def tagged_posts(tag: str) -> Any:
    return jsonify({"tag": tag, "items": store.posts_with_tag(contract.checked_tag(tag))})


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
    """The caller's own tags on a post (the gateway's post page asks the tags' owner)."""
    return jsonify({"items": store.user_tags(post_id, g.user)})


@bp.post("/users")
def register() -> Any:
    data = json_object(request, allowed=("username", "password"), required=("username", "password"))
    username, password = string_field(data, "username"), string_field(data, "password")
    problem = accounts.username_problem(username) or accounts.password_problem(password, username)
    if problem:
        raise ApiError(400, "invalid_credentials", problem)
    if not store.create_user(username, accounts.hash_password(password)):
        raise ApiError(409, "username_taken", f"the username {username!r} is taken")
    return jsonify({"username": username}), 201


@bp.post("/tokens")
def issue_token() -> Any:
    data = json_object(request, allowed=("username", "password"), required=("username", "password"))
    username, password = string_field(data, "username"), string_field(data, "password")
    user = store.get_user(username)
    if not accounts.check_login(user["password_hash"] if user else None, password):
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    return jsonify({"token": tokens.issue(username)})


@bp.route("/me/preferences", methods=("GET", "PUT"))
@api_auth_required
def preferences() -> Any:
    if request.method == "PUT":
        data = json_object(request, allowed=("topics",), required=("topics",))
        store.set_topics(g.user, contract.checked_topics(data["topics"]))
    return jsonify({"topics": store.get_topics(g.user)})


@bp.post("/ingest")
@api_auth_required
def start_ingest() -> Any:
    roles.check_may_ingest(g.user)  # an operator's action: 403 before the body is read
    job = ingest_request(request)
    job_id = store.create_job(job.describe())
    # The monolith does the work inside the request: the job is done when the call returns.
    outcome = ingestion.run(job, store.upsert_posts)
    store.finish_job(job_id, outcome.stored, outcome.rejected, outcome.error)
    return jsonify({"job_id": job_id}), 202


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    found = store.get_job(job_id)
    if found is None:
        raise not_found("job")
    return jsonify(found)


# What the monolith gains to be strangled: an outbox (it owns every type, until its verbs
# move), and nothing it subscribes to (it takes no changes back: see docs/strangler-fig.md).
service = Service(
    name="monolith",
    blueprint=bp,
    owns=store.outbox,
    setup=store.setup,
    old_system=True,
    checks={"under_way": under_way},
)
