"""The ingest service: imports and fetches posts. Owns the master post data.

Two processes: this web app takes jobs and reports on them (its database: ingest-jobs), and
the Celery worker (tasks.py) does them and owns the posts (its database: ingest).
"""

import sys
from typing import Any

from celery import signals
from quart import Quart

from chassis.service import create_service
from workshop import logs, tracing


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the ingest service."""
    from ingest.service import service

    # The jobs are this process's; the posts are the worker's: two databases, one owner.
    app = create_service(service, __name__, {"DATABASE_NAME": "ingest-jobs", **(test_config or {})})
    tracing.instrument_celery()  # a task sent carries the request's trace in its headers
    logs.init_celery_sender()  # ... and its request id
    return app


# In the Celery processes (`-A ingest.tasks` imports this package first): their log lines,
# JSON ones with WORKSHOP_LOG_FORMAT=json, each task's under the request id that sent it.
logs.init_celery_worker("ingest-beat" if "beat" in sys.argv else "ingest-worker")


@signals.worker_init.connect
def _trace_worker(**_: Any) -> None:
    """In the Celery worker (`-A ingest.tasks` imports this package): each task joins the
    trace of the request that sent it."""
    tracing.setup("ingest-worker")
    tracing.instrument_celery()
