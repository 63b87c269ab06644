"""Generate the workshop's sample dataset: reddit-shaped posts from 2012-2014, no network.

Everything comes from one `random.Random(seed)`, drawn in a fixed order and never from a
set, so a seed gives the same posts on every run and every Python >= 3.11.
"""

import gzip
import json
import math
import os
import re
from datetime import UTC, datetime
from random import Random
from typing import Any

DEFAULT_COUNT = 3000
DEFAULT_SEED = 2013

# The era of the original workshop: 2012-01-01 to 2014-12-31 (UTC).
FIRST_CREATED = 1325376000
LAST_CREATED = 1420070399

# Reddit post ids are base-36 counters; these were current in early 2012.
FIRST_POST_NUMBER = int("o5000", 36)

# The day the sample pretends to have been exported (the time part of every ObjectId).
EXPORT_TIME = 1420156800

# (how it is written in a title, weight). Every word written here reaches the topic
# vocabulary through the light stemmer ("coroutines" -> "coroutine", "wheels" -> "wheel").
# Only libraries that existed in 2012-2014 appear; the workshop's favourites weigh more.
KEYWORDS: dict[str, tuple[tuple[str, int], ...]] = {
    "async": (("asyncio", 5), ("coroutines", 2), ("concurrency", 2), ("aiohttp", 1)),
    "web": (("Django", 5), ("Flask", 5), ("WSGI", 1), ("REST APIs", 2), ("Jinja templates", 1)),
    "data": (("pandas", 5), ("NumPy", 5), ("matplotlib", 2), ("SQL", 2), ("CSV files", 1)),
    "performance": (("PyPy", 5), ("Cython", 2), ("the GIL", 2), ("profiling", 1)),
    "testing": (("pytest", 5), ("unittest", 2), ("mock", 2), ("tox", 1), ("test coverage", 1)),
    "packaging": (("pip", 2), ("virtualenv", 2), ("setuptools", 1), ("wheels", 1), ("PyPI", 2)),
    "ml": (("scikit-learn", 3), ("neural networks", 2), ("ML", 1), ("model training", 1)),
    "devops": (("Docker", 5), ("nginx", 2), ("Ansible", 2), ("Linux servers", 1)),
}

# subreddit -> (weight, topics its posts lean to; empty means any).
SUBREDDITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "python": (40, ()),
    "learnpython": (20, ()),
    "programming": (12, ("performance", "devops", "async", "testing")),
    "datascience": (10, ("data", "ml")),
    "django": (10, ("web",)),
    "flask": (8, ("web",)),
}

# A subreddit named after a library puts that library in most of its titles.
SUBREDDIT_KEYWORD = {"django": "Django", "flask": "Flask"}

ONE_KEYWORD_TITLES = (
    "A gentle introduction to {a}",
    "Why is my {a} code so slow?",
    "{a} tips I wish I had known earlier",
    "Understanding {a} internals",
    "Is {a} worth learning in {year}?",
    "Beginner question about {a}",
    "What are you using {a} for?",
    "Lessons learned from a year of {a} in production",
    "Writing cleaner code with {a}",
    "{a} cheat sheet for newcomers",
    "I wrote a short tutorial on {a}, feedback welcome",
    "Common mistakes people make with {a}",
    "Help: {a} keeps crashing on Windows",
    "The state of {a} in {year}",
    "Talk video: advanced {a}",
)
TWO_KEYWORD_TITLES = (
    "How I sped up my {a} code with {b}",
    "{a} vs {b}: which one should I learn first?",
    "Best way to combine {a} and {b}?",
    "Using {a} with {b} without losing your mind",
    "From {a} to {b}: a small team migrates",
    "Anyone using {a} together with {b}?",
    "Getting {a} and {b} to play nicely",
    "Why we switched from {a} to {b}",
    "{a} and {b}: a practical guide",
)
THREE_KEYWORD_TITLES = (
    "Building a side project with {a}, {b} and {c}",
    "My stack in {year}: {a}, {b} and {c}",
    "Show r/{sub}: a tiny tool that glues {a}, {b} and {c}",
    "What I learned combining {a}, {b} and {c}",
)
# Posts about nothing in the vocabulary, as every real subreddit has.
PLAIN_TITLES = (
    "What is your favourite Python one-liner?",
    "Which editor do you use for Python?",
    "Finally finished my first Python project",
    "Recommended books for an intermediate Python programmer?",
    "How do you structure a larger Python project?",
    "What are you working on this week?",
    "Tell me about the worst code you have ever inherited",
    "List comprehensions finally clicked for me",
    "Is Python a good first language for kids?",
    "Style guide arguments at work: how do you settle them?",
)

OPENING_SENTENCES = (
    "I've been using {a} for about {months} months now and I'm still not sure I'm doing it right.",
    "The documentation for {a} is good, but it skips the part I'm stuck on.",
    "For context, this is a side project, not anything at work.",
    "I'm coming from a Java background, so some of this still feels odd.",
    "Compared to what I had before, {a} feels much simpler.",
    "We run {a} on a couple of small machines, nothing fancy.",
)
MIDDLE_SENTENCES = (
    "Has anyone here tried {x} for this?",
    "I read the docs twice and searched old threads but could not find an answer.",
    "A colleague suggested {x}, but I would rather understand the problem first.",
    "The surprising part was how little code it took with {a}.",
    "Most of the time goes into reading files, so I doubt {x} is the issue.",
    "I put the full example in a gist and linked it below.",
)
CLOSING_SENTENCES = (
    "Any pointers would be appreciated, thanks!",
    "Edit: thanks everyone, I ended up using {x}.",
    "Happy to answer questions in the comments.",
    "Sorry for the long post.",
)

USERNAME_STARTS = (
    "lazy", "curious", "grumpy", "quiet", "happy", "rusty", "sleepy", "code", "data", "byte",
    "pixel", "tiny", "night", "coffee", "bit", "dev", "py", "hack", "null", "brave",
)  # fmt: skip
USERNAME_ENDS = (
    "pythonista", "coder", "owl", "badger", "monk", "wizard", "hacker", "gopher", "ninja",
    "fox", "otter", "penguin", "engineer", "student", "llama", "koala", "turtle", "heron",
)  # fmt: skip
AUTHOR_POOL_SIZE = 600
DELETED_AUTHOR_SHARE = 0.02

BLOG_DOMAINS = (
    "snakebytes.net", "blog.datacraft.io", "devnotes.org", "tinyengineering.com",
    "pythonic-adventures.com", "blog.stackfold.com",
)  # fmt: skip
VIDEO_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
LINK_FLAIRS = ("Question", "Discussion", "Tutorial", "Show and tell", "News")

# Scores are log-normal: most posts stay in single digits, a few reach the thousands.
# With these parameters about a third of posts score 10 or more.
SCORE_LOG_MEAN = 1.45
SCORE_LOG_SIGMA = 2.0
SELF_POST_SHARE = 0.45
PLAIN_POST_SHARE = 0.08


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while number:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
    return text or "0"


def _slug(title: str, separator: str = "_", limit: int = 50) -> str:
    """Turn a title into reddit's permalink slug ("how_i_sped_up_my_django")."""
    slug = ""
    for word in re.findall(r"[a-z0-9]+", title.lower()):
        candidate = f"{slug}{separator}{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or "post"


class _Generator:
    """Draw one dataset from one Random; the order of draws is part of the output."""

    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        self.keywords = [(text, topic) for topic, pairs in KEYWORDS.items() for text, _ in pairs]
        self.keyword_weights = [weight for pairs in KEYWORDS.values() for _, weight in pairs]
        self.subreddits = list(SUBREDDITS)
        self.subreddit_weights = [weight for weight, _ in SUBREDDITS.values()]
        self.authors = self._author_pool()
        # A few authors post a lot and most post once or twice (a Zipf-like tail).
        self.author_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(self.authors))]

    def _author_pool(self) -> list[str]:
        rng = self.rng
        pool: dict[str, None] = {}
        while len(pool) < AUTHOR_POOL_SIZE:
            start, end = rng.choice(USERNAME_STARTS), rng.choice(USERNAME_ENDS)
            style = rng.randrange(3)
            if style == 0:
                name = f"{start}_{end}"
            elif style == 1:
                name = f"{start.capitalize()}{end.capitalize()}"
            else:
                name = f"{start}{end}{rng.randrange(1, 1000)}"
            pool.setdefault(name, None)
        return list(pool)

    def _keywords_for(self, subreddit: str, count: int) -> list[str]:
        rng = self.rng
        chosen: list[str] = []
        leaning = SUBREDDITS[subreddit][1]
        if subreddit in SUBREDDIT_KEYWORD and rng.random() < 0.8:
            chosen.append(SUBREDDIT_KEYWORD[subreddit])
        while len(chosen) < count:
            text, topic = rng.choices(self.keywords, weights=self.keyword_weights)[0]
            # Lean towards the subreddit's topics without forbidding the others.
            if leaning and topic not in leaning and rng.random() < 0.7:
                continue
            if text not in chosen:
                chosen.append(text)
        return chosen

    def _title(self, subreddit: str, year: int) -> tuple[str, list[str]]:
        rng = self.rng
        if rng.random() < PLAIN_POST_SHARE:
            return rng.choice(PLAIN_TITLES), []
        count = rng.choices((1, 2, 3), weights=(55, 33, 12))[0]
        templates = (ONE_KEYWORD_TITLES, TWO_KEYWORD_TITLES, THREE_KEYWORD_TITLES)[count - 1]
        keywords = self._keywords_for(subreddit, count)
        slots = dict(zip("abc", keywords, strict=False))
        title = rng.choice(templates).format(year=year, sub=subreddit, **slots)
        return title[0].upper() + title[1:], keywords

    def _selftext(self, keywords: list[str]) -> str:
        rng = self.rng
        main = keywords[0] if keywords else "Python"
        paragraphs = []
        for _ in range(rng.randint(1, 3)):
            # Some bodies name another library, so a search also finds posts by their text.
            other = rng.choices(self.keywords, weights=self.keyword_weights)[0][0]
            sentences = [
                rng.choice(OPENING_SENTENCES),
                *rng.sample(MIDDLE_SENTENCES, rng.randint(1, 3)),
                rng.choice(CLOSING_SENTENCES),
            ]
            text = " ".join(sentences).format(a=main, x=other, months=rng.randint(2, 30))
            paragraphs.append(text)
        return "\n\n".join(paragraphs)

    def _link(self, title: str, author: str, created: datetime) -> str:
        rng = self.rng
        slug = _slug(title, "-")
        kind = rng.randrange(6)
        if kind == 0:
            return f"https://github.com/{author}/{_slug(title, '-', 24)}"
        if kind == 1:
            return (
                f"http://{author.lower().replace('_', '-')}.github.io/{created:%Y/%m}/{slug}.html"
            )
        if kind == 2:
            blog = rng.choice(BLOG_DOMAINS)
            return f"http://{blog}/{created:%Y/%m/%d}/{slug}/"
        if kind == 3:
            video = "".join(rng.choice(VIDEO_ID_ALPHABET) for _ in range(11))
            return f"https://www.youtube.com/watch?v={video}"
        if kind == 4:
            return f"http://stackoverflow.com/questions/{rng.randint(8_000_000, 27_000_000)}/{slug}"
        return f"https://medium.com/@{author.lower()}/{slug}-{rng.getrandbits(48):012x}"

    def _votes(self) -> tuple[int, int, int, int]:
        rng = self.rng
        score = int(math.exp(rng.gauss(SCORE_LOG_MEAN, SCORE_LOG_SIGMA)))
        downs = int(score * rng.uniform(0.05, 0.35)) + rng.randint(0, 2)
        comments = int(score * rng.uniform(0.05, 1.2)) + rng.randint(0, 4)
        return score, score + downs, downs, comments

    def post(self, number: int, created_utc: int) -> dict[str, Any]:
        rng = self.rng
        post_id = _base36(number)
        created = datetime.fromtimestamp(created_utc, UTC)
        subreddit = rng.choices(self.subreddits, weights=self.subreddit_weights)[0]
        title, keywords = self._title(subreddit, created.year)
        author = rng.choices(self.authors, weights=self.author_weights)[0]
        if rng.random() < DELETED_AUTHOR_SHARE:
            author = "[deleted]"
        is_self = rng.random() < SELF_POST_SHARE
        permalink = f"/r/{subreddit}/comments/{post_id}/{_slug(title)}/"
        if is_self:
            url = f"https://www.reddit.com{permalink}"
            domain = f"self.{subreddit}"
            selftext = self._selftext(keywords)
        else:
            url = self._link(title, author if author != "[deleted]" else "anon", created)
            domain = url.split("/")[2].removeprefix("www.")
            selftext = ""
        score, ups, downs, comments = self._votes()
        edited: float | bool = False
        if is_self and rng.random() < 0.15:
            edited = float(created_utc + rng.randint(60, 86_400))
        return {
            "id": post_id,
            "name": f"t3_{post_id}",
            "title": title,
            "selftext": selftext,
            "url": url,
            "permalink": permalink,
            "author": author,
            "subreddit": subreddit,
            "created_utc": float(created_utc),
            # Reddit's "created" was in its servers' local time (US Pacific), 8 hours ahead.
            "created": float(created_utc + 28_800),
            "score": score,
            "ups": ups,
            "downs": downs,
            "num_comments": comments,
            "is_self": is_self,
            "domain": domain,
            "over_18": False,
            "edited": edited,
            "thumbnail": "self" if is_self else "default",
            "link_flair_text": rng.choice(LINK_FLAIRS) if rng.random() < 0.3 else None,
            "gilded": 1 if score > 500 and rng.random() < 0.2 else 0,
            "stickied": False,
            "distinguished": None,
        }


def sample_posts(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """Return `count` raw reddit post records, the same ones for the same seed."""
    if count < 0:
        raise ValueError("count must not be negative")
    generator = _Generator(seed)
    rng = generator.rng
    times = sorted(rng.randint(FIRST_CREATED, LAST_CREATED) for _ in range(count))
    posts = []
    number = FIRST_POST_NUMBER
    for created_utc in times:
        # Ids grow with time, as reddit's counter does, with gaps for other subreddits' posts.
        number += rng.randint(1, 50_000)
        posts.append(generator.post(number, created_utc))
    return posts


def object_id(index: int) -> str:
    """Return a deterministic MongoDB ObjectId (24 hex digits) for the index-th exported post."""
    # An ObjectId is a 4-byte time, 5 bytes fixed per process and a 3-byte counter.
    return f"{EXPORT_TIME:08x}5f3c2a91d0{index % 0x1000000:06x}"


def export_line(post: dict[str, Any], index: int) -> str:
    """Write one post as mongoexport wrote it from the original scraper's collection."""
    record: dict[str, Any] = {"_id": {"$oid": object_id(index)}}
    for field, value in post.items():
        if isinstance(value, bool):
            # The scraper stored Python booleans as their str(): "True" / "False".
            record[field] = str(value)
        else:
            record[field] = value
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_sample(
    path: str | os.PathLike[str], count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED
) -> int:
    """Write the sample dataset as mongoexport JSON lines (gzipped if path ends in .gz)."""
    lines = [export_line(post, index) for index, post in enumerate(sample_posts(count, seed))]
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    if os.fspath(path).endswith(".gz"):
        # mtime=0 keeps the compressed file byte-identical between runs.
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as file:
        file.write(payload)
    return len(lines)
