"""The sync service's routes: the log's head, the subscribers, and replay."""

from typing import Any

from quart import Blueprint, current_app, jsonify

from chassis.service import AsyncDatabase, Service, get_db
from sync import replays, store
from workshop.contract import not_found
from workshop.platform.messages import MASTER_DATA_TYPES
from workshop.platform.schemas import PASS_ON, every_version

bp = Blueprint("sync", __name__, url_prefix="/api/sync")


def _publisher() -> Any:
    return current_app.extensions["service"].publisher


@bp.get("/subscribers")
async def subscribers() -> Any:
    head = await store.head(get_db())
    return jsonify({"head": head, "items": await store.subscribers(get_db())})


@bp.post("/subscribers/<queue>/replay")
async def replay(queue: str) -> Any:
    """Re-send a subscriber every change from the start (admin: `workshop sync replay`)."""
    sent = await store.replay(get_db(), _publisher(), queue)
    if sent is None:
        raise not_found("subscriber")
    return jsonify({"queue": queue, "sent": sent}), 202


async def _on_batch(database: AsyncDatabase, messages: list) -> None:
    await store.on_batch(database, _publisher(), messages)
    await replays.answer(database, _publisher(), messages)  # 04: replay as a Celery task


service = Service(
    name="sync",
    blueprint=bp,
    batch_handler=_on_batch,
    # Sync checks the messages meant for it, and passes on the master data it logs unchecked
    # (workshop/platform/schemas PASS_ON says why): its subscribers refuse what they cannot read.
    reads={**every_version(), **dict.fromkeys(MASTER_DATA_TYPES, PASS_ON)},
    setup=store.setup,
    waiting=store.waiting,
    lag=store.lag,
)
