"""Eve settings: the REST API's behaviour and resources, as data.

Each resource is a dict; DOMAIN at the bottom gathers them. Read this file top to bottom
to know what the API serves, to whom, and what a client may ask of it.
"""

from workshop.domain.accounts import MAX_PREFERRED_TOPICS, USERNAME_PATTERN
from workshop.domain.posts import POST_ID_PATTERN, POST_SCHEMA
from workshop.domain.tags import TAG_PATTERN
from workshop.domain.topics import TOPICS

# The database every resource lives in (the embedded emulation unless MONGO_URL is set).
MONGO_DBNAME = "restapi"

# Read-only unless a resource says otherwise; reading needs no token, writing does.
RESOURCE_METHODS = ["GET"]
ITEM_METHODS = ["GET"]
PUBLIC_METHODS = ["GET"]
PUBLIC_ITEM_METHODS = ["GET"]

# Clients page through collections; nobody gets the whole collection in one answer.
PAGINATION_DEFAULT = 25
PAGINATION_LIMIT = 100

# Updates must carry the document's ETag (If-Match): a stale one gets 412, none gets 428.
IF_MATCH = True
ENFORCE_IF_MATCH = True

# No X-HTTP-Method-Override: a GET must never turn into a DELETE.
ALLOW_OVERRIDE_HTTP_METHOD = False

# Operators a client may never use in ?where= (Eve refuses $where and $regex by default).
MONGO_QUERY_BLACKLIST = ["$where", "$regex", "$expr", "$function", "$accumulator", "$jsonSchema"]

# Plain JSON documents: no HATEOAS links, which the front does not follow.
HATEOAS = False

# Posts: written by ingest (a custom endpoint), read by anyone.
posts = {
    "item_title": "post",
    "item_url": f'regex("{POST_ID_PATTERN.pattern}")',
    "schema": POST_SCHEMA,
    # Only these fields may appear in ?where=; anything else (a probe with $gt) gets 400.
    "allowed_filters": ["tags.tag", "subreddit", "author"],
    # The indexes are the ones every stage's post store declares (workshop/queries.py):
    # the API creates them at start.
}

# Taggings: one document per (post, tag, user). Eve fills `user` from the token and shows
# each user only their own (auth_field), so nobody can touch another user's tags.
taggings = {
    "item_title": "tagging",
    "resource_methods": ["GET", "POST"],
    "item_methods": ["GET", "DELETE"],
    "auth_field": "user",
    "public_methods": [],
    "public_item_methods": [],
    "allowed_filters": ["post_id", "tag"],
    "schema": {
        "post_id": {
            "type": "string",
            "required": True,
            "regex": POST_ID_PATTERN.pattern,
            "data_relation": {"resource": "posts", "field": "_id"},
        },
        "tag": {"type": "string", "required": True, "regex": TAG_PATTERN.pattern},
        "user": {"type": "string", "readonly": True},
    },
    "mongo_indexes": {
        "one_tag_per_user": ([("post_id", 1), ("tag", 1), ("user", 1)], {"unique": True}),
    },
}

# Users: anyone may register (POST); nobody may list or read them. Passwords are hashed
# by a hook before storage and the hash is never projected out.
users = {
    "item_title": "user",
    "resource_methods": ["POST"],
    "public_methods": ["POST"],
    "item_methods": [],
    "allowed_filters": [],
    "schema": {
        "username": {
            "type": "string",
            "required": True,
            "regex": USERNAME_PATTERN.pattern,
            "unique": True,
        },
        "password": {"type": "string", "required": True, "minlength": 8, "maxlength": 128},
    },
    "datasource": {"projection": {"username": 1}},
    "mongo_indexes": {"username": ([("username", 1)], {"unique": True})},
}

# Preferences: one document per user, readable and changeable only by that user.
preferences = {
    "item_title": "preferences",
    "resource_methods": ["GET", "POST"],
    "item_methods": ["GET", "PATCH"],
    "auth_field": "user",
    "public_methods": [],
    "public_item_methods": [],
    "allowed_filters": [],
    "schema": {
        "user": {"type": "string", "readonly": True},
        "topics": {
            "type": "list",
            "maxlength": MAX_PREFERRED_TOPICS,
            "schema": {"type": "string", "allowed": list(TOPICS)},
            "required": True,
        },
    },
    "mongo_indexes": {"one_per_user": ([("user", 1)], {"unique": True})},
}

# Ingest jobs: created by the ingest endpoint, read by anyone who knows the id.
jobs = {
    "item_title": "job",
    "item_url": 'regex("[a-f0-9]{32}")',
    "resource_methods": [],
    "public_item_methods": ["GET"],
    "allowed_filters": [],
    "schema": {
        "_id": {"type": "string"},
        "state": {"type": "string", "allowed": ["pending", "running", "done", "failed"]},
        "ingested": {"type": "integer"},
        "new": {"type": "integer"},
        "updated": {"type": "integer"},
        "unchanged": {"type": "integer"},
        "rejected": {"type": "integer"},
        "source": {"type": "string"},
        "error": {"type": "string"},
    },
}

DOMAIN = {
    "posts": posts,
    "taggings": taggings,
    "users": users,
    "preferences": preferences,
    "jobs": jobs,
}
