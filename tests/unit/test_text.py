from workshop.domain.text import (
    ELLIPSIS,
    MAX_QUERY_TERMS,
    document_terms,
    excerpt,
    matched_words,
    query_terms,
    stem,
    terms,
    tokenize,
)


def test_tokenize_lowercases_and_keeps_programming_words():
    assert tokenize("Async I/O in C++ and C#, with Python3!") == [
        "async", "i", "o", "in", "c++", "and", "c#", "with", "python3",
    ]  # fmt: skip


def test_stem_joins_common_inflections():
    assert stem("tests") == stem("testing") == stem("tested") == "test"
    assert stem("libraries") == "library"
    assert stem("quickly") == "quick"


def test_stem_leaves_short_words_names_and_special_endings_alone():
    assert stem("is") == "is"
    assert stem("gil") == "gil"
    assert stem("class") == "class"
    assert stem("asyncio") == "asyncio"
    assert stem("python3") == "python3"
    assert stem("status") == "status"


def test_terms_drop_stop_words_and_repeats_in_first_seen_order():
    assert terms("The tests and the testing of Django") == ["test", "django"]


def test_document_terms_cover_every_field():
    assert document_terms("Flask tips", "about asyncio") == ["flask", "tip", "asyncio"]


def test_query_terms_are_bounded():
    query = " ".join(f"word{i}" for i in range(40))
    assert len(query_terms(query)) == MAX_QUERY_TERMS


def test_a_query_of_stop_words_has_no_terms():
    assert query_terms("the and of") == []


def test_matched_words_are_found_with_the_stemming_of_search():
    text = "Testing: my Tests, pytest and the tested code"
    assert [text[a:b] for a, b in matched_words(text, "testing")] == ["Testing", "Tests", "tested"]
    assert matched_words(text, "the and") == [], "stop words match nothing, as in search"
    assert matched_words("", "testing") == []


def test_an_excerpt_marks_the_matches_and_keeps_the_text():
    pieces = excerpt("I like tests <b>a lot</b>", "testing")
    assert pieces == [("I like ", False), ("tests", True), (" <b>a lot</b>", False)]
    assert excerpt("nothing here", "testing") == [("nothing here", False)]


def test_a_long_text_is_cut_around_its_first_match_at_spaces():
    before = " ".join(f"before{i}" for i in range(50))
    after = " ".join(f"after{i}" for i in range(50))
    pieces = excerpt(f"{before} tests {after}", "test", 60)
    text = "".join(piece for piece, _ in pieces)
    assert pieces[0] == (ELLIPSIS, False) and pieces[-1] == (ELLIPSIS, False)
    assert ("tests", True) in pieces
    assert len(text) <= 60 + 2 * len(ELLIPSIS)
    words = text.strip(ELLIPSIS).split()
    assert all(w.startswith(("before", "after")) or w == "tests" for w in words), "no cut words"
    assert excerpt("short text", "test", 60) == [("short text", False)]
