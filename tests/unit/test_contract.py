"""The contract's body checks are plain functions of bytes and a media type: no framework."""

import json

import pytest

from workshop import ingestion
from workshop.contract import ApiError, parse_json_object


def test_a_json_object_with_known_fields_is_returned():
    body = json.dumps({"tag": "python"}).encode()
    assert parse_json_object(body, "application/json", allowed=("tag",)) == {"tag": "python"}


@pytest.mark.parametrize(
    ("body", "mimetype", "status", "code"),
    [
        (b'{"tag": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"\xff\xfe\x00", "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 400, "malformed_json"),
        (b'{"tag": "x", "$where": "1"}', "application/json", 400, "unknown_field"),
        (b"{}", "application/json", 400, "missing_field"),
    ],
)
def test_anything_else_is_refused_with_its_reason(body, mimetype, status, code):
    with pytest.raises(ApiError) as refused:
        parse_json_object(body, mimetype, allowed=("tag",), required=("tag",))
    assert (refused.value.status, refused.value.code) == (status, code)


def test_json_suffix_media_types_are_json():
    assert parse_json_object(b"{}", "application/merge-patch+json", allowed=()) == {}


def test_an_ingest_body_names_its_source():
    assert ingestion.parse_request(b'{"source": "sample"}', "application/json").source == "sample"
    post = {"id": "a1", "title": "A post", "subreddit": "python", "created_utc": 1}
    upload = ingestion.parse_request(json.dumps(post).encode() + b"\n{}\n", "application/x-ndjson")
    assert (upload.source, upload.content_type) == ("upload", "application/x-ndjson")
    assert upload.report is not None and len(upload.report.posts) == 1
    assert len(upload.report.rejected) == 1  # the bad row is reported, not fatal
    listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": post}]}}
    assert ingestion.parse_request(json.dumps(listing).encode(), "application/json").source == (
        "upload"
    )


@pytest.mark.parametrize(
    ("body", "mimetype", "status"),
    [
        (b'{"source": "sample"}', "text/csv", 415),
        (b"{broken", "application/json", 400),
        (b'{"source": "disk", "path": "/etc/passwd"}', "application/json", 400),
        (b'{"source": "reddit", "subreddit": "python", "limit": 0}', "application/json", 400),
        # No row is a post: nothing to import.
        (b"{}\n", "application/x-ndjson", 400),
        (b"", "application/x-ndjson", 400),
        (b'{"kind": "Listing", "data": {"children": []}}', "application/json", 400),
    ],
)
def test_a_bad_ingest_body_is_refused(body, mimetype, status):
    with pytest.raises(ApiError) as refused:
        ingestion.parse_request(body, mimetype)
    assert refused.value.status == status


def test_json_is_read_up_to_400_levels_deep_and_refused_below():
    def nested(levels: int) -> bytes:  # {"tag": [[...]]}: the object is the first level
        return b'{"tag": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    assert parse_json_object(nested(400), "application/json", allowed=("tag",))
    for levels in (401, 5000):
        with pytest.raises(ApiError) as refused:
            parse_json_object(nested(levels), "application/json", allowed=("tag",))
        assert (refused.value.status, refused.value.code) == (400, "malformed_json")
        assert "nested deeper than 400 levels" in refused.value.message
