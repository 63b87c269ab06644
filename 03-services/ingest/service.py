"""The ingest service's routes: load posts, and report on the job."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from chassis.service import Service
from ingest import store, strangler
from workshop import ingestion, roles
from workshop.contract import not_found
from workshop.web import api_auth_required
from workshop.web.bodies import ingest_request

bp = Blueprint("ingest", __name__, url_prefix="/api")


@bp.post("/ingest")
@api_auth_required
def start_ingest() -> Any:
    roles.check_may_ingest(g.user)  # an operator's action: 403 before the body is read
    job = ingest_request(request)
    job_id = store.create_job(job.describe())
    # The work happens inside the request (stage 04 moves it to a background worker);
    # the posts then reach search, recommend and tag through the broker.
    outcome = ingestion.run(job, store.upsert_posts)
    store.finish_job(job_id, outcome.stored, outcome.rejected, outcome.error)
    return jsonify({"job_id": job_id}), 202


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    found = store.get_job(job_id)
    if found is None:
        raise not_found("job")
    return jsonify(found)


service = Service(
    name="ingest",
    blueprint=bp,
    owns=store.outbox,
    setup=store.setup,
    follows=strangler.FOLLOWS,
)
