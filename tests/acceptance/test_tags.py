"""Tagging: a logged-in user tags and untags posts; everyone sees the counts."""

import uuid

import pytest

from tests.acceptance.forms import log_in, submit
from tests.acceptance.stage import assert_error, eventually


@pytest.fixture
def post_id(client):
    return client.get("/api/search", params={"q": "docker"}).json()["items"][0]["id"]


@pytest.fixture
def tag():
    return f"t-{uuid.uuid4().hex[:12]}"


def tags_of(client, post_id):
    return {t["tag"]: t["count"] for t in client.get(f"/api/posts/{post_id}").json()["tags"]}


def test_tag_then_untag_a_post(client, user, post_id, tag):
    username, _, token = user
    answer = client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": tag})
    assert answer.status_code == 201
    assert answer.json() == {"post_id": post_id, "tag": tag, "user": username}
    assert eventually(lambda: tags_of(client, post_id), lambda t: tag in t).get(tag) == 1

    tagged = eventually(lambda: client.get(f"/api/tags/{tag}/posts").json(), lambda b: b["items"])
    assert tagged["tag"] == tag and [p["id"] for p in tagged["items"]] == [post_id]
    listing = eventually(
        lambda: client.get("/api/tags").json()["items"],
        lambda items: any(t["tag"] == tag for t in items),
    )
    assert {"tag": tag, "count": 1} in listing

    assert client.delete(f"/api/posts/{post_id}/tags/{tag}", token=token).status_code == 204
    assert tag not in eventually(lambda: tags_of(client, post_id), lambda t: tag not in t)
    assert (
        eventually(
            lambda: client.get(f"/api/tags/{tag}/posts").json()["items"], lambda items: not items
        )
        == []
    )


def test_two_users_count_twice_and_one_user_once(client, post_id, tag):
    _, _, first = client.new_user()
    _, _, second = client.new_user()
    for token in (first, first, second):
        answer = client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": tag})
        assert answer.status_code == 201
    counts = eventually(lambda: tags_of(client, post_id), lambda t: t.get(tag) == 2)
    assert counts[tag] == 2
    assert client.delete(f"/api/posts/{post_id}/tags/{tag}", token=second).status_code == 204
    assert eventually(lambda: tags_of(client, post_id), lambda t: t.get(tag) == 1)[tag] == 1


def test_a_user_cannot_remove_another_users_tag(client, post_id, tag):
    _, _, owner = client.new_user()
    _, _, other = client.new_user()
    client.post(f"/api/posts/{post_id}/tags", token=owner, json={"tag": tag})
    eventually(lambda: tags_of(client, post_id), lambda t: tag in t)
    client.delete(f"/api/posts/{post_id}/tags/{tag}", token=other)
    assert (
        eventually(lambda: tags_of(client, post_id), lambda t: tag not in t, within=0.5).get(tag)
        == 1
    )


def test_tagging_needs_a_token(client, post_id, tag):
    assert_error(client.post(f"/api/posts/{post_id}/tags", json={"tag": tag}), 401)
    assert_error(client.delete(f"/api/posts/{post_id}/tags/{tag}"), 401)
    assert_error(client.post(f"/api/posts/{post_id}/tags", token="nope", json={"tag": tag}), 401)


def test_tagging_an_unknown_post_answers_404(client, user, tag):
    _, _, token = user
    assert_error(client.post("/api/posts/zzzzzzzzzzzz/tags", token=token, json={"tag": tag}), 404)
    assert_error(client.delete(f"/api/posts/zzzzzzzzzzzz/tags/{tag}", token=token), 404)


@pytest.mark.parametrize(
    "body",
    [{"tag": "Has Spaces"}, {"tag": "-leading"}, {"tag": "x" * 33}, {"tag": ""}, {"tag": 7},
     {"tag": ["a"]}, {"tag": {"$gt": ""}}, {"tag": None}, {}, {"tag": "ok", "extra": 1}],
)  # fmt: skip
def test_bad_tags_answer_400_and_change_nothing(client, user, post_id, body):
    _, _, token = user
    before = tags_of(client, post_id)
    assert_error(client.post(f"/api/posts/{post_id}/tags", token=token, json=body), 400)
    assert tags_of(client, post_id) == before


def test_a_bad_tag_in_a_path_answers_400(client, user, post_id):
    _, _, token = user
    assert_error(client.get("/api/tags/Not%20A%20Tag/posts"), 400)
    assert_error(client.delete(f"/api/posts/{post_id}/tags/BAD!", token=token), 400)


def test_a_tag_nobody_used_lists_no_posts(client, tag):
    answer = client.get(f"/api/tags/{tag}/posts")
    assert answer.status_code == 200
    assert answer.json() == {"tag": tag, "items": []}


def test_a_tag_added_on_the_post_page_shows_on_the_very_next_view(client, user, post_id, tag):
    username, password, _ = user
    log_in(client, username, password)
    landed = submit(client, f"/posts/{post_id}", f"/posts/{post_id}/tags", tag=tag)
    assert landed.status_code == 200 and landed.url.endswith(f"/posts/{post_id}")
    assert f"Tagged “{tag}”." in landed.text
    # Read your own writes: the page the form lands on shows the tag, counted once.
    assert f'#{tag} <span class="count">1</span>' in landed.text
    assert f"Remove tag {tag}" in landed.text
