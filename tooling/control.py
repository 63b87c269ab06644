"""Ask a running `workshop up` to stop, kill or start one of its processes.

While it watches over its processes, `workshop up` reads requests from its run folder's
`control/`, one JSON file each, does them in turn and answers in a file beside each. A lab
attaches to a stage an attendee already runs this way: the attendee keeps the page and the
output of `workshop up` in view while the lab breaks and repairs it. Files, not a port:
nothing new listens, and only the user who runs the stage can write there.
"""

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tooling.stages import Stage, get_stage

CONTROL = "control"
ACTIONS = ("stop", "kill", "start", "start_extra")
ANSWER_WITHIN = 60.0  # a stop waits for a clean exit (10 s), a busy laptop takes longer


class ControlError(RuntimeError):
    """The running stage refused a request, or did not answer it in time."""


def requests_in(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Return the requests waiting in a run folder, oldest first (for `workshop up`)."""
    waiting = []
    for path in sorted((run_dir / CONTROL).glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            request = json.loads(path.read_text())
        except (OSError, ValueError):
            request = {}
        waiting.append((path, request if isinstance(request, dict) else {}))
    return waiting


def answer(request_path: Path, error: str | None) -> None:
    """Answer a request (no error: done) and take it off the queue."""
    written = request_path.with_suffix(".tmp")
    written.write_text(json.dumps({"ok": error is None, "error": error}))
    written.replace(request_path.with_suffix(".answer"))
    request_path.unlink(missing_ok=True)


def ask(run_dir: Path, request: dict[str, Any], within: float = ANSWER_WITHIN) -> None:
    """Hand a running stage one request and wait until it is done (ControlError if refused)."""
    folder = run_dir / CONTROL
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    written = folder / f"{name}.tmp"
    written.write_text(json.dumps(request))
    written.replace(folder / f"{name}.json")  # whole, or not there: `workshop up` reads it
    answered = folder / f"{name}.answer"
    deadline = time.monotonic() + within
    while not answered.exists():
        if time.monotonic() > deadline:
            (folder / f"{name}.json").unlink(missing_ok=True)
            raise ControlError(f"the stage did not answer {request['do']!r} in {within:.0f} s")
        time.sleep(0.1)
    said = json.loads(answered.read_text())
    answered.unlink(missing_ok=True)
    if not said["ok"]:
        raise ControlError(said["error"])


@dataclass
class AttachedStage:
    """A stage `workshop up` runs, seen through its control folder.

    It offers what a lab uses of a StageRunner (stop, kill and start one process, start one
    more beside them), and `release()` starts again what the lab left stopped and stops what
    it started, so the attendee's stage is whole when the lab ends, however it ended.
    """

    stage: Stage
    port: int
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # a lab that reads settings starts its own
    _down: set[str] = field(default_factory=set)
    _extra: set[str] = field(default_factory=set)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "AttachedStage":
        """Attach to a stage from its running record (tooling/runner.py: running_stages())."""
        return cls(get_stage(record["stage"]), record["port"], Path(record["run_dir"]))

    def _ask(self, do: str, name: str, **more: Any) -> None:
        ask(self.run_dir, {"do": do, "name": name, "by": "workshop lab", **more})

    def stop_process(self, name: str) -> None:
        self._ask("stop", name)
        self._down.add(name)

    def kill_process(self, name: str) -> None:
        self._ask("kill", name)
        self._down.add(name)

    def restart_process(self, name: str) -> None:
        self._ask("start", name)
        self._down.discard(name)

    def start_extra(self, name: str, process: str, port: int, env: dict[str, str]) -> None:
        self._ask("start_extra", name, process=process, port=port, env=env)
        self._extra.add(name)

    def release(self) -> None:
        """Start what the lab stopped, stop the copies it started."""
        for name in sorted(self._down - self._extra):
            self.restart_process(name)
        for name in sorted(self._extra):
            if name not in self._down:
                self.stop_process(name)
        self._extra.clear()
        self._down.clear()
