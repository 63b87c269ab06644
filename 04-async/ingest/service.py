"""The ingest service's routes: load posts (a job the worker does), and report on the job."""

from typing import Any

from quart import Blueprint, g, jsonify, request

from chassis.bodies import ingest_request
from chassis.service import Service
from chassis.web import api_auth_required
from ingest import jobs
from workshop import roles
from workshop.contract import not_found

bp = Blueprint("ingest", __name__, url_prefix="/api")


@bp.post("/ingest")
@api_auth_required
async def start_ingest() -> Any:
    roles.check_may_ingest(g.user)  # an operator's action: 403 before the body is read
    job = await ingest_request(request)
    # The work happens in the worker (ingest/tasks.py, ingest/jobs.py): 202 at once. The
    # posts then reach search, recommend and tag through the worker's outbox and sync.
    job_id = await jobs.start(job)
    return jsonify({"job_id": job_id}), 202


@bp.get("/jobs/<job_id>")
async def job(job_id: str) -> Any:
    found = await jobs.get_job(job_id)
    if found is None:
        raise not_found("job")
    return jsonify(found)


service = Service(
    name="ingest",
    blueprint=bp,
    waiting=jobs.unfinished_tasks,
    checks={"worker": jobs.worker_answers},
)
