"""`workshop logs`: the output of a running stage's processes, merged, one colour a process.

`workshop up` prints every process's output to its terminal and also keeps each in a file
of the run (`<run dir>/logs/<process>.log`). These functions read those files: the last
lines of each, then what they gain as the stage runs. With JSON log lines
(WORKSHOP_LOG_FORMAT=json) a trace id or a request id picks out the lines of one click.
"""

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click

LOG_DIR = "logs"
COLOURS = ("cyan", "green", "yellow", "magenta", "blue", "red", "bright_cyan",
           "bright_green", "bright_yellow", "bright_magenta")  # fmt: skip
POLL_SECONDS = 0.2


def path(run_dir: Path, process: str) -> Path:
    """Return the file a process's output is kept in."""
    return run_dir / LOG_DIR / f"{process}.log"


def processes(run_dir: Path) -> list[str]:
    """Return the processes of a run that have a log file, by name."""
    return sorted(p.stem for p in (run_dir / LOG_DIR).glob("*.log"))


@dataclass(frozen=True)
class Filter:
    """Which lines to show: all, or those of one trace or one request."""

    trace_id: str | None = None
    request_id: str | None = None

    def keeps(self, line: str) -> bool:
        if not self.trace_id and not self.request_id:
            return True
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):  # a plain line: keep it if it names the id
            return any(i and i in line for i in (self.trace_id, self.request_id))
        return (not self.trace_id or record.get("trace_id") == self.trace_id) and (
            not self.request_id or record.get("request_id") == self.request_id
        )


def label(process: str, width: int, colour: str) -> str:
    return click.style(f"{process.ljust(width)} |", fg=colour)


def last_lines(file: IO[str], count: int) -> list[str]:
    """Read a file to its end and return its last `count` lines (all, if count < 0)."""
    lines = file.readlines()
    return lines if count < 0 else lines[-count:] if count else []


def follow(
    run_dir: Path, names: Iterable[str], lines: int, keep: Filter, forever: bool
) -> Iterator[str]:
    """Yield the labelled lines of the named processes: the last `lines` of each, then,
    `forever`, each new line as it is written (until interrupted)."""
    names = list(names)
    width = max(len(n) for n in names)
    colours = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(sorted(names))}
    files = {n: path(run_dir, n).open(encoding="utf-8", errors="replace") for n in names}
    try:
        for name, file in files.items():
            for line in last_lines(file, lines):
                if keep.keeps(line):
                    yield f"{label(name, width, colours[name])} {line.rstrip()}"
        while forever:
            quiet = True
            for name, file in files.items():
                for line in iter(file.readline, ""):
                    quiet = False
                    if keep.keeps(line):
                        yield f"{label(name, width, colours[name])} {line.rstrip()}"
            if quiet:
                time.sleep(POLL_SECONDS)
    finally:
        for file in files.values():
            file.close()
