"""Stage 03 and its async twin 04 on the real Redis: the gateway degrades and recovers,
routes versions and instances, lists each instance's version and health on /readyz, a
stopped service catches up, and the data survives a sync restart and bootstraps a new
service by replay. Each test runs on every stage whose writes travel through a sync
service. The stage's broker and registry share the test session's Redis database: the
instances a test starts register where the stage's gateway reads them."""

import collections
import datetime
import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.stage import assert_error, eventually
from tests.running import START_WITHIN
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port, is_ready
from tooling.stages import all_stages, get_stage

SETTLE_WITHIN = 60.0
TTL_SECONDS = 3  # an instance's registry entry outlives its last heartbeat by this much
CANARY_PERCENT = 30
# 03 and 04: the stages with a sync service (the same messaging, threads or an event loop).
SYNCED_STAGES = [
    stage.name for stage in all_stages() if "sync" in {p.name for p in stage.processes()}
]


@pytest.fixture(scope="module", params=SYNCED_STAGES)
def stage(request, redis_databases):
    services = get_stage(request.param)
    with redis_databases.database() as redis_url:  # the module's own, empty
        # Room above the stage's own ports for the extra instances the tests start.
        runner = StageRunner(
            services,
            free_base_port(len(services.processes()) + 3),
            {"BROKER_URL": redis_url, "REGISTRY_URL": redis_url,
             "RECOMMEND_CANARY_PERCENT": str(CANARY_PERCENT)},
        )  # fmt: skip
        runner.start()
        try:
            ready = runner.wait_ready(scaled(START_WITHIN))
            assert ready, f"{request.param} did not become ready on Redis"
            yield runner
        finally:
            runner.stop()


def front(stage: StageRunner) -> str:
    return f"http://127.0.0.1:{stage.port}"


def port_of(stage: StageRunner, process: str) -> int:
    return stage.stage.ports(stage.port)[process]


def extra_port(stage: StageRunner, n: int) -> int:
    return stage.port + 100 * (len(stage.stage.processes()) + n)


def settled(stage: StageRunner) -> bool:
    """Wait until the stage is ready and nothing waits in any queue or outbox."""

    def answer() -> bool:
        try:
            ready = requests.get(f"{front(stage)}/readyz", timeout=scaled(5))
        except requests.RequestException:
            return False
        return ready.status_code == 200 and ready.json()["settled"] is True

    return eventually(answer, bool, within=SETTLE_WITHIN)


def stats(stage: StageRunner, port: int) -> dict[str, int]:
    return requests.get(f"http://127.0.0.1:{port}/stats", timeout=scaled(5)).json()["collections"]


def master_posts(stage: StageRunner) -> int:
    """Return how many posts the owner holds: ingest's store on 03. On 04 the posts are the
    Celery worker's, which serves no HTTP: search's copy stands in, the others must match it."""
    owner = stats(stage, port_of(stage, "ingest"))
    return owner["posts"] if "posts" in owner else stats(stage, port_of(stage, "search"))["posts"]


def test_the_home_page_degrades_without_recommend_and_recovers(stage):
    url = front(stage)
    stage.stop_process("recommend_v1")
    stage.stop_process("recommend_v2")
    try:
        home = requests.get(url, timeout=scaled(10))
        assert home.status_code == 200 and "Recommendations are unavailable" in home.text
        assert (
            requests.get(f"{url}/search", params={"q": "flask"}, timeout=scaled(10)).status_code
            == 200
        )
        assert_error(requests.get(f"{url}/api/recommendations", timeout=scaled(10)), 503)
        ready = requests.get(f"{url}/readyz", timeout=scaled(10)).json()
        assert ready["status"] == "degraded" and not ready["dependencies"]["recommend-v1"]["ok"]
    finally:
        stage.restart_process("recommend_v1")
        stage.restart_process("recommend_v2")
    assert settled(stage)
    answer = eventually(
        lambda: requests.get(f"{url}/api/recommendations", timeout=scaled(10)),
        lambda a: a.status_code == 200,
        within=SETTLE_WITHIN,
    )
    assert len(answer.json()["items"]) == 12


def test_the_pages_degrade_without_tag_and_say_what_is_missing(stage):
    url = front(stage)
    username, _ = register(url)
    post_id = requests.get(f"{url}/api/search", params={"q": "flask"}, timeout=scaled(10)).json()[
        "items"
    ][0]["id"]
    browser = requests.Session()  # the pages, as a browser uses them: a session cookie
    form = browser.get(f"{url}/login", timeout=scaled(10)).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    credentials = {"username": username, "password": "correct horse", "csrf_token": csrf}
    landed = browser.post(f"{url}/login", data=credentials, timeout=scaled(10))
    assert f"Signed in as <b>{username}</b>" in landed.text
    stage.stop_process("tag")
    try:
        home = browser.get(url, timeout=scaled(10))
        assert home.status_code == 200 and "Popular tags are unavailable right now." in home.text
        page = browser.get(f"{url}/posts/{post_id}", timeout=scaled(10))
        assert page.status_code == 200 and "Your tags are unavailable right now." in page.text
    finally:
        stage.restart_process("tag")
    assert settled(stage)
    page = eventually(
        lambda: browser.get(f"{url}/posts/{post_id}", timeout=scaled(10)),
        lambda answer: "Your tags are unavailable" not in answer.text,
        within=SETTLE_WITHIN,
    )
    assert page.status_code == 200


def test_the_version_header_picks_recommend_and_the_canary_splits_traffic(stage):
    url = front(stage)
    for version in ("1", "2"):
        answer = requests.get(
            f"{url}/api/recommendations",
            headers={"X-Recommend-Version": version},
            timeout=scaled(10),
        )
        assert answer.headers["X-Recommend-Version"] == version
    v1 = requests.get(
        f"{url}/api/recommendations", headers={"X-Recommend-Version": "1"}, timeout=scaled(10)
    ).json()
    v2 = requests.get(
        f"{url}/api/recommendations", headers={"X-Recommend-Version": "2"}, timeout=scaled(10)
    ).json()
    assert [p["id"] for p in v1["items"]] != [p["id"] for p in v2["items"]], (
        "two formulas, two lists"
    )

    served = collections.Counter(
        requests.get(f"{url}/api/recommendations", params={"limit": 1}, timeout=scaled(10)).headers[
            "X-Recommend-Version"
        ]
        for _ in range(400)
    )
    share = served["2"] / 400
    # 400 draws at 30%: the standard deviation is 2.3 points; 20-40% is over 4 of them.
    assert 0.20 < share < 0.40, served


def test_the_gateway_spreads_calls_over_live_instances_and_drops_a_dead_one(stage):
    url = front(stage)
    port = extra_port(stage, 0)
    stage.start_extra("search_b", "search", port, {"INSTANCE": "b"})
    try:

        def served_by() -> set[str]:
            return {
                requests.get(
                    f"{url}/api/search", params={"q": "django"}, timeout=scaled(10)
                ).headers["X-Served-By"]
                for _ in range(12)
            }

        both = eventually(served_by, lambda s: len(s) == 2, within=SETTLE_WITHIN)
        assert both == {f"search@{port_of(stage, 'search')}", f"search-b@{port}"}
    finally:
        stage.stop_process("search_b")
    # The dead instance's key expires (TTL 3 s); meanwhile a failed read is retried elsewhere.
    answers = [
        requests.get(f"{url}/api/search", params={"q": "django"}, timeout=scaled(10))
        for _ in range(30)
    ]
    assert all(a.status_code == 200 for a in answers)
    assert eventually(served_by, lambda s: s == {f"search@{port_of(stage, 'search')}"}, within=10)


def search_instances(stage: StageRunner) -> list[dict]:
    """Return the search instances the gateway's /readyz lists."""
    answer = requests.get(f"{front(stage)}/readyz", timeout=scaled(10))
    return answer.json()["dependencies"]["search"].get("instances", [])


def instances_on_metrics(stage: StageRunner, service: str) -> float | None:
    """Return the gateway's `gateway_instances` gauge for a service (None: not shown)."""
    answer = requests.get(f"{front(stage)}/metrics", timeout=scaled(10))
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "gateway_instances" and sample.labels["service"] == service:
                return sample.value
    return None


def test_readiness_lists_every_instance_with_its_version_and_health(stage):
    """Each instance says in the registry which code it runs (SERVICE_VERSION overrides the
    project's version: a canary) and since when; the gateway's /readyz checks each one. A
    killed instance, whose heartbeat cannot leave, drops out when its entry's TTL ends."""
    own = f"http://127.0.0.1:{port_of(stage, 'search')}"
    port = extra_port(stage, 2)
    canary = f"canary-{uuid.uuid4().hex[:6]}"
    # INSTANCE=b: the queue and store the test above gave a second search, not one more.
    stage.start_extra("search_canary", "search", port, {"INSTANCE": "b", "SERVICE_VERSION": canary})
    try:
        listed = eventually(
            lambda: search_instances(stage),
            lambda found: len(found) == 2 and all(i["status"] == "ready" for i in found),
            within=SETTLE_WITHIN,
        )
        versions = {i["address"]: i["version"] for i in listed}
        assert versions == {own: importlib.metadata.version("workshop"),
                            f"http://127.0.0.1:{port}": canary}  # fmt: skip
        for instance in listed:
            assert datetime.datetime.fromisoformat(instance["started"]).tzinfo is not None
            assert isinstance(instance["ms"], int | float)
        assert eventually(lambda: instances_on_metrics(stage, "search"), lambda n: n == 2,
                          within=10)  # fmt: skip
    finally:
        child = stage.children["search_canary"]
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)  # no clean exit: the entry outlives it
            child.wait()
    # Killed, it stops answering at once and leaves the list when its entry expires.
    left = eventually(
        lambda: search_instances(stage), lambda found: len(found) == 1, within=TTL_SECONDS + 5
    )
    assert [(i["address"], i["status"]) for i in left] == [(own, "ready")]
    assert eventually(lambda: instances_on_metrics(stage, "search"), lambda n: n == 1, within=10)
    assert requests.get(f"{front(stage)}/readyz", timeout=scaled(10)).status_code == 200


def test_a_sync_restart_mid_stream_loses_nothing_and_duplicates_nothing(stage):
    url = front(stage)
    _, token = register(url)
    word = f"zq{uuid.uuid4().hex[:8]}"
    records = [
        {"id": f"{word}{i:05d}", "title": f"Batch {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": i % 50, "ups": i % 50, "downs": 0, "num_comments": 1}
        for i in range(1500)
    ]  # fmt: skip
    body = "\n".join(json.dumps(record) for record in records).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(60))
    assert answer.status_code == 202
    stage.restart_process("sync")  # while the relay is still publishing the 1,500 changes
    assert settled(stage)
    total = eventually(
        lambda: requests.get(f"{url}/api/search", params={"q": word}, timeout=scaled(10)).json()[
            "total"
        ],
        lambda n: n == 1500,
        within=SETTLE_WITHIN,
    )
    assert total == 1500
    master = master_posts(stage)
    for process in ("search", "recommend_v1", "recommend_v2", "tag"):
        assert stats(stage, port_of(stage, process))["posts"] == master, process


def test_a_service_restarted_cleanly_keeps_its_data(stage):
    """The embedded store is saved at a clean stop and read back at start, as a database
    server would keep it: sync's log goes on from where it was (a replay needs all of it)."""
    sync = f"http://127.0.0.1:{port_of(stage, 'sync')}"
    head = requests.get(f"{sync}/api/sync/subscribers", timeout=scaled(10)).json()["head"]
    assert head > 0
    stage.restart_process("sync")
    assert eventually(lambda: is_ready(sync), bool, within=SETTLE_WITHIN)
    after = requests.get(f"{sync}/api/sync/subscribers", timeout=scaled(10)).json()["head"]
    assert after >= head, f"sync's log restarted at {after} (it was at {head})"


def test_a_stopped_service_catches_up_when_it_comes_back(stage):
    url = front(stage)
    _, token = register(url)
    word = f"zc{uuid.uuid4().hex[:8]}"
    records = [
        {"id": f"{word}{i:04d}", "title": f"Missed {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": i, "ups": i, "downs": 0, "num_comments": 1}
        for i in range(200)
    ]  # fmt: skip
    body = "\n".join(json.dumps(record) for record in records).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    before = stats(stage, port_of(stage, "tag"))["posts"]
    stage.stop_process("search")
    try:
        answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(60))
        assert answer.status_code == 202
        job = eventually(
            lambda: requests.get(
                f"{url}/api/jobs/{answer.json()['job_id']}", timeout=scaled(10)
            ).json(),
            lambda job: job["state"] in ("done", "failed"),
            within=SETTLE_WITHIN,
        )
        assert job["state"] == "done" and job["new"] == 200, job
        # The others have them while search is down; its queue keeps them meanwhile.
        tagged = eventually(lambda: stats(stage, port_of(stage, "tag"))["posts"],
                            lambda n: n == before + 200, within=SETTLE_WITHIN)  # fmt: skip
        assert tagged == before + 200
    finally:
        stage.restart_process("search")
    assert settled(stage)
    total = eventually(
        lambda: requests.get(f"{url}/api/search", params={"q": word}, timeout=scaled(10)).json()[
            "total"
        ],
        lambda n: n == 200,
        within=SETTLE_WITHIN,
    )
    assert total == 200
    copies = {
        p: stats(stage, port_of(stage, p))["posts"] for p in ("search", "tag", "recommend_v1")
    }
    assert len(set(copies.values())) == 1, copies


def test_a_new_recommend_instance_is_filled_by_replay_and_agrees_with_v1(stage):
    url = front(stage)
    port = extra_port(stage, 1)
    name = f"recommend-v1-{uuid.uuid4().hex[:6]}"
    stage.start_extra("recommend_new", "recommend_v1", port, {"RECOMMEND_NAME": name})
    try:
        master = master_posts(stage)
        # It says ready only once its replay is in: at its first 200 it holds every post.
        assert eventually(lambda: is_ready(f"http://127.0.0.1:{port}"), bool, within=SETTLE_WITHIN)
        assert stats(stage, port)["posts"] == master
        fresh = requests.get(
            f"http://127.0.0.1:{port}/api/recommendations", params={"limit": 20}, timeout=scaled(10)
        ).json()
        v1 = requests.get(f"{url}/api/recommendations", params={"limit": 20},
                          headers={"X-Recommend-Version": "1"},
                          timeout=scaled(10)).json()  # fmt: skip
        assert [p["id"] for p in fresh["items"]] == [p["id"] for p in v1["items"]]
    finally:
        stage.stop_process("recommend_new")


def test_the_replay_command_re_sends_a_subscriber_everything(stage):
    """`workshop sync replay SERVICE --port P`: 03's sync replays as it answers, 04's
    replay is a Celery task (the worker asks sync by message); either ends with the count."""
    workshop = Path(sys.executable).with_name("workshop")
    env = {**os.environ, "BROKER_URL": stage.env["BROKER_URL"]}
    done = subprocess.run(
        [str(workshop), "sync", "replay", "recommend-v2", "--port", str(stage.port)],
        env=env, capture_output=True, text=True, timeout=scaled(120),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("sent ") and last.endswith(" changes to recommend-v2"), last
    assert int(last.split()[1]) >= master_posts(stage)


def register(url: str) -> tuple[str, str]:
    username = f"it_{uuid.uuid4().hex[:10]}"
    requests.post(
        f"{url}/api/users",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    )
    token = requests.post(
        f"{url}/api/tokens",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    )
    return username, token.json()["token"]


def test_concurrent_writers_lose_no_change(stage):
    """Twenty users tag one post at once: every count reaches every copy."""
    from concurrent.futures import ThreadPoolExecutor

    url = front(stage)
    post_id = requests.get(f"{url}/api/search", params={"q": "pandas"}, timeout=scaled(10)).json()[
        "items"
    ][0]["id"]
    tag = f"race-{uuid.uuid4().hex[:8]}"
    tokens = [register(url)[1] for _ in range(20)]

    def tag_it(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.post(
            f"{url}/api/posts/{post_id}/tags",
            json={"tag": tag},
            headers=headers,
            timeout=scaled(10),
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert set(pool.map(tag_it, tokens)) == {201}

    def count() -> int:
        tags = requests.get(f"{url}/api/posts/{post_id}", timeout=scaled(10)).json()["tags"]
        return next((t["count"] for t in tags if t["tag"] == tag), 0)

    assert eventually(count, lambda n: n == 20, within=SETTLE_WITHIN) == 20


def messages_read(stage: StageRunner, process: str) -> dict[tuple[str, str, str], float]:
    """Return a process's message counts from /metrics: (read|refused, type, version) -> n."""
    answer = requests.get(f"http://127.0.0.1:{port_of(stage, process)}/metrics", timeout=scaled(10))
    names = {"consumer_messages_read": "read", "consumer_messages_dead_lettered": "refused"}
    return {
        (names[s.name], s.labels["type"], s.labels["version"]): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
        if s.name in names
    }


def test_each_reader_gets_post_upserted_in_a_version_it_reads(stage):
    """Ingest publishes post.upserted version 2; recommend-v2 reads it whole, every other
    reader gets version 1 from sync (the new field taken off), and nobody refuses a thing:
    every producer's messages follow their schema as each consumer checks it."""
    url = front(stage)
    _, token = register(url)
    word = f"zv{uuid.uuid4().hex[:8]}"
    records = [
        {"id": f"{word}{i}", "title": f"Versions {word} {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": 5, "ups": 9, "downs": 1, "num_comments": 2}
        for i in range(3)
    ]  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    body = "\n".join(json.dumps(record) for record in records).encode()
    answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(60))
    assert answer.status_code == 202
    assert settled(stage)
    found = requests.get(f"{url}/api/search", params={"q": word}, timeout=scaled(10)).json()
    assert found["total"] == 3

    listed = requests.get(
        f"http://127.0.0.1:{port_of(stage, 'sync')}/api/sync/subscribers", timeout=scaled(10)
    )
    reads = {s["queue"]: s["reads"] for s in listed.json()["items"]}
    assert reads["recommend-v2"]["post.upserted"] == [1, 2]
    assert reads["recommend-v1"]["post.upserted"] == [1] and reads["search"]["post.upserted"] == [1]

    counts = {p: messages_read(stage, p) for p in ("sync", "search", "tag", "recommend_v1",
                                                    "recommend_v2")}  # fmt: skip
    assert counts["sync"].get(("read", "post.upserted", "2"), 0) >= 3, counts["sync"]
    assert counts["recommend_v2"].get(("read", "post.upserted", "2"), 0) >= 3
    for process in ("search", "tag", "recommend_v1"):
        assert counts[process].get(("read", "post.upserted", "1"), 0) >= 3, process
        assert ("read", "post.upserted", "2") not in counts[process], process
    for process, found_counts in counts.items():
        refused = {key: n for key, n in found_counts.items() if key[0] == "refused" and n}
        assert not refused, (process, refused)
        ready = requests.get(
            f"http://127.0.0.1:{port_of(stage, process)}/readyz", timeout=scaled(10)
        )
        dead_letters = ready.json()["dependencies"]["dead_letters"]
        assert dead_letters["ok"] and dead_letters["refused"] == 0, (process, dead_letters)
