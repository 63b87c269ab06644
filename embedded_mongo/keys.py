"""Index keys: the values a document holds at a path, as keys that sort in MongoDB's order.

A key is a tuple (type rank, value) with the ranks of BSON's comparison order (null first,
then numbers, strings, ..., dates), as the emulation itself compares values: keys of one
type compare by value, keys of different types by rank, so one sorted list holds them all.
Only scalars get keys. A filter on a dict or an array, or a sort over a field that holds
one, is answered by a scan, as before; the planner never guesses there.
"""

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bson import ObjectId

Key = tuple[Any, ...]

NULL: Key = (5, 0)  # null and a missing field: equal in a sort, first in it
NUMBER, STRING, OBJECT_ID, BOOLEAN, DATE = 10, 15, 35, 40, 45


def key_of(value: Any) -> Key | None:
    """Return a scalar's key, or None for what has no key here (dicts, arrays, bytes, NaN)."""
    if value is None:
        return NULL
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return (BOOLEAN, int(value))
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else (NUMBER, value)
    if isinstance(value, str):
        return (STRING, value)
    if isinstance(value, ObjectId):
        return (OBJECT_ID, value.binary)
    if isinstance(value, datetime) and value.tzinfo is None:  # stored dates are naive UTC
        return (DATE, value)
    return None


def equal_keys(value: Any) -> list[Key] | None:
    """Return the keys whose documents may equal `value` in a filter, or None if a filter on
    it cannot be answered from an index (null, dicts, arrays, regexes: they match missing
    fields or whole arrays).

    The emulation compares with Python's ==, so 1, 1.0 and True are equal to it (MongoDB
    keeps booleans apart), and an ObjectId matches its own string inside an array: the keys
    are a superset of every document the filter can match; the filter itself decides.
    """
    key = key_of(value)
    if key is None or key == NULL:
        return None
    if key[0] == BOOLEAN:
        return [key, (NUMBER, key[1])]
    if key[0] == NUMBER and key[1] in (0, 1):
        return [key, (BOOLEAN, int(key[1]))]
    if key[0] == OBJECT_ID:
        return [key, (STRING, str(value))]
    return [key]


def range_of(operator: str, bound: Any) -> tuple[Key, Key] | None:
    """Return the keys [low, high) a comparison `operator` with `bound` may match, or None.

    Comparisons do not cross types (MongoDB's type bracketing, which the emulation keeps):
    `$gte: 10` matches numbers only, so its keys run from (NUMBER, 10) to the end of the
    numbers. The ends are inclusive or not by the operator; the filter decides the edge.
    """
    key = key_of(bound)
    if key is None or key == NULL or key[0] == BOOLEAN:
        return None
    rank = key[0]
    if operator in ("$gt", "$gte"):
        return key, (rank + 1,)
    if operator in ("$lt", "$lte"):
        return (rank,), (key[0], key[1], 1)  # (rank, value, 1) sorts just after the bound
    return None


MISSING = object()


def values_at(document: Any, path: list[str]) -> Iterator[Any]:
    """Yield what a filter on a dotted path compares in a document, as the emulation does.

    Arrays on the way are entered (each element that is a document is followed); a missing
    field yields MISSING. An array at the end is yielded whole: the caller enters it.
    """
    if not path:
        yield document
        return
    if isinstance(document, dict):
        if path[0] in document:
            yield from values_at(document[path[0]], path[1:])
        else:
            yield MISSING
    elif isinstance(document, list):
        for element in document:
            if isinstance(element, dict):
                yield from values_at(element, path)


class IndexedValues:
    """A document's keys at one path: the keys, and whether they came from an array."""

    __slots__ = ("keys", "multikey", "keyless")

    def __init__(self, document: Any, path: list[str]) -> None:
        self.keys: set[Key] = set()
        self.multikey = False  # an array on the way or at the end
        self.keyless = False  # a value with no key (a dict, ...): no sort walk over it
        if len(path) == 1 and type(document) is dict:  # the common case, without a walk
            values = [document.get(path[0], MISSING)]
        else:
            values = list(values_at(document, path))
            if len(values) != 1 or _through_array(document, path):
                self.multikey = True
        for value in values:
            if value is MISSING:
                self.keys.add(NULL)
            elif isinstance(value, list):
                self.multikey = True
                for element in value:
                    key = key_of(element)
                    if key is None:
                        self.keyless = True
                    else:
                        self.keys.add(key)
            else:
                key = key_of(value)
                if key is None:
                    self.keyless = True
                else:
                    self.keys.add(key)

    def single(self) -> Key | None:
        """Return the one key of a plain scalar (or missing) value, else None."""
        if self.multikey or self.keyless or len(self.keys) != 1:
            return None
        return next(iter(self.keys))


def _through_array(document: Any, path: list[str]) -> bool:
    """Tell whether a path crosses an array before its last part."""
    for part in path[:-1]:
        if isinstance(document, list):
            return True
        if not isinstance(document, dict) or part not in document:
            return False
        document = document[part]
    return isinstance(document, list)


def usable_path(path: str) -> bool:
    """Tell whether an index can serve a path: no numeric part (`a.0.b` picks an element)."""
    return not any(part.isdigit() for part in path.split("."))
