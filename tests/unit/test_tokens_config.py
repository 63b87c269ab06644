import pytest

from workshop import config, db, tokens

S1, S2 = "s1-" + "x1y2" * 8, "s2-" + "z3w4" * 8  # test secrets of a sound length


def test_a_token_names_its_user():
    assert tokens.verify(tokens.issue("alice", S1), S1) == "alice"


def test_a_token_signed_with_another_secret_is_refused():
    assert tokens.verify(tokens.issue("alice", S1), S2) is None
    assert tokens.verify("garbage", S1) is None


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_tokens_refuse_an_empty_or_short_secret(secret):
    with pytest.raises(config.InsecureSecret):
        tokens.issue("alice", secret)
    with pytest.raises(config.InsecureSecret):
        tokens.verify("anything", secret)


def test_bearer_header_parsing():
    assert tokens.bearer("Bearer abc") == "abc"
    assert tokens.bearer("bearer abc") == "abc"
    assert tokens.bearer("Basic abc") is None
    assert tokens.bearer("Bearer ") is None
    assert tokens.bearer(None) is None


def test_secret_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", S1)
    assert config.secret_key() == S1


@pytest.mark.parametrize("production", [False, True])
def test_a_short_secret_is_refused_everywhere(monkeypatch, production):
    monkeypatch.setenv("SECRET_KEY", "from-env")
    if production:
        monkeypatch.setenv("WORKSHOP_ENV", "production")
    with pytest.raises(config.InsecureSecret, match="at least 32"):
        config.secret_key()


@pytest.mark.parametrize(
    "secret", ["changeme" * 4, "x" * 40, "your-secret-key-here-please-change-it", "0123456789" * 4]
)
def test_production_refuses_a_known_weak_secret(monkeypatch, secret):
    monkeypatch.setenv("SECRET_KEY", secret)
    monkeypatch.setenv("WORKSHOP_ENV", "production")
    with pytest.raises(config.InsecureSecret, match="weak"):
        config.secret_key()


@pytest.mark.parametrize("content", ["", "\n", "short"])
def test_an_empty_or_short_development_secret_file_is_generated_again(
    monkeypatch, tmp_path, content
):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(config, "STATE_DIR", tmp_path)
    (tmp_path / "secret_key").write_text(content)
    secret = config.secret_key()
    assert len(secret) >= 32 and (tmp_path / "secret_key").read_text().strip() == secret


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
