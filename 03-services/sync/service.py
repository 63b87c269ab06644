"""The sync service's routes: the log's head, the subscribers, and replay."""

from typing import Any

from flask import Blueprint, current_app, jsonify

from chassis.service import Service, get_db
from sync import store
from workshop.contract import not_found
from workshop.schemas import every_version

bp = Blueprint("sync", __name__, url_prefix="/api/sync")


def _publisher() -> Any:
    return current_app.extensions["service"].publisher


@bp.get("/subscribers")
def subscribers() -> Any:
    return jsonify({"head": store.head(get_db()), "items": store.subscribers(get_db())})


@bp.post("/subscribers/<queue>/replay")
def replay(queue: str) -> Any:
    """Re-send a subscriber every change from the start (admin: `workshop sync replay`)."""
    sent = store.replay(get_db(), _publisher(), queue)
    if sent is None:
        raise not_found("subscriber")
    return jsonify({"queue": queue, "sent": sent}), 202


def _on_batch(database: Any, messages: list) -> None:
    store.on_batch(database, current_app.extensions["service"].publisher, messages)


service = Service(
    name="sync",
    blueprint=bp,
    batch_handler=_on_batch,
    reads=every_version(),  # sync logs and passes on every version there is a schema for
    setup=store.setup,
    waiting=store.waiting,
    lag=store.lag,
)
