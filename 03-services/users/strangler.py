"""What users takes from the monolith while the strangler fig runs (stage 03 only,
`workshop up 03-services --strangler`, docs/strangler-fig.md): until the users verb moves
here, the monolith owns the accounts, and users keeps them as the monolith publishes them.
"""

from chassis.messaging.inbox import apply_versioned
from chassis.service import Database
from workshop.platform.messages import ACCOUNT_CHANGED, Message


def on_account_changed(database: Database, message: Message) -> None:
    """In a migration, before the users verb moves here: hold the account as the monolith
    published it, at its version, so our own changes number on from it."""
    account = {"password_hash": message.payload["password_hash"],
               "topics": message.payload["topics"]}  # fmt: skip
    apply_versioned(database.users, message.key, message.version, account, "version")


FOLLOWS = {ACCOUNT_CHANGED: on_account_changed}
