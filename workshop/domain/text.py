"""Turn free text into search terms: lower-case words, stop words dropped, light stemming."""

import re

# Words too common to say anything about a post (a short English list, as search engines use).
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves
    """.split()
)

# Letters, digits and the marks that belong inside programming words (c++, c#, .net is split).
_WORD = re.compile(r"[a-z0-9][a-z0-9+#]*")

MAX_QUERY_TERMS = 16


def stem(word: str) -> str:
    """Strip the commonest English suffixes so "tests", "testing" and "tested" meet.

    A light stemmer on purpose: predictable enough to explain on a slide, and it leaves
    short words and library names ("pandas" -> "panda" is fine, "is" stays "is") readable.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("ly", ""),
        ("es", "e"),
        ("s", ""),
    ):
        if word.endswith(suffix) and not (suffix == "s" and word.endswith(("ss", "us", "is"))):
            stemmed = word[: len(word) - len(suffix)] + replacement
            if len(stemmed) >= 3:
                return stemmed
    return word


def tokenize(text: str) -> list[str]:
    """Split text into lower-case words, keeping their order and repeats."""
    return _WORD.findall(text.lower())


def terms(text: str) -> list[str]:
    """Return the distinct search terms of a text, in first-seen order."""
    seen: dict[str, None] = {}
    for word in tokenize(text):
        if word not in STOP_WORDS:
            seen.setdefault(stem(word), None)
    return list(seen)


def document_terms(*fields: str) -> list[str]:
    """Return the distinct terms of several fields together (a post's title and body)."""
    return terms(" ".join(fields))


def query_terms(query: str) -> list[str]:
    """Return the terms a search query asks for, at most MAX_QUERY_TERMS of them."""
    return terms(query)[:MAX_QUERY_TERMS]
