"""Who is who: the registration, login and logout pages, and the token call (the other JSON
calls go to users). The gateway takes logins itself: as the front door it counts failed ones
(workshop.logins); users checks the password."""

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for

from gateway import client
from workshop.contract import ApiError, string_field
from workshop.web import checked_login
from workshop.web.bodies import json_object
from workshop.web.policy import local_path

bp = Blueprint("auth", __name__)


def create_account(username: Any, password: Any) -> None:
    """Create an account, or raise ApiError (400 invalid or weak, 409 taken)."""
    client.create_user(username, password)  # the users service checks, hashes and stores


def authenticate(username: str, password: str) -> str | None:
    """Return a token if a username and password match a registered user (users checks)."""
    return client.issue_token(username, password)


@bp.post("/api/tokens")
def api_token() -> Any:
    credentials = ("username", "password")
    data = json_object(request, allowed=credentials, required=credentials)
    username, password = string_field(data, "username"), string_field(data, "password")
    token = checked_login(username, lambda: authenticate(username, password))
    if token is None:
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    return jsonify({"token": token})


def start_session(username: str, token: str) -> None:
    """Log a user in on the pages: a fresh session (nothing carried over) naming them."""
    session.clear()
    session["user"] = username
    session["token"] = token  # the gateway calls services as this user


@bp.route("/register", methods=("GET", "POST"))
def register() -> Any:
    if request.method == "POST":
        form = request.form
        username, password = form.get("username", ""), form.get("password", "")
        try:
            create_account(username, password)
        except ApiError as error:
            flash(error.message, "error")
            return render_template("register.html"), error.status
        token = authenticate(username, password)
        if token is None:  # unexpected: the account's owner has just stored it
            flash("Account created: you can log in now.", "info")
            return redirect(url_for("auth.login"))
        start_session(username, token)
        flash(f"Account created: welcome, {username}.", "info")
        return redirect(url_for("pages.index"))
    return render_template("register.html")


@bp.route("/login", methods=("GET", "POST"))
def login() -> Any:
    next_page = request.values.get("next", "")
    if request.method == "POST":
        form = request.form
        username, password = form.get("username", ""), form.get("password", "")
        try:
            token = checked_login(username, lambda: authenticate(username, password))
        except ApiError as error:  # 429: too many failed logins
            flash(error.message[:1].upper() + error.message[1:] + ".", "error")
            page = render_template("login.html", next=next_page)
            return page, error.status, error.headers
        if token:
            start_session(username, token)
            return redirect(local_path(next_page) or url_for("pages.index"))
        flash("Wrong username or password.", "error")
        return render_template("login.html", next=next_page), 401
    return render_template("login.html", next=next_page)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("pages.index"))
