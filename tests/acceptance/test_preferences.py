"""A user's preferred topics."""

import pytest

from tests.acceptance.stage import assert_error, eventually


def test_new_users_have_no_preferences(client, user):
    _, _, token = user
    answer = client.get("/api/me/preferences", token=token)
    assert answer.status_code == 200 and answer.json() == {"topics": []}


def test_put_stores_and_answers_the_preferences(client, user):
    _, _, token = user
    answer = client.put("/api/me/preferences", token=token, json={"topics": ["web", "data", "web"]})
    assert answer.status_code == 200
    assert answer.json() == {"topics": ["web", "data"]}
    stored = eventually(
        lambda: client.get("/api/me/preferences", token=token).json(),
        lambda body: body == {"topics": ["web", "data"]},
    )
    assert stored == {"topics": ["web", "data"]}


def test_preferences_need_a_token(client):
    assert_error(client.get("/api/me/preferences"), 401)
    assert_error(client.put("/api/me/preferences", json={"topics": ["web"]}), 401)


@pytest.mark.parametrize(
    "body",
    [{"topics": "web"}, {"topics": ["no-such-topic"]}, {"topics": [1]}, {"topics": {"$set": 1}},
     {}, {"topics": ["web"], "user": "someone-else"}, {"topics": ["web"] * 17}],
)  # fmt: skip
def test_bad_preferences_answer_400_and_change_nothing(client, user, body):
    _, _, token = user
    assert (
        client.put("/api/me/preferences", token=token, json={"topics": ["ml"]}).status_code == 200
    )
    assert_error(client.put("/api/me/preferences", token=token, json=body), 400)
    assert client.get("/api/me/preferences", token=token).json() == {"topics": ["ml"]}
