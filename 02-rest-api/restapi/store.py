"""The REST API's data access: Eve's MongoDB layer, plus the queries Eve's REST can't express.

The one change to Eve's layer: its database handle comes from workshop.db, so the same
API runs on a real server (MONGO_URL) or on the embedded emulation.
"""

from typing import Any

from eve.io.mongo import Mongo
from flask import current_app
from pymongo.database import Database

from workshop import db as databases
from workshop import queries
from workshop.documents import Upserted


class _Handle:
    """What Eve expects of a Flask-PyMongo instance: a client (cx) and a database (db)."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self.cx = database.client


class Store(Mongo):
    """Eve's MongoDB data layer, on the database workshop.db hands out."""

    def pymongo(self, resource: str | None = None, prefix: str | None = None) -> _Handle:
        return _Handle(databases.database(self.app.config["MONGO_DBNAME"]))


def get_db() -> Database:
    """Return the API's database (for the endpoints and hooks beyond Eve's REST)."""
    return current_app.data.driver.db


def upsert_posts(posts: list[dict[str, Any]]) -> Upserted:
    """Store posts keyed by reddit id; tags stay as users left them. Say what changed."""
    return queries.upsert_posts(get_db().posts, posts)


def recount_tags(post_id: str, tag: str) -> None:
    """Store a post's tag counts and the tag's number of posts, recounted from the taggings."""
    queries.store_tag_counts(get_db().posts, get_db().taggings, post_id)
    queries.store_tag_total(get_db().taggings, get_db().tag_totals, tag)
