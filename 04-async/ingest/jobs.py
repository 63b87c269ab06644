"""The ingest jobs, stage 04 only: a job is Celery tasks the worker does (ingest/tasks.py).

The web process records each job and the tasks doing its work (its database: ingest-jobs),
asks Celery how they went when asked about the job, and sends again a task the broker
lost. In 03 the import ran inside the request (ingest/service.py, ingest/store.py).
"""

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from chassis.service import AsyncDatabase, get_db
from ingest import tasks
from workshop import config, ingestion
from workshop.job_records import JOB_COUNTS

log = logging.getLogger(__name__)

FINISHED = ("SUCCESS", "FAILURE")
# A task still pending this long after it was sent, its queue empty, was lost by the broker
# (longer than Redis takes to give back a task a dead worker held: its visibility timeout).
LOST_AFTER_SECONDS = 90.0
OPEN_JOBS_WITHIN = timedelta(hours=1)
# The worker's /healthz answers at once from a thread of its own; a busy machine still
# answers well within this, a stopped worker never does.
WORKER_TIMEOUT = aiohttp.ClientTimeout(total=1.5, sock_connect=0.5)


async def start(job: ingestion.IngestRequest) -> str:
    """Record a job, send its tasks to the worker (a batch of an upload each, or one
    fetch), and return its id at once."""
    job_id = uuid.uuid4().hex
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
    await create_job(job_id, job.describe(), sent, rejected)
    await asyncio.to_thread(_enqueue, signatures, task_ids)  # kombu blocks: a thread
    return job_id


def _enqueue(signatures: list[Any], task_ids: list[str]) -> None:
    for signature, task_id in zip(signatures, task_ids, strict=True):
        signature.apply_async(task_id=task_id)


async def get_job(job_id: str) -> dict[str, Any] | None:
    """Return a job's public state from its tasks' (sending again one the broker lost),
    or None."""
    found = await get_db().jobs.find_one({"_id": job_id})
    if found is None:
        return None
    states = await asyncio.to_thread(tasks.task_states, found["tasks"])
    await send_lost_tasks(get_db(), found, states)
    return public_job(found, states)


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
    overdue = [sent for sent in await sent_tasks(database, pending)
               if now - sent["sent_at"] > LOST_AFTER_SECONDS]  # fmt: skip
    if not overdue or await asyncio.to_thread(tasks.queue_length) > 0:
        return
    for sent in overdue:
        log.warning("job %s: task %s was lost by the broker; sending it again",
                    job["_id"], sent["_id"])  # fmt: skip
        signature = tasks.app.signature(sent["name"], args=sent["args"])
        await asyncio.to_thread(signature.apply_async, task_id=sent["_id"])
        await sent_again(database, sent["_id"])


async def unfinished_tasks(database: AsyncDatabase) -> int:
    """Count the tasks of recent jobs the worker has not finished (the /readyz backlog).

    A job is asked about until all its tasks are done or failed, then never again; one
    older than an hour is left to its own /api/jobs answer. Asking is also when a task the
    broker lost is sent again (send_lost_tasks).
    """
    waiting = 0
    async for found in open_jobs(database, within=OPEN_JOBS_WITHIN):
        states = await asyncio.to_thread(tasks.task_states, found["tasks"])
        unfinished = sum(state not in FINISHED for state, _ in states)
        if unfinished:
            waiting += unfinished
            await send_lost_tasks(database, found, states)
        else:
            await close_job(database, found["_id"])
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


# --- the records: a job, and the tasks sent for it ------------------------------------


async def create_job(
    job_id: str,
    description: str,
    tasks: dict[str, tuple[str, list[Any]]],
    rejected: int,
    error: str | None = None,
) -> None:
    """Record a job: the tasks doing its work (each task's id, name and arguments, kept
    until the job is over, so a task the broker lost can be sent again), and the rows its
    request already rejected."""
    await get_db().jobs.insert_one(
        {"_id": job_id, "source": description, "tasks": list(tasks), "rejected": rejected,
         "error": error, "created_at": datetime.now(UTC), "open": bool(tasks)}
    )  # fmt: skip
    if tasks:
        await get_db().job_tasks.insert_many(
            [{"_id": task_id, "job": job_id, "name": name, "args": args, "sent_at": time.time()}
             for task_id, (name, args) in tasks.items()]
        )  # fmt: skip


async def sent_tasks(database: AsyncDatabase, task_ids: list[str]) -> list[dict[str, Any]]:
    """Return the tasks sent with these ids: name, arguments and when they were last sent."""
    return await database.job_tasks.find({"_id": {"$in": task_ids}}).to_list()


async def sent_again(database: AsyncDatabase, task_id: str) -> None:
    """Note that a task was sent again now."""
    await database.job_tasks.update_one({"_id": task_id}, {"$set": {"sent_at": time.time()}})


def open_jobs(database: AsyncDatabase, within: timedelta) -> Any:
    """Return a cursor over the jobs created within `within` whose tasks may still run."""
    since = datetime.now(UTC) - within
    return database.jobs.find({"open": True, "created_at": {"$gte": since}})


async def close_job(database: AsyncDatabase, job_id: str) -> None:
    """Note that every task of a job has finished: it is no longer work in flight, and its
    tasks' arguments are no longer needed."""
    await database.jobs.update_one({"_id": job_id}, {"$set": {"open": False}})
    await database.job_tasks.delete_many({"job": job_id})


def public_job(job: dict[str, Any], tasks: list[tuple[str, Any]]) -> dict[str, Any]:
    """Return a job's public state from its record and its tasks' (state, result) pairs.

    Celery's states become the contract's: every task done is "done" (counts summed), a
    task failed is "failed" (with its reason), a task started or done is "running", none
    taken yet is "pending".
    """
    counts = dict.fromkeys(JOB_COUNTS, 0)
    counts["rejected"] = job["rejected"]
    for state, result in tasks:
        if state == "SUCCESS":
            for name in ("new", "updated", "unchanged", "rejected"):
                counts[name] += int(result.get(name, 0))
    counts["ingested"] = counts["new"] + counts["updated"] + counts["unchanged"]
    states = [state for state, _ in tasks]
    answer: dict[str, Any] = {"id": job["_id"], "source": job["source"], **counts}
    failures = [str(result) for state, result in tasks if state == "FAILURE"]
    if job.get("error") or failures:
        return {**answer, "state": "failed", "error": job.get("error") or failures[0]}
    if all(state == "SUCCESS" for state in states):
        return {**answer, "state": "done"}
    if any(state in ("STARTED", "RETRY", "SUCCESS") for state in states):
        return {**answer, "state": "running"}
    return {**answer, "state": "pending"}
