"""What ingest takes from the monolith while the strangler fig runs (stage 03 only,
`workshop up 03-services --strangler`, docs/strangler-fig.md): until the ingest verb moves
here, the monolith owns the posts, and ingest keeps them as the monolith publishes them.
"""

from chassis.messaging.inbox import apply_versioned
from chassis.service import Database
from workshop.domain.posts import POST_FIELDS
from workshop.platform.messages import POST_UPSERTED, Message


def on_post_upserted(database: Database, message: Message) -> None:
    """In a migration, before the ingest verb moves here: hold each post as the monolith
    published it, at its version, so our own changes number on from it."""
    fields = {name: message.payload[name] for name in POST_FIELDS if name not in ("id", "tags")}
    apply_versioned(database.posts, message.key, message.version, fields, "version")


FOLLOWS = {POST_UPSERTED: on_post_upserted}
