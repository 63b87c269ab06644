"""Ingest requests: what a client may ask the ingest call to load, and loading it.

Three sources: the bundled sample, a live reddit fetch, or a file's content uploaded as
the body. The server never opens a path a client names.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workshop import config, safejson
from workshop.contract import ApiError, bad_request
from workshop.data import importers, reddit
from workshop.data import sample as sample_data
from workshop.documents import Upserted

COMMAND_FIELDS = {"source", "subreddit", "limit"}
MAX_FETCH_LIMIT = 1000


@dataclass(frozen=True)
class IngestRequest:
    """A checked ingest request: a source, and what that source needs."""

    source: str  # "sample", "reddit" or "upload"
    subreddit: str = ""
    limit: int = 100
    body: bytes = b""
    content_type: str = ""
    # An upload's rows, read when the request was checked (so they are read once).
    report: importers.ImportReport | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """Return a short description for the job record."""
        if self.source == "reddit":
            return f"reddit r/{self.subreddit} (limit {self.limit})"
        if self.source == "upload":
            return f"upload ({self.content_type}, {len(self.body)} bytes)"
        return "sample dataset"


def parse_request(body: bytes, mimetype: str) -> IngestRequest:
    """Check an ingest call's body and return what it asks for, or raise a 4xx.

    An upload is read here, row by row: one in which no row is a post is refused (400), and
    the rows it holds travel with the request. (The size limit, 413 above
    config.MAX_INGEST_BYTES, is the web framework's.)
    """
    content_type = mimetype.lower()
    if content_type in importers.NDJSON_TYPES:
        return _upload(body, "application/x-ndjson")
    if content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send application/json (a command or a reddit listing) or application/x-ndjson",
        )
    try:
        data = safejson.loads(body)
    except ValueError:  # not JSON, or nested too deeply
        data = None
    if isinstance(data, dict) and "source" in data:
        return _command(data)
    if importers.is_listing_document(data):
        return _upload(body, "application/json", data)
    raise bad_request(
        'send a command ({"source": ...}) or a reddit listing ({"kind": "Listing", ...})',
        "invalid_body",
    )


def _upload(body: bytes, content_type: str, listing: Any = None) -> IngestRequest:
    try:
        if listing is not None:  # already parsed: read its posts without parsing again
            report = importers.parse_listing(listing)
        else:
            report = importers.parse_upload(body, content_type)
    except importers.ImportFormatError as error:
        raise bad_request(str(error), "invalid_body") from None
    if not report.posts:
        reasons = "; ".join(f"{r.where}: {r.reason}" for r in report.rejected[:3])
        raise bad_request(f"the upload holds no post ({reasons or 'it is empty'})", "no_posts")
    return IngestRequest("upload", body=body, content_type=content_type, report=report)


def _command(data: dict[str, Any]) -> IngestRequest:
    unknown = sorted(set(data) - COMMAND_FIELDS)
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}", "unknown_field")
    source = data["source"]
    if source == "sample":
        if len(data) > 1:
            raise bad_request("the sample source takes no other field", "unknown_field")
        return IngestRequest("sample")
    if source != "reddit":
        raise bad_request("source must be 'sample' or 'reddit'", "invalid_field")
    subreddit, limit = data.get("subreddit"), data.get("limit", 100)
    if not isinstance(subreddit, str) or not reddit.SUBREDDIT_NAME.fullmatch(subreddit):
        raise bad_request("subreddit must be a subreddit name", "invalid_field")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FETCH_LIMIT:
        raise bad_request(f"limit must be an integer from 1 to {MAX_FETCH_LIMIT}", "invalid_field")
    return IngestRequest("reddit", subreddit=subreddit, limit=limit)


def collect(job: IngestRequest) -> importers.ImportReport:
    """Load the posts an ingest request names (this is the slow part: run it as a job)."""
    if job.source == "sample":
        return sample()
    if job.source == "reddit":
        base_url = config.env("REDDIT_URL", reddit.DEFAULT_BASE_URL)
        return reddit.fetch_subreddit(job.subreddit, job.limit, base_url=base_url)
    return job.report or importers.parse_upload(job.body, job.content_type)


@dataclass(frozen=True)
class Outcome:
    """How an ingest job ended: what storing did, rows rejected, why it failed (if it did)."""

    stored: Upserted = Upserted()
    rejected: int = 0
    error: str | None = None


def run(job: IngestRequest, store_posts: Callable[[list[dict[str, Any]]], Upserted]) -> Outcome:
    """Load what a job names and store it with the stage's own `store_posts`."""
    try:
        report = collect(job)
    except (ValueError, RuntimeError) as error:  # a bad upload, reddit unreachable
        return Outcome(error=str(error))
    return Outcome(store_posts(report.posts), len(report.rejected))


def sample() -> importers.ImportReport:
    """Return the sample dataset (WORKSHOP_SAMPLE_POSTS posts), normalised and ready to store."""
    return importers.parse_records(sample_data.sample_posts(config.sample_posts()))
