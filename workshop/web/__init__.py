"""What every stage's front door shares: templates, sessions, CSRF, errors as the contract says.

A stage's factory calls `create_flask(import_name)`; the stage itself only
decides where data comes from.
"""

import functools
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from workshop import config, logins, tokens
from workshop.contract import ApiError, check_query_string, error_body
from workshop.web.bodies import BoundedJSONProvider
from workshop.web.policy import (
    SECURITY_HEADERS,
    error_headers,
    format_timestamp,
    highlight,
    is_api_path,
    reddit_link,
    snippet,
    web_link,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = str(HERE / "templates")
STATIC = str(HERE / "static")


def create_flask(import_name: str, test_config: dict | None = None) -> Flask:
    """Return a Flask app with the shared pages' templates and static files wired in."""
    app = Flask(import_name, template_folder=TEMPLATES, static_folder=STATIC)
    app.config.from_mapping(
        SECRET_KEY=config.secret_key(),
        STAGE_NAME=Path(app.root_path).parent.name,  # the stage folder the app's package is in
        MAX_CONTENT_LENGTH=config.MAX_INGEST_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.json = BoundedJSONProvider(app)  # get_json() refuses JSON nested too deeply
    app.json.sort_keys = False  # posts keep the contract's field order
    if test_config:
        app.config.update(test_config)
    init_app(app)
    return app


def init_app(app: Flask) -> None:
    """Register the query check, user lookup, CSRF check, template helpers and error
    handlers."""
    app.before_request(_check_query_string)
    app.before_request(_load_user)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.jinja_env.filters.update(
        datetime=format_timestamp,
        reddit_link=reddit_link,
        web_link=web_link,
    )
    app.jinja_env.globals.update(csrf_token=csrf_token, highlight=highlight, snippet=snippet)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"current_user": g.get("user"), "stage_name": app.config["STAGE_NAME"]}

    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)


def is_api_request() -> bool:
    """Tell whether the request is for the JSON API (errors answer as JSON there)."""
    return is_api_path(request.path)


def _check_query_string() -> None:
    """Refuse a query string that is not UTF-8 (400), on pages and calls alike."""
    check_query_string(request.query_string)


def _load_user() -> None:
    """Find who is calling: a bearer token for the API, the session cookie for pages.

    g.token is what a front passes on when it calls other services as this user.
    """
    if is_api_request():
        token = tokens.bearer(request.headers.get("Authorization"))
        g.user = tokens.verify(token) if token else None
        g.token = token if g.user else None
    else:
        g.user, g.token = session.get("user"), session.get("token")
    # A signature proves who a token was issued to, not that the user still exists (an
    # emptied store): where the app can tell (`known_user`), a user it does not know is
    # nobody. Without one (a service but users), the front door has decided.
    known_user = current_app.extensions.get("known_user")
    if g.user and known_user and not known_user(g.user, g.token):
        g.user = g.token = None


def csrf_token() -> str:
    """Return this session's CSRF token, for every form that posts."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _check_csrf() -> None:
    """Refuse a page form post that does not carry this session's CSRF token."""
    if request.method != "POST" or is_api_request():
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, "The form expired; please try again.")


def login_page_required(view: Callable) -> Callable:
    """Send a visitor who is not logged in to the login page, then back."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def api_auth_required(view: Callable) -> Callable:
    """Answer 401 to an API call without a valid bearer token."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            raise ApiError(401, "unauthorized", "send a valid 'Authorization: Bearer <token>'")
        return view(*args, **kwargs)

    return wrapped


def checked_login(username: str, attempt: Callable[[], Any]) -> Any:
    """Run a login attempt unless its username or client failed too often (429, see
    workshop.logins); count it if it fails (returns a false value)."""
    limiter = current_app.extensions.get("logins")
    if limiter is None:
        limiter = current_app.extensions["logins"] = logins.LoginLimiter()
    client = logins.client_address(request.remote_addr, request.headers.get("X-Forwarded-For"))
    wait = limiter.retry_after(username, client)
    if wait:
        raise logins.too_many_attempts(wait)
    result = attempt()
    if not result:
        limiter.failed(username, client)
    return result


def _security_headers(response: Response) -> Response:
    """Let pages load only their own files: no inline script, no framing, no sniffing."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _api_error(error: ApiError) -> Any:
    if is_api_request():
        return jsonify(error.body()), error.status, error.headers
    # A page whose data is out of reach (a service down: 503) tells the person, in HTML.
    message = error.message[:1].upper() + error.message[1:] + "."
    page = render_template("error.html", status=error.status, message=message)
    return page, error.status, error.headers


def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    headers = error_headers(error)
    # An app without pages (a service behind the gateway) answers in JSON everywhere.
    if is_api_request() or "pages" not in current_app.blueprints:
        message = error.description if status != 404 else "no such resource"
        if status == 413:
            message = "the body is larger than this call accepts"
            _drain_body()
        return jsonify(error_body(code, message)), status, headers
    page = render_template("error.html", status=status, message=error.description)
    return page, status, headers


# Read at most this much of a refused body; a client sending more just gets disconnected.
MAX_DRAIN_BYTES = 2 * config.MAX_INGEST_BYTES


def _drain_body() -> None:
    """Read and drop a refused body, so the client gets its 413 instead of a reset."""
    stream = request.environ.get("wsgi.input")
    length = request.content_length or 0
    if stream is None or not 0 < length <= MAX_DRAIN_BYTES:
        return
    while length > 0:
        chunk = stream.read(min(length, 64 * 1024))
        if not chunk:
            break
        length -= len(chunk)
