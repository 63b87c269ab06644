"""What every 04 app shares, on Quart: the templates, sessions, CSRF and contract errors that
workshop/web gives the Flask stages.

Quart is Flask's async twin (same factory, blueprints, `g`, `session`): this module is
workshop/web/__init__.py ported (bodies.py and health.py port its neighbours), and it keeps
their framework-free parts (workshop/web/policy.py, the contract's checks) as they are.
"""

import asyncio
import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from quart import (
    Quart,
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
from workshop.platform import latency
from workshop.web import STATIC, TEMPLATES
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

# The longest request line ("GET /path?query HTTP/1.1") served: gunicorn's default, which
# stages 01-03 get from their server. Uvicorn has no such limit, so the app applies it.
MAX_REQUEST_LINE = 4094


def create_quart(import_name: str, test_config: dict | None = None) -> Quart:
    """Return a Quart app with the shared pages' templates and static files wired in."""
    app = Quart(import_name, template_folder=TEMPLATES, static_folder=STATIC)
    app.config.from_mapping(
        SECRET_KEY=config.secret_key(),
        STAGE_NAME=Path(app.root_path).parent.name,  # the stage folder the app's package is in
        MAX_CONTENT_LENGTH=config.MAX_INGEST_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.json.sort_keys = False  # posts keep the contract's field order
    if test_config:
        app.config.update(test_config)
    init_app(app)
    return app


def init_app(app: Quart) -> None:
    """Register the query check, user lookup, CSRF check, template helpers and error
    handlers."""
    app.before_request(_check_request_line)  # uvicorn's missing limit (MAX_REQUEST_LINE)
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
    async def _globals() -> dict[str, Any]:
        return {"current_user": g.get("user"), "stage_name": app.config["STAGE_NAME"]}

    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)


def delay_answers(app: Quart, service: str) -> None:
    """Make a service wait before each answer as WORKSHOP_LATENCY_MS says (off by default)."""
    seconds = latency.delay_for(service)
    if seconds:
        # The request awaits its sleep: the event loop serves every other request meanwhile.
        app.before_request(functools.partial(asyncio.sleep, seconds))


async def _check_request_line() -> None:
    """Answer 414 to a request line longer than MAX_REQUEST_LINE, as gunicorn does."""
    target = len(request.scope.get("raw_path") or b"") + len(request.scope["query_string"]) + 1
    if len(request.method) + target + len(" HTTP/1.1") + 1 > MAX_REQUEST_LINE:
        abort(414)


def is_api_request() -> bool:
    """Tell whether the request is for the JSON API (errors answer as JSON there)."""
    return is_api_path(request.path)


async def _check_query_string() -> None:
    """Refuse a query string that is not UTF-8 (400), on pages and calls alike."""
    check_query_string(request.query_string)


async def _load_user() -> None:
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
    if g.user and known_user and not await known_user(g.user, g.token):
        g.user = g.token = None


def csrf_token() -> str:
    """Return this session's CSRF token, for every form that posts."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


async def _check_csrf() -> None:
    """Refuse a page form post that does not carry this session's CSRF token."""
    if request.method != "POST" or is_api_request():
        return
    sent = (await request.form).get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, "The form expired; please try again.")


def login_page_required(view: Callable) -> Callable:
    """Send a visitor who is not logged in to the login page, then back."""

    @functools.wraps(view)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("auth.login", next=request.path))
        return await view(*args, **kwargs)

    return wrapped


def api_auth_required(view: Callable) -> Callable:
    """Answer 401 to an API call without a valid bearer token."""

    @functools.wraps(view)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            raise ApiError(401, "unauthorized", "send a valid 'Authorization: Bearer <token>'")
        return await view(*args, **kwargs)

    return wrapped


async def checked_login(username: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
    """Run a login attempt unless its username or client failed too often (429, see
    workshop.logins); count it if it fails (returns a false value)."""
    limiter = current_app.extensions.get("logins")
    if limiter is None:
        limiter = current_app.extensions["logins"] = logins.LoginLimiter()
    client = logins.client_address(request.remote_addr, request.headers.get("X-Forwarded-For"))
    # The limiter's store is Redis or memory, reached synchronously: a thread.
    wait = await asyncio.to_thread(limiter.retry_after, username, client)
    if wait:
        raise logins.too_many_attempts(wait)
    result = await attempt()
    if not result:
        await asyncio.to_thread(limiter.failed, username, client)
    return result


async def _security_headers(response: Response) -> Response:
    """Let pages load only their own files: no inline script, no framing, no sniffing."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _api_error(error: ApiError) -> Any:
    if is_api_request():
        return jsonify(error.body()), error.status, error.headers
    # A page whose data is out of reach (a service down: 503) tells the person, in HTML.
    message = error.message[:1].upper() + error.message[1:] + "."
    page = await render_template("error.html", status=error.status, message=message)
    return page, error.status, error.headers


async def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    headers = error_headers(error)
    # An app without pages (a service behind the gateway) answers in JSON everywhere.
    if is_api_request() or "pages" not in current_app.blueprints:
        message = error.description if status != 404 else "no such resource"
        if status == 413:
            message = "the body is larger than this call accepts"
        return jsonify(error_body(code, message)), status, headers
    page = await render_template("error.html", status=status, message=error.description)
    return page, status, headers
