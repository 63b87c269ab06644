"""What every test shares: the time limits, stretched for this machine (tests/timing.py), and
the brokers, the tests' own (tests/brokers.py).

- pytest-timeout's limit per test (pyproject.toml's, or a test's own mark) is scaled by
  WORKSHOP_TEST_SLOWDOWN like every other limit.
- The shell's BROKER_URL, REGISTRY_URL and CELERY_RESULT_BACKEND are dropped for the
  session: a stage a test starts gets the broker the test gives it, never the person's.
- Nothing in the pytest process connects to the machine's Redis (127.0.0.1:6379), nor
  starts a process told to, unless TEST_REDIS_URL names it (MachineRedisGuard).
- `redis_url` is a database of the test's own, empty, on a redis-server the session starts
  (or on TEST_REDIS_URL's server); `redis_databases` takes more, for a module's stage.
"""

import os
from collections.abc import Iterator

import pytest

from tests import brokers
from tests.timing import SLOWDOWN, SLOWDOWN_ENV, scaled

GUARD: brokers.MachineRedisGuard | None = None
DROPPED: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    global GUARD
    for name in brokers.BROKER_VARIABLES:
        if name in os.environ:
            DROPPED[name] = os.environ.pop(name)
    if GUARD is None:  # once per process (pytest run in-process by a test configures again)
        GUARD = brokers.MachineRedisGuard()
        GUARD.install()


def pytest_report_header(config: pytest.Config) -> list[str]:
    given = os.environ.get(brokers.TEST_REDIS_ENV)
    lines = [
        f"time limits x{SLOWDOWN:g} ({SLOWDOWN_ENV})",
        f"Redis: {given} ({brokers.TEST_REDIS_ENV})" if given else
        f"Redis: a redis-server of the session's own ({brokers.TEST_REDIS_ENV} unset)",
    ]  # fmt: skip
    if DROPPED:
        dropped = ", ".join(sorted(DROPPED))
        lines.append(f"ignored for the session: {dropped} (the tests pick their brokers)")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scale pytest-timeout's limit of every test (its own mark's, or the configured one)."""
    if not config.pluginmanager.hasplugin("timeout"):
        return
    from pytest_timeout import get_env_settings

    configured = get_env_settings(config).timeout
    for item in items:
        mark = item.get_closest_marker("timeout")
        args, kwargs = (list(mark.args), dict(mark.kwargs)) if mark else ([], {})
        seconds = args.pop(0) if args else kwargs.pop("timeout", configured)
        if seconds:  # 0 or None: no limit
            limit = pytest.mark.timeout(scaled(float(seconds)), *args, **kwargs)
            item.add_marker(limit, append=False)


@pytest.fixture(scope="session")
def redis_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[brokers.RedisDatabases]:
    """TEST_REDIS_URL's server, else a redis-server of the session's own (stopped at its end)."""
    given = os.environ.get(brokers.TEST_REDIS_ENV)
    if given:
        yield brokers.RedisDatabases(given)
        return
    try:
        server = brokers.RedisServer(tmp_path_factory.mktemp("redis"))
    except brokers.RedisUnavailable as error:
        pytest.fail(str(error))
    server.start()
    try:
        yield brokers.RedisDatabases(server.url(0))
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_databases: brokers.RedisDatabases) -> Iterator[str]:
    """An empty Redis database of the test's own (emptied again after it)."""
    with redis_databases.database() as url:
        yield url
