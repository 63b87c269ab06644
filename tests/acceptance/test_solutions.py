"""Every reference solution applies with `workshop solve`, comes back out with --undo, and
does what its exercise says once applied.

The solutions are applied to a copy of the repository (its files as they are here), never
to the repository itself: the copy runs the `workshop` command and its stages from its own
files (WORKSHOP_HOME and PYTHONPATH name it).
"""

import contextlib
import filecmp
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.stage import Client, eventually
from tests.timing import scaled
from tooling.launcher import LaunchedStage
from tooling.solve import SOLUTIONS, solutions
from tooling.stages import all_stages, get_stage
from workshop.config import ROOT

ALL = [s for stage in all_stages() for s in solutions(stage)]


def copy_of_the_repository(into: Path) -> Path:
    """Copy the repository's files (tracked, and new ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return copy_of_the_repository(tmp_path / "repo")


def in_copy(copy: Path) -> dict[str, str]:
    """The environment that makes `workshop` and the stages run from the copy's files."""
    return {**os.environ, "WORKSHOP_HOME": str(copy), "PYTHONPATH": str(copy)}


def workshop(copy: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("workshop")), *args],
        cwd=copy, env=in_copy(copy), capture_output=True, text=True, timeout=scaled(60),
    )  # fmt: skip


def test_every_solution_applies_and_comes_back_out(copy):
    assert len(ALL) >= 5, "the code-writing exercises have their solutions"
    for found in ALL:
        listed = workshop(copy, "solve", found.stage)
        assert listed.returncode == 0 and f"{found.number}  Stage" in listed.stdout, listed
        applied = workshop(copy, "solve", found.stage, str(found.number))
        assert applied.returncode == 0, applied.stderr
        changed = found.files()
        assert changed and all(path in applied.stdout for path in changed), applied.stdout
        twice = workshop(copy, "solve", found.stage, str(found.number))
        assert twice.returncode != 0 and "nothing changed" in twice.stderr, twice
        undone = workshop(copy, "solve", found.stage, str(found.number), "--undo")
        assert undone.returncode == 0, undone.stderr
        for path in changed:  # back as they were: edited files equal, added files gone
            original = ROOT / path
            if original.exists():
                assert filecmp.cmp(original, copy / path, shallow=False), path
            else:
                assert not (copy / path).exists(), path


def test_solve_refuses_what_it_has_not(copy):
    missing = workshop(copy, "solve", "02", "1")
    assert missing.returncode != 0 and "no solution for exercise 1" in missing.stderr


def solved(copy: Path, stage: str, number: int) -> None:
    applied = workshop(copy, "solve", stage, str(number))
    assert applied.returncode == 0, applied.stderr


@contextlib.contextmanager
def running(copy: Path, stage: str, tmp_path: Path) -> Iterator[LaunchedStage]:
    """Run a stage from the copy's files (the solution's code, not the repository's)."""
    launched = LaunchedStage(stage, tmp_path, env={"MONGO_URL": "", "WORKSHOP_HOME": str(copy),
                                                   "PYTHONPATH": str(copy)})  # fmt: skip
    launched.start()
    try:
        yield launched
    finally:
        launched.stop()


def tag(client: Client, post_ids: list[str], tags: list[str]) -> None:
    """Tag posts as a new user, through the front door."""
    _, _, token = client.new_user("solver")
    for post_id in post_ids:
        for name in tags:
            added = client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": name})
            assert added.status_code == 201, added.text


def test_01_exercise_2_leaves_ten_posts_above_the_new_threshold(copy, tmp_path):
    solved(copy, "01", 2)
    with running(copy, "01-monolith", tmp_path) as stage:
        items = Client(stage.url).get("/api/recommendations", params={"limit": 50}).json()
        assert len(items["items"]) == 10  # the sample's posts scoring 1,000 or more


def test_03_exercise_2_counts_every_tag_from_the_start(copy, tmp_path):
    solved(copy, "03", 2)
    with running(copy, "03-services", tmp_path) as stage:
        client = Client(stage.url)
        found = client.get("/api/search", params={"q": "python", "per_page": 2}).json()
        tag(client, [post["id"] for post in found["items"]], ["x1"])
        port = get_stage("03-services").ports(stage.port)["recommend_v2"] + 100  # its line
        counted = eventually(
            lambda: requests.get(f"http://127.0.0.1:{port}/api/tag-counts", timeout=scaled(5)),
            lambda answer: answer.status_code == 200 and answer.json()["posts"] >= 2,
            within=30,
        )
        assert counted.json()["posts"] >= 2 and counted.json()["taggings"] >= 2, counted.text


def test_03_exercise_3_lets_a_late_duplicate_erase_newer_tags(copy, tmp_path):
    solved(copy, "03", 3)
    with running(copy, "03-services", tmp_path) as stage:
        client = Client(stage.url)
        post_id = client.get("/api/search", params={"q": "python"}).json()["items"][0]["id"]
        tag(client, [post_id], ["stale-first", "stale-second"])

        def tags() -> set[str]:
            return {t["tag"] for t in client.get(f"/api/posts/{post_id}").json()["tags"]}

        assert eventually(tags, lambda t: {"stale-first", "stale-second"} <= t, within=10)
        stale = textwrap.dedent(f"""
            from chassis.messaging.broker import Publisher
            from workshop.platform.messages import Message
            Publisher().publish([Message('tags.changed', '{post_id}', 1, {{'tags': []}}, 'me')],
                                'search')
        """)  # the exercise's command: a redelivered version 1
        env = {**in_copy(copy), "WORKSHOP_DATA_DIR": stage.env["WORKSHOP_DATA_DIR"],
               "PYTHONPATH": f"{copy / '03-services'}{os.pathsep}{copy}"}  # fmt: skip
        sent = subprocess.run([sys.executable, "-c", stale], env=env, cwd=copy,
                              capture_output=True, text=True, timeout=scaled(60))  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        # Without the version check the stale copy wins: search's tags are gone.
        left = eventually(tags, lambda t: not t & {"stale-first", "stale-second"}, within=10)
        assert not left & {"stale-first", "stale-second"}, left


def test_03_exercise_5_hands_version_3_to_recommend_v2_and_version_1_to_the_rest(copy, tmp_path):
    solved(copy, "03", 5)
    contract = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "tests/unit/test_message_schemas.py"],
        cwd=copy, env=in_copy(copy), capture_output=True, text=True, timeout=scaled(120),
    )  # fmt: skip
    assert contract.returncode == 0, contract.stdout
    with running(copy, "03-services", tmp_path) as stage:
        ports = get_stage("03-services").ports(stage.port)

        def read(process: str) -> dict[str, float]:
            text = requests.get(
                f"http://127.0.0.1:{ports[process]}/metrics", timeout=scaled(10)
            ).text
            return {
                f"{s.name}:{s.labels['version']}": s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name.startswith("consumer_messages") and s.labels["type"] == "post.upserted"
            }

        v1, v3 = "consumer_messages_read:1", "consumer_messages_read:3"
        v2 = eventually(lambda: read("recommend_v2"), lambda c: c.get(v3, 0) > 0, within=60)
        assert v2.get(v3, 0) > 0, v2
        for process in ("recommend_v1", "search", "tag"):
            counts = eventually(lambda p=process: read(p),
                                lambda c: c.get(v1, 0) > 0, within=60)  # fmt: skip
            assert set(counts) == {v1}, (process, counts)


def test_03_exercise_6_adds_a_comment_service_the_gateway_routes_to(copy, tmp_path):
    """The exercise's steps: the folder, one Procfile line, the gateway's route; the checks
    of the compose files name what else the service needs, and pass once it has it."""
    solved(copy, "03", 6)
    checks = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "03-services",
         "tests/containers/test_files.py", "tests/containers/test_environment.py",
         "tests/containers/test_trust.py", "tests/containers/test_prometheus.py",
         "tests/unit/test_message_schemas.py", "tests/unit/test_openapi.py",
         "tests/acceptance/test_fuzz.py"],
        cwd=copy, env=in_copy(copy), capture_output=True, text=True, timeout=scaled(600),
    )  # fmt: skip
    assert checks.returncode == 0, checks.stdout[-3000:]
    with running(copy, "03-services", tmp_path) as stage:
        client = Client(stage.url)
        ready = client.get("/readyz").json()
        assert ready["dependencies"]["comment"]["ok"] is True, ready
        post_id = client.get("/api/search", params={"q": "flask"}).json()["items"][0]["id"]
        name, _, token = client.new_user("commenter")
        said = client.post(f"/api/posts/{post_id}/comments", token=token,
                           json={"text": "  Worth reading.  "})  # fmt: skip
        assert said.status_code == 201, said.text
        assert said.json()["text"] == "Worth reading." and said.json()["user"] == name
        assert client.get(f"/api/posts/{post_id}/comments").json()["items"] == [said.json()]
        assert client.post(f"/api/posts/{post_id}/comments",
                           json={"text": "anonymous"}).status_code == 401  # fmt: skip
        for bad in ({"text": ""}, {"text": "  "}, {"text": {"$gt": ""}}, {"text": "x" * 501},
                    {"body": "x"}, {"text": "ok", "user": "someone_else"}):  # fmt: skip
            refused = client.post(f"/api/posts/{post_id}/comments", token=token, json=bad)
            assert refused.status_code == 400, (bad, refused.text)
        for elsewhere in ("nosuchpost", "Not-An-Id"):
            assert client.get(f"/api/posts/{elsewhere}/comments").status_code == 404
            refused = client.post(f"/api/posts/{elsewhere}/comments", token=token,
                                  json={"text": "lost"})  # fmt: skip
            assert refused.status_code == 404
        unknown = client.get(f"/api/posts/{post_id}/comments", params={"limit": "5"})
        assert unknown.status_code == 400
        second = client.post(f"/api/posts/{post_id}/comments", token=token, json={"text": "Two"})
        listed = client.get(f"/api/posts/{post_id}/comments").json()["items"]
        assert [c["text"] for c in listed] == ["Worth reading.", "Two"], "oldest first"
        assert listed[1] == second.json()


def test_04_exercise_3_is_a_blocking_call_the_loop_check_names(copy):
    solved(copy, "04", 3)
    checked = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "tests/unit/test_event_loop.py"],
        cwd=copy, env=in_copy(copy), capture_output=True, text=True, timeout=scaled(120),
    )  # fmt: skip
    assert checked.returncode != 0, checked.stdout
    assert "search/service.py" in checked.stdout and "time.sleep" in checked.stdout


def test_04_exercise_4_puts_posts_about_production_in_devops(copy):
    solved(copy, "04", 4)
    topics = subprocess.run(
        [sys.executable, "-c", "from workshop.domain.topics import assign_topics; "
         "from workshop.domain.text import terms; "
         "print(assign_topics(terms('Python in production, a checklist')))"],
        cwd=copy, env=in_copy(copy), capture_output=True, text=True, timeout=scaled(60),
    )  # fmt: skip
    assert topics.returncode == 0, topics.stderr
    assert "devops" in topics.stdout


def test_the_solutions_folder_holds_only_patches_of_known_stages():
    for path in (ROOT / SOLUTIONS).rglob("*"):
        if path.is_file():
            assert path.suffix == ".patch", path
            assert get_stage(path.parent.name).name == path.parent.name
