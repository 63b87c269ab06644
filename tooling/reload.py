"""`workshop up --reload`: start a process again when the code it runs changes.

An attendee edits a service, saves, and the stage runs the new code: no Ctrl-C and
`workshop up` again. The watcher looks at the stage's folder and the shared package (Python
files only) and says which files changed; a change inside a process's own package (its
Procfile line serves `search:create_app()`: 03-services/search/) starts that process again,
any other change (the chassis, the shared package) every process of the stage. A process
stops as with Ctrl-C (its store saved, its messages left on the broker), so it comes back
with its data, and the gateway sends it nothing until it is ready again.
"""

import sys
import threading
from collections.abc import Iterable
from pathlib import Path

import watchfiles

from tooling.stages import Stage
from workshop import config

SHARED_PACKAGE = config.ROOT / "workshop"
# watchfiles says nothing once it watches; a quiet spell this long (ms) says it for it.
QUIET_MS = 300
WATCHING_TIMEOUT_SECONDS = 30.0


def affected(stage: Stage, changed: Iterable[Path]) -> set[str]:
    """Return the processes of a stage that run a changed file's code."""
    names: set[str] = set()
    everyone = {p.name for p in stage.processes()}
    for path in changed:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(stage.path.resolve()):
            return everyone  # the shared package
        inside = resolved.relative_to(stage.path.resolve()).parts
        serving = [p.name for p in stage.processes() if p.package == inside[0]]
        if len(inside) == 1 or not serving:
            return everyone  # shared by the stage's processes: its chassis, a top module
        names.update(serving)
    return names


class Watcher:
    """Watch a stage's code and the shared package in a thread; collect what changed."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self._changed: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watching = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="reload", daemon=True)

    def start(self) -> None:
        """Start watching; return once every folder is watched (or watching failed, which
        it says), so that a file saved as soon as the stage says it is up is seen."""
        self._thread.start()
        self._watching.wait(WATCHING_TIMEOUT_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def take(self) -> set[Path]:
        """Return the files changed since the last call (none: an empty set)."""
        with self._lock:
            changed, self._changed = self._changed, set()
        return changed

    def _watch(self) -> None:
        try:
            for changes in watchfiles.watch(
                self.stage.path,
                SHARED_PACKAGE,
                watch_filter=watchfiles.PythonFilter(),
                stop_event=self._stop,
                rust_timeout=QUIET_MS,
                yield_on_timeout=True,  # an empty set: the folders are watched
            ):
                with self._lock:
                    self._changed.update(Path(path) for _, path in changes)
                self._watching.set()
        except (OSError, RuntimeError) as error:  # e.g. the system's limit of watched folders
            print(f"workshop: cannot watch for changes ({error}); --reload is off",
                  file=sys.stderr)  # fmt: skip
        finally:
            self._watching.set()  # start() must not wait for a watcher that stopped


def describe(changed: set[Path]) -> str:
    """Name the changed files as a reader sees them: relative to the repository."""
    shown = sorted(str(path.relative_to(config.ROOT)) for path in changed)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
