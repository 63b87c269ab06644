"""Ingest: the sample, an uploaded file, or a live fetch, as a job to follow."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.acceptance.stage import assert_error, eventually
from tests.timing import scaled

JOB_WITHIN = 60.0
WORKSHOP = str(Path(sys.executable).with_name("workshop"))
NDJSON = {"Content-Type": "application/x-ndjson"}


def finished(client, job_id):
    return eventually(
        lambda: client.get(f"/api/jobs/{job_id}").json(),
        lambda job: job["state"] in ("done", "failed"),
        within=JOB_WITHIN,
    )


def start(client, token, **kwargs):
    answer = client.post("/api/ingest", token=token, **kwargs)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def new_record(word):
    post_id = uuid.uuid4().hex[:10]
    return post_id, {
        "id": post_id, "title": f"Ingested {word} post about asyncio", "subreddit": "python",
        "author": "tester", "created_utc": 1.37e9, "score": 42, "ups": 44, "downs": 2,
        "num_comments": 3, "is_self": "True", "selftext": f"{word} body", "edited": "False",
    }  # fmt: skip


def searchable(client, word, post_id):
    return eventually(
        lambda: client.get("/api/search", params={"q": word}).json()["items"],
        lambda items: [p["id"] for p in items] == [post_id],
    )


def test_reingesting_the_sample_changes_nothing(client, importer):
    _, _, token = importer
    before = client.get("/api/search", params={"q": "python", "per_page": 100}).json()
    job = finished(client, start(client, token, json={"source": "sample"}))
    assert job["state"] == "done", job
    assert job["ingested"] >= 1000
    # Every post is already stored as the sample has it: an upsert that modifies nothing.
    assert (job["new"], job["updated"], job["unchanged"]) == (0, 0, job["ingested"])
    after = client.get("/api/search", params={"q": "python", "per_page": 100}).json()
    assert after["total"] == before["total"]
    assert [p["id"] for p in after["items"]] == [p["id"] for p in before["items"]]


def test_upload_mongoexport_lines_with_a_bad_row(client, importer):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, record = new_record(word)
    lines = [
        json.dumps({"_id": {"$oid": "5a0b1c2d3e4f506172839405"}, **record}),
        "{this is not json",
        json.dumps({"_id": {"$oid": "5a0b1c2d3e4f506172839406"}, "title": "no id"}),
    ]
    body = ("\n".join(lines) + "\n").encode()
    job_id = start(client, token, data=body, headers={"Content-Type": "application/x-ndjson"})
    job = finished(client, job_id)
    assert job["state"] == "done" and job["ingested"] == 1 and job["rejected"] == 2
    assert (job["new"], job["updated"], job["unchanged"]) == (1, 0, 0)
    found = searchable(client, word, post_id)
    assert found[0]["is_self"] is True and found[0]["created_utc"] == 1370000000
    assert found[0]["tags"] == []


def test_a_deeply_nested_line_is_a_rejected_row(client, importer):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, record = new_record(word)
    deep = b'{"id": "abc", "title": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    body = json.dumps(record).encode() + b"\n" + deep + b"\n"
    job = finished(client, start(client, token, data=body, headers=NDJSON))
    assert (job["state"], job["ingested"], job["rejected"]) == ("done", 1, 1), job
    searchable(client, word, post_id)


def test_a_line_with_a_bad_byte_is_a_rejected_row_and_the_rest_is_imported(client, importer):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    first_id, first = new_record(word)
    second_id, second = new_record(word)
    broken = json.dumps({**new_record(word)[1], "title": "caf\u00e9"}).encode()
    broken = broken.replace(b"caf\\u00e9", b"caf\xe9")  # Latin-1, not UTF-8
    lines = [json.dumps(first).encode(), broken, json.dumps(second).encode()]
    job = finished(client, start(client, token, data=b"\n".join(lines), headers=NDJSON))
    assert (job["state"], job["ingested"], job["rejected"]) == ("done", 2, 1), job
    found = eventually(
        lambda: {p["id"] for p in client.get("/api/search", params={"q": word}).json()["items"]},
        lambda ids: ids == {first_id, second_id},
    )
    assert found == {first_id, second_id}


def test_upload_a_reddit_listing(client, importer):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, record = new_record(word)
    listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": record}]}}
    job = finished(client, start(client, token, json=listing))
    assert job["state"] == "done" and job["ingested"] == 1
    searchable(client, word, post_id)


def test_reimporting_a_post_keeps_its_tags(client, importer):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, record = new_record(word)
    listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": record}]}}
    finished(client, start(client, token, json=listing))
    searchable(client, word, post_id)
    # From stage 03 the tag service learns of the post through the broker, a moment later.
    eventually(
        lambda: client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": "kept"}),
        lambda answer: answer.status_code == 201,
    )
    eventually(lambda: client.get(f"/api/posts/{post_id}").json()["tags"], lambda tags: tags)
    record["score"] = 99
    finished(client, start(client, token, json=listing))
    post = eventually(
        lambda: client.get(f"/api/posts/{post_id}").json(), lambda p: p["score"] == 99
    )
    assert post["score"] == 99 and post["tags"] == [{"tag": "kept", "count": 1}]


def test_a_live_fetch_that_cannot_reach_reddit_fails_as_a_job(client, importer):
    _, _, token = importer
    job_id = start(client, token, json={"source": "reddit", "subreddit": "python", "limit": 5})
    job = finished(client, job_id)
    assert job["state"] == "failed" and job["error"]


def test_ingest_needs_a_token(client):
    assert_error(client.post("/api/ingest", json={"source": "sample"}), 401)


def test_only_importers_may_ingest_and_others_change_nothing(client, user, importer):
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, record = new_record(word)
    listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": record}]}}
    finished(client, start(client, importer[2], json=listing))
    before = searchable(client, word, post_id)[0]
    # Any other user: the title and links of a post stay as the importer left them.
    hijack = {**record, "title": f"{word} hijacked", "url": "https://evil.example/"}
    for kwargs in (
        {"json": {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": hijack}]}}},
        {"data": json.dumps(hijack).encode(), "headers": NDJSON},
        {"json": {"source": "sample"}},
    ):
        error = assert_error(client.post("/api/ingest", token=user[2], **kwargs), 403)
        assert error["code"] == "forbidden"
    assert client.get(f"/api/posts/{post_id}").json() == before


def test_an_operator_names_an_importer_on_a_running_stage(stage, client, user):
    if not stage.local:
        pytest.skip("`workshop importers add` names importers on a stage `workshop up` runs")
    username, _, token = user
    upload = {"data": json.dumps(new_record("named")[1]).encode(), "headers": NDJSON}
    assert_error(client.post("/api/ingest", token=token, **upload), 403)
    added = subprocess.run(
        [WORKSHOP, "importers", "add", username, "--port", str(stage.port)],
        capture_output=True, text=True, timeout=scaled(60),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert username in added.stdout
    # The stage's processes read the run's importers again: the next call may ingest.
    assert client.post("/api/ingest", token=token, **upload).status_code == 202


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"source": "disk", "path": "/etc/passwd"}},
        {"json": {"source": "file"}},
        {"json": {"source": "sample", "path": "/etc/passwd"}},
        {"json": {"source": "reddit", "subreddit": "../../etc"}},
        {"json": {"source": "reddit", "subreddit": "python", "limit": 0}},
        {"json": {"source": "reddit", "subreddit": "python", "limit": "10"}},
        {"json": {"source": {"$ne": None}}},
        {"json": "sample"},
        {"json": {"kind": "Listing"}},
        {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
        # An upload in which no row is a post is refused whole: there is nothing to import.
        {"data": b"{}\n", "headers": {"Content-Type": "application/x-ndjson"}},
        {"data": b"{}\n[]\n", "headers": {"Content-Type": "application/x-ndjson"}},
        {"json": {"kind": "Listing", "data": {"children": [{"kind": "t1", "data": {}}]}}},
    ],
)
def test_bad_ingest_requests_answer_400(client, importer, kwargs):
    _, _, token = importer
    assert_error(client.post("/api/ingest", token=token, **kwargs), 400)


def test_an_unknown_body_type_answers_415(client, importer):
    _, _, token = importer
    answer = client.post(
        "/api/ingest", token=token, data=b"a,b", headers={"Content-Type": "text/csv"}
    )
    assert_error(answer, 415)


def test_an_unknown_job_answers_404(client):
    assert_error(client.get("/api/jobs/no-such-job"), 404)
