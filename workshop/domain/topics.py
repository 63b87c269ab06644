"""Topics: assigned to a post at ingest from a keyword vocabulary."""

from collections.abc import Iterable

from workshop.domain.text import stem

# topic -> the words that put a post in it (matched against the post's stemmed terms).
VOCABULARY: dict[str, tuple[str, ...]] = {
    "async": (
        "asyncio",
        "async",
        "await",
        "coroutine",
        "trio",
        "anyio",
        "uvloop",
        "aiohttp",
        "concurrency",
        "eventloop",
    ),
    "web": (
        "django",
        "flask",
        "fastapi",
        "quart",
        "http",
        "web",
        "wsgi",
        "asgi",
        "rest",
        "api",
        "html",
        "jinja",
    ),
    "data": (
        "pandas",
        "numpy",
        "dataframe",
        "jupyter",
        "matplotlib",
        "csv",
        "sql",
        "polars",
        "analytics",
        "visualization",
    ),
    "performance": (
        "pypy",
        "cython",
        "jit",
        "performance",
        "speed",
        "fast",
        "profiling",
        "gil",
        "benchmark",
        "optimization",
        "optimize",
    ),
    "testing": ("pytest", "unittest", "mock", "hypothesis", "test", "coverage", "tox", "fixture"),
    "packaging": (
        "pip",
        "poetry",
        "wheel",
        "packaging",
        "pypi",
        "setuptools",
        "venv",
        "virtualenv",
        "uv",
        "dependency",
    ),
    "ml": (
        "tensorflow",
        "pytorch",
        "scikit",
        "sklearn",
        "ml",
        "neural",
        "transformer",
        "keras",
        "llm",
        "training",
    ),
    "devops": (
        "docker",
        "kubernetes",
        "deploy",
        "ansible",
        "container",
        "nginx",
        "ci",
        "terraform",
        "linux",
        "server",
    ),
}

TOPICS: tuple[str, ...] = tuple(VOCABULARY)

_KEYWORD_TOPICS: dict[str, set[str]] = {}
for _topic, _keywords in VOCABULARY.items():
    for _keyword in _keywords:
        _KEYWORD_TOPICS.setdefault(stem(_keyword), set()).add(_topic)


def assign_topics(post_terms: Iterable[str]) -> list[str]:
    """Return the topics whose keywords occur among a post's terms, in vocabulary order."""
    found: set[str] = set()
    for term in post_terms:
        found.update(_KEYWORD_TOPICS.get(term, ()))
    return [topic for topic in TOPICS if topic in found]


def unknown_topics(topics: Iterable[str]) -> list[str]:
    """Return the given topics that are not in the vocabulary."""
    return [topic for topic in topics if topic not in VOCABULARY]
