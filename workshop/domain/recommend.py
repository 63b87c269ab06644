"""Recommendations: popular posts, with the ones matching a user's topics first.

The formula, as the original workshop ranked posts: net votes plus weighted comments,

    rank = (ups - downs) + COMMENT_WEIGHT * num_comments

over candidates whose score is at least SCORE_THRESHOLD. Ties go to the smaller id.
For a logged-in user, posts whose topics or tags meet the user's preferred topics come
first (ranked by the same formula among themselves), then everything else.

Version 2 of the recommender (stage 03 runs both side by side) ranks by discussion:

    rank_v2 = DISCUSSION_WEIGHT * num_comments + (ups - downs) // 2
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

SCORE_THRESHOLD = 10
COMMENT_WEIGHT = 2
DISCUSSION_WEIGHT = 5
DEFAULT_LIMIT = 12
MAX_LIMIT = 50


def popularity(post: Mapping[str, Any]) -> int:
    """Return a post's rank by the formula above (higher is better)."""
    return int(post["ups"]) - int(post["downs"]) + COMMENT_WEIGHT * int(post["num_comments"])


def discussion(post: Mapping[str, Any]) -> int:
    """Return a post's rank by version 2's formula: conversation over votes."""
    net_votes = int(post["ups"]) - int(post["downs"])
    return DISCUSSION_WEIGHT * int(post["num_comments"]) + net_votes // 2


Formula = Callable[[Mapping[str, Any]], int]
FORMULAS: dict[str, Formula] = {"1": popularity, "2": discussion}


def is_candidate(post: Mapping[str, Any]) -> bool:
    """Tell whether a post is popular enough to recommend at all."""
    return int(post["score"]) >= SCORE_THRESHOLD


def matches_preferences(post: Mapping[str, Any], topics: Collection[str]) -> bool:
    """Tell whether a post's topics or tags meet any of the preferred topics."""
    if not topics:
        return False
    post_labels = set(post.get("topics", ()))
    post_labels.update(tag["tag"] for tag in post.get("tags", ()))
    return not post_labels.isdisjoint(topics)


def eligible() -> dict[str, Any]:
    """Return the filter of posts popular enough to recommend at all (as a query)."""
    return {"score": {"$gte": SCORE_THRESHOLD}}


def meeting(topics: Collection[str]) -> dict[str, Any]:
    """Return the filter of posts whose topics or tags meet any of the topics (a query)."""
    wanted = list(topics)
    return {"$or": [{"topics": {"$in": wanted}}, {"tags.tag": {"$in": wanted}}]}


T = TypeVar("T")


def preferred_first(
    preferred: Sequence[T], best: Sequence[T], limit: int, key: Callable[[T], Any]
) -> list[T]:
    """Merge two best-first lists into the recommendations: the posts meeting the user's
    topics first, then the best of the others, `limit` in all.

    `best` is the best `limit` of all posts. If fewer than `limit` posts meet the topics,
    `preferred` holds every one of them, so the others `best` holds are the best others.
    """
    chosen = list(preferred[:limit])
    taken = {key(post) for post in chosen}
    chosen += [post for post in best if key(post) not in taken][: limit - len(chosen)]
    return chosen


def recommend(
    posts: Iterable[Mapping[str, Any]],
    topics: Collection[str] = (),
    limit: int = DEFAULT_LIMIT,
    formula: Formula = popularity,
) -> list[Any]:
    """Return up to `limit` recommended posts, best first: the rule itself, over every post.

    The stores keep each post's rank and read the best from an index instead
    (workshop/queries.py); tests/unit/test_recommend.py holds them to this.
    """
    candidates = [post for post in posts if is_candidate(post)]
    candidates.sort(
        key=lambda post: (not matches_preferences(post, topics), -formula(post), post["id"])
    )
    return candidates[:limit]
