import pytest

from workshop.domain.accounts import (
    hash_password,
    password_problem,
    username_problem,
    verify_password,
)
from workshop.domain.tags import count_tags, is_valid_tag, with_own_tags
from workshop.domain.text import document_terms
from workshop.domain.topics import TOPICS, VOCABULARY, assign_topics, unknown_topics


def test_topics_come_from_keywords_in_the_text():
    assert assign_topics(document_terms("Speeding up Django with asyncio")) == ["async", "web"]
    assert assign_topics(document_terms("Profiling pandas code", "")) == ["data", "performance"]
    assert assign_topics(document_terms("A poem about the sea")) == []


def test_every_keyword_assigns_its_topic():
    for topic, keywords in VOCABULARY.items():
        for keyword in keywords:
            assert topic in assign_topics(document_terms(keyword)), (topic, keyword)


def test_unknown_topics_are_named():
    assert unknown_topics(["web", "cooking", "data"]) == ["cooking"]
    assert unknown_topics(TOPICS) == []


@pytest.mark.parametrize("tag", ["a", "python", "web-2", "0day", "x" * 32])
def test_valid_tags(tag):
    assert is_valid_tag(tag)


@pytest.mark.parametrize(
    "tag", ["", "-x", "Upper", "two words", "x" * 33, "ünï", None, 3, {"$gt": ""}]
)
def test_invalid_tags(tag):
    assert not is_valid_tag(tag)


def test_count_tags_orders_by_count_then_name():
    assert count_tags(["b", "a", "b", "c", "a", "b"]) == [
        {"tag": "b", "count": 3}, {"tag": "a", "count": 2}, {"tag": "c", "count": 1},
    ]  # fmt: skip


def test_own_tags_the_copy_lacks_are_added_once_and_the_copys_counts_kept():
    copy = [{"tag": "web", "count": 2}, {"tag": "api", "count": 1}]
    assert with_own_tags(copy, ["web", "zz", "new"]) == [
        {"tag": "web", "count": 2}, {"tag": "api", "count": 1},
        {"tag": "new", "count": 1}, {"tag": "zz", "count": 1},
    ]  # fmt: skip
    assert with_own_tags(copy, ["web"]) == copy
    assert with_own_tags([], []) == []


def test_usernames():
    assert username_problem("alice_01") is None
    assert username_problem("al") and username_problem("a b c") and username_problem({"$ne": 1})


def test_passwords():
    assert password_problem("correct horse", "alice") is None
    assert password_problem("short")
    assert password_problem("password")
    assert password_problem("alice_01", "alice_01")
    assert password_problem(12345678)


def test_password_hashes_verify_and_hide_the_password():
    hashed = hash_password("correct horse")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
