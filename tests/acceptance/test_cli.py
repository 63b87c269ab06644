"""The `workshop` command, as a user runs it against a running stage."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.acceptance.stage import Client, eventually
from tests.timing import scaled
from tooling.launcher import LaunchedStage
from tooling.runner import free_base_port
from tooling.stages import all_stages, get_stage
from workshop import roles

WORKSHOP = str(Path(sys.executable).with_name("workshop"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The fixtures' unusable rows: no id, an empty title, a permalink off reddit (and no
# subreddit), a blank title.
UNUSABLE = {"", "1fyp4c", "1fyp6r", "1fzq9z"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WORKSHOP, *args], capture_output=True, text=True, timeout=scaled(300),
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_import_a_file_into_a_running_stage(stage, client, tmp_path):
    username, password, _ = client.new_importer()
    sample = tmp_path / "small.ndjson"
    made = run("data", "sample", "--count", "40", "--out", str(sample))
    assert made.returncode == 0 and "wrote 40 posts" in made.stdout
    login = ("--url", stage.url, "--username", username, "--password", password)
    imported = run("data", "import", str(sample), *login)
    assert imported.returncode == 0, imported.stderr
    assert "imported 40 posts: 40 new, 0 updated, 0 unchanged (0 rejected rows)" in imported.stdout
    # The second import stores nothing: every post is already there, as it is in the file.
    again = run("data", "import", str(sample), *login)
    assert again.returncode == 0, again.stderr
    assert "imported 40 posts: 0 new, 0 updated, 40 unchanged (0 rejected rows)" in again.stdout


def test_import_reports_bad_rows_and_imports_the_rest(stage, client, tmp_path):
    username, password, _ = client.new_importer()
    word = f"zq{uuid.uuid4().hex[:8]}"
    upload = tmp_path / "mixed.ndjson"
    record = {"id": word, "title": f"{word} post", "subreddit": "python", "created_utc": 1.37e9}
    upload.write_text(json.dumps(record) + "\n{broken\n")
    credentials = {"WORKSHOP_USERNAME": username, "WORKSHOP_PASSWORD": password}
    imported = run("data", "import", str(upload), "--url", stage.url, env=credentials)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 posts: 1 new, 0 updated, 0 unchanged (1 rejected rows)" in imported.stdout
    found = eventually(
        lambda: client.get("/api/search", params={"q": word}).json()["total"], lambda n: n == 1
    )
    assert found == 1
    # The same post with a new score: stored again, as an update.
    upload.write_text(json.dumps({**record, "score": 77}) + "\n{broken\n")
    again = run("data", "import", str(upload), "--url", stage.url, env=credentials)
    assert again.returncode == 0, again.stderr
    assert "imported 1 posts: 0 new, 1 updated, 0 unchanged (1 rejected rows)" in again.stdout
    scores = eventually(
        lambda: [p["score"] for p in client.get("/api/search", params={"q": word}).json()["items"]],
        lambda found: found == [77],
    )
    assert scores == [77]


def fixture_rows(name: str) -> list[dict]:
    """Return the raw post records of a fixture file (JSON lines or a listing)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    if name.endswith(".json"):
        return [c["data"] for c in json.loads(text)["data"]["children"] if c["kind"] == "t3"]
    return [json.loads(line) for line in text.splitlines()]


def published_changes(stage, client) -> int | None:
    """Return how many changes stage 03's sync log holds once all are delivered (else None)."""
    ports = get_stage(stage.name).ports(stage.port)
    if "sync" not in ports:
        return None
    heads: list[int] = []

    def settled_head() -> int | None:
        status = run("sync", "status", "--url", f"http://127.0.0.1:{ports['sync']}")
        assert status.returncode == 0, status.stderr
        heads.append(int(status.stdout.split()[2]))  # "log head: 1234"
        # Settled, and no change arrived since the last look.
        steady = len(heads) > 1 and heads[-1] == heads[-2]
        return heads[-1] if steady and client.get("/readyz").json().get("settled") else None

    head = eventually(settled_head, lambda found: found is not None, within=60)
    assert head is not None, f"the sync log did not settle: {heads[-5:]}"
    return head


@pytest.mark.parametrize(
    ("fixture", "good", "rejected"),
    [("old-reddit.ndjson", 30, 3), ("old-reddit-listing.json", 4, 2)],
)
def test_import_an_older_reddit_export(stage, client, fixture, good, rejected):
    username, password, _ = client.new_importer()
    login = ("--url", stage.url, "--username", username, "--password", password)
    imported = run("data", "import", str(FIXTURES / fixture), *login)
    assert imported.returncode == 0, imported.stderr
    assert f"imported {good} posts: {good} new, 0 updated, 0 unchanged" in imported.stdout
    assert f"({rejected} rejected rows)" in imported.stdout
    rows = [row for row in fixture_rows(fixture) if row.get("id") not in UNUSABLE]
    assert len(rows) == good
    for row in rows:
        url = f"/api/posts/{row['id']}"
        answer = eventually(lambda url=url: client.get(url), lambda a: a.status_code == 200)
        assert answer.status_code == 200, (row["id"], answer.text)
        post = answer.json()
        path = urlsplit(row["permalink"]).path  # stored as a path on reddit
        assert post["permalink"] == path
        assert post["subreddit"] == row.get("subreddit", path.split("/")[2])
        assert post["created_utc"] == int(float(row["created_utc"]))
        assert type(post["created_utc"]) is int
        assert post["is_self"] is (str(row["is_self"]) == "True")
        for field in ("score", "ups", "downs", "num_comments"):
            assert type(post[field]) is int, (field, post)
        if isinstance(row["score"], int):
            assert post["score"] == row["score"]
        assert post["title"] == row["title"]
        query = {"q": row["title"], "per_page": 100}
        found = eventually(
            lambda query=query: [
                p["id"] for p in client.get("/api/search", params=query).json()["items"]
            ],
            lambda ids, post_id=row["id"]: post_id in ids,
        )
        assert row["id"] in found, row["title"]
    # Again: nothing new, nothing changed, and (from stage 03) nothing published again.
    before = published_changes(stage, client)
    again = run("data", "import", str(FIXTURES / fixture), *login)
    assert again.returncode == 0, again.stderr
    expected = f"imported {good} posts: 0 new, 0 updated, {good} unchanged ({rejected} rejected"
    assert expected in again.stdout, again.stdout
    assert published_changes(stage, client) == before


def test_import_with_wrong_credentials_fails_in_one_line(stage, tmp_path):
    upload = tmp_path / "one.ndjson"
    upload.write_text('{"id": "abc", "title": "t", "subreddit": "python", "created_utc": 1}\n')
    failed = run("data", "import", str(upload), "--url", stage.url,
                 "--username", "nobody_here", "--password", "wrong password")  # fmt: skip
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: login failed")


def test_fetch_offline_fails_with_a_clear_error(tmp_path):
    failed = run("data", "fetch", "--subreddit", "python", "--limit", "5", "--out",
                 str(tmp_path / "x.ndjson"), env={"REDDIT_URL": "http://127.0.0.1:9"})  # fmt: skip
    assert failed.returncode != 0
    assert "cannot reach" in failed.stderr.splitlines()[-1]


def test_every_command_has_help_and_stages_lists_them():
    for command in (
        ["--help"],
        ["up", "--help"],
        ["data", "import", "--help"],
        ["bench", "--help"],
    ):
        assert run(*command).returncode == 0
    listed = run("stages").stdout
    assert "01-monolith" in listed and "03-services" in listed


def test_sync_status_finds_the_running_stage_without_a_url(stage):
    if "sync" not in get_stage(stage.name).ports(stage.port):
        pytest.skip(f"{stage.name} has no sync service")
    status = run("sync", "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("log head: ")
    assert "search" in status.stdout  # a subscriber, with its checkpoint


def test_stages_lists_every_stage_folder_with_its_lesson():
    listed = run("stages").stdout
    for stage in all_stages():
        assert stage.name in listed and stage.summary in listed


def record_stage(state_dir: Path, stage: str, port: int, age: float = 0.0) -> Path:
    """Write what `workshop up` records for a running stage into a state folder of the
    test's own (WORKSHOP_STATE_DIR), as if started `age` seconds ago; return its data folder.

    The pid is this test's: alive for as long as the commands under test run.
    """
    run_dir = state_dir / "run" / f"{stage}-{port}"
    data_dir = state_dir / "data" / stage
    run_dir.mkdir(parents=True)
    record = run_dir / "running.json"
    ports = get_stage(stage).ports(port)
    record.write_text(json.dumps({"stage": stage, "pid": os.getpid(), "ports": ports,
                                  "port": port, "run_dir": str(run_dir),
                                  "data_dir": str(data_dir)}))  # fmt: skip
    started = time.time() - age
    os.utime(record, (started, started))
    return data_dir


def test_importers_go_to_the_stage_started_last_or_the_one_named(tmp_path):
    older = record_stage(tmp_path, "01-monolith", 9000, age=60)
    newer = record_stage(tmp_path, "02-rest-api", 9200)
    state = {"WORKSHOP_STATE_DIR": str(tmp_path)}

    empty = run("importers", "list", env=state)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("no importers added on 02-rest-api (port 9200)")
    (said,) = empty.stderr.splitlines()  # one line, naming the stage picked
    assert "02-rest-api on port 9200" in said and "started last" in said

    added = run("importers", "add", "ada", env=state)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "ada may ingest on 02-rest-api (port 9200)"
    assert run("importers", "list", env=state).stdout.split() == ["ada"]
    named = run("importers", "add", "bob", "--port", "9000", env=state)
    assert named.returncode == 0 and named.stderr == "", named.stderr
    listed = run("importers", "list", "--url", "http://127.0.0.1:9000", env=state)
    assert listed.stdout.split() == ["bob"]
    assert roles.importers_file(older).read_text().split() == ["bob"]
    assert roles.importers_file(newer).read_text().split() == ["ada"]

    elsewhere = run("importers", "list", "--url", "http://10.0.0.5:9000", env=state)
    assert elsewhere.returncode != 0
    assert "WORKSHOP_IMPORTERS" in elsewhere.stderr.splitlines()[-1]


def test_import_talks_to_the_port_named_or_the_stage_started_last(stage, client, tmp_path):
    username, password, _ = client.new_importer()
    word = f"zq{uuid.uuid4().hex[:8]}"
    upload = tmp_path / "one.ndjson"
    record = {"id": word, "title": f"{word} post", "subreddit": "python", "created_utc": 1.37e9}
    upload.write_text(json.dumps(record) + "\n")
    login = ("--username", username, "--password", password)

    by_port = run("data", "import", str(upload), "--port", str(stage.port), *login)
    assert by_port.returncode == 0, by_port.stderr
    assert "imported 1 posts: 1 new" in by_port.stdout

    # Unnamed: the stage started last in a state folder of the test's own (other stages may
    # run on this machine), an older record on a port where nothing listens.
    state_dir = tmp_path / "state"
    record_stage(state_dir, "01-monolith", free_base_port(1), age=60)
    record_stage(state_dir, stage.name, stage.port)
    unnamed = run("data", "import", str(upload), *login,
                  env={"WORKSHOP_STATE_DIR": str(state_dir)})  # fmt: skip
    assert unnamed.returncode == 0, unnamed.stderr
    assert "imported 1 posts: 0 new, 0 updated, 1 unchanged" in unnamed.stdout
    assert f"workshop: {stage.name} on port {stage.port}, the stage started last" in unnamed.stderr


def test_sync_status_takes_the_stage_port(stage):
    if "sync" not in get_stage(stage.name).ports(stage.port):
        pytest.skip(f"{stage.name} has no sync service")
    status = run("sync", "status", "--port", str(stage.port))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("log head: ") and "search" in status.stdout


def test_a_stage_keeps_its_data_until_fresh_or_reset(tmp_path):
    """`workshop up` keeps what a stage stored in its data folder (here the test's own,
    named by WORKSHOP_DATA_DIR as a person's .workshop/data/STAGE is by default); --fresh
    and `workshop reset` start over; reset is refused while the stage runs."""
    data = tmp_path / "data"
    stage = LaunchedStage("01-monolith", tmp_path, env={"WORKSHOP_DATA_DIR": str(data),
                                                        "MONGO_URL": ""})  # fmt: skip

    def registered(name: str) -> bool:
        login = {"username": name, "password": "pw-kept-0123"}
        return Client(stage.url).post("/api/tokens", json=login).status_code == 200

    stage.start()
    try:
        created = Client(stage.url).post(
            "/api/users", json={"username": "kept", "password": "pw-kept-0123"}
        )
        assert created.status_code == 201, created.text
        refused = run("reset", "01-monolith", env={"WORKSHOP_DATA_DIR": str(data)})
        assert refused.returncode != 0 and "in use" in refused.stderr, refused.stderr
    finally:
        assert stage.stop() == 0
    stage.start(fresh=False)
    try:
        assert registered("kept")  # kept from the first run
    finally:
        assert stage.stop() == 0
    stage.start(fresh=True)  # `workshop up 01-monolith --fresh`
    try:
        assert not registered("kept")
        assert Client(stage.url).post("/api/users", json={
            "username": "kept2", "password": "pw-kept-0123"}).status_code == 201  # fmt: skip
    finally:
        assert stage.stop() == 0
    done = run("reset", "01-monolith", env={"WORKSHOP_DATA_DIR": str(data)})
    assert done.returncode == 0 and "forgot what it stored" in done.stdout, done.stderr
    assert [p.name for p in data.iterdir()] in ([], [".lock"])
    stage.start(fresh=False)
    try:
        assert not registered("kept2")
    finally:
        assert stage.stop() == 0


def test_sample_posts_sizes_the_sample_of_an_empty_store(tmp_path):
    stage = LaunchedStage("01-monolith", tmp_path, env={"MONGO_URL": ""},
                          options=["--sample-posts", "40"])  # fmt: skip
    stage.start()
    try:
        client = Client(stage.url)
        assert client.get("/api/search", params={"q": "python"}).json()["total"] <= 40
        everything = client.get("/api/tags").status_code  # the stage serves
        assert everything == 200
    finally:
        assert stage.stop() == 0
    refused = run("up", "01-monolith", "--sample-posts", "-1")
    assert refused.returncode != 0 and "--sample-posts" in refused.stderr
