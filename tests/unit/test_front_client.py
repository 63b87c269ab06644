"""02's front reads through a connection the REST API may have just closed.

gunicorn closes a keep-alive connection idle for 2 s; the front's pooled session can send
a read on it at that very moment and get no answer. A read (idempotent) is tried once
more on a new connection; a write is not (the API may have done it), and says 503.
"""

import socket
import threading
from collections.abc import Iterator

import pytest

from tooling.stages import get_stage
from workshop.contract import ApiError

POST = b'{"_id": "abc1", "title": "A post", "subreddit": "python", "score": 1}'


@pytest.fixture
def api() -> Iterator[tuple[str, list[bytes]]]:
    """A REST API on loopback that drops its first connection unanswered, then answers."""
    server = socket.create_server(("127.0.0.1", 0))
    requests_seen: list[bytes] = []

    def serve() -> None:
        for number in range(2):
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                requests_seen.append(connection.recv(65536).split(b"\r\n")[0])
                if number == 0:
                    continue  # closed with no answer, as an idle connection closed just then
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                   % (len(POST), POST))  # fmt: skip

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", requests_seen
    server.close()
    thread.join(5)


def front_app(url: str):
    return get_stage("02-rest-api").load("front").create_app({"TESTING": True, "RESTAPI_URL": url})


def test_a_read_is_tried_again_on_a_new_connection(api):
    url, seen = api
    app = front_app(url)
    with app.test_request_context("/"):
        client = get_stage("02-rest-api").load("front.client")
        post = client.get_post("abc1")
    assert post is not None and post["id"] == "abc1"
    assert seen == [b"GET /posts/abc1 HTTP/1.1"] * 2


def test_a_write_is_not_sent_twice(api):
    url, seen = api
    app = front_app(url)
    with app.test_request_context("/"):
        client = get_stage("02-rest-api").load("front.client")
        with pytest.raises(ApiError) as raised:
            client.create_user("newcomer", "correct horse")
    assert raised.value.status == 503
    assert len(seen) == 1
