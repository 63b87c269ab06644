"""Beat's hourly job: give the stored posts the topics the current vocabulary assigns.

Stage 04 only (03 has no scheduler): the worker runs it as the task `ingest.retag_topics`
(ingest/tasks.py), on the ingest store it keeps the posts in.
"""

from chassis.messaging.outbox import changed, nudge
from workshop.db import AsyncDatabase
from workshop.domain.posts import search_terms
from workshop.domain.topics import assign_topics


async def retag_topics(database: AsyncDatabase) -> tuple[int, list[str]]:
    """Give every stored post the topics the current vocabulary assigns it; return how many
    posts were checked and the ids of those whose topics changed.

    Topics are assigned at ingest; when the vocabulary changes, the posts stored before
    keep the old ones until this runs (Celery beat, ingest/tasks.py). A changed post is
    marked for publishing like any change (its version goes up); a post already right is
    left alone, so a second run changes nothing.
    """
    posts = await database.posts.find({}, {"title": 1, "selftext": 1, "topics": 1}).to_list()
    retagged = []
    for post in posts:
        topics = assign_topics(search_terms(post))
        if topics == post.get("topics"):
            continue
        # Only if its topics are still the ones read: a change meanwhile wins.
        update = await database.posts.update_one(
            {"_id": post["_id"], "topics": post.get("topics")}, changed({"topics": topics})
        )
        if update.modified_count:
            retagged.append(post["_id"])
    nudge()
    return len(posts), retagged
