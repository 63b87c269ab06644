"""Who is who: registration, login and logout pages, and the API's users and tokens."""

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for

from front import store
from workshop import tokens
from workshop.contract import ApiError, string_field
from workshop.domain import accounts
from workshop.web import checked_login
from workshop.web.bodies import json_object
from workshop.web.policy import local_path

bp = Blueprint("auth", __name__)


def create_account(username: Any, password: Any) -> None:
    """Create an account, or raise ApiError (400 invalid or weak, 409 taken)."""
    problem = accounts.username_problem(username) or accounts.password_problem(password, username)
    if problem:
        raise ApiError(400, "invalid_credentials", problem)
    if not store.create_user(username, accounts.hash_password(password)):
        raise ApiError(409, "username_taken", f"the username {username!r} is taken")


def authenticate(username: str, password: str) -> bool:
    """Tell whether a username and password match a stored user."""
    user = store.get_user(username)
    return accounts.check_login(user["password_hash"] if user else None, password)


@bp.post("/api/users")
def api_register() -> Any:
    data = json_object(request, allowed=("username", "password"), required=("username", "password"))
    username, password = string_field(data, "username"), string_field(data, "password")
    create_account(username, password)
    return jsonify({"username": username}), 201


@bp.post("/api/tokens")
def api_token() -> Any:
    data = json_object(request, allowed=("username", "password"), required=("username", "password"))
    username, password = string_field(data, "username"), string_field(data, "password")
    if not checked_login(username, lambda: authenticate(username, password)):
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    return jsonify({"token": tokens.issue(username)})


def start_session(username: str) -> None:
    """Log a user in on the pages: a fresh session (nothing carried over) naming them."""
    session.clear()
    session["user"] = username


@bp.route("/register", methods=("GET", "POST"))
def register() -> Any:
    if request.method == "POST":
        username, password = request.form.get("username", ""), request.form.get("password", "")
        try:
            create_account(username, password)
        except ApiError as error:
            flash(error.message, "error")
            return render_template("register.html"), error.status
        start_session(username)
        flash(f"Account created: welcome, {username}.", "info")
        return redirect(url_for("pages.index"))
    return render_template("register.html")


@bp.route("/login", methods=("GET", "POST"))
def login() -> Any:
    next_page = request.values.get("next", "")
    if request.method == "POST":
        username, password = request.form.get("username", ""), request.form.get("password", "")
        try:
            if checked_login(username, lambda: authenticate(username, password)):
                start_session(username)
                return redirect(local_path(next_page) or url_for("pages.index"))
        except ApiError as error:  # 429: too many failed logins
            flash(error.message[:1].upper() + error.message[1:] + ".", "error")
            return render_template("login.html", next=next_page), error.status, error.headers
        flash("Wrong username or password.", "error")
        return render_template("login.html", next=next_page), 401
    return render_template("login.html", next=next_page)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("pages.index"))
