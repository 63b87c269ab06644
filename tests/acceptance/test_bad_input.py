"""Bad input on every JSON call answers 4xx in the error shape and changes nothing."""

import json
import uuid

import pytest

from tests.acceptance.stage import assert_error
from tests.acceptance.test_ingest import finished, new_record, searchable, start

OVERSIZED = b'{"tag": "' + b"x" * (128 * 1024) + b'"}'
# 5,000 levels in 10 KB: Python's json parser gives up (RecursionError) long before the end.
DEEP = b"[" * 5000 + b"]" * 5000
DEEP_FIELD = b'{"tag": ' + DEEP + b"}"


def json_calls(post_id, tag):
    """Every call that takes a JSON body: (method, path, needs a token)."""
    return [
        ("POST", "/api/users", False),
        ("POST", "/api/tokens", False),
        ("POST", f"/api/posts/{post_id}/tags", True),
        ("PUT", "/api/me/preferences", True),
    ]


@pytest.fixture
def calls(client):
    post_id = client.get("/api/search", params={"q": "pandas"}).json()["items"][0]["id"]
    return json_calls(post_id, "tag")


@pytest.fixture
def snapshot(client, user):
    """What bad input must not change: a post's tags, the user's preferences, the tag list."""
    _, _, token = user
    post_id = client.get("/api/search", params={"q": "pandas"}).json()["items"][0]["id"]

    def take():
        return (
            client.get(f"/api/posts/{post_id}").json()["tags"],
            client.get("/api/me/preferences", token=token).json(),
            client.get("/api/tags").json(),
        )

    return take


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2, 3]", 400),
        (b'"a string"', 400),
        (b"null", 400),
        (b"42", 400),
        (OVERSIZED, 413),
        (DEEP, 400),
        (DEEP_FIELD, 400),
    ],
    ids="malformed empty array string null number oversized deep deep-field".split(),
)
def test_malformed_bodies_answer_4xx_and_change_nothing(
    client, user, calls, snapshot, body, status
):
    _, _, token = user
    before = snapshot()
    for method, path, needs_token in calls:
        answer = client.request(
            method, path, token=token if needs_token else None, data=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert_error(answer, status)
    assert snapshot() == before


def test_a_body_that_is_not_json_answers_415(client, user, calls):
    _, _, token = user
    for method, path, needs_token in calls:
        answer = client.request(
            method, path, token=token if needs_token else None, data="tag=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert_error(answer, 415)


def test_an_oversized_ingest_upload_answers_413(client, importer):
    _, _, token = importer
    body = b"x" * (33 * 1024 * 1024)
    answer = client.post(
        "/api/ingest", token=token, data=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert_error(answer, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/api/search?q[$ne]=x",
        "/api/search?q=x&$where=1",
        "/api/search?q[$regex]=.*",
        "/api/recommendations?limit[$gt]=0",
        "/api/tags?tag[$ne]=x",
    ],
)
def test_operators_in_query_strings_answer_400(client, path):
    assert_error(client.get(path), 400)


def test_a_method_override_header_is_not_honoured(client, user):
    _, _, token = user
    post_id = client.get("/api/search", params={"q": "pandas"}).json()["items"][0]["id"]
    answer = client.get(
        f"/api/posts/{post_id}", token=token, headers={"X-HTTP-Method-Override": "DELETE"}
    )
    assert answer.status_code == 200
    assert client.get(f"/api/posts/{post_id}").status_code == 200


def test_a_request_line_too_long_answers_414(client):
    # The HTTP server refuses it before the app sees it (docs/openapi.yaml says so).
    answer = client.get("/api/search", params={"q": "asyncio", "pad": "x" * 9000})
    assert answer.status_code == 414


def test_deeply_nested_bodies_cannot_lock_anyone_out(client):
    """Bad bodies are the client's fault: a circuit breaker (03, 04) must not count them."""
    for _ in range(12):  # more than any breaker's threshold
        for path in ("/api/users", "/api/tokens"):
            answer = client.post(path, data=DEEP, headers={"Content-Type": "application/json"})
            assert_error(answer, 400)
    username, password, token = client.new_user("after_deep")  # register and log in: no 503
    assert client.get("/api/me/preferences", token=token).status_code == 200


def test_a_deeply_nested_ingest_body_answers_400(client, importer):
    _, _, token = importer
    for body in (b'{"source": ' + DEEP + b"}", b'{"kind": "Listing", "data": ' + DEEP + b"}"):
        answer = client.post(
            "/api/ingest", token=token, data=body, headers={"Content-Type": "application/json"}
        )
        assert_error(answer, 400)


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PATCH", "/api/search?q=x", {"GET"}),  # (nginx answers TRACE itself, without Allow)
        ("DELETE", "/api/users", {"POST"}),
        ("PATCH", "/api/me/preferences", {"GET", "PUT"}),
        ("PUT", "/healthz", {"GET"}),
        ("DELETE", "/", {"GET"}),  # a page too
    ],
)
def test_a_method_a_path_does_not_take_answers_405_saying_which_it_takes(
    client, method, path, allowed
):
    answer = client.request(method, path)
    assert answer.status_code == 405, answer.text[:200]
    said = {name.strip() for name in answer.headers.get("Allow", "").split(",")}
    assert allowed <= said and method not in said, answer.headers.get("Allow")
    if path.startswith("/api/"):
        assert_error(answer, 405)


@pytest.mark.parametrize("path", ["/api/search?q=%ff%fe", "/api/search?q=caf%E9", "/search?q=%ff"])
def test_a_query_string_that_is_not_utf8_answers_400(client, path):
    answer = client.get(path)
    assert answer.status_code == 400, answer.text[:200]
    if path.startswith("/api/"):
        assert assert_error(answer, 400)["code"] == "invalid_parameter"
        assert "%FF" not in answer.text and "\ufffd" not in answer.text  # nothing echoed


def test_a_lone_surrogate_is_no_text_and_answers_400(client, importer):
    """JSON may escape half of a UTF-16 pair; encoding it (to hash or store) raised a 500."""
    username = f"user_{uuid.uuid4().hex[:10]}"
    body = b'{"username": "%s", "password": "pw-long-enough-\\ud800"}' % username.encode()
    for path in ("/api/users", "/api/tokens"):
        answer = client.post(path, data=body, headers={"Content-Type": "application/json"})
        assert assert_error(answer, 400)["code"] == "malformed_json"
    post = json.dumps(new_record("surrogate")[1]).replace("surrogate", "surrogate\\udc00")
    upload = f'{{"kind": "Listing", "data": {{"children": [{{"kind": "t3", "data": {post}}}]}}}}'
    answer = client.post("/api/ingest", token=importer[2], data=upload.encode(),
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert_error(answer, 400)


def listing(*posts):
    return {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": p} for p in posts]}}


@pytest.mark.parametrize(
    "bad_row",
    [
        {},  # valid by the old document, refused by every stage
        {"created_utc": 1e300},  # the store holds 8-byte integers: a 500 before
        {"ups": -1e300},
        {"created_utc": -1},
    ],
    ids=["empty", "huge-time", "huge-ups", "before-1970"],
)
def test_a_post_that_is_not_one_is_a_rejected_row_and_alone_a_400(client, importer, bad_row):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, good = new_record(word)
    bad = {**new_record(word)[1], **bad_row} if bad_row else {}
    alone = client.post("/api/ingest", token=token, json=listing(bad))
    assert assert_error(alone, 400)["code"] == "no_posts"
    job = finished(client, start(client, token, json=listing(bad, good)))
    assert (job["state"], job["ingested"], job["rejected"]) == ("done", 1, 1), job
    searchable(client, word, post_id)
