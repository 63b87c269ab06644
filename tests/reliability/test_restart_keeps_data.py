"""A stage stopped and started again keeps what it acknowledged, as a database would.

On every stage: register, log in, tag a post, set preferences, import a file; stop the
stage with SIGTERM (as Ctrl-C does) and start it again on its data folder. Every write is
there, the token still works, the sample is not loaded a second time, and from stage 03
on the stage settles with every copy holding the writes (the search copy finds the
imported post and shows the tag, recommend's copy knows the preferences).
"""

import json
import uuid

import pytest
import requests

from tests.acceptance.stage import Client, eventually
from tests.timing import scaled
from tooling.launcher import START_TIMEOUT, LaunchedStage
from tooling.stages import all_stages

SETTLE_WITHIN = 90.0


def settled(url: str) -> bool:
    try:
        answer = requests.get(f"{url}/readyz", timeout=scaled(5))
        return answer.status_code == 200 and answer.json().get("settled", True) is True
    except (requests.RequestException, ValueError):
        return False


def upload(word: str) -> bytes:
    rows = [{"id": f"zr{n}{word[:6]}", "title": f"{word} restart check {n}",
             "subreddit": "python", "created_utc": 1_400_000_000 + n, "ups": 50 + n,
             "num_comments": 3} for n in range(5)]  # fmt: skip
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.mark.parametrize("name", [stage.name for stage in all_stages()])
def test_a_restarted_stage_keeps_every_acknowledged_write(name, tmp_path):
    stage = LaunchedStage(name, tmp_path, env={"MONGO_URL": ""})
    stage.start(scaled(START_TIMEOUT))
    try:
        client = Client(stage.url)
        username, password, token = client.new_user("kept")
        word = f"zq{uuid.uuid4().hex[:10]}"
        sample_total = client.get("/api/search", params={"q": "python"}).json()["total"]
        post_id = client.get("/api/search", params={"q": "python"}).json()["items"][0]["id"]
        tag = f"kept-{uuid.uuid4().hex[:6]}"
        assert client.post(f"/api/posts/{post_id}/tags", token=token,
                           json={"tag": tag}).status_code == 201  # fmt: skip
        assert client.put("/api/me/preferences", token=token,
                          json={"topics": ["testing"]}).status_code == 200  # fmt: skip
        ndjson = {"Content-Type": "application/x-ndjson"}
        job = client.post("/api/ingest", token=token, data=upload(word), headers=ndjson)
        job = job.json()["job_id"]
        state = eventually(lambda: client.get(f"/api/jobs/{job}").json(),
                           lambda s: s["state"] in ("done", "failed"), within=60)  # fmt: skip
        assert state["state"] == "done" and state["new"] == 5, state
        assert eventually(lambda: settled(stage.url), bool, within=SETTLE_WITHIN)
    finally:
        assert stage.stop() == 0, stage.log_tail()

    stage.start(scaled(START_TIMEOUT), fresh=False)  # the same data folder, new ports
    try:
        client = Client(stage.url)
        assert eventually(lambda: settled(stage.url), bool, within=SETTLE_WITHIN), stage.log_tail()
        # The token signed before the stop still names a user the stage knows.
        kept = client.get("/api/me/preferences", token=token)
        assert kept.status_code == 200 and kept.json()["topics"] == ["testing"], kept.text
        login = {"username": username, "password": password}
        assert client.post("/api/tokens", json=login).status_code == 200
        tags = client.get(f"/api/posts/{post_id}").json()["tags"]
        assert {"tag": tag, "count": 1} in tags, tags
        assert tag in [t["tag"] for t in client.get("/api/tags").json()["items"]]
        assert [p["id"] for p in client.get(f"/api/tags/{tag}/posts").json()["items"]] == [post_id]
        found = client.get("/api/search", params={"q": word}).json()
        assert found["total"] == 5, found
        # The sample was not loaded again (its posts are counted once).
        assert client.get("/api/search", params={"q": "python"}).json()["total"] == sample_total
        personal = client.get("/api/recommendations", token=token).json()
        assert personal["user"] == username
        assert all("testing" in post["topics"] for post in personal["items"]), personal
    finally:
        assert stage.stop() == 0, stage.log_tail()
