"""The users service's routes: who is who, and what they like."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from chassis.service import Service
from users import store, strangler
from workshop import contract, tokens
from workshop.contract import ApiError, string_field
from workshop.domain import accounts
from workshop.web import api_auth_required
from workshop.web.bodies import json_object

bp = Blueprint("users", __name__, url_prefix="/api")
CREDENTIALS = ("username", "password")


@bp.post("/users")
def register() -> Any:
    data = json_object(request, allowed=CREDENTIALS, required=CREDENTIALS)
    username, password = string_field(data, "username"), string_field(data, "password")
    problem = accounts.username_problem(username) or accounts.password_problem(password, username)
    if problem:
        raise ApiError(400, "invalid_credentials", problem)
    password_hash = accounts.hash_password(password)
    if not store.create_user(username, password_hash):
        raise ApiError(409, "username_taken", f"the username {username!r} is taken")
    return jsonify({"username": username}), 201


@bp.post("/tokens")
def issue_token() -> Any:
    data = json_object(request, allowed=CREDENTIALS, required=CREDENTIALS)
    username, password = string_field(data, "username"), string_field(data, "password")
    user = store.get_user(username)
    password_hash = user["password_hash"] if user else None
    if not accounts.check_login(password_hash, password):
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    return jsonify({"token": tokens.issue(username)})


@bp.route("/me/preferences", methods=("GET", "PUT"))
@api_auth_required
def preferences() -> Any:
    if request.method == "PUT":
        data = json_object(request, allowed=("topics",), required=("topics",))
        store.set_topics(g.user, contract.checked_topics(data["topics"]))
    return jsonify({"topics": store.get_topics(g.user)})


service = Service(
    name="users",
    blueprint=bp,
    owns=store.outbox,
    follows=strangler.FOLLOWS,
)
