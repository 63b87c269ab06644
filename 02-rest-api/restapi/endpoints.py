"""What REST over resources can't express: ranked search, recommendations, tag counts,
tokens and ingest, as endpoints on Eve's own Flask app, over the same database."""

from typing import Any

from flask import Blueprint, abort, jsonify, request

from restapi import store
from restapi.auth import request_user
from workshop import contract, ingestion, queries, roles, tokens
from workshop.domain import accounts
from workshop.domain.recommend import DEFAULT_LIMIT
from workshop.job_records import create_job, finish_job
from workshop.web.bodies import ingest_request, json_object

bp = Blueprint("endpoints", __name__)


@bp.get("/search")
def search() -> Any:
    """Rank posts for a query: its words become search terms here, next to the posts."""
    query, terms, page, per_page = contract.search_params(request.args)
    total, items = queries.search(store.get_db().posts, terms, page, per_page)
    return jsonify(contract.search_answer(query, page, per_page, total, items))


@bp.get("/recommendations")
def recommendations() -> Any:
    """Recommend posts, the posts on the given topics first."""
    topics = contract.checked_topics(request.args.getlist("topics"))
    limit = contract.limit_param({"limit": request.args.get("limit", str(DEFAULT_LIMIT))})
    return jsonify({"items": queries.recommendations(store.get_db().posts, topics, limit)})


@bp.get("/tags")
def tags() -> Any:
    """Count the posts carrying each tag."""
    return jsonify({"items": queries.tag_counts(store.get_db().tag_totals)})


@bp.post("/tokens")
def issue_token() -> Any:
    """Trade a username and password for a signed token."""
    data = json_object(request, allowed=("username", "password"), required=("username", "password"))
    username, password = (
        contract.string_field(data, "username"),
        contract.string_field(data, "password"),
    )
    user = store.get_db().users.find_one({"username": username})
    if not accounts.check_login(user["password_hash"] if user else None, password):
        abort(401, description="wrong username or password")
    return jsonify({"token": tokens.issue(username)})


@bp.post("/ingest")
def start_ingest() -> Any:
    """Load posts from the sample, reddit or an uploaded file, as a job."""
    username = request_user()
    if username is None:
        abort(401, description="send a valid 'Authorization: Bearer <token>'")
    roles.check_may_ingest(username)  # an operator's action: 403 before the body is read
    job = ingest_request(request)
    jobs = store.get_db().jobs
    job_id = create_job(jobs, job.describe())
    # As in the monolith, the work happens inside the request: the job is done on return.
    outcome = ingestion.run(job, store.upsert_posts)
    finish_job(jobs, job_id, outcome.stored, outcome.rejected, outcome.error)
    return jsonify({"job_id": job_id}), 202
