"""Read posts from what people upload: mongoexport JSON lines and reddit listing JSON.

Parsers take bytes, text or parsed JSON, never a path on the server; only `read_file`,
for the command line, opens a file. A bad row is reported, not fatal.
"""

import gzip
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workshop import safejson
from workshop.domain.posts import InvalidPost, normalise

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
JSON_TYPE = "application/json"
GZIP_MAGIC = b"\x1f\x8b"
NOT_A_LISTING = (
    'expected a reddit listing ({"kind": "Listing", "data": {"children": [...]}}) '
    "or an array of listings"
)


class ImportFormatError(ValueError):
    """A whole upload is in a format we cannot read; the message says what was expected."""


@dataclass(frozen=True)
class Rejection:
    """One row that was not imported: where it was ("line 7", "child 3") and why."""

    where: str
    reason: str


@dataclass
class ImportReport:
    """The posts an import produced (normalised, one per id) and the rows it turned away."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: int = 0
    _positions: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given, self.posts = self.posts, []
        for post in given:
            self.add_post(post)

    @property
    def count(self) -> int:
        """Return how many distinct posts were imported."""
        return len(self.posts)

    def add_post(self, post: dict[str, Any]) -> None:
        """Keep a normalised post; a later post with the same id replaces the earlier one."""
        position = self._positions.get(post["id"])
        if position is None:
            self._positions[post["id"]] = len(self.posts)
            self.posts.append(post)
        else:
            self.posts[position] = post
            self.duplicates += 1

    def add_record(self, raw: Any, where: str) -> bool:
        """Normalise a raw reddit record and keep it, or record why not; tell which."""
        try:
            post = normalise(raw)
        except InvalidPost as error:
            self.reject(where, str(error))
            return False
        self.add_post(post)
        return True

    def reject(self, where: str, reason: str) -> None:
        """Record a row that was not imported."""
        self.rejected.append(Rejection(where, reason))

    def summary(self) -> str:
        """Describe the outcome in one line, naming the first few rejected rows."""
        text = f"{self.count} {'post' if self.count == 1 else 'posts'} imported"
        if self.duplicates:
            text += f" ({self.duplicates} duplicate {'id' if self.duplicates == 1 else 'ids'})"
        if not self.rejected:
            return text + ", none rejected"
        shown = "; ".join(f"{item.where}: {item.reason}" for item in self.rejected[:3])
        more = f"; and {len(self.rejected) - 3} more" if len(self.rejected) > 3 else ""
        return f"{text}, {len(self.rejected)} rejected ({shown}{more})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(text: str | bytes) -> Any:
    """Parse strict JSON: Python's json accepts NaN and Infinity, which no exporter writes.

    A text nested deeper than safejson.MAX_DEPTH is not JSON we read (a ValueError too).
    """
    return safejson.loads(text, parse_constant=_reject_constant)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else "an object"


def parse_mongoexport(
    lines: Iterable[str | bytes] | str | bytes, charset: str = "utf-8"
) -> ImportReport:
    """Import JSON lines as mongoexport writes them; report bad lines by number.

    Bytes are decoded line by line (in `charset`), so a bad byte costs its line only.
    """
    if isinstance(lines, str):
        # Not splitlines(): it also splits at U+2028 and friends, which JSON strings may hold.
        lines = lines.split("\n")
    elif isinstance(lines, bytes):
        lines = lines.split(b"\n")
    first_charset = "utf-8-sig" if charset in ("utf-8", "utf8") else charset
    report = ImportReport()
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        if isinstance(line, bytes):
            try:
                line = line.decode(first_charset if number == 1 else charset)
            except UnicodeDecodeError:
                report.reject(where, f"not {charset} text")
                continue
        line = line.removeprefix("\ufeff").strip()
        if not line:
            continue
        try:
            record = _loads(line)
        except ValueError as error:
            report.reject(where, f"not JSON ({error})")
            continue
        if not isinstance(record, dict):
            report.reject(where, f"expected a JSON object, found {_json_kind(record)}")
            continue
        report.add_record(record, where)
    return report


def _is_listing(document: Any) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == "Listing"
        and isinstance(document.get("data"), Mapping)
        and isinstance(document["data"].get("children"), list)
    )


def _add_listing(report: ImportReport, listing: Mapping[str, Any], prefix: str) -> None:
    for number, child in enumerate(listing["data"]["children"], start=1):
        where = f"{prefix}child {number}"
        if not isinstance(child, Mapping) or not isinstance(child.get("data"), Mapping):
            report.reject(where, 'not a reddit thing ({"kind": ..., "data": {...}})')
        elif child.get("kind") != "t3":
            kind = child.get("kind")
            what = "a comment" if kind == "t1" else f"kind {kind!r}"
            report.reject(where, f"{what}, not a post (kind t3)")
        else:
            report.add_record(child["data"], where)


def is_listing_document(document: Any) -> bool:
    """Tell whether parsed JSON is a reddit listing or an array of listings."""
    if isinstance(document, list):
        return bool(document) and all(map(_is_listing, document))
    return _is_listing(document)


def parse_records(records: Iterable[Mapping[str, Any]]) -> ImportReport:
    """Import raw reddit post records already in memory (the sample dataset)."""
    report = ImportReport()
    for number, record in enumerate(records, start=1):
        report.add_record(record, f"record {number}")
    return report


def parse_listing(document: Any) -> ImportReport:
    """Import the posts (kind t3) of a reddit listing, or of an array of listings."""
    if isinstance(document, str | bytes):
        try:
            document = _loads(document)
        except ValueError as error:
            raise ImportFormatError(f"not JSON ({error}); {NOT_A_LISTING}") from error
    report = ImportReport()
    if _is_listing(document):
        _add_listing(report, document, "")
        return report
    if isinstance(document, list) and document and all(map(_is_listing, document)):
        # A comment page is [the post's listing, the comments' listing].
        for number, listing in enumerate(document, start=1):
            _add_listing(report, listing, f"listing {number}, ")
        return report
    found = _json_kind(document)
    if isinstance(document, Mapping) and document.get("kind") != "Listing":
        found = f"an object of kind {document.get('kind')!r}"
    hint = ""
    if isinstance(document, Mapping) and "title" in document:
        hint = "; for one post per line (mongoexport), send application/x-ndjson"
    raise ImportFormatError(f"{NOT_A_LISTING}, found {found}{hint}")


def _media_type(content_type: str) -> tuple[str, str]:
    """Split "application/json; charset=utf-8" into its media type and charset."""
    media_type, *parameters = content_type.split(";")
    charset = "utf-8"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return media_type.strip().lower(), charset


def parse_upload(body: bytes, content_type: str) -> ImportReport:
    """Import an uploaded body by its content type: JSON lines or a reddit listing."""
    media_type, charset = _media_type(content_type or "")
    if media_type not in (*NDJSON_TYPES, JSON_TYPE):
        raise ImportFormatError(
            f"unsupported content type {media_type or '(none)'!r}: send {JSON_TYPE} "
            f"(a reddit listing) or {NDJSON_TYPES[0]} (mongoexport JSON lines)"
        )
    try:
        line_by_line = "\n".encode(charset) == b"\n"  # not so in UTF-16 or UTF-32
    except LookupError as error:
        raise ImportFormatError(f"unknown charset {charset!r}") from error
    if media_type in NDJSON_TYPES and line_by_line:
        # Each line decoded and parsed on its own: a bad byte or line is one rejected row.
        return parse_mongoexport(body, charset)
    try:
        text = body.decode("utf-8-sig" if charset in ("utf-8", "utf8") else charset)
    except UnicodeDecodeError as error:
        raise ImportFormatError(f"the body is not {charset} text") from error
    if media_type in NDJSON_TYPES:
        return parse_mongoexport(text)
    return parse_listing(text)


def _content_type_of(content: bytes) -> str | None:
    stripped = content.lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if stripped.startswith(b"["):
        return JSON_TYPE
    if not stripped.startswith(b"{"):
        return None
    # Decoding only the first line, leniently, leaves a bad byte further on for the parser
    # to report with its line number.
    first_line = stripped.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        first = _loads(first_line)
    except ValueError:
        # An object spread over several lines: a pretty-printed listing.
        return JSON_TYPE
    return JSON_TYPE if _is_listing(first) else NDJSON_TYPES[0]


def read_file(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """Read an import file for the CLI; return its bytes and the content type they look like.

    Gzipped files (by name or by content) are decompressed. Raise ImportFormatError if the
    content is neither JSON lines nor a listing; OSError if the file cannot be read.
    """
    with open(path, "rb") as file:
        content = file.read()
    if os.fspath(path).endswith(".gz") or content.startswith(GZIP_MAGIC):
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as error:
            raise ImportFormatError(f"{os.fspath(path)} is not a readable gzip file") from error
    if not content.strip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf"):
        return content, NDJSON_TYPES[0]
    content_type = _content_type_of(content)
    if content_type is None:
        raise ImportFormatError(
            f"{os.fspath(path)} is neither JSON lines (mongoexport) nor a reddit listing"
        )
    return content, content_type
