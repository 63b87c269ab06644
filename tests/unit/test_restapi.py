"""Stage 02's Eve REST API on its own: schemas, ETags, paging, query lock-down, auth."""

import json
import uuid

import pytest

from tooling.stages import get_stage
from workshop import db as databases
from workshop import tokens


@pytest.fixture
def api():
    restapi = get_stage("02-rest-api").load("restapi")
    name = f"test-restapi-{uuid.uuid4().hex[:8]}"
    app = restapi.create_app({"TESTING": True, "MONGO_DBNAME": name, "SEED_SAMPLE": False})
    with app.app_context():
        restapi.store.upsert_posts(
            [
                {"id": f"p{i}", "title": f"Post {i} about asyncio", "url": "https://example.com",
                 "permalink": f"/r/python/comments/p{i}/", "author": "a", "subreddit": "python",
                 "created_utc": 1370000000 + i, "score": 10 * i, "ups": 10 * i, "downs": 0,
                 "num_comments": i, "is_self": False, "selftext": "", "domain": "example.com",
                 "topics": ["async"], "tags": []}
                for i in range(1, 131)
            ]
        )  # fmt: skip
    yield app.test_client()
    databases.client().drop_database(name)


def register(api, username=None):
    username = username or f"u_{uuid.uuid4().hex[:8]}"
    answer = api.post("/users", json={"username": username, "password": "correct horse"})
    assert answer.status_code == 201, answer.get_json()
    token = api.post("/tokens", json={"username": username, "password": "correct horse"})
    return username, {"Authorization": f"Bearer {token.get_json()['token']}"}


def test_registration_never_returns_or_stores_the_password(api):
    answer = api.post("/users", json={"username": "ada_l", "password": "correct horse"})
    assert answer.status_code == 201
    assert "password" not in answer.get_data(as_text=True)
    stored = databases.database(api.application.config["MONGO_DBNAME"]).users.find_one()
    assert "password" not in stored and stored["password_hash"] != "correct horse"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ok_name", "password": "correct horse", "admin": True},
        {"username": "ok_name", "password": 12345678},
        {"username": "x", "password": "correct horse"},
        {"username": "ok_name", "password": "password"},
        {"username": {"$ne": None}, "password": "correct horse"},
    ],
)
def test_the_users_schema_refuses_unknown_fields_wrong_types_and_weak_passwords(api, body):
    assert api.post("/users", json=body).status_code == 422


def test_nobody_can_list_or_read_users(api):
    _, auth = register(api)
    assert api.get("/users").status_code == 405
    assert api.get("/users", headers=auth).status_code == 405


def test_writes_need_a_token_of_a_registered_user(api):
    assert api.post("/taggings", json={"post_id": "p1", "tag": "x"}).status_code == 401
    forged = {"Authorization": f"Bearer {tokens.issue('nobody')}"}
    assert (
        api.post("/taggings", json={"post_id": "p1", "tag": "x"}, headers=forged).status_code == 401
    )
    assert api.post("/preferences", json={"topics": ["web"]}).status_code == 401
    assert api.post("/ingest", json={"source": "sample"}).status_code == 401


def test_tagging_a_missing_post_or_with_a_bad_tag_is_refused(api):
    _, auth = register(api)
    assert (
        api.post("/taggings", json={"post_id": "nope", "tag": "x"}, headers=auth).status_code == 422
    )
    assert (
        api.post("/taggings", json={"post_id": "p1", "tag": "Bad Tag"}, headers=auth).status_code
        == 422
    )
    assert (
        api.post(
            "/taggings", json={"post_id": "p1", "tag": "x", "user": "someone"}, headers=auth
        ).status_code
        == 422
    )


def test_a_user_sees_and_deletes_only_their_own_taggings(api):
    _, owner = register(api)
    _, other = register(api)
    created = api.post("/taggings", json={"post_id": "p1", "tag": "mine"}, headers=owner).get_json()
    assert api.get("/posts/p1").get_json()["tags"] == [{"tag": "mine", "count": 1}]
    assert api.get("/taggings", headers=other).get_json()["_items"] == []
    attempt = api.delete(
        f"/taggings/{created['_id']}", headers={**other, "If-Match": created["_etag"]}
    )
    assert attempt.status_code == 204, "Eve answers a DELETE of nothing (visible) with 204"
    assert api.get("/posts/p1").get_json()["tags"] == [{"tag": "mine", "count": 1}]
    deleted = api.delete(
        f"/taggings/{created['_id']}", headers={**owner, "If-Match": created["_etag"]}
    )
    assert deleted.status_code == 204
    assert api.get("/posts/p1").get_json()["tags"] == []


def test_updates_need_the_current_etag(api):
    _, auth = register(api)
    created = api.post("/preferences", json={"topics": ["web"]}, headers=auth).get_json()
    url = f"/preferences/{created['_id']}"
    assert api.patch(url, json={"topics": ["data"]}, headers=auth).status_code == 428
    assert (
        api.patch(url, json={"topics": ["data"]}, headers={**auth, "If-Match": "stale"}).status_code
        == 412
    )
    updated = api.patch(
        url, json={"topics": ["data"]}, headers={**auth, "If-Match": created["_etag"]}
    )
    assert updated.status_code == 200
    assert (
        api.patch(
            url, json={"topics": ["ml"]}, headers={**auth, "If-Match": created["_etag"]}
        ).status_code
        == 412
    )


def test_a_user_cannot_read_or_change_another_users_preferences(api):
    _, owner = register(api)
    _, other = register(api)
    created = api.post("/preferences", json={"topics": ["web"]}, headers=owner).get_json()
    url = f"/preferences/{created['_id']}"
    assert api.get(url, headers=other).status_code == 404
    attempt = api.patch(
        url, json={"topics": ["ml"]}, headers={**other, "If-Match": created["_etag"]}
    )
    assert attempt.status_code == 404
    assert api.get(url, headers=owner).get_json()["topics"] == ["web"]


def test_preferences_are_checked_against_the_topic_vocabulary(api):
    _, auth = register(api)
    assert api.post("/preferences", json={"topics": ["cooking"]}, headers=auth).status_code == 422
    assert api.post("/preferences", json={"topics": "web"}, headers=auth).status_code == 422


def test_pages_are_capped(api):
    body = api.get("/posts?max_results=1000").get_json()
    assert body["_meta"]["max_results"] == 100 and len(body["_items"]) == 100
    assert len(api.get("/posts").get_json()["_items"]) == 25
    assert body["_meta"]["total"] == 130


@pytest.mark.parametrize(
    "where",
    [
        {"$where": "sleep(1000)"},
        {"title": {"$regex": ".*"}},
        {"$expr": {"$gt": ["$score", 0]}},
        {"terms": {"$gt": ""}},
        {"password_hash": {"$exists": True}},
    ],
)
def test_dangerous_or_unlisted_filters_are_refused(api, where):
    assert api.get("/posts", query_string={"where": json.dumps(where)}).status_code == 400


DEEP = "[" * 5000 + "]" * 5000


def test_deeply_nested_json_is_refused_with_400(api):
    _, auth = register(api)
    headers = {**auth, "Content-Type": "application/json"}
    for path in ("/users", "/taggings", "/preferences"):
        assert api.post(path, data=f'{{"tag": {DEEP}}}', headers=headers).status_code == 400, path
    where = '{"tags.tag": {"$in": ' + DEEP + "}}"
    assert api.get("/posts", query_string={"where": where}).status_code == 400


def test_an_allowed_filter_works(api):
    _, auth = register(api)
    api.post("/taggings", json={"post_id": "p7", "tag": "seven"}, headers=auth)
    found = api.get("/posts", query_string={"where": json.dumps({"tags.tag": "seven"})}).get_json()
    assert [item["_id"] for item in found["_items"]] == ["p7"]


def test_internal_fields_never_leave_the_api(api):
    post = api.get("/posts/p1").get_json()
    assert "terms" not in post


def test_method_override_is_off(api):
    answer = api.get("/posts/p1", headers={"X-HTTP-Method-Override": "DELETE"})
    assert answer.status_code == 200 and api.get("/posts/p1").status_code == 200


def test_search_and_recommendations_follow_the_domain_rules(api):
    body = api.get("/search", query_string={"q": "asyncio", "per_page": 5}).get_json()
    assert body["total"] == 130
    assert [p["id"] for p in body["items"]] == ["p130", "p129", "p128", "p127", "p126"]
    recommended = api.get("/recommendations", query_string={"limit": 3}).get_json()["items"]
    assert [p["id"] for p in recommended] == ["p130", "p129", "p128"]
    assert api.get("/recommendations", query_string={"topics": "cooking"}).status_code == 400
