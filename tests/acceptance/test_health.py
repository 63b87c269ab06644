"""Liveness and readiness at the front door."""


def test_healthz_says_alive(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_readyz_lists_each_dependency_as_ready(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["dependencies"], "readiness names what it depends on"
    assert all(state["ok"] for state in body["dependencies"].values())
    # Each with how long its check took: a slow dependency shows before it fails.
    assert all(isinstance(state.get("ms"), int | float) for state in body["dependencies"].values())


def test_unknown_api_route_answers_404_in_the_error_shape(client):
    from tests.acceptance.stage import assert_error

    assert_error(client.get("/api/no-such-thing"), 404)
