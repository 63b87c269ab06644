"""The Post: its public shape, and how a raw reddit record becomes one."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from workshop.domain.text import document_terms
from workshop.domain.topics import TOPICS, assign_topics

# The public shape of a post, in the order the API writes it.
POST_FIELDS = (
    "id", "title", "url", "permalink", "author", "subreddit", "created_utc", "score", "ups",
    "downs", "num_comments", "is_self", "selftext", "domain", "topics", "tags",
)  # fmt: skip

# Reddit ids are base-36; "t3_" marks a post in a fullname ("t3_1abc").
POST_ID_PATTERN = re.compile(r"[a-z0-9]{1,16}")
MAX_TITLE = 300
MAX_SELFTEXT = 40_000
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
MAX_PERMALINK = 512
# What a store holds: 8-byte integers.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
# A post's time is a moment from 1970 to the end of year 9999 (what a page can show).
LAST_TIMESTAMP = 253_402_300_799
# A post's path on reddit. Pages link to "https://www.reddit.com" + permalink, so only a
# path that keeps that host may be stored ("@evil.example/x" would leave reddit).
REDDIT_PATH = re.compile(
    r"/r/(?P<subreddit>[A-Za-z0-9_]{2,21})/comments/[a-z0-9]{1,16}(/[^\s\x00-\x1f\x7f?#\\]*)?"
)


# The Post as a Cerberus schema (what Eve validates with), keyed by _id as it is stored.
POST_SCHEMA: dict[str, dict[str, Any]] = {
    "_id": {"type": "string", "regex": POST_ID_PATTERN.pattern},
    "title": {"type": "string", "maxlength": MAX_TITLE, "required": True},
    "url": {"type": "string"},
    "permalink": {"type": "string"},
    "author": {"type": "string"},
    "subreddit": {"type": "string", "required": True},
    "created_utc": {"type": "integer"},
    "score": {"type": "integer"},
    "ups": {"type": "integer"},
    "downs": {"type": "integer"},
    "num_comments": {"type": "integer"},
    "is_self": {"type": "boolean"},
    "selftext": {"type": "string", "maxlength": MAX_SELFTEXT},
    "domain": {"type": "string"},
    "topics": {"type": "list", "schema": {"type": "string", "allowed": list(TOPICS)}},
    "tags": {
        "type": "list",
        "schema": {
            "type": "dict",
            "schema": {"tag": {"type": "string"}, "count": {"type": "integer"}},
        },
    },
}


class InvalidPost(ValueError):
    """A raw record that cannot become a Post; the message says why."""


def is_valid_post_id(value: Any) -> bool:
    """Tell whether a value looks like a reddit post id."""
    return isinstance(value, str) and POST_ID_PATTERN.fullmatch(value) is not None


def _unwrap(value: Any) -> Any:
    """Undo MongoDB extended JSON wrappers that mongoexport writes ({"$numberLong": "3"})."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, inner),) = value.items()
        if key in ("$numberInt", "$numberLong", "$numberDouble", "$numberDecimal"):
            return inner
        if key == "$oid":
            return inner
    return value


def _as_int(
    value: Any, field: str, default: int | None = None, low: int = MIN_INT, high: int = MAX_INT
) -> int:
    """Return a whole number from a number or its text, refusing one outside [low, high]:
    a store holds 8-byte integers (1e300 made the insert fail, a 500), and the bounds are
    checked before the fraction is dropped (-0.5 is below 0)."""
    value = _unwrap(value)
    if value is None or value == "":
        if default is None:
            raise InvalidPost(f"{field} is missing")
        number: float = default
    elif isinstance(value, bool):
        raise InvalidPost(f"{field} must be a number")
    else:
        try:
            number = value if isinstance(value, int) else float(value)  # an int stays exact
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidPost(f"{field} must be a number") from error
    if not low <= number <= high:  # NaN and infinities too
        raise InvalidPost(f"{field} must be a number from {low} to {high}")
    return int(number)


def _as_bool(value: Any, field: str) -> bool:
    value = _unwrap(value)
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return False
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # real exports write booleans as "True"/"False"
    if isinstance(value, int | float):
        return bool(value)
    raise InvalidPost(f"{field} must be a boolean")


def _as_text(value: Any, field: str, limit: int, required: bool = False) -> str:
    value = _unwrap(value)
    if value is None:
        if required:
            raise InvalidPost(f"{field} is missing")
        return ""
    if not isinstance(value, str):
        raise InvalidPost(f"{field} must be text")
    if required and not value.strip():
        raise InvalidPost(f"{field} is empty")
    return value[:limit]


def _created_utc(value: Any) -> int:
    if isinstance(value, Mapping) and "$date" in value:
        # Extended JSON dates are ISO text or milliseconds since the epoch.
        inner = _unwrap(value["$date"])
        if isinstance(inner, str) and not _NUMBER.fullmatch(inner):
            return _iso_seconds(inner)
        return _as_int(inner, "created_utc", low=0, high=LAST_TIMESTAMP * 1000 + 999) // 1000
    value = _unwrap(value)
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        return _iso_seconds(value)
    return _as_int(value, "created_utc", low=0, high=LAST_TIMESTAMP)


def _iso_seconds(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidPost("created_utc must be a timestamp") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # reddit times are UTC, whatever the machine's zone
    seconds = int(moment.timestamp())
    if not 0 <= seconds <= LAST_TIMESTAMP:
        raise InvalidPost("created_utc must be a timestamp from 1970 on")
    return seconds


def _reddit_path(value: Any) -> str:
    """Return a permalink as a path on reddit, or "" if it is not one (it is then dropped).

    Older exports hold absolute links ("http://www.reddit.com/r/..."): they become their path.
    """
    value = _unwrap(value)
    if not isinstance(value, str):
        return ""
    value = value.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:  # e.g. "http://[" : not a URL at all
        return ""
    if parts.scheme or parts.netloc:
        on_reddit = host == "reddit.com" or host.endswith(".reddit.com")
        if parts.scheme not in ("http", "https") or not on_reddit:
            return ""
        value = parts.path
    if len(value) > MAX_PERMALINK or not REDDIT_PATH.fullmatch(value):
        return ""
    return value


def _is_web_link(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises on a broken host ("http://[")
    except ValueError:
        return False
    return parts.scheme in ("http", "https")


def normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a reddit post record (API or mongoexport) into a Post; raise InvalidPost if not.

    Older exports are understood: booleans as "True"/"False", numbers as text, "" for a
    missing value, and no subreddit field (it is read from the permalink). Tags are not
    part of a record: they start empty and belong to users. Topics are assigned here, from
    the title and text.
    """
    if not isinstance(raw, Mapping):
        raise InvalidPost("a post must be a JSON object")
    post_id = _unwrap(raw.get("id"))
    if post_id in (None, "") and isinstance(raw.get("name"), str):
        post_id = raw["name"].removeprefix("t3_")
    if not is_valid_post_id(post_id):
        raise InvalidPost("id must be a reddit post id (base-36)")
    title = _as_text(raw.get("title"), "title", MAX_TITLE, required=True)
    selftext = _as_text(raw.get("selftext"), "selftext", MAX_SELFTEXT)
    ups = _as_int(raw.get("ups"), "ups", default=0)
    downs = _as_int(raw.get("downs"), "downs", default=0)
    permalink = _reddit_path(raw.get("permalink"))
    subreddit = _as_text(raw.get("subreddit"), "subreddit", 64).strip()
    if not subreddit:
        # The older API wrote no subreddit name (just a "t5_..." id): the permalink has it.
        named = REDDIT_PATH.fullmatch(permalink)
        if named is None:
            raise InvalidPost("subreddit is missing (and no reddit permalink names it)")
        subreddit = named["subreddit"]
    permalink = permalink or f"/r/{subreddit}/comments/{post_id}/"
    url = _as_text(raw.get("url"), "url", 2048)
    if not _is_web_link(url):
        # Only web links: a "javascript:" url would become a script on the post page.
        url = f"https://www.reddit.com{permalink}"
    is_self = _as_bool(raw.get("is_self"), "is_self")
    domain = _as_text(raw.get("domain"), "domain", 255) or (
        f"self.{subreddit}" if is_self else urlsplit(url).hostname or ""
    )
    post = {
        "id": post_id,
        "title": title,
        "url": url,
        "permalink": permalink,
        "author": _as_text(raw.get("author"), "author", 64) or "[deleted]",
        "subreddit": subreddit,
        "created_utc": _created_utc(raw.get("created_utc")),
        "score": _as_int(raw.get("score"), "score", default=ups - downs),
        "ups": ups,
        "downs": downs,
        "num_comments": _as_int(raw.get("num_comments"), "num_comments", default=0),
        "is_self": is_self,
        "selftext": selftext,
        "domain": domain,
        "topics": [],
        "tags": [],
    }
    post["topics"] = assign_topics(search_terms(post))
    return post


def search_terms(post: Mapping[str, Any]) -> list[str]:
    """Return the terms a post is found by (its title and text)."""
    return document_terms(post["title"], post.get("selftext", ""))


def upvote_ratio(post: Mapping[str, Any]) -> float | None:
    """Return the share of a post's votes that were up (3 decimals), or None before any."""
    ups, downs = max(int(post["ups"]), 0), max(int(post["downs"]), 0)
    return round(ups / (ups + downs), 3) if ups + downs else None


def public(document: Mapping[str, Any]) -> dict[str, Any]:
    """Return just the public fields of a stored post, in contract order."""
    return {field: document.get(field) for field in POST_FIELDS}
