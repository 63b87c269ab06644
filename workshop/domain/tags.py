"""Tags: short slugs users give to posts, counted per post."""

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def is_valid_tag(tag: Any) -> bool:
    """Tell whether a value is a tag slug: `[a-z0-9][a-z0-9-]{0,31}`."""
    return isinstance(tag, str) and TAG_PATTERN.fullmatch(tag) is not None


def count_tags(tags: Iterable[str]) -> list[dict[str, Any]]:
    """Count tag occurrences, most used first, ties by tag name."""
    counts = Counter(tags)
    return [
        {"tag": tag, "count": count}
        for tag, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def tag_list(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Turn {tag: count} into the Post's tag list, dropping tags counted down to zero."""
    return count_tags(tag for tag, count in counts.items() for _ in range(max(count, 0)))


def with_own_tags(tags: list[dict[str, Any]], own: Iterable[str]) -> list[dict[str, Any]]:
    """Return a copy's tag counts plus the user's own tags it has not received yet.

    Read your own writes: the owner knows a user's tags at once, a copy fed by messages a
    moment later. A tag the copy lacks counts 1 (the user's) until the copy catches up; a
    tag the copy has keeps the copy's count.
    """
    shown = {t["tag"] for t in tags}
    missing = sorted(set(own) - shown)
    if not missing:
        return tags
    merged = [*tags, *({"tag": tag, "count": 1} for tag in missing)]
    return sorted(merged, key=lambda t: (-t["count"], t["tag"]))
