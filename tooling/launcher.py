"""Start a whole stage as a user does (`workshop up` in a subprocess) and stop it again.

The acceptance tests and the benchmark both run stages this way, through the same command
a person types, so what they measure and check is what people run.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from tooling.runner import free_base_port, is_up, ready_timeout
from tooling.stages import get_stage
from workshop import config

START_SLACK = 30.0  # more than `workshop up` itself waits, so that it is the one to say why
START_TIMEOUT = ready_timeout({}) + START_SLACK  # with the default sample
STOP_TIMEOUT = 30.0


class StageDidNotStart(RuntimeError):
    """`workshop up` exited, or its stage was not ready in time."""


class LaunchedStage:
    """A stage started with `workshop up` on free ports, in its own process group."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        options: list[str] | None = None,
    ) -> None:
        self.name = get_stage(name).name
        self.log_path = log_dir / f"{self.name}.log"
        # Its own data folder, beside its log: a test or a benchmark never reads or writes
        # the stage data a person keeps in .workshop/data.
        self.env = {"WORKSHOP_DATA_DIR": str(log_dir / f"{self.name}-data"), **(env or {})}
        self.options = options or []  # more of `workshop up`'s options (--trace, ...)
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def state_dir(self) -> Path:
        """Where its `workshop up` keeps its run folder: as config.STATE_DIR, from the
        environment it is given (WORKSHOP_STATE_DIR, else WORKSHOP_HOME's .workshop/)."""
        env = {**os.environ, **self.env}
        if env.get("WORKSHOP_STATE_DIR"):
            return Path(env["WORKSHOP_STATE_DIR"])
        if env.get(config.HOME_ENV):
            return Path(env[config.HOME_ENV]).expanduser().resolve() / ".workshop"
        return config.STATE_DIR

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None, fresh: bool = True) -> None:
        """Start the stage and wait until `workshop up` says it is up: its front door is
        ready (answers /readyz 200) and it watches over its processes.

        Fresh (the default), it starts from an empty data folder; else with what it kept.
        """
        # Room for a service or two more than the Procfile here lists: a copy with an
        # exercise solved (WORKSHOP_HOME) may run one more.
        self.port = free_base_port(len(get_stage(self.name).processes()) + 2)
        workshop = Path(sys.executable).with_name("workshop")
        options = [*self.options, *(["--fresh"] if fresh else [])]
        with self.log_path.open("a" if not fresh else "w") as log:  # the child keeps a copy
            self.process = subprocess.Popen(
                [str(workshop), "up", self.name, "--port", str(self.port), *options],
                cwd=config.ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,  # a Ctrl-C reaches the caller only; it stops us in order
            )
        if timeout is None:
            timeout = ready_timeout({**os.environ, **self.env}) + START_SLACK
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StageDidNotStart(f"{self.name} exited at start:\n{self.log_tail()}")
            if is_up(get_stage(self.name), self.port, self.state_dir, self.process.pid):
                return
            time.sleep(0.2)
        self.stop()
        raise StageDidNotStart(f"{self.name} not ready in {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """Stop `workshop up` with SIGTERM (it stops its processes); kill what is left.

        Return its exit status: 0 is a clean stop.
        """
        if self.process is None:
            return None
        tree = process_tree(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()  # `workshop up` hung: its servers must not keep their ports
                self.process.wait()
        kill_survivors(tree)
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the stage's output."""
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


def process_tree(pid: int) -> list[Any]:
    """Return a process and all its descendants as psutil processes (empty if gone)."""
    import psutil  # the bench extra: imported here, so `workshop up` runs without it

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_survivors(tree: list[Any]) -> None:
    """SIGKILL the processes of a tree that are still running."""
    import psutil

    for process in tree:
        with suppress(psutil.Error):
            process.kill()
