"""Turn free text into search terms: lower-case words, stop words dropped, light stemming."""

import functools
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


@functools.lru_cache(maxsize=1 << 16)  # a post's words repeat across posts: stem each once
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


# The same words as `tokenize`, found in the original text so their places are its own.
_WORD_IN_TEXT = re.compile(_WORD.pattern, re.IGNORECASE | re.ASCII)
ELLIPSIS = "…"


def matched_words(text: str, query: str) -> list[tuple[int, int]]:
    """Return where (start, end) the words a query matches are in a text, as search sees them.

    A word matches when its stem is one of the query's terms, so "testing" finds "tests".
    """
    wanted = set(query_terms(query))
    found = []
    for match in _WORD_IN_TEXT.finditer(text):
        word = match.group().lower()
        if word not in STOP_WORDS and stem(word) in wanted:
            found.append(match.span())
    return found


def excerpt(text: str, query: str, width: int | None = None) -> list[tuple[str, bool]]:
    """Return a text as (piece, matched) pieces; with a width, only about that many
    characters around its first match, cut at spaces, "…" where it was cut."""
    spans = matched_words(text, query)
    start, end = 0, len(text)
    if width is not None and len(text) > width:
        first = spans[0][0] if spans else 0
        start = max(0, first - width // 3)
        if start > 0:  # begin at a word, not inside one
            space = text.find(" ", start, first)
            start = space + 1 if space != -1 else first
        end = min(len(text), start + width)
        if end < len(text):
            space = text.rfind(" ", start, end)
            end = space if space > first else end
    pieces: list[tuple[str, bool]] = [(ELLIPSIS, False)] if start > 0 else []
    position = start
    for span_start, span_end in spans:
        if span_start < start or span_end > end:
            continue
        pieces += [(text[position:span_start], False), (text[span_start:span_end], True)]
        position = span_end
    pieces.append((text[position:end], False))
    if end < len(text):
        pieces.append((ELLIPSIS, False))
    return [piece for piece in pieces if piece[0]]
