"""Parse JSON that a client sent, with a bound on how deeply it nests.

Python's json parser recurses once per level: a 10 KB body of 5,000 nested brackets raised
RecursionError, which every stage answered 500 (and which, in stage 03, counted against a
circuit breaker). Every parser of a client's JSON (the contract's body checks, the ingest
request, the importers, Eve's request bodies) goes through `loads` here, so such a body is
refused as bad input, a ValueError, like any malformed JSON.
"""

import json
from typing import Any

MAX_DEPTH = 400


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


def loads(text: str | bytes, **options: Any) -> Any:
    """Return json.loads(text), or raise ValueError (TooDeep for a text nested too deeply).

    The parser's own recursion stops a text a thousand levels deep (RecursionError); what
    it returns is then checked against MAX_DEPTH, the bound the contract promises.
    """
    try:
        value = json.loads(text, **options)
    except RecursionError:
        raise TooDeep() from None
    if not depth_within(value):
        raise TooDeep()
    return value
