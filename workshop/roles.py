"""Who may ingest: the importers. Ingest overwrites posts (titles, links) for everyone, so it
is an operator's action, not every user's.

The process that runs ingest checks it (01's front, 02's REST API, the ingest service of 03
and 04), before it reads the body:

- Importers are named by username in WORKSHOP_IMPORTERS (comma-separated, read at start)
  and in the stage's importers file (`<WORKSHOP_DATA_DIR>/importers`, one name a line),
  which `workshop importers add NAME` appends to on a running stage and which is read
  again whenever it changes; it is kept with the stage's data, from one run to the next.
- While nobody is named, a development stage (WORKSHOP_ENV not production: `make run`,
  `workshop up`, listening on 127.0.0.1 only) lets every registered user ingest, so the
  workshop needs no set-up step; in production nobody may ingest until someone is named.
"""

import functools
import os
from pathlib import Path

from workshop import config
from workshop.contract import ApiError

IMPORTERS_FILE = "importers"


@functools.cache
def named_at_start() -> frozenset[str]:
    """Return the importers WORKSHOP_IMPORTERS names (read once, at the process's start)."""
    return _names(config.env("WORKSHOP_IMPORTERS", "") or "")


def importers_file(data: Path | None = None) -> Path:
    """Return the file of importers named on a stage (in its data folder)."""
    return (data or config.data_dir()) / IMPORTERS_FILE


class _NamedInFile:
    """The names in the importers file, read again only when the file changes."""

    def __init__(self) -> None:
        self.seen: tuple[str, int, int] | None = None
        self.names: frozenset[str] = frozenset()

    def read(self, path: Path) -> frozenset[str]:
        try:
            status = path.stat()
        except OSError:  # no file: nobody added on this run
            return frozenset()
        seen = (str(path), status.st_mtime_ns, status.st_size)
        if seen != self.seen:
            try:
                self.names = _names(path.read_text(encoding="utf-8").replace("\n", ","))
            except OSError:
                return self.names
            self.seen = seen
        return self.names


_in_file = _NamedInFile()


def _names(text: str) -> frozenset[str]:
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def named() -> frozenset[str]:
    """Return every importer named so far (at start, and on the running stage)."""
    return named_at_start() | _in_file.read(importers_file())


def may_ingest(username: str | None) -> bool:
    """Tell whether a user may ingest (see the module's rule)."""
    if username is None:
        return False
    importers = named()
    if importers:
        return username in importers
    return not config.is_production()


def check_may_ingest(username: str | None) -> None:
    """Raise 403 unless the user may ingest."""
    if not may_ingest(username):
        raise ApiError(
            403,
            "forbidden",
            "only importers may ingest: an operator names them "
            "(WORKSHOP_IMPORTERS, or `workshop importers add NAME` on a running stage)",
        )


def add(username: str, run: Path) -> None:
    """Name one more importer on a running stage (its processes see it at their next check)."""
    path = importers_file(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One short append with O_APPEND: concurrent adds never interleave within a line.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, f"{username}\n".encode())
    finally:
        os.close(descriptor)
