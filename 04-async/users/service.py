"""The users service's routes: who is who, and what they like."""

import asyncio
from typing import Any

from quart import Blueprint, g, jsonify, request

from chassis.bodies import json_object
from chassis.service import Service
from chassis.web import api_auth_required
from users import store
from workshop import contract, tokens
from workshop.contract import ApiError, string_field
from workshop.domain import accounts

bp = Blueprint("users", __name__, url_prefix="/api")
CREDENTIALS = ("username", "password")


@bp.post("/users")
async def register() -> Any:
    data = await json_object(request, allowed=CREDENTIALS, required=CREDENTIALS)
    username, password = string_field(data, "username"), string_field(data, "password")
    problem = accounts.username_problem(username) or accounts.password_problem(password, username)
    if problem:
        raise ApiError(400, "invalid_credentials", problem)
    # A hash is slow CPU work on purpose: in a worker thread (hashlib lets go of the GIL
    # while it hashes), the event loop keeps answering every other call meanwhile.
    password_hash = await asyncio.to_thread(accounts.hash_password, password)
    if not await store.create_user(username, password_hash):
        raise ApiError(409, "username_taken", f"the username {username!r} is taken")
    return jsonify({"username": username}), 201


@bp.post("/tokens")
async def issue_token() -> Any:
    data = await json_object(request, allowed=CREDENTIALS, required=CREDENTIALS)
    username, password = string_field(data, "username"), string_field(data, "password")
    user = await store.get_user(username)
    password_hash = user["password_hash"] if user else None
    if not await asyncio.to_thread(accounts.check_login, password_hash, password):
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    return jsonify({"token": tokens.issue(username)})


@bp.route("/me/preferences", methods=("GET", "PUT"))
@api_auth_required
async def preferences() -> Any:
    if request.method == "PUT":
        data = await json_object(request, allowed=("topics",), required=("topics",))
        await store.set_topics(g.user, contract.checked_topics(data["topics"]))
    return jsonify({"topics": await store.get_topics(g.user)})


service = Service(
    name="users",
    blueprint=bp,
    owns=store.outbox,
)
