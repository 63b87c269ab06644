"""What the pages and the API decide, with no web framework: which paths are the API, where
a login may send you back to, the security headers, how a date shows.

Flask (workshop/web/__init__.py) applies these; an async stage applies the same ones.
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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


def format_timestamp(value: Any) -> str:
    """Return a post's UTC timestamp as a date, or "" if it is not one."""
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError):
        return ""
