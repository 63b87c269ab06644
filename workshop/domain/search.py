"""Search ranking: the same list in the same order, whatever stage or store answers."""

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


def page_slice(page: int, per_page: int) -> slice:
    """Return the slice of a ranked list that a 1-based page covers."""
    start = (page - 1) * per_page
    return slice(start, start + per_page)
