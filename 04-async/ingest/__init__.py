"""The ingest service: imports and fetches posts. Owns the master post data.

Two processes: this web app takes jobs and reports on them (its database: ingest-jobs), and
the Celery worker (tasks.py) does them and owns the posts (its database: ingest).
"""

from typing import Any

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
