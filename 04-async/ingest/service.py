"""The ingest service's routes: start a job (the worker does it), and report on it."""

import asyncio
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
from quart import Blueprint, g, jsonify, request

from chassis.service import AsyncDatabase, Service, get_db
from chassis.web import api_auth_required, ingest_request
from ingest import store, tasks
from workshop import config, roles
from workshop.contract import not_found

bp = Blueprint("ingest", __name__, url_prefix="/api")
log = logging.getLogger(__name__)


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
    sent = {task_id: (signature.task, list(signature.args))
            for task_id, signature in zip(task_ids, signatures, strict=True)}  # fmt: skip
    await store.create_job(job_id, job.describe(), sent, rejected)
    await asyncio.to_thread(_enqueue, signatures, task_ids)  # kombu blocks: a thread
    return jsonify({"job_id": job_id}), 202


def _enqueue(signatures: list[Any], task_ids: list[str]) -> None:
    for signature, task_id in zip(signatures, task_ids, strict=True):
        signature.apply_async(task_id=task_id)


async def send_lost_tasks(database: AsyncDatabase, job: dict[str, Any], states: list[Any]) -> None:
    """Send again the tasks of a job that the broker lost, under their own ids.

    A broker that keeps nothing on disk forgets, when it restarts, the tasks waiting in its
    queue and the results of the done ones: those tasks stay pending for ever. A task
    still pending LOST_AFTER_SECONDS after it was sent, while the queue is empty, was lost;
    it is sent again (storing a batch twice changes nothing, and counts the same).
    """
    pending = [task_id for task_id, (state, _) in zip(job["tasks"], states, strict=True)
               if state == "PENDING"]  # fmt: skip
    if not pending:
        return
    now = time.time()
    overdue = [sent for sent in await store.sent_tasks(database, pending)
               if now - sent["sent_at"] > LOST_AFTER_SECONDS]  # fmt: skip
    if not overdue or await asyncio.to_thread(tasks.queue_length) > 0:
        return
    for sent in overdue:
        log.warning("job %s: task %s was lost by the broker; sending it again",
                    job["_id"], sent["_id"])  # fmt: skip
        signature = tasks.app.signature(sent["name"], args=sent["args"])
        await asyncio.to_thread(signature.apply_async, task_id=sent["_id"])
        await store.sent_again(database, sent["_id"])


@bp.get("/jobs/<job_id>")
async def job(job_id: str) -> Any:
    found = await store.get_job(job_id)
    if found is None:
        raise not_found("job")
    states = await asyncio.to_thread(tasks.task_states, found["tasks"])
    await send_lost_tasks(get_db(), found, states)
    return jsonify(store.public_job(found, states))


async def unfinished_tasks(database: AsyncDatabase) -> int:
    """Count the tasks of recent jobs the worker has not finished (the /readyz backlog).

    A job is asked about until all its tasks are done or failed, then never again; one
    older than an hour is left to its own /api/jobs answer. Asking is also when a task the
    broker lost is sent again (send_lost_tasks).
    """
    waiting = 0
    async for found in store.open_jobs(database, within=OPEN_JOBS_WITHIN):
        states = await asyncio.to_thread(tasks.task_states, found["tasks"])
        unfinished = sum(state not in FINISHED for state, _ in states)
        if unfinished:
            waiting += unfinished
            await send_lost_tasks(database, found, states)
        else:
            await store.close_job(database, found["_id"])
    return waiting


async def worker_answers() -> dict[str, Any]:
    """Tell whether the Celery worker is alive and answers (its /healthz, for /readyz).

    Without its worker every job stays pending: a worker killed, or stopped (SIGSTOP: its
    port still takes connections, nothing answers), makes ingest not ready, and its
    /readyz names it. WORKER_URL is where the worker listens (`workshop up` gives every
    process the others' addresses; compose and Kubernetes set it).
    """
    url = config.env("WORKER_URL")
    if not url:
        return {"ok": False, "error": "WORKER_URL is not set"}
    try:
        async with (
            aiohttp.ClientSession(timeout=WORKER_TIMEOUT) as session,
            session.get(url + "/healthz") as answer,
        ):
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return {"ok": False, "url": url, "error": type(error).__name__}
    if status != 200:
        return {"ok": False, "url": url, "error": f"HTTP {status}"}
    return {"ok": True, "url": url}


FINISHED = ("SUCCESS", "FAILURE")
# A task still pending this long after it was sent, its queue empty, was lost by the broker
# (longer than Redis takes to give back a task a dead worker held: its visibility timeout).
LOST_AFTER_SECONDS = 90.0
OPEN_JOBS_WITHIN = timedelta(hours=1)
# The worker's /healthz answers at once from a thread of its own; a busy machine still
# answers well within this, a stopped worker never does.
WORKER_TIMEOUT = aiohttp.ClientTimeout(total=1.5, sock_connect=0.5)
service = Service(
    name="ingest", blueprint=bp, waiting=unfinished_tasks, checks={"worker": worker_answers}
)
