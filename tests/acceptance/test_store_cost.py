"""What a request costs the store: no query reads much more of a collection than it answers.

Each stage runs with the embedded store's profiler on (WORKSHOP_STORE_PROFILE: every query
of every process, as MongoDB's profiler writes `system.profile`), and a reader does what
the acceptance suite does, once of each kind: register and log in, search (one and two
terms, several pages), read posts, tag pages and the tag list, ask for recommendations
(anonymous and personal), set preferences, tag and untag, import a file, follow the job.
Every query made meanwhile, by the front door or by the services the writes travel
through (outbox, sync, the copies), must examine at most a small multiple of what it
returns: a query that scans a collection to answer a few documents fails, naming itself.

Start-up (loading the sample, a new service's first replay) is not counted: the profile
starts once the stage is ready. A background audit that reads a collection whole on purpose
(an owner's digest for sync, once after it published something, at most every few seconds)
says so in its query's comment, as a MongoDB query can: it is counted apart, and held to
how often it may run.
"""

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.acceptance.stage import Client, eventually
from tests.timing import scaled
from tooling.launcher import LaunchedStage
from tooling.stages import all_stages

# What a query may examine: this many documents per document it returns, plus a few (a
# ranked read walks past candidates that fail its filter; a small collection is read
# whole). The sample has 3,000 posts: a scan of them is far above it.
PER_RETURNED = 4
SLACK = 30
SETTLE_WITHIN = 60.0
AUDIT = "audit:"  # how a whole-collection read on purpose begins its comment
AUDIT_EVERY = 5.0  # a relay announces its digest at most this often (DRAINED_EVERY_SECONDS)
UPLOAD = "\n".join(
    json.dumps({"id": f"zc{n:04d}", "title": f"cost check {n} python", "subreddit": "python",
                "created_utc": 1_400_000_000 + n, "ups": 40 + n, "num_comments": n})
    for n in range(30)
) + "\n"  # fmt: skip


@pytest.fixture(scope="module", params=[stage.name for stage in all_stages()])
def profiled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A stage whose processes write every query to a profile file of the test's own."""
    folder = tmp_path_factory.mktemp("store-cost")
    profile = folder / "profile.jsonl"
    stage = LaunchedStage(request.param, folder, env={"WORKSHOP_STORE_PROFILE": str(profile),
                                                       "MONGO_URL": ""})  # fmt: skip
    stage.start()
    try:
        yield stage, profile
    finally:
        stage.stop()


def settled(url: str) -> bool:
    try:
        answer = requests.get(f"{url}/readyz", timeout=scaled(5))
        return answer.status_code == 200 and answer.json().get("settled", True) is True
    except (requests.RequestException, ValueError):
        return False


def drive(client: Client) -> None:
    """Make the acceptance suite's kinds of requests, once each (a few searches more)."""
    username, _, token = client.new_user("cost")
    for query, page in (("python", 1), ("python", 3), ("django flask", 1), ("gil threads", 2),
                        ("machine learning", 1), ("nothingmatchesthis", 1)):  # fmt: skip
        assert client.get("/api/search", params={"q": query, "page": page}).status_code == 200
    assert client.get("/search", params={"q": "asyncio"}).status_code == 200
    found = client.get("/api/search", params={"q": "python", "per_page": 3}).json()["items"]
    post_id = found[0]["id"]
    assert client.get(f"/api/posts/{post_id}").status_code == 200
    assert client.get(f"/posts/{post_id}").status_code == 200
    assert client.get("/api/posts/zzzzzz").status_code == 404
    tag = f"cost-{uuid.uuid4().hex[:6]}"
    added = client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": tag})
    assert added.status_code == 201, added.text
    eventually(lambda: client.get(f"/api/tags/{tag}/posts").json()["items"], bool, within=5)
    assert client.get(f"/tags/{tag}").status_code == 200
    assert client.get("/api/tags").status_code == 200
    assert client.get("/api/recommendations").status_code == 200
    preferences = client.put("/api/me/preferences", token=token, json={"topics": ["testing"]})
    assert preferences.status_code == 200
    assert client.get("/api/recommendations", token=token).status_code == 200
    assert client.get("/").status_code == 200
    removed = client.delete(f"/api/posts/{post_id}/tags/{tag}", token=token)
    assert removed.status_code == 204
    ndjson = {"Content-Type": "application/x-ndjson"}
    upload = client.post("/api/ingest", token=token, data=UPLOAD.encode(), headers=ndjson)
    job = upload.json()["job_id"]
    done = eventually(lambda: client.get(f"/api/jobs/{job}").json(),
                      lambda state: state["state"] in ("done", "failed"), within=60)  # fmt: skip
    assert done["state"] == "done", done
    assert username


def entries(profile: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in profile.read_text().splitlines() if line.strip()]


def test_no_query_reads_much_more_than_it_answers(profiled):
    stage, profile = profiled
    client = Client(stage.url)  # no importers named: every user may ingest (development)
    assert eventually(lambda: settled(stage.url), bool, within=SETTLE_WITHIN)
    profile.write_text("")  # start-up is not counted
    began = time.monotonic()
    drive(client)
    assert eventually(lambda: settled(stage.url), bool, within=SETTLE_WITHIN)
    time.sleep(0.5)  # the last copies' writes reach the profile file
    elapsed = time.monotonic() - began
    made = entries(profile)
    assert len(made) > 50, "the profile holds the queries of every process"
    audits = Counter((e["pid"], e["ns"]) for e in made if str(e.get("comment")).startswith(AUDIT))
    too_often = {where: n for where, n in audits.items() if n > elapsed / AUDIT_EVERY + 2}
    assert not too_often, f"audits more often than every {AUDIT_EVERY} s: {too_often}"
    made = [e for e in made if not str(e.get("comment")).startswith(AUDIT)]
    too_dear = [
        f"{e['ns']} {e['op']} {e['filter']} sort={e['sort']}: {e['planSummary']}, "
        f"examined {e['docsExamined']} for {e['nreturned']}"
        for e in made
        if e["docsExamined"] > PER_RETURNED * e["nreturned"] + SLACK
    ]
    assert not too_dear, "\n".join(sorted(set(too_dear)))
    scans = [e for e in made if e["planSummary"] == "COLLSCAN" and e["docsExamined"] > SLACK]
    assert not scans, scans[:5]
