"""Fetch a subreddit's newest posts from reddit's public JSON endpoints, politely."""

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from workshop.data.importers import ImportFormatError, ImportReport, parse_listing

DEFAULT_BASE_URL = "https://www.reddit.com"
USER_AGENT = "workshop-reddit-aggregator/0.1 (teaching project)"
# (connect, read) seconds: fail fast when offline, but give a slow listing time to arrive.
TIMEOUT = (5, 15)
# Reddit asks unauthenticated clients for at most one request per second (and fewer is kinder).
MIN_INTERVAL = 1.0
PAGE_SIZE = 100
# Reddit's listings stop after about 1000 items, however far one pages.
MAX_LIMIT = 1000
DEFAULT_RETRY_AFTER = 5.0
# A Retry-After longer than this is not worth waiting for in an interactive command.
MAX_RETRY_AFTER = 60.0

SUBREDDIT_NAME = re.compile(r"[A-Za-z0-9_]{2,21}")


class FetchError(RuntimeError):
    """Reddit could not be read; the message is one line for a person to act on."""


class _Throttle:
    """Space requests at least MIN_INTERVAL apart, on an injectable clock."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.clock = clock
        self.sleep = sleep
        self.last: float | None = None

    def wait(self) -> None:
        if self.last is not None:
            remaining = MIN_INTERVAL - (self.clock() - self.last)
            if remaining > 0:
                self.sleep(remaining)
        self.last = self.clock()


def _site(base_url: str) -> str:
    """Name the site in messages: "reddit.com" for https://www.reddit.com."""
    parts = urlsplit(base_url)
    return (parts.netloc or base_url).removeprefix("www.")


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        # Retry-After may also be an HTTP date; a fixed pause is good enough then.
        seconds = DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _get(
    session: requests.Session,
    url: str,
    params: dict[str, Any],
    site: str,
    throttle: _Throttle,
) -> requests.Response:
    """GET one page, retrying once after a 429 as its Retry-After asks."""
    for attempt in range(2):
        throttle.wait()
        try:
            response = session.get(
                url, params=params, headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT
            )
        except requests.Timeout as error:
            raise FetchError(f"{site} did not answer in time: try again later") from error
        except requests.ConnectionError as error:
            raise FetchError(f"cannot reach {site}: are you online?") from error
        except requests.RequestException as error:
            raise FetchError(f"request to {site} failed: {type(error).__name__}") from error
        if response.status_code != 429:
            return response
        if attempt == 0:
            throttle.sleep(_retry_after(response))
    raise FetchError(f"{site} is rate-limiting us (HTTP 429): wait a minute and try again")


def _listing(response: requests.Response, site: str, subreddit: str) -> Any:
    """Check an answer and return its JSON, or raise FetchError saying what went wrong."""
    status = response.status_code
    # Reddit answers a subreddit that does not exist by redirecting to its search.
    if "/subreddits/search" in urlsplit(response.url).path:
        raise FetchError(f"r/{subreddit} does not exist on {site}")
    if status == 404:
        raise FetchError(f"r/{subreddit} was not found on {site} (HTTP 404)")
    if status == 403:
        raise FetchError(f"{site} refused access to r/{subreddit} (HTTP 403): private or banned?")
    if status >= 400:
        reason = f" {response.reason}" if response.reason else ""
        raise FetchError(f"{site} answered HTTP {status}{reason} for r/{subreddit}")
    try:
        return response.json()
    except ValueError as error:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise FetchError(f"{site} answered with {kind}, not JSON") from error


def fetch_subreddit(
    subreddit: str,
    limit: int = 100,
    *,
    base_url: str = DEFAULT_BASE_URL,
    session: requests.Session | None = None,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportReport:
    """Fetch up to `limit` of a subreddit's newest posts, a page of 100 at a time.

    `progress` is told the number of posts gathered after each page. Raise ValueError for
    a bad name or limit, FetchError when reddit cannot be read.
    """
    if not isinstance(subreddit, str) or not SUBREDDIT_NAME.fullmatch(subreddit):
        raise ValueError("a subreddit name is 2-21 letters, digits or underscores")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    site = _site(base_url)
    url = f"{base_url.rstrip('/')}/r/{subreddit}/new.json"
    throttle = _Throttle(clock, sleep)
    report = ImportReport()
    own_session = session is None
    http = requests.Session() if session is None else session
    try:
        after: str | None = None
        seen_after: set[str] = set()
        page_number = 0
        while report.count < limit:
            page_number += 1
            # raw_json=1 stops reddit escaping &, < and > in titles as HTML entities.
            params: dict[str, Any] = {"limit": PAGE_SIZE, "raw_json": 1}
            if after:
                params["after"] = after
            document = _listing(_get(http, url, params, site, throttle), site, subreddit)
            try:
                page = parse_listing(document)
            except ImportFormatError as error:
                raise FetchError(f"{site} answered with JSON that is not a listing") from error
            for post in page.posts:
                if report.count >= limit:
                    break
                report.add_post(post)
            for rejection in page.rejected:
                report.reject(f"page {page_number}, {rejection.where}", rejection.reason)
            if progress is not None:
                progress(report.count)
            cursor = document["data"].get("after") if isinstance(document, dict) else None
            after = cursor if isinstance(cursor, str) else None
            # An empty page or a repeated cursor would otherwise page forever.
            if not after or not page.posts or after in seen_after:
                break
            seen_after.add(after)
    finally:
        if own_session:
            http.close()
    return report
