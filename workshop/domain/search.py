"""Search ranking: the same list in the same order, whatever stage or store answers."""

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def relevance(post_terms: Iterable[str], wanted: Sequence[str]) -> int:
    """Count the distinct query terms a post contains."""
    return len(set(wanted).intersection(post_terms))


def sort_key(post: Mapping[str, Any], wanted: Sequence[str]) -> tuple[int, int, str]:
    """Order by relevance (desc), then score (desc), then id (asc)."""
    return (-relevance(post["terms"], wanted), -int(post["score"]), str(post["id"]))


def rank(candidates: Iterable[Mapping[str, Any]], wanted: Sequence[str]) -> list[Any]:
    """Return the ids of matching candidates, best first.

    Each candidate needs only "id", "score" and "terms", so a store can fetch that narrow
    projection for every match, rank it here, and load full posts just for one page.
    """
    matches = [post for post in candidates if relevance(post["terms"], wanted) > 0]
    matches.sort(key=lambda post: sort_key(post, wanted))
    return [post["id"] for post in matches]


def _score_order(post: Mapping[str, Any]) -> tuple[int, str]:
    return (-int(post["score"]), str(post["id"]))


def best_ids(
    walks: Sequence[Sequence[Mapping[str, Any]]], count: int, length: int
) -> list[Any] | None:
    """Return the ids of the `count` best posts, as `rank` orders them, from each query
    term's posts best first; None if the walks, each read to `length` posts, do not decide
    them yet (read further).

    `walks[i]` holds the posts ("id", "score") with term i, by score (desc) then id, at
    most `length` of them (fewer: that term's posts end there). Merged, they come in that
    order with a post's entries side by side (one post, one score), so its relevance (how
    many of the terms it has) is known as it passes. The posts with every term come first:
    once `count` of them have passed, they are the answer. Past the last post a cut walk
    holds, its next posts are unknown, so the order is known only up to there.
    """
    cut = [_score_order(walk[-1]) for walk in walks if walk and len(walk) >= length]
    known_until = min(cut, default=None)
    by_relevance: dict[int, list[Any]] = defaultdict(list)
    merged = heapq.merge(*walks, key=_score_order)
    for post_id, entries in itertools.groupby(merged, key=lambda post: post["id"]):
        group = list(entries)
        if known_until is not None and _score_order(group[0]) > known_until:
            return None
        relevance = len(group)
        by_relevance[relevance].append(post_id)
        if relevance == len(walks) and len(by_relevance[relevance]) >= count:
            return by_relevance[relevance][:count]
    if known_until is not None:
        return None
    ranked = [post for level in sorted(by_relevance, reverse=True) for post in by_relevance[level]]
    return ranked[:count]


def page_slice(page: int, per_page: int) -> slice:
    """Return the slice of a ranked list that a 1-based page covers."""
    start = (page - 1) * per_page
    return slice(start, start + per_page)
