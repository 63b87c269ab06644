"""Answer a filter from the indexes, as MongoDB's query planner does, with the scan's answers.

A filter that constrains an indexed field by equality, `$in` or a range takes its
candidates from that index (the one that holds fewest) and the whole filter is applied to
those only; a sort on an indexed field with a limit walks that index in order and stops
once it has enough; the rest is a scan. Whatever the plan, the documents and their order
are the scan's (tests/unit/test_embedded_indexes.py compares them): candidates come back
in the collection's natural order, and ties in a sort keep it, as the emulation's stable
sort does. A `Plan` counts the index keys and the documents it examined, as MongoDB's
`explain()` reports them (totalKeysExamined, totalDocsExamined).
"""

import functools
import re
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bson.regex import Regex
from mongomock import filtering
from mongomock.filtering import filter_applies

from embedded_mongo.indexes import Index
from embedded_mongo.keys import Key, equal_keys, range_of, usable_path

Sort = list[tuple[str, int]]
RANGE_OPERATORS = ("$gt", "$gte", "$lt", "$lte")


@dataclass
class Plan:
    """What a query did, in the words of MongoDB's explain()."""

    stage: str = "COLLSCAN"  # COLLSCAN, IXSCAN, IDHACK, COUNT_SCAN
    index: Index | None = None
    keys_examined: int = 0
    docs_examined: int = 0
    returned: int = 0
    sorted_in_memory: bool = False
    rejected: list[str] = field(default_factory=list)  # plans tried and given up

    def summary(self) -> str:
        """Return the plan as MongoDB's profiler writes planSummary: 'IXSCAN { terms: 1 }'."""
        if self.index is None:
            return self.stage
        fields = ", ".join(f"{path}: {direction}" for path, direction in self.index.spec)
        return f"{self.stage} {{ {fields} }}"


@dataclass(frozen=True)
class Candidates:
    """The documents one index gives for one condition of a filter."""

    index: Index
    keys: list[Key]
    estimate: int  # entries under the keys (a document under two keys counts twice)


class Collection:
    """What the planner needs of a collection's store: documents, order, indexes."""

    def __init__(
        self,
        documents: dict[Hashable, dict[str, Any]],
        seqs: dict[Hashable, int],
        indexes: dict[str, Index],
        store_key: Callable[[Any], Hashable],
    ) -> None:
        self.documents = documents
        self.seqs = seqs
        self.indexes = indexes
        self.store_key = store_key

    def natural(self, keys: set[Hashable] | list[Hashable]) -> list[Hashable]:
        """Return document keys in the collection's natural (insertion) order."""
        seqs = self.seqs
        return sorted((k for k in keys if k in seqs), key=seqs.__getitem__)


# --- planning ---------------------------------------------------------------------------


def conditions(search: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """Yield (path, operator, operand) for what a filter asks of single fields, ANDed.

    Only positive conditions that narrow a field to some values: equality, $eq, $in and the
    comparisons. `$and` is entered; `$or`, `$nor`, `$not`, `$ne`, `$nin`, `$exists`,
    `$regex`, `$elemMatch`, ... narrow nothing here: the full filter applies them.
    """
    for path, condition in search.items():
        if path == "$and" and isinstance(condition, list):
            for part in condition:
                if isinstance(part, dict):
                    yield from conditions(part)
            continue
        if path.startswith("$") or not usable_path(path):
            continue
        if isinstance(condition, dict):
            if condition and all(str(k).startswith("$") for k in condition):
                for operator, operand in condition.items():
                    if operator in ("$eq", "$in", *RANGE_OPERATORS):
                        yield path, operator, operand
            continue
        yield path, "$eq", condition


def keys_for(index: Index, operator: str, operand: Any) -> list[Key] | None:
    """Return the keys of an index that may hold a condition's documents, or None."""
    if operator == "$eq":
        return equal_keys(operand)
    if operator == "$in":
        if not isinstance(operand, list | tuple):
            return None
        keys: list[Key] = []
        for value in operand:
            found = equal_keys(value)
            if found is None:  # null (also matches a missing field), a regex, an array...
                return None
            keys.extend(found)
        return list(dict.fromkeys(keys))
    bounds = range_of(operator, operand)
    return index.keys_between(*bounds) if bounds else None


def best_candidates(collection: Collection, search: dict[str, Any]) -> Candidates | None:
    """Return the index and keys that give the fewest candidates for a filter, or None."""
    best: Candidates | None = None
    for path, operator, operand in conditions(search):
        for index in collection.indexes.values():
            if index.field != path:
                continue
            keys = keys_for(index, operator, operand)
            if keys is None:
                continue
            estimate = index.count(keys)
            if best is None or estimate < best.estimate:
                best = Candidates(index, keys, estimate)
    return best


def alternatives(collection: Collection, search: dict[str, Any]) -> list[Candidates] | None:
    """Return candidates for each branch of a top-level $or, if every branch has some."""
    branches = search.get("$or")
    if not isinstance(branches, list) or not branches:
        return None
    found = []
    for branch in branches:
        if not isinstance(branch, dict):
            return None
        candidates = best_candidates(collection, branch)
        if candidates is None:
            return None
        found.append(candidates)
    return found


def by_id(collection: Collection, search: dict[str, Any]) -> list[Hashable] | None:
    """Return the document keys a filter names by _id (equality or $in), or None."""
    wanted = search.get("_id")
    if wanted is None:
        return None
    if isinstance(wanted, dict):
        if set(wanted) == {"$in"} and isinstance(wanted["$in"], list | tuple):
            values = wanted["$in"]
        elif set(wanted) == {"$eq"}:
            values = [wanted["$eq"]]
        else:
            return None
    elif isinstance(wanted, list):
        return None
    else:
        values = [wanted]
    keys = []
    for value in values:
        if isinstance(value, re.Pattern | Regex | dict | list):  # matched, not looked up
            return None
        try:
            key = collection.store_key(value)
            hash(key)
        except TypeError:
            return None
        keys.append(key)
    return keys


def sort_walk(collection: Collection, sort: Sort | None) -> Index | None:
    """Return an index that gives documents in the order of a sort's first field, or None."""
    if not sort:
        return None
    path, _ = sort[0]
    for index in collection.indexes.values():
        if index.field == path and usable_path(path) and index.can_walk():
            return index
    return None


# --- running ----------------------------------------------------------------------------


def exact_path(search: dict[str, Any]) -> str | None:
    """Return the path of a filter that is one string equality or $in of strings, else None.

    An index on that path gives exactly its documents (strings have no look-alikes of
    other types), so they need no filtering; others need the filter.
    """
    if len(search) != 1:
        return None
    ((path, condition),) = search.items()
    if path.startswith("$") or not usable_path(path):
        return None
    if isinstance(condition, dict):
        if set(condition) == {"$eq"}:
            condition = condition["$eq"]
        elif set(condition) == {"$in"} and isinstance(condition["$in"], list | tuple):
            return path if all(isinstance(v, str) for v in condition["$in"]) else None
        else:
            return None
    return path if isinstance(condition, str) else None


def is_exact(search: dict[str, Any], plan: Plan) -> bool:
    """Tell whether the plan's keys are exactly the filter's documents: strings named by an
    index on their path, or by _id (never an array). Testing each of them against an $in
    of thousands of ids again made such a read quadratic."""
    path = exact_path(search)
    if path is None:
        return False
    return (plan.index is not None and plan.index.field == path) or (
        plan.stage == "IDHACK" and path == "_id"
    )


def matching(
    collection: Collection, search: dict[str, Any], plan: Plan
) -> Iterator[dict[str, Any]]:
    """Yield the stored documents a filter matches, in natural order (no sort)."""
    keys = choose(collection, search, plan)
    exact = is_exact(search, plan)
    documents = collection.documents
    for key in keys:
        document = documents.get(key)
        if document is None:  # removed meanwhile
            continue
        plan.docs_examined += 1
        if exact or filter_applies(search, document):
            plan.returned += 1
            yield document


def choose(collection: Collection, search: dict[str, Any], plan: Plan) -> list[Hashable]:
    """Pick a plan for a filter and return the keys of the documents to examine."""
    named = by_id(collection, search)
    if named is not None:
        plan.stage = "IDHACK"
        present = [k for k in dict.fromkeys(named) if k in collection.documents]
        plan.keys_examined += len(present)
        return collection.natural(present)
    candidates = best_candidates(collection, search)
    branches = alternatives(collection, search) if candidates is None else None
    if candidates is not None:
        plan.stage, plan.index = "IXSCAN", candidates.index
        plan.keys_examined += candidates.estimate
        return collection.natural(candidates.index.documents(candidates.keys))
    if branches is not None:
        plan.stage, plan.index = "IXSCAN", branches[0].index
        found: set[Hashable] = set()
        for branch in branches:
            plan.keys_examined += branch.estimate
            found.update(branch.index.documents(branch.keys))
        return collection.natural(found)
    plan.stage = "COLLSCAN"
    return list(collection.documents)


def sorted_documents(documents: list[dict[str, Any]], sort: Sort) -> list[dict[str, Any]]:
    """Sort documents as the emulation does: a stable sort a key at a time, last key first."""
    for path, direction in reversed(sort):
        documents = sorted(
            documents,
            key=functools.partial(_sort_key, path),
            reverse=direction < 0,
        )
    return documents


def _sort_key(path: str, document: dict[str, Any]) -> Any:
    return filtering.resolve_sort_key(path, document)


def find(
    collection: Collection,
    search: dict[str, Any],
    sort: Sort | None,
    need: int | None,
    plan: Plan,
) -> list[dict[str, Any]]:
    """Return the stored documents a filter matches, sorted, at least the first `need` of
    them when given (all, when None).

    With a sort whose first field an index can walk, and a limit, the walk races the best
    filter index: it may examine as many documents as that index would give; if it has
    enough by then, its answer stands, else the filter index answers (both counted).
    """
    bucket = bucket_walk(collection, search, sort)
    if bucket is not None:
        index, key, forward = bucket
        return walked_bucket(collection, index, key, not forward, search, need, plan)
    walk = sort_walk(collection, sort) if need is not None else None
    if walk is not None:
        candidates = best_candidates(collection, search)
        named = by_id(collection, search)
        if named is None and (candidates is None or candidates.estimate > need):
            budget = None if candidates is None else candidates.estimate
            walked = walked_documents(collection, walk, search, sort, need, budget, plan)
            if walked is not None:
                return walked
            plan.rejected.append(f"IXSCAN {{ {walk.field}: ... }} (sort)")
    found = list(matching(collection, search, plan))
    if sort:
        plan.sorted_in_memory = True
        found = sorted_documents(found, sort)
    return found


def bucket_walk(
    collection: Collection, search: dict[str, Any], sort: Sort | None
) -> tuple[Index, Key, bool] | None:
    """Return (index, key, forward) when a filter fixes a compound index's first field to
    one key and the sort is the index's other fields: that key's entries are in order."""
    if not sort:
        return None
    for path, operator, operand in conditions(search):
        if operator != "$eq":
            continue
        keys = equal_keys(operand)
        if keys is None or len(keys) != 1:
            continue
        for index in collection.indexes.values():
            if index.field != path:
                continue
            forward = index.walks_in(sort)
            if forward is not None and index.can_walk_bucket(keys[0]):
                return index, keys[0], forward
    return None


def walked_bucket(
    collection: Collection,
    index: Index,
    key: Key,
    reverse: bool,
    search: dict[str, Any],
    need: int | None,
    plan: Plan,
) -> list[dict[str, Any]]:
    """Walk one key of an index in the order of its other fields until `need` match."""
    plan.stage, plan.index = "IXSCAN", index
    documents = collection.documents
    found: list[dict[str, Any]] = []
    for document_key in index.bucket_walk(key, collection.seqs, reverse):
        plan.keys_examined += 1
        document = documents.get(document_key)
        if document is None:
            continue
        plan.docs_examined += 1
        if filter_applies(search, document):
            found.append(document)
            if need is not None and len(found) >= need:
                break
    return found


def walked_documents(
    collection: Collection,
    index: Index,
    search: dict[str, Any],
    sort: Sort,
    need: int,
    budget: int | None,
    plan: Plan,
) -> list[dict[str, Any]] | None:
    """Walk an index in a sort's order until `need` documents match (None: the budget of
    examined documents ran out first)."""
    descending = sort[0][1] < 0
    rest = sort[1:]
    documents = collection.documents
    found: list[dict[str, Any]] = []
    examined = 0
    for group in index.ordered_walk(descending):
        plan.keys_examined += len(group)
        matched = []
        for key in collection.natural(group):
            document = documents.get(key)
            if document is None:
                continue
            examined += 1
            if filter_applies(search, document):
                matched.append(document)
        found.extend(sorted_documents(matched, rest) if rest and len(matched) > 1 else matched)
        if len(found) >= need:
            break
        if budget is not None and examined > budget:
            plan.docs_examined += examined
            return None
    plan.docs_examined += examined
    plan.stage, plan.index = "IXSCAN", index
    return found
