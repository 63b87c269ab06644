"""The embedded emulation behind PyMongo's async API: just the calls the services make.

No library emulates AsyncMongoClient in process (mongomock-motor imitates Motor's older API),
so this wraps mongomock: every call is awaitable as PyMongo's is, and answers what the
blocking emulation answers (tests/unit/test_async_facade.py compares them). The emulation
is in-process work with no I/O, so a call runs to its end on the event loop; a real
server's calls await the network instead.
"""

from collections.abc import Callable
from typing import Any

from pymongo.database import Database


class AsyncFacade:
    """One database of the emulation, with PyMongo's async database calls."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.name = database.name

    def __getitem__(self, name: str) -> "AsyncCollectionFacade":
        return AsyncCollectionFacade(self._database[name])

    def __getattr__(self, name: str) -> "AsyncCollectionFacade":
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    async def command(self, command: str) -> dict[str, Any]:
        return self._database.command(command)

    async def list_collection_names(self) -> list[str]:
        return self._database.list_collection_names()


class AsyncCollectionFacade:
    """One collection of the emulation, with PyMongo's async collection calls."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.name = collection.name

    def find(self, *args: Any, **kwargs: Any) -> "AsyncCursorFacade":
        return AsyncCursorFacade(self._collection.find(*args, **kwargs))

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> "AsyncCursorFacade":
        return AsyncCursorFacade(self._collection.aggregate(pipeline))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in ASYNC_COLLECTION_CALLS:
            raise AttributeError(f"the async facade has no {name!r}: add it if a service needs it")
        call = getattr(self._collection, name)

        async def awaitable(*args: Any, **kwargs: Any) -> Any:
            return call(*args, **kwargs)

        return awaitable


# The collection calls the async services make, each a coroutine in PyMongo's async API.
ASYNC_COLLECTION_CALLS = frozenset({
    "find_one", "insert_one", "insert_many", "update_one", "update_many", "delete_one",
    "delete_many", "count_documents", "estimated_document_count", "find_one_and_update",
    "create_index", "bulk_write", "distinct", "drop",
})  # fmt: skip


class AsyncCursorFacade:
    """A cursor of the emulation: chain sort/skip/limit, then `await to_list()` or iterate."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> "AsyncCursorFacade":
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def skip(self, count: int) -> "AsyncCursorFacade":
        self._cursor = self._cursor.skip(count)
        return self

    def limit(self, count: int) -> "AsyncCursorFacade":
        self._cursor = self._cursor.limit(count)
        return self

    async def explain(self) -> dict[str, Any]:
        return self._cursor.explain()

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        documents = list(self._cursor)
        return documents if length is None else documents[:length]

    def __aiter__(self) -> "AsyncCursorFacade":
        self._iterator = iter(self._cursor)
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None
