"""Parse JSON that a client sent, with a bound on how deeply it nests.

Python's json parser recurses once per level: a 10 KB body of 5,000 nested brackets raised
RecursionError, which every stage answered 500 (and which, in stage 03, counted against a
circuit breaker). Every parser of a client's JSON (the contract's body checks, the ingest
request, the importers, Eve's request bodies) goes through `loads` here, so such a body is
refused as bad input, a ValueError, like any malformed JSON.

A string holding half of a UTF-16 surrogate pair (`"\\ud800"`) is refused the same way:
JSON's grammar lets it through, but it is no text (I-JSON, RFC 7493, forbids it), and
encoding it to store it or hash it raised UnicodeEncodeError, a 500.
"""

import json
import re
from typing import Any

MAX_DEPTH = 400
# A \u escape of a surrogate (D800-DFFF): only a text with one can parse to a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Tell whether parsed JSON nests its arrays and objects at most `limit` deep.

    A walk level by level, without recursion: a scalar is 0 deep, [] and {} are 1.
    """
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            below.extend(item for item in items if isinstance(item, dict | list))
        level = below
    return not level


class NotText(ValueError):
    """A JSON string holding a lone surrogate."""

    def __init__(self) -> None:
        super().__init__("a string holds a lone surrogate (\\ud800-\\udfff), which is no text")


def is_text(value: Any) -> bool:
    """Tell whether every string in parsed JSON, keys included, is text (UTF-8 encodable)."""
    pending = [value]
    while pending:
        item = pending.pop()
        strings: list[Any] = []
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        for string in strings:
            try:
                string.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def loads(text: str | bytes, **options: Any) -> Any:
    """Return json.loads(text), or raise ValueError (TooDeep for a text nested too deeply).

    The parser's own recursion stops a text a thousand levels deep (RecursionError); what
    it returns is then checked against MAX_DEPTH, the bound the contract promises, and, if
    the text escapes a surrogate, for lone surrogates (NotText).
    """
    try:
        value = json.loads(text, **options)
    except RecursionError:
        raise TooDeep() from None
    if not depth_within(value):
        raise TooDeep()
    if isinstance(text, bytes | bytearray):
        escaped = _SURROGATE_ESCAPE_BYTES.search(text) is not None
    else:
        escaped = _SURROGATE_ESCAPE.search(text) is not None
    if escaped and not is_text(value):
        raise NotText()
    return value
