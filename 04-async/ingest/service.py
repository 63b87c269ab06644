"""The ingest service's routes: start a job (the worker does it), and report on it."""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from quart import Blueprint, g, jsonify, request

from chassis.service import Service
from chassis.web import api_auth_required, ingest_request
from ingest import store, tasks
from workshop import roles
from workshop.contract import not_found

bp = Blueprint("ingest", __name__, url_prefix="/api")


@bp.post("/ingest")
@api_auth_required
async def start_ingest() -> Any:
    roles.check_may_ingest(g.user)  # an operator's action: 403 before the body is read
    job = await ingest_request(request)
    job_id = uuid.uuid4().hex
    # The work happens in the worker (ingest/tasks.py); the answer comes at once. The
    # posts then reach search, recommend and tag through the worker's outbox and sync.
    if job.report is not None:  # an upload, read when the request was checked
        report = job.report
        batches = [report.posts[i : i + tasks.BATCH_SIZE]
                   for i in range(0, len(report.posts), tasks.BATCH_SIZE)]  # fmt: skip
        signatures = [tasks.store_posts.signature((job_id, batch)) for batch in batches]
        rejected = len(report.rejected)
    else:
        arguments = (job_id, job.source, job.subreddit, job.limit)
        signatures, rejected = [tasks.collect_and_store.signature(arguments)], 0
    task_ids = [f"{job_id}-{number}" for number in range(len(signatures))]
    await store.create_job(job_id, job.describe(), task_ids, rejected)
    await asyncio.to_thread(_enqueue, signatures, task_ids)  # kombu blocks: a thread
    return jsonify({"job_id": job_id}), 202


def _enqueue(signatures: list[Any], task_ids: list[str]) -> None:
    for signature, task_id in zip(signatures, task_ids, strict=True):
        signature.apply_async(task_id=task_id)


@bp.get("/jobs/<job_id>")
async def job(job_id: str) -> Any:
    found = await store.get_job(job_id)
    if found is None:
        raise not_found("job")
    states = await asyncio.to_thread(tasks.task_states, found["tasks"])
    return jsonify(store.public_job(found, states))


async def unfinished_tasks(database: Any) -> int:
    """Count the tasks of recent jobs the worker has not finished (the /readyz backlog).

    A job is asked about until all its tasks are done or failed, then never again; one
    older than an hour is left to its own /api/jobs answer (a lost task stays pending).
    """
    waiting = 0
    async for found in store.open_jobs(database, within=OPEN_JOBS_WITHIN):
        states = await asyncio.to_thread(tasks.task_states, found["tasks"])
        unfinished = sum(state not in FINISHED for state, _ in states)
        if unfinished:
            waiting += unfinished
        else:
            await store.close_job(database, found["_id"])
    return waiting


FINISHED = ("SUCCESS", "FAILURE")
OPEN_JOBS_WITHIN = timedelta(hours=1)
service = Service(name="ingest", blueprint=bp, waiting=unfinished_tasks)
