"""Accounts and tokens."""

import concurrent.futures
import statistics
import time
import uuid
from urllib.parse import urlsplit

import pytest

from tests.acceptance.forms import submit
from tests.acceptance.stage import assert_error, eventually
from workshop import tokens


def fresh_name():
    return f"u_{uuid.uuid4().hex[:12]}"


def test_register_then_get_a_token(client):
    username = fresh_name()
    created = client.post("/api/users", json={"username": username, "password": "correct horse"})
    assert created.status_code == 201
    assert created.json()["username"] == username
    assert "password" not in created.text and "hash" not in created.text
    answer = eventually(
        lambda: client.post(
            "/api/tokens", json={"username": username, "password": "correct horse"}
        ),
        lambda a: a.status_code == 200,
    )
    assert answer.status_code == 200 and answer.json()["token"]
    preferences = client.get("/api/me/preferences", token=answer.json()["token"])
    assert preferences.status_code == 200


def test_a_taken_username_answers_409(client, user):
    username, _, _ = user
    assert_error(
        client.post("/api/users", json={"username": username, "password": "another pw 1"}), 409
    )


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": "long enough 1"},
        {"username": "has space", "password": "long enough 1"},
        {"username": "x" * 33, "password": "long enough 1"},
        {"username": "ok_name", "password": "short"},
        {"username": "ok_name", "password": "password"},
        {"username": "ok_name", "password": 12345678},
        {"username": {"$ne": None}, "password": "long enough 1"},
        {"username": "ok_name"},
        {"username": "ok_name", "password": "long enough 1", "admin": True},
    ],
)
def test_invalid_or_weak_registrations_answer_400_and_create_nothing(client, body):
    assert_error(client.post("/api/users", json=body), 400)
    if isinstance(body.get("username"), str) and "password" in body:
        login = client.post(
            "/api/tokens", json={"username": body["username"], "password": body["password"]}
        )
        assert login.status_code in (400, 401)


def test_wrong_password_answers_401(client, user):
    username, _, _ = user
    assert_error(
        client.post("/api/tokens", json={"username": username, "password": "wrong wrong"}), 401
    )
    assert_error(
        client.post("/api/tokens", json={"username": fresh_name(), "password": "whatever1"}), 401
    )


@pytest.mark.parametrize(
    "body",
    [
        {"username": {"$ne": None}, "password": {"$ne": None}},
        {"username": {"$gt": ""}, "password": "x"},
        {"username": "admin", "password": {"$regex": ".*"}},
        {"username": ["admin"], "password": "x"},
    ],
)
def test_operator_injection_on_login_answers_400(client, body):
    assert_error(client.post("/api/tokens", json=body), 400)


def test_registering_on_the_page_logs_the_new_user_in(client):
    username = fresh_name()
    landed = submit(client, "/register", "/register", username=username, password="correct horse")
    assert landed.status_code == 200 and urlsplit(landed.url).path == "/"
    assert "Account created" in landed.text
    assert f"Signed in as <b>{username}</b>" in landed.text
    assert "Recommended for you" not in landed.text, "no topics chosen yet"


def test_a_refused_registration_on_the_page_logs_nobody_in(client):
    landed = submit(client, "/register", "/register", username="ab", password="correct horse")
    assert landed.status_code == 400
    assert "Signed in as" not in landed.text


def median_login_seconds(client, username, password, times=7):
    took = []
    for _ in range(times):
        started = time.perf_counter()
        answer = client.post("/api/tokens", json={"username": username, "password": password})
        took.append(time.perf_counter() - started)
        assert answer.status_code == 401, answer.text
    return statistics.median(took)


def test_an_unknown_username_takes_as_long_as_a_wrong_password(client):
    """Timing must not tell which usernames exist: both check a password hash."""
    probe = client.elsewhere()  # its failed logins count against nobody else's limit
    username, _, _ = client.new_user()
    unknown, wrong = [], []
    for _ in range(2):  # interleaved, so a busy moment slows both alike
        unknown.append(median_login_seconds(probe, fresh_name(), "not the password", 3))
        wrong.append(median_login_seconds(probe, username, "not the password", 3))
    assert min(unknown) >= 0.5 * min(wrong), (unknown, wrong)


WRONG_PASSWORD = "not the password"


def failed_login(client, username, password=WRONG_PASSWORD):
    return client.post("/api/tokens", json={"username": username, "password": password})


def assert_wait(answer):
    """Check a 429 in the contract's shape, with a Retry-After within the window."""
    assert_error(answer, 429)
    assert 0 < int(answer.headers["Retry-After"]) <= 300, answer.headers.get("Retry-After")


def test_failed_logins_are_limited_per_username(client):
    username, password, _ = client.new_user()
    attacker = client.elsewhere()
    for _ in range(10):
        assert_error(failed_login(attacker, username), 401)
    # Now even the right password waits, from anywhere, and on the login page too.
    assert_wait(failed_login(attacker, username, password))
    assert_wait(failed_login(client.elsewhere(), username, password))
    elsewhere = client.elsewhere()
    page = submit(elsewhere, "/login", "/login", username=username, password=password)
    assert page.status_code == 429 and "Signed in as" not in page.text
    assert 0 < int(page.headers["Retry-After"]) <= 300
    # Other users log in as before, from the same client too.
    other, other_password, _ = client.new_user()
    assert failed_login(attacker, other, other_password).status_code == 200


def test_failed_logins_are_limited_per_client(client):
    attacker = client.elsewhere()
    names = [fresh_name() for _ in range(100)]  # one try each: no username is limited
    # Two at a time: each failure costs the owner of users a password hash.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda name: failed_login(attacker, name).status_code, names))
    assert statuses == [401] * 100
    username, password, _ = client.new_user()
    assert_wait(failed_login(attacker, username, password))
    assert failed_login(client.elsewhere(), username, password).status_code == 200


def test_a_signed_token_for_a_user_who_does_not_exist_is_refused(client):
    """One rule on every stage: a token is valid if its signature is and its user exists
    (a store emptied by a restart leaves tokens that outlive their users)."""
    ghost = tokens.issue(fresh_name())  # signed with the stage's own secret
    assert_error(client.get("/api/me/preferences", token=ghost), 401)
    assert_error(client.put("/api/me/preferences", token=ghost, json={"topics": ["web"]}), 401)
    post_id = client.get("/api/search", params={"q": "python"}).json()["items"][0]["id"]
    answer = client.post(f"/api/posts/{post_id}/tags", token=ghost, json={"tag": "ghostly"})
    assert_error(answer, 401)
    assert "ghostly" not in [t["tag"] for t in client.get(f"/api/posts/{post_id}").json()["tags"]]
