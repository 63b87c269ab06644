"""What the pages and the API decide, with no web framework: which paths are the API, where
a login may send you back to, the security headers, how a date shows, how a search result
shows why it matched.

Flask (workshop/web/__init__.py) applies these; an async stage applies the same ones (an
HTTP error is werkzeug's, which Flask and Quart share).
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from workshop.domain.posts import REDDIT_PATH
from workshop.domain.text import excerpt

REDDIT_HOST = "www.reddit.com"

# Let pages load only their own files: no inline script, no framing, no sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_api_path(path: str) -> bool:
    """Tell whether a path belongs to the JSON API (errors answer as JSON there)."""
    return path.startswith("/api/") or path in ("/healthz", "/readyz")


def local_path(target: str) -> str:
    """Return target if it is a path on this site, else "" (no open redirect after login)."""
    if (
        not target.startswith("/")
        or any(c in target for c in "\\\t\r\n")
        or target.startswith("//")
    ):
        return ""
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else ""


def reddit_link(permalink: Any) -> str:
    """Return a post's discussion on reddit as a URL, or "" if its permalink is not a path there.

    Built with urlunsplit, never by pasting text after "https://www.reddit.com": a stored
    "@evil.example/x" made that "https://www.reddit.com@evil.example/x", a link to another
    host. Posts are checked at import (posts.normalise); this holds for any stored before.
    """
    if not isinstance(permalink, str) or not REDDIT_PATH.fullmatch(permalink):
        return ""
    return urlunsplit(("https", REDDIT_HOST, quote(permalink, safe="/%:@!$&'()*+,;=-._~"), "", ""))


def web_link(url: Any) -> str:
    """Return a post's url if it is an http(s) link to a host, else "" (no javascript: links)."""
    if not isinstance(url, str):
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return ""
    return url if parts.scheme in ("http", "https") and host else ""


# About how many characters of a post's text a search result shows around its first match.
SNIPPET_WIDTH = 200


def highlight(text: str, query: str) -> Markup:
    """Return a text, HTML-escaped, with the words a search query matches in <mark>."""
    return _marked(excerpt(text, query))


def snippet(text: str, query: str) -> Markup:
    """Return about SNIPPET_WIDTH characters of a text around its first match, marked."""
    return _marked(excerpt(text, query, SNIPPET_WIDTH))


def _marked(pieces: list[tuple[str, bool]]) -> Markup:
    # Markup.format and escape escape the post's text: a title with <script> stays text.
    return Markup("").join(
        Markup("<mark>{}</mark>").format(piece) if matched else escape(piece)
        for piece, matched in pieces
    )


def format_timestamp(value: Any) -> str:
    """Return a post's UTC timestamp as a date, or "" if it is not one."""
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError):
        return ""


def error_headers(error: HTTPException) -> list[tuple[str, str]]:
    """Return the headers an HTTP error carries but its own HTML page's type: a 405 says
    which methods the resource takes (`Allow`, as RFC 9110 requires)."""
    return [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
