"""Which running stage a command talks to: the one --url or --port names, else the newest.

`workshop up` records every stage it runs (tooling/runner.py: running_stages()).
The commands that talk to a running stage (data import, importers, logs, sync) all pick it
the same way: --url names its front door, --port its front door on this machine, and
without either the stage started last is picked and named on stderr, in one line, so a
reader with two stages up knows which one answered.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from tooling import stages
from tooling.runner import running_stages
from workshop.config import DEFAULT_PORT

F = TypeVar("F", bound=Callable[..., Any])
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PICK_ANOTHER = "--port or --url picks another"


@dataclass(frozen=True)
class Target:
    """A stage to talk to: its front door, and its `workshop up` record when it runs here."""

    url: str
    record: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """Return how to name the stage to a reader: its name and port, else its address."""
        if self.record:
            return f"{self.record['stage']} on port {self.record['port']}"
        return self.url


def stage_options(command: F) -> F:
    """Add --port and --url, the two ways of naming a running stage, to a command."""
    command = click.option(
        "--url",
        default=None,
        help="The stage's front door, e.g. http://127.0.0.1:8000 [default: the stage started last]",
    )(command)
    return click.option(
        "--port",
        type=int,
        default=None,
        help="The front door's port on this machine [default: the stage started last]",
    )(command)


def say(message: str) -> None:
    """Tell the reader which stage a command picked: one line on stderr (stdout is the answer)."""
    click.echo(f"workshop: {message}", err=True)


def _record_at(port: int) -> dict[str, Any] | None:
    return next((r for r in running_stages() if r.get("port") == port), None)


def _port_of(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "//" in url else f"http://{url}")
    try:
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        raise click.BadParameter(f"{url!r} is not a URL", param_hint="--url") from None


def pick(port: int | None, url: str | None) -> Target:
    """Return the stage a command that speaks HTTP to its front door talks to.

    Without --port or --url: the stage started last; with none running (a stage in
    containers, say), the default port, said so either way.
    """
    if port is not None and url is not None:
        raise click.UsageError("give --port or --url, not both")
    if url is not None:
        host, url_port = _port_of(url)
        record = _record_at(url_port) if host in LOOPBACK and url_port else None
        return Target(url.rstrip("/"), record)
    if port is not None:
        return Target(f"http://127.0.0.1:{port}", _record_at(port))
    running = running_stages()
    if running:
        target = Target(f"http://127.0.0.1:{running[0]['port']}", running[0])
        say(f"{target.name}, the stage started last ({PICK_ANOTHER})")
        return target
    target = Target(f"http://127.0.0.1:{DEFAULT_PORT}")
    say(f"no stage started with `workshop up` runs here; trying {target.url} ({PICK_ANOTHER})")
    return target


def pick_running(port: int | None, url: str | None, elsewhere: str) -> Target:
    """Return a stage `workshop up` runs on this machine (its run folder holds what the
    command reads or writes); `elsewhere` says what to do for a stage it does not run."""
    if port is None and url is None and not running_stages():
        raise click.ClickException(
            f"no stage runs: start one with `workshop up STAGE` ({elsewhere})"
        )
    target = pick(port, url)
    if target.record is None:
        raise click.ClickException(
            f"no stage started with `workshop up` runs at {target.url} ({elsewhere})"
        )
    return target


@dataclass(frozen=True)
class SyncTarget:
    """A sync service to talk to, and the running stage it belongs to, when known."""

    url: str
    record: dict[str, Any] | None = None


def pick_sync(port: int | None, url: str | None) -> SyncTarget:
    """Return the sync service a `workshop sync` command talks to.

    --url names the sync service itself (the front door does not serve /api/sync), --port a
    running stage's front door; without either, the newest running stage with a sync
    service, else the default ports of the last stage that has one, said so either way.
    """
    if port is not None and url is not None:
        raise click.UsageError("give --port or --url, not both")
    if url is not None:
        return SyncTarget(url.rstrip("/"))
    with_sync = [r for r in running_stages() if "sync" in r["ports"]]
    if port is not None:
        record = _record_at(port)
        if record is None:
            raise click.ClickException(f"no stage started with `workshop up` runs on port {port}")
        if "sync" not in record["ports"]:
            raise click.ClickException(f"{record['stage']} has no sync service (stage 03 on)")
        return SyncTarget(f"http://127.0.0.1:{record['ports']['sync']}", record)
    if with_sync:
        record = with_sync[0]
        say(
            f"the sync service of {record['stage']} on port {record['port']}, the newest "
            f"stage with one ({PICK_ANOTHER})"
        )
        return SyncTarget(f"http://127.0.0.1:{record['ports']['sync']}", record)
    last = [s for s in stages.required_stages() if "sync" in s.ports(DEFAULT_PORT)][-1]
    address = f"http://127.0.0.1:{last.ports(DEFAULT_PORT)['sync']}"
    say(
        f"no stage with a sync service runs here; trying {last.name}'s default, {address} "
        f"({PICK_ANOTHER})"
    )
    return SyncTarget(address)
