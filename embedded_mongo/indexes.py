"""The indexes a collection declares, kept current on every write, as MongoDB keeps them.

One `Index` per `create_index`: for its first field, a bucket of documents per key (every
scalar a document holds at the path, each element of an array: multikey) and the keys in
sorted order, for equality, `$in` and ranges; and, per bucket, the documents in the order
of the index's other fields (a compound index: equality on the first field, then a walk
in the order of the rest). A document is filed under what it holds now: every write
re-files the documents it touched (`refile`), and the old keys are remembered per
document, so a document changed in place leaves its old buckets too.
"""

import bisect
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

from embedded_mongo.keys import IndexedValues, Key

Spec = list[tuple[str, int]]  # [(path, 1 or -1), ...] as create_index takes it


class Descending:
    """A value that sorts backwards (of an index field declared -1)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: "Descending") -> bool:
        return other.key < self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _backwards(key: Key) -> tuple:
    """Return a key that sorts the other way: numbers negated (compared fast), others
    wrapped; the type rank negated first, so types keep apart and reverse too."""
    rank, value = key
    return (-rank, -value) if isinstance(value, int | float) else (-rank, Descending(value))


class Bucket:
    """The documents filed under one key of an index's first field."""

    __slots__ = ("tails", "untailed", "_ordered")

    def __init__(self) -> None:
        self.tails: dict[Hashable, tuple | None] = {}  # document -> its other fields' keys
        self.untailed = 0  # documents without one value of each other field
        self._ordered: list[tuple] | None = None  # (tail, seq, document), built when asked

    def __len__(self) -> int:
        return len(self.tails)

    def add(self, document: Hashable, tail: tuple | None, seq: int) -> None:
        self.tails[document] = tail
        self.untailed += tail is None
        if self._ordered is not None:
            if tail is None:
                self._ordered = None
            else:
                bisect.insort(self._ordered, (tail, seq, document))

    def remove(self, document: Hashable, seq: int) -> None:
        tail = self.tails.pop(document)
        self.untailed -= tail is None
        if self._ordered is not None and tail is not None:
            self._ordered.remove((tail, seq, document))

    def ordered(self, seqs: dict[Hashable, int]) -> list[tuple] | None:
        """Return (tail, seq, document) in the index's order, or None if a tail is missing."""
        if self._ordered is None:
            if self.untailed:
                return None
            self._ordered = sorted((tail, seqs[d], d) for d, tail in self.tails.items())
        return self._ordered


class Index:
    """One declared index of a collection, over the documents of its store."""

    def __init__(self, name: str, spec: Spec, unique: bool = False) -> None:
        self.name = name
        self.spec = spec
        self.unique = unique
        self.paths = [path.split(".") for path, _ in spec]
        self.field = spec[0][0]
        self.buckets: dict[Key, Bucket] = {}
        self.sorted_keys: list[Key] = []
        # document -> the keys it is under, its other fields' keys, and whether it has one key
        self.filed: dict[Hashable, tuple[tuple[Key, ...], tuple | None, bool]] = {}
        # Documents with an array or a value with no key on the first field: while any is
        # filed, the index cannot give its documents in order (each needs exactly one key).
        self.unordered: set[Hashable] = set()

    @property
    def key_pattern(self) -> dict[str, int]:
        return dict(self.spec)

    def refile(self, document_key: Hashable, document: dict[str, Any] | None, seq: int) -> None:
        """File a document under what it holds now (None: it is gone)."""
        if document is None:
            self.unfile(document_key, seq)
            return
        first = IndexedValues(document, self.paths[0])
        tail = self._tail(document)
        keys = tuple(sorted(first.keys))
        ordered = first.single() is not None
        if self.filed.get(document_key) == (keys, tail, ordered):
            return  # filed as it is (an update of other fields)
        self.unfile(document_key, seq)
        if not ordered:
            self.unordered.add(document_key)
        for key in keys:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = Bucket()
                bisect.insort(self.sorted_keys, key)
            bucket.add(document_key, tail, seq)
        self.filed[document_key] = (keys, tail, ordered)

    def unfile(self, document_key: Hashable, seq: int) -> None:
        keys, _, _ = self.filed.pop(document_key, ((), None, True))
        for key in keys:
            bucket = self.buckets[key]
            bucket.remove(document_key, seq)
            if not bucket:
                del self.buckets[key]
                del self.sorted_keys[bisect.bisect_left(self.sorted_keys, key)]
        self.unordered.discard(document_key)

    def _tail(self, document: dict[str, Any]) -> tuple | None:
        """Return the keys of a document's other indexed fields, in the index's order."""
        tail = []
        for path, (_, direction) in zip(self.paths[1:], self.spec[1:], strict=True):
            key = IndexedValues(document, path).single()
            if key is None:
                return None
            tail.append(key if direction == 1 else _backwards(key))
        return tuple(tail)

    def clear(self) -> None:
        self.buckets.clear()
        self.sorted_keys.clear()
        self.filed.clear()
        self.unordered.clear()

    # --- reading ----------------------------------------------------------------------

    def count(self, keys: Iterable[Key]) -> int:
        """Return how many entries the keys hold (documents under several are counted again)."""
        return sum(len(self.buckets[key]) for key in keys if key in self.buckets)

    def keys_between(self, low: Key, high: Key) -> list[Key]:
        """Return the keys k with low <= k < high, in order."""
        start = bisect.bisect_left(self.sorted_keys, low)
        end = bisect.bisect_left(self.sorted_keys, high)
        return self.sorted_keys[start:end]

    def documents(self, keys: Iterable[Key]) -> set[Hashable]:
        """Return the documents filed under any of the keys."""
        found: set[Hashable] = set()
        for key in keys:
            bucket = self.buckets.get(key)
            if bucket is not None:
                found.update(bucket.tails)
        return found

    def ordered_walk(self, descending: bool) -> Iterator[list[Hashable]]:
        """Yield the documents a bucket at a time, buckets in key order (or reversed).

        Only while every document has one key on the first field (see `unordered`).
        """
        keys = list(reversed(self.sorted_keys) if descending else self.sorted_keys)
        for key in keys:
            bucket = self.buckets.get(key)
            if bucket is not None:
                yield list(bucket.tails)

    def can_walk(self) -> bool:
        return not self.unordered

    def can_walk_bucket(self, key: Key) -> bool:
        """Tell whether every document under a key has one value of each other field."""
        bucket = self.buckets.get(key)
        return bucket is None or not bucket.untailed

    def bucket_walk(self, key: Key, seqs: dict[Hashable, int], reverse: bool) -> Iterator[Hashable]:
        """Yield one bucket's documents in the order of the index's other fields (reversed:
        the other way, ties still in natural order, as a stable sort leaves them).

        A snapshot of the bucket's order, taken now: writes meanwhile do not disturb it.
        """
        bucket = self.buckets.get(key)
        if bucket is None:
            return
        ordered = bucket.ordered(seqs)
        if ordered is None:
            raise LookupError("a document lacks a value of the index's other fields")
        ordered = list(ordered)
        if not reverse:
            for _, _, document in ordered:
                yield document
            return
        end = len(ordered)
        while end > 0:  # groups of equal tails, last first, each in natural order
            start = end - 1
            while start > 0 and ordered[start - 1][0] == ordered[end - 1][0]:
                start -= 1
            for _, _, document in ordered[start:end]:
                yield document
            end = start

    def walks_in(self, sort: list[tuple[str, int]]) -> bool | None:
        """Tell whether a bucket walk gives a sort's order: True forward, False backward,
        None if the index's other fields are not the sort's fields."""
        tail = self.spec[1:]
        if not tail or [path for path, _ in tail] != [path for path, _ in sort]:
            return None
        if all(d == s for (_, d), (_, s) in zip(tail, sort, strict=True)):
            return True
        if all(d == -s for (_, d), (_, s) in zip(tail, sort, strict=True)):
            return False
        return None
