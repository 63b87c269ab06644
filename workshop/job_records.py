"""An ingest job's record: created running, finished done or failed, and its public state.

Stages 01-03 import inside the request, so a job is one write when it starts and one when
it ends. Stage 04's jobs are Celery tasks, and their state is derived from the tasks'
(04-async/ingest/jobs.py); what a job counts (JOB_COUNTS) is the same.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from workshop.db import Collection
from workshop.documents import Upserted

# What a job counts: posts stored (new + updated + unchanged), and rows rejected.
JOB_COUNTS = ("ingested", "new", "updated", "unchanged", "rejected")


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """Return a job's public state: its id, state, source, counts and error (if it failed)."""
    answer = {"id": job["_id"], "state": job["state"], "source": job["source"]}
    # A job recorded before a count existed has none of it: 0.
    answer.update({count: job.get(count, 0) for count in JOB_COUNTS})
    if job.get("error"):
        answer["error"] = job["error"]
    return answer


def create_job(jobs: Collection, description: str) -> str:
    """Record a new ingest job as running and return its id."""
    job_id = uuid.uuid4().hex
    jobs.insert_one(
        {"_id": job_id, "state": "running", **dict.fromkeys(JOB_COUNTS, 0),
         "source": description, "created_at": datetime.now(UTC)}
    )  # fmt: skip
    return job_id


def finish_job(
    jobs: Collection, job_id: str, stored: Upserted, rejected: int, error: str | None = None
) -> None:
    """Record how a job ended: done, or failed with a reason."""
    fields: dict[str, Any] = {
        "ingested": stored.total, "new": stored.new, "updated": stored.updated,
        "unchanged": stored.unchanged, "rejected": rejected,
    }  # fmt: skip
    fields.update(state="failed" if error else "done", finished_at=datetime.now(UTC))
    if error:
        fields["error"] = error
    jobs.update_one({"_id": job_id}, {"$set": fields})
