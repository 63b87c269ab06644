"""Ask a running `workshop up` to stop, kill or start one of its processes.

While it watches over its processes, `workshop up` reads requests from its run folder's
`control/`, one JSON file each, does them in turn and answers in a file beside each. A lab
attaches to a stage an attendee already runs this way: the attendee keeps the page and the
output of `workshop up` in view while the lab breaks and repairs it. Files, not a port:
nothing new listens, and only the user who runs the stage can write there.
"""

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tooling.stages import Stage, get_stage

CONTROL = "control"
ACTIONS = ("stop", "kill", "start")
ANSWER_WITHIN = 60.0  # a stop waits for a clean exit (10 s), a busy laptop takes longer


class ControlError(RuntimeError):
    """The running stage refused a request, stopped, or did not answer in time."""


def make_folder(run_dir: Path) -> None:
    """Make a run's control folder, the user's alone (`workshop up`, as it starts)."""
    folder = run_dir / CONTROL
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)


def requests_in(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Return the requests waiting in a run folder, oldest first (for `workshop up`): the
    user's own files only; one that is not a JSON object reads as an empty request."""
    waiting = []
    for path in (run_dir / CONTROL).glob("*.json"):
        with contextlib.suppress(OSError):  # gone meanwhile: its asker gave up
            status = path.stat()
            if status.st_uid != os.getuid():
                continue
            try:
                request = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                request = {}
            waiting.append((status.st_mtime, path, request if isinstance(request, dict) else {}))
    return [(path, request) for _, path, request in sorted(waiting, key=lambda w: w[0])]


def answer(request_path: Path, error: str | None) -> None:
    """Answer a request (no error: done) and take it off the queue."""
    written = request_path.with_suffix(".tmp")
    written.write_text(json.dumps({"ok": error is None, "error": error}))
    written.replace(request_path.with_suffix(".answer"))
    request_path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it is there
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # there, and another user's
    return True


def ask(run_dir: Path, pid: int, request: dict[str, Any], within: float = ANSWER_WITHIN) -> None:
    """Hand the stage that `workshop up` (process `pid`) runs one request, and wait until it
    is done: ControlError if it refused, stopped or did not answer. Interrupted, the request
    is taken back if it was not read yet."""
    folder = run_dir / CONTROL
    if not folder.is_dir():
        raise ControlError(f"no control folder in {run_dir}: is that stage running?")
    name = uuid.uuid4().hex
    asked, answered = folder / f"{name}.json", folder / f"{name}.answer"
    written = folder / f"{name}.tmp"
    written.write_text(json.dumps(request))
    written.replace(asked)  # whole, or not there: `workshop up` reads it
    deadline = time.monotonic() + within
    try:
        while not answered.exists():
            if not _alive(pid):
                raise ControlError("the stage stopped")
            if time.monotonic() > deadline:
                raise ControlError(f"the stage did not answer {request['do']!r} in {within:.0f} s")
            time.sleep(0.1)
    except BaseException:
        asked.unlink(missing_ok=True)  # not read yet: it is not done later
        raise
    said = json.loads(answered.read_text())
    answered.unlink(missing_ok=True)
    if not said["ok"]:
        raise ControlError(said["error"])


@dataclass
class AttachedStage:
    """A stage `workshop up` runs, seen through its control folder.

    It offers what a lab uses of a StageRunner (stop, kill and start one process), and
    `release()` starts again what the lab left stopped, so the attendee's stage is whole
    when the lab ends, however it ended (a process is counted as stopped from the moment
    the lab asks: starting a running one again does no harm).
    """

    stage: Stage
    port: int
    run_dir: Path
    pid: int  # of `workshop up`
    env: dict[str, str] = field(default_factory=dict)  # a lab that reads settings starts its own
    _down: set[str] = field(default_factory=set)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "AttachedStage":
        """Attach to a stage from its running record (tooling/runner.py: running_stages())."""
        return cls(get_stage(record["stage"]), record["port"], Path(record["run_dir"]),
                   record["pid"])  # fmt: skip

    def _ask(self, do: str, name: str) -> None:
        ask(self.run_dir, self.pid, {"do": do, "name": name, "by": "workshop lab"})

    def stop_process(self, name: str) -> None:
        self._down.add(name)
        self._ask("stop", name)

    def kill_process(self, name: str) -> None:
        self._down.add(name)
        self._ask("kill", name)

    def restart_process(self, name: str) -> None:
        self._ask("start", name)
        self._down.discard(name)

    def release(self) -> list[str]:
        """Start again every process the lab stopped; return what could not be (why)."""
        failed = []
        for name in sorted(self._down):
            try:
                self.restart_process(name)
            except ControlError as error:
                failed.append(f"{name}: {error}")
        return failed
