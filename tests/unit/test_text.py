from workshop.domain.text import MAX_QUERY_TERMS, document_terms, query_terms, stem, terms, tokenize


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
