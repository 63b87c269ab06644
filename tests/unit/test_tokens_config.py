import pytest

from workshop import config, db, tokens


def test_a_token_names_its_user():
    assert tokens.verify(tokens.issue("alice", "s1"), "s1") == "alice"


def test_a_token_signed_with_another_secret_is_refused():
    assert tokens.verify(tokens.issue("alice", "s1"), "s2") is None
    assert tokens.verify("garbage", "s1") is None


def test_bearer_header_parsing():
    assert tokens.bearer("Bearer abc") == "abc"
    assert tokens.bearer("bearer abc") == "abc"
    assert tokens.bearer("Basic abc") is None
    assert tokens.bearer("Bearer ") is None
    assert tokens.bearer(None) is None


def test_secret_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert config.secret_key() == "from-env"


def test_a_development_secret_is_generated_once(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(config, "STATE_DIR", tmp_path)
    first = config.secret_key()
    assert len(first) >= 32 and config.secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_production_refuses_to_run_without_a_secret(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("WORKSHOP_ENV", "production")
    monkeypatch.setattr(config, "STATE_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        config.secret_key()


def test_without_mongo_url_the_embedded_emulation_serves(monkeypatch):
    monkeypatch.delenv("MONGO_URL", raising=False)
    handle = db.database("unit-embedded")
    handle.things.insert_one({"_id": 1})
    assert db.database("unit-embedded").things.count_documents({}) == 1
    assert db.ping(handle) == {"ok": True, "kind": "embedded"}


def test_an_unreachable_server_is_reported_not_raised():
    handle = db.database("x", url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    state = db.ping(handle)
    assert state["ok"] is False and state["kind"] == "mongodb"
