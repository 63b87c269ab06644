"""mongomock, made to use its indexes: the hooks that keep them current and plan each query.

mongomock implements MongoDB's query language well and tests every document against every
query: it keeps no index. This module gives it what a server has, without changing an
answer: the indexes a collection declares (`create_index`) are kept current on every write
path (insert, update in place, replace, upsert, delete, drop, and the journal's replay),
and every read (find, find_one, count, update, delete, find_one_and_*, aggregate's first
$match) is planned by embedded_mongo.planner. A cursor with a limit computes only what
it returns. `Cursor.explain()` answers as MongoDB's does, and WORKSHOP_STORE_PROFILE names a
file the queries are written to, as MongoDB's profiler writes `system.profile`.

Importing the module installs the hooks (embedded_mongo imports it).
"""

import copy
import datetime
import functools
import itertools
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import bson
import mongomock
from bson import ObjectId
from bson.errors import InvalidDocument
from mongomock import helpers
from mongomock.collection import Collection, Cursor
from mongomock.store import CollectionStore
from packaging import version

from embedded_mongo import planner, profiler
from embedded_mongo.indexes import Index
from embedded_mongo.keys import equal_keys, usable_path

# The write call this thread is in (the outermost one) and the documents it touched.
writing = threading.local()


def store_key(document_id: Any) -> Hashable:
    """Return the key the emulation files a document under (a dict _id as a hashable dict)."""
    return helpers.hashdict(document_id) if isinstance(document_id, dict) else document_id


# --- the store: natural order, and the indexes filed on every change ---------------------


def _state(store: CollectionStore) -> "IndexedState":
    state = store.__dict__.get("_indexed")
    if state is None:
        state = store.__dict__["_indexed"] = IndexedState(store)
    return state


class IndexedState:
    """What a collection's store keeps besides its documents: their order and its indexes."""

    def __init__(self, store: CollectionStore) -> None:
        self.lock = threading.RLock()  # index structures: one writer, readers snapshot
        self.seqs: dict[Hashable, int] = {}  # document -> its place in insertion order
        self.counter = itertools.count()
        self.indexes: dict[str, Index] = {}
        for key in store._documents:  # a store made before the hooks (none, normally)
            self.seqs[key] = next(self.counter)

    def place(self, key: Hashable) -> None:
        """Give a new document its place in the natural order (filed in the indexes later)."""
        with self.lock:
            if key not in self.seqs:
                self.seqs[key] = next(self.counter)

    def file(self, key: Hashable, document: dict[str, Any] | None) -> None:
        """Record a document's new state (None: removed) in the order and every index."""
        with self.lock:
            if document is None:
                seq = self.seqs.pop(key, -1)
                for index in self.indexes.values():
                    index.unfile(key, seq)
                return
            seq = self.seqs.get(key)
            if seq is None:
                seq = self.seqs[key] = next(self.counter)
            for index in self.indexes.values():
                index.refile(key, document, seq)

    def view(self, store: CollectionStore) -> planner.Collection:
        # Only the indexes the store still declares (drop_indexes empties that dict only).
        declared = {n: i for n, i in self.indexes.items() if n in store.indexes}
        return planner.Collection(store._documents, self.seqs, declared, store_key)


def _filed_set(set_item: Callable) -> Callable:
    def set_document(self: CollectionStore, key: Hashable, document: Any) -> None:
        touched = getattr(writing, "touched", None)
        if touched is not None and touched.store is self:
            touched.keys[key] = None
        set_item(self, key, document)
        if getattr(writing, "inserting", False):
            _state(self).place(key)  # _insert checks the unique indexes next: filed there
        else:
            _state(self).file(key, document)

    return set_document


def _inserting(insert: Callable) -> Callable:
    """An insert stores the document, then checks the unique indexes (which files it): file
    it once, not twice."""

    def insert_document(self: Collection, data: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):  # a list: each document comes back here
            return insert(self, data, *args, **kwargs)
        writing.inserting = True
        try:
            return insert(self, data, *args, **kwargs)
        finally:
            writing.inserting = False

    return insert_document


def _filed_delete(delete_item: Callable) -> Callable:
    def delete_document(self: CollectionStore, key: Hashable) -> None:
        touched = getattr(writing, "touched", None)
        if touched is not None and touched.store is self:
            touched.keys[key] = None
        delete_item(self, key)
        _state(self).file(key, None)

    return delete_document


def _indexed_create(create: Callable) -> Callable:
    def create_index(self: CollectionStore, name: str, description: dict[str, Any]) -> None:
        create(self, name, description)
        spec = [(path, int(direction)) for path, direction in description["key"]]
        state = _state(self)
        with state.lock:
            if not all(usable_path(path) for path, _ in spec) or not all(
                direction in (1, -1) for _, direction in spec
            ):
                state.indexes.pop(name, None)  # text, hashed, 2d or a positional path: scans
                return
            index = Index(name, spec, unique=bool(description.get("unique")))
            for key, document in self._documents.items():
                index.refile(key, document, state.seqs[key])
            state.indexes[name] = index

    return create_index


def _indexed_drop_index(drop: Callable) -> Callable:
    def drop_index(self: CollectionStore, name: str) -> None:
        drop(self, name)
        with _state(self).lock:
            _state(self).indexes.pop(name, None)

    return drop_index


def _indexed_drop(drop: Callable) -> Callable:
    def drop_collection(self: CollectionStore) -> None:
        drop(self)
        state = _state(self)
        with state.lock:
            state.indexes.clear()
            state.seqs.clear()

    return drop_collection


# --- the collection: reads planned, in-place updates re-filed ----------------------------


def _refiled_before_unique_check(check: Callable) -> Callable:
    """An update changes a document in place, then checks the unique indexes: file the
    document's new state first (the check reads the indexes)."""

    def ensure_uniques(self: Collection, document: dict[str, Any]) -> None:
        writing.inserting = False  # a document stored just before is filed here, once
        key = store_key(document["_id"])
        if key in self._store._documents:
            _state(self._store).file(key, document)
        check(self, document)

    return ensure_uniques


def _iter_documents(self: Collection, search: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The documents a filter matches, in natural order: every read and write's selection."""
    store = self._store
    if store.is_empty:
        mongomock.filtering.filter_applies(search, {})  # a bad filter fails on no documents too
        return iter(())
    plan = planner.Plan()
    with _state(store).lock:
        keys = planner.choose(_state(store).view(store), search, plan)
    found = _run(store, keys, search, plan)
    touched = getattr(writing, "touched", None)
    if touched is not None and touched.store is store:  # a write may change what it reads
        found = touched.recording(found)
    return _profiled(self, writing_operation(), search, plan, found)


def _run(
    store: CollectionStore, keys: list[Hashable], search: dict[str, Any], plan: planner.Plan
) -> Iterator[dict[str, Any]]:
    documents = store._documents
    by_id = plan.stage == "IDHACK" and planner.is_exact(search, plan)  # an _id never changes
    for key in keys:
        document = documents.get(key)
        if document is None:
            continue
        plan.docs_examined += 1
        if by_id or mongomock.filtering.filter_applies(search, document):
            plan.returned += 1
            yield document


def writing_operation() -> str:
    return getattr(writing, "operation", None) or "query"


def _profiled(
    collection: Collection,
    operation: str,
    search: dict[str, Any],
    plan: planner.Plan,
    found: Iterator[dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    """Pass documents on; once the caller is done, write the query to the profile."""
    if not profiler.enabled():
        return found

    def passing() -> Iterator[dict[str, Any]]:
        try:
            yield from found
        finally:
            profiler.record(collection, operation, search, plan)

    return passing()


def _compute_results(self: Cursor, with_limit_and_skip: bool = False) -> list[dict[str, Any]]:
    """A cursor's documents, computed once: only as many as skip + limit when a limit is
    set (the planner may then walk an index and stop), projected and dated as mongomock
    does."""
    limit = abs(self._limit) if self._limit else None
    need = self._skip + limit if with_limit_and_skip and limit else None
    planned = self.__dict__.get("_planned")
    if (
        planned is None
        or planned.factory is not self._factory
        or (planned.need is not None and (need is None or need > planned.need))
    ):
        planned = self.__dict__["_planned"] = _plan_cursor(self, need)
    if not with_limit_and_skip:
        return planned.results
    window = (self._skip, limit)
    if planned.window != window:
        results = planned.results[self._skip :]
        planned.window, planned.windowed = window, results[:limit] if limit else results
    return planned.windowed


class Planned:
    """A cursor's computed results, and how they were found."""

    __slots__ = ("factory", "need", "results", "plan", "window", "windowed")

    def __init__(self, factory: Any, need: int | None, results: list, plan: planner.Plan):
        self.factory, self.need, self.results, self.plan = factory, need, results, plan
        self.window: tuple | None = None
        self.windowed: list = []


def _plan_cursor(cursor: Cursor, need: int | None) -> Planned:
    collection = cursor.collection
    store = collection._store
    spec, sort, projection = cursor._spec, _sort_of(cursor), cursor._projection
    plan = planner.Plan()
    if store.is_empty:
        mongomock.filtering.filter_applies(spec, {})  # a bad filter fails on no documents too
        documents: list[dict[str, Any]] = []
    else:
        state = _state(store)
        with state.lock:
            documents = planner.find(state.view(store), spec, sort, need, plan)
        if need is not None:
            documents = documents[:need]
    project = _projector(projection)
    if project is None:
        # A copy of the projection: mongomock edits it while it reads.
        projection = dict(projection) if isinstance(projection, dict) else projection
        project = functools.partial(_copy_only_fields, collection, projection)
    results = [_copied(project, document) for document in documents]
    if collection.codec_options.tz_aware:
        results = [helpers.make_datetime_timezone_aware_in_document(r) for r in results]
    limit = abs(cursor._limit) if cursor._limit else None
    plan.returned = max(0, len(results) - cursor._skip)
    if limit is not None:
        plan.returned = min(limit, plan.returned)
    if profiler.enabled() and not getattr(writing, "aggregating", False):
        comment = cursor.__dict__.get("_comment")
        profiler.record(collection, "query", spec, plan, sort=sort, comment=comment)
    return Planned(cursor._factory, need, results, plan)


def _projector(projection: Any) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Return a fast copy for the projections the services use (top-level fields, all
    included or all excluded), making what mongomock's does, key order included; None for
    the others (mongomock projects them)."""
    copy_field = mongomock.collection._copy_field
    if projection is None or projection == {}:
        return lambda document: copy_field(document, dict)
    if not isinstance(projection, dict) or any(
        "." in key or key.startswith("$") for key in projection
    ):
        return None
    values = {bool(v) for k, v in projection.items() if k != "_id"}
    if not all(isinstance(v, bool | int) for v in projection.values()) or len(values) != 1:
        return None
    wanted = {key for key in projection if key != "_id"}
    if values == {True} and projection.get("_id", 1):

        def including(document: dict[str, Any]) -> dict[str, Any]:
            copied = {k: copy_field(v, dict) for k, v in document.items() if k in wanted}
            if "_id" in document:
                copied["_id"] = document["_id"]  # last, as mongomock puts it
            return copied

        return including
    if values == {False} and "_id" not in projection:
        return lambda document: {
            k: copy_field(v, dict) for k, v in document.items() if k not in wanted
        }
    return None


def _copy_only_fields(
    collection: Collection, projection: Any, document: dict[str, Any]
) -> dict[str, Any]:
    return collection._copy_only_fields(document, projection, dict)


# How often a read copies a document again that a writer was changing (see _copied).
COPY_ATTEMPTS = 100


def _copied(copy: Callable[[dict[str, Any]], dict[str, Any]], document: dict[str, Any]) -> Any:
    """Copy a stored document as `copy` does, again if a writer changed it meanwhile.

    Readers copy outside the index lock, from the very dicts mongomock's writers change in
    place (another thread: a service's relay clears its marks while a request reads). A
    copy made while one does fails ("mutated during iteration"); the next sees it whole.
    """
    for _ in range(COPY_ATTEMPTS - 1):
        try:
            return copy(document)
        except RuntimeError:
            continue
    return copy(document)


def _next(self: Cursor) -> dict[str, Any]:
    """The next document: from the computed window, without copying it again each time."""
    results = self._compute_results(with_limit_and_skip=True)
    if self._emitted >= len(results):
        raise StopIteration()
    self._emitted += 1
    return results[self._emitted - 1]


def _sort_of(cursor: Cursor) -> list[tuple[str, int]] | None:
    sort = cursor._sort
    if not sort:
        return None
    return list(sort.items()) if isinstance(sort, dict) else list(sort)


def _commented(find: Callable) -> Callable:
    """find() takes a `comment`, as PyMongo's does, and the profile shows it (MongoDB's
    profiler writes it with the query): mongomock refuses the argument."""

    def find_with_comment(self: Collection, *args: Any, comment: Any = None, **kwargs: Any):
        cursor = find(self, *args, **kwargs)
        if comment is not None:
            cursor.__dict__["_comment"] = comment
        return cursor

    return find_with_comment


def find_one(self: Collection, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
    """The first document a filter matches, computing one only (as PyMongo's limit(-1))."""
    if filter is None:
        filter = {}
    if not isinstance(filter, dict):
        filter = {"_id": filter}
    for document in self.find(filter, *args, **kwargs).limit(-1):
        return document
    return None


def _counted(count: Callable) -> Callable:
    """count_documents: from the index alone when one field's index answers it exactly."""

    def count_documents(self: Collection, filter: dict[str, Any], **kwargs: Any) -> int:
        covered = None if kwargs else _count_from_index(self, filter)
        return count(self, filter, **kwargs) if covered is None else covered

    return count_documents


def _count_from_index(collection: Collection, search: Any) -> int | None:
    """Count `{path: string}` or `{path: {"$in": [strings]}}` from the buckets of an index
    on that path (first), as MongoDB counts from an index: no document is read. None when
    that cannot be exact. An empty filter counts the collection."""
    if search == {}:
        return len(collection._store)
    if not isinstance(search, dict) or len(search) != 1:
        return None
    ((path, condition),) = search.items()
    if isinstance(condition, dict) and set(condition) == {"$in"}:
        values = condition["$in"]
    elif isinstance(condition, dict):
        return None
    else:
        values = [condition]
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        return None  # other types match across kinds in the emulation: the filter decides
    store = collection._store
    state = _state(store)
    with state.lock:
        view = state.view(store)
        index = next((i for i in view.indexes.values() if i.field == path), None)
        if index is None or path.startswith("$") or not usable_path(path):
            return None
        keys = [key for value in values for key in (equal_keys(value) or [])]
        plan = planner.Plan(stage="COUNT_SCAN", index=index, keys_examined=index.count(keys))
        count = len(index.documents(keys))
    plan.returned = count
    if profiler.enabled():
        profiler.record(collection, "count", search, plan)
    return count


def _aggregate_from_match(aggregate: Callable) -> Callable:
    """An aggregation reads its documents through the planner (from an index when it
    starts with a $match one can serve), and the profile says what the whole pipeline
    read and gave, as MongoDB's does."""

    def aggregate_pipeline(self: Collection, pipeline: list[dict[str, Any]], *args, **kwargs):
        search: dict[str, Any] = {}
        if pipeline and isinstance(pipeline[0], dict) and set(pipeline[0]) == {"$match"}:
            search, pipeline = pipeline[0]["$match"], pipeline[1:]
        writing.aggregating = True  # its read is the aggregation's, not a query of its own
        try:
            cursor = self.find(search)
            documents = list(cursor)
        finally:
            writing.aggregating = False
        results = list(
            mongomock.aggregate.process_pipeline(
                documents, self.database, pipeline, kwargs.get("session")
            )
        )
        if profiler.enabled():
            plan = cursor.__dict__["_planned"].plan
            plan.returned = len(results)
            profiler.record(self, "aggregate", search, plan)
        return mongomock.command_cursor.CommandCursor(results)

    return aggregate_pipeline


def to_list(self: Any, length: int | None = None) -> list[dict[str, Any]]:
    """The rest of a cursor as a list, at most `length` documents: PyMongo's `to_list()`
    (4.9 on, on both its APIs), which mongomock's cursors lack."""
    if length is not None and length < 1:
        raise ValueError("to_list() length must be greater than 0")  # as PyMongo says
    return list(self if length is None else itertools.islice(self, length))


def explain(self: Cursor) -> dict[str, Any]:
    """Run the query and say how, in the shape of MongoDB's explain("executionStats")."""
    self.__dict__.pop("_planned", None)
    results = self._compute_results(with_limit_and_skip=True)
    plan: planner.Plan = self.__dict__["_planned"].plan
    collection = self.collection
    scan: dict[str, Any] = {"stage": plan.stage}
    if plan.index is not None:
        scan.update(indexName=plan.index.name, keyPattern=plan.index.key_pattern,
                    isMultiKey=not plan.index.can_walk())  # fmt: skip
    winning = {"stage": "FETCH", "inputStage": scan} if plan.stage != "COLLSCAN" else scan
    if plan.sorted_in_memory:
        winning = {"stage": "SORT", "inputStage": winning}
    return {
        "queryPlanner": {
            "namespace": f"{collection.database.name}.{collection.name}",
            "winningPlan": winning,
            "rejectedPlans": [{"stage": text} for text in plan.rejected],
        },
        "executionStats": {
            "nReturned": len(results),
            "totalKeysExamined": plan.keys_examined,
            "totalDocsExamined": plan.docs_examined,
        },
    }


# --- writes: what each call touched, for the journal ------------------------------------


class Touched:
    """The documents one write call touched in one collection's store (keys, in order)."""

    def __init__(self, store: CollectionStore) -> None:
        self.store = store
        self.keys: dict[Hashable, None] = {}

    def recording(self, documents: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for document in documents:
            self.keys[store_key(document["_id"])] = None
            yield document


# Called after every outermost write call with (collection, documents put, keys gone): the
# journal of a kept database listens (embedded_mongo.journal).
AfterWrite = Callable[[Collection, list[dict[str, Any]], list[Hashable]], None]
after_write: list[AfterWrite] = []
# A write call may hold a lock of the listener's while it runs (the journal's: one write
# call at a time per database, its record included). Returns a context manager or None.
around_write: list[Callable[[Collection], Any]] = []

WRITES = {
    "_insert": "insert", "_update": "update", "_delete": "remove", "insert_one": "insert",
    "insert_many": "insert", "update_one": "update", "update_many": "update",
    "replace_one": "update", "delete_one": "remove", "delete_many": "remove",
    "bulk_write": "bulkWrite", "find_one_and_delete": "findAndModify",
    "find_one_and_replace": "findAndModify", "find_one_and_update": "findAndModify",
}  # fmt: skip


def _written(write: Callable, operation: str) -> Callable:
    """Make a write call note what it touched, and tell the listeners once it is done.

    The outermost call reports (find_one_and_update runs _update, which may run _insert):
    the documents it touched as they are now, read under the listener's lock, so the last
    report of a document is its latest state. It reports after a failure too: an unordered
    bulk write that fails on one document has still written the others.
    """

    def written_call(self: Collection, *args: Any, **kwargs: Any) -> Any:
        if getattr(writing, "touched", None) is not None:
            return write(self, *args, **kwargs)
        guards = [guard(self) for guard in around_write]
        for guard in guards:
            if guard is not None:
                guard.__enter__()
        store = self._store
        touched = writing.touched = Touched(store)
        writing.operation = operation
        try:
            return write(self, *args, **kwargs)
        finally:
            writing.touched = writing.operation = None
            writing.inserting = False
            try:
                present = store._documents  # the raw store: no expiry pass, no lock
                put = [present[key] for key in touched.keys if key in present]
                # Filed again as they are now: a write that failed half way (an operator
                # refused after another applied) changed a document in place unfiled.
                state = _state(store)
                for document in put:
                    state.file(store_key(document["_id"]), document)
                if after_write and touched.keys:
                    gone = [key for key in touched.keys if key not in present]
                    for listener in after_write:
                        listener(self, put, gone)
            finally:
                for guard in reversed(guards):
                    if guard is not None:
                        guard.__exit__(None, None, None)

    return written_call


# --- install ------------------------------------------------------------------------------


def _without_sort(add: Callable) -> Callable:
    """Let the emulation's bulk_write take the `sort` PyMongo 4.9+ passes (None unless used);
    without it, bulk_write with UpdateOne or ReplaceOne fails here (TypeError)."""

    def add_write(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("the emulation cannot sort in a bulk write")
        return add(self, *args, **kwargs)

    return add_write


# --- the same work, faster: mongomock's hot paths, with their answers unchanged ---------
# A 30,000-post import spent most of its time in three helpers that redo per field what
# could be done once: parse PyMongo's version (for every $set field), copy immutable
# scalars, and rebuild every dict to look for dates. tests/unit/test_embedded_indexes.py
# runs every write path through them.

_SCALARS = (str, int, float, bool, type(None), bytes, datetime.datetime, ObjectId)
_CHECK_KEYS = version.parse("3.6") > helpers.PYMONGO_VERSION  # False on any PyMongo 4


def _copy_field(original: Callable) -> Callable:
    def copy_field(value: Any, container: Any) -> Any:
        kind = type(value)
        if kind is dict:
            copied = container()
            for key, item in value.items():
                copied[key] = copy_field(item, container)
            return copied
        if kind is list:
            return [copy_field(item, container) for item in value]
        if kind in _SCALARS:
            return value  # immutable: copy.copy gives it back as it is
        return original(value, container)

    return copy_field


def _patch_dates(original: Callable) -> Callable:
    def patch_datetime_awareness_in_document(value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            return {key: patch_datetime_awareness_in_document(v) for key, v in value.items()}
        if kind is list or kind is tuple:
            return [patch_datetime_awareness_in_document(item) for item in value]
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value
        return original(value)  # dates, timestamps, OrderedDicts: as mongomock does

    return patch_datetime_awareness_in_document


def _dated(original: Callable) -> Callable:
    def make_datetime_timezone_aware_in_document(value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value
        if kind is dict:
            return {k: make_datetime_timezone_aware_in_document(v) for k, v in value.items()}
        if kind is list:
            return [make_datetime_timezone_aware_in_document(item) for item in value]
        return original(value)  # dates (given UTC), tuples, other mappings: as mongomock does

    return make_datetime_timezone_aware_in_document


def _set_updater(document: Any, field_name: str, value: Any) -> None:
    """mongomock's $set, with the version check it made per field made once."""
    if isinstance(value, tuple | list):
        value = copy.deepcopy(value)
    if not _CHECK_KEYS and ("\0" in field_name or field_name.startswith("$")):
        raise InvalidDocument(
            "Field name cannot contain the null character and top-level field name "
            f'cannot start with "$" (found: {field_name})'
        )
    bson.encode({field_name: value}, check_keys=_CHECK_KEYS)
    if isinstance(document, dict):
        document[field_name] = value
    elif isinstance(document, list):
        index = int(field_name)
        if index < 0:
            raise mongomock.WriteError("Negative index provided")
        missing = index - (len(document) - 1)
        if missing > 0:
            document += [None] * missing
        document[index] = value


def _install() -> None:
    module = mongomock.collection
    module._copy_field = _copy_field(module._copy_field)
    helpers.patch_datetime_awareness_in_document = _patch_dates(
        helpers.patch_datetime_awareness_in_document
    )
    helpers.make_datetime_timezone_aware_in_document = _dated(
        helpers.make_datetime_timezone_aware_in_document
    )
    module._set_updater = module._updaters["$set"] = _set_updater
    builder = mongomock.collection.BulkOperationBuilder
    for name in ("add_update", "add_replace"):
        setattr(builder, name, _without_sort(getattr(builder, name)))
    CollectionStore.__setitem__ = _filed_set(CollectionStore.__setitem__)
    CollectionStore.__delitem__ = _filed_delete(CollectionStore.__delitem__)
    CollectionStore.create_index = _indexed_create(CollectionStore.create_index)
    CollectionStore.drop_index = _indexed_drop_index(CollectionStore.drop_index)
    CollectionStore.drop = _indexed_drop(CollectionStore.drop)
    Collection._ensure_uniques = _refiled_before_unique_check(Collection._ensure_uniques)
    Collection._iter_documents = _iter_documents
    Collection._insert = _inserting(Collection._insert)
    Collection.find = _commented(Collection.find)
    Collection.find_one = find_one
    Collection.count_documents = _counted(Collection.count_documents)
    Collection.aggregate = _aggregate_from_match(Collection.aggregate)
    Cursor._compute_results = _compute_results
    Cursor.__next__ = Cursor.next = _next
    Cursor.explain = explain
    Cursor.to_list = mongomock.command_cursor.CommandCursor.to_list = to_list
    for name, operation in WRITES.items():
        setattr(Collection, name, _written(getattr(Collection, name), operation))


_install()
