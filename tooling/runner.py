"""Run a stage's processes in the foreground, like honcho: prefixed output, clean stop.

Every process gets the same environment (so they share the development secret and know
each other's addresses) plus its own PORT. In the foreground (`workshop up`), a process
that exits on its own once the stage is ready is started again after a pause that grows
with each restart, as compose's `restart: unless-stopped` and Kubernetes do; the log says
so. `workshop up --no-restart` leaves it down (a lab that wants the failure to stay).
`workshop up --reload` starts a process again when its code changes (tooling/reload.py).
"""

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tooling import control, logfiles, reload
from tooling.stages import PORT_STEP, Stage, expand
from workshop import config
from workshop.platform import procfile

STOP_GRACE_SECONDS = 10
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A process that exits is started again after 1 s, then 2, 4, ... at most 30 s; one that
# stayed up this long starts its count again (it was not crashing in a loop).
RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STEADY_SECONDS = 60.0
WATCH_SECONDS = 0.2  # how often the foreground loop looks for a stop request or a dead process
RUNNING_RECORD = "running.json"
READY_TIMEOUT_SECONDS = 120
# A larger sample takes longer to load and to reach every copy: this much more per 1,000
# sample posts (30,000 took 55 s on 2 quiet cores; a busy laptop takes several times that).
READY_SECONDS_PER_1000_POSTS = 10.0


def default_data_dir(stage: Stage) -> Path:
    """Return where a stage keeps its data from one run to the next, unless told otherwise."""
    # A mode keeps its own: the strangler's search copy is not the stage's.
    return config.STATE_DIR / "data" / (f"{stage.name}.{stage.mode}" if stage.mode else stage.name)


def run_dir(stage: Stage, port: int, state_dir: Path | None = None) -> Path:
    """Return the folder of one run of a stage: its processes' logs, the record that it runs."""
    return (state_dir or config.STATE_DIR) / "run" / f"{stage.name}-{port}"


def stage_environment(
    stage: Stage, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment every process of a stage starts with."""
    env = dict(os.environ)
    # Commands in a Procfile (gunicorn, ...) come from the same environment as `workshop`.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(
        SECRET_KEY=config.secret_key(),
        PYTHONUNBUFFERED="1",
        # This run's own files: its processes' logs, the record that it runs.
        WORKSHOP_RUN_DIR=str(run_dir(stage, port)),
        # What the stage stores, kept from one run to the next (WORKSHOP_DATA_DIR given
        # to `workshop up` picks another folder).
        WORKSHOP_DATA_DIR=str(
            Path(config.env(config.DATA_DIR_ENV) or default_data_dir(stage)).resolve()
        ),
    )
    if stage.mode:  # which Procfile runs: the gateway's list of services (+ monolith)
        env[procfile.PROCFILE_ENV] = stage.procfile_name
    # Each process learns where the others listen: RESTAPI_URL, SEARCH_URL, ... (not the
    # front door, the first: no process calls it).
    for name, process_port in list(stage.ports(port).items())[1:]:
        env[f"{name.upper()}_URL"] = f"http://127.0.0.1:{process_port}"
    env.update(extra or {})
    return env


def ready_timeout(env: dict[str, str]) -> float:
    """Return how long a stage may take to become ready: longer with a larger sample."""
    posts = env.get(config.SAMPLE_POSTS_ENV, "")
    count = int(posts) if posts.isdigit() else config.DEFAULT_SAMPLE_POSTS
    return READY_TIMEOUT_SECONDS + READY_SECONDS_PER_1000_POSTS * count / 1000


def running_stages() -> list[dict[str, Any]]:
    """Return the stages `workshop up` runs now, newest first: {"stage", "pid", "ports",
    "port" (the front door's), "run_dir", "data_dir", "up" (ready, and watched over)}."""
    found = []
    records = sorted((config.STATE_DIR / "run").glob(f"*/{RUNNING_RECORD}"),
                     key=lambda path: path.stat().st_mtime, reverse=True)  # fmt: skip
    for path in records:
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.read_text())
            os.kill(record["pid"], 0)  # raises if that `workshop up` is gone
            found.append(record)
    return found


def is_up(stage: Stage, port: int, state_dir: Path | None = None, pid: int | None = None) -> bool:
    """Tell whether `workshop up` (process `pid`, if given) runs a stage on this port and has
    said it is up (its state folder: WORKSHOP_STATE_DIR, by default .workshop/)."""
    record = run_dir(stage, port, state_dir) / RUNNING_RECORD
    with contextlib.suppress(OSError, ValueError, AttributeError):
        said = json.loads(record.read_text())
        return said.get("up") is True and pid in (None, said.get("pid"))
    return False


def is_ready(front_door: str) -> bool:
    """Tell whether a stage's /readyz answers 200: it serves, with its start-up data in."""
    try:
        return requests.get(f"{front_door}/readyz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def free_base_port(count: int) -> int:
    """Return a loopback base port with base, base+100, ... (one per process) all free."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        ports = [base + PORT_STEP * i for i in range(count)]
        if ports[-1] < 65000 and all(port_is_free(port) for port in ports):
            return base
    raise RuntimeError("no free loopback ports")


class PortInUse(RuntimeError):
    """A port the stage needs is taken (often: the same stage already running)."""


class DataInUse(RuntimeError):
    """Another `workshop up` runs a stage on the same data folder."""


DATA_LOCK = ".lock"


def lock_data(folder: Path) -> int:
    """Hold a stage's data folder for this process (until it exits), or raise DataInUse.

    Two runs of a stage on one data folder would write the same journals and queues.
    """
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / DATA_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        holder = next((r for r in running_stages() if r.get("data_dir") == str(folder)), None)
        where = f" (port {holder['port']})" if holder else ""
        raise DataInUse(
            f"{folder} is in use by another workshop up{where}: stop it, or give this one "
            "its own folder with WORKSHOP_DATA_DIR"
        ) from None
    return descriptor


def forget_data(folder: Path) -> None:
    """Empty a stage's data folder (refused while a stage runs on it)."""
    descriptor = lock_data(folder)
    try:
        for entry in folder.iterdir():
            if entry.name != DATA_LOCK:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    finally:
        os.close(descriptor)


def port_is_free(port: int) -> bool:
    """Tell whether nothing listens on a loopback port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class StageRunner:
    """Start, watch and stop the processes of one stage."""

    def __init__(
        self,
        stage: Stage,
        port: int,
        extra_env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        fresh: bool = False,
    ) -> None:
        """A runner keeps the stage's data in `data_dir` (or WORKSHOP_DATA_DIR in
        extra_env); given neither, in a folder of its own that is removed when it stops
        (a test's, a demo's): only `workshop up` keeps a person's data by default."""
        self.stage = stage
        self.port = port
        self.env = stage_environment(stage, port, extra_env)
        named = data_dir or (extra_env or {}).get(config.DATA_DIR_ENV)
        self._scratch = None if named else tempfile.mkdtemp(prefix=f"{stage.name}-data-")
        self.data_dir = Path(named or self._scratch).resolve()
        self.env[config.DATA_DIR_ENV] = str(self.data_dir)
        self.fresh = fresh  # start from an empty data folder
        self._data_lock: int | None = None
        self.restart = True  # the foreground loop starts a process that exits again
        self.reload = False  # the foreground loop starts a process again when its code changes
        self.echo = True  # print the processes' output (always kept in their log files)
        # How each process was started (its Procfile line, port, environment), to start
        # it again; the ones stopped on purpose (stop_process), which stay down.
        self._specs: dict[str, tuple[str | None, int, dict[str, str] | None]] = {}
        self._held: set[str] = set()
        self._restarts: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._due: dict[str, float] = {}  # when each exited process starts again
        self.children: dict[str, subprocess.Popen] = {}
        # A plain attribute: a signal handler sets it, and setting it takes no lock.
        self.stop_requested = False

    def start(self) -> None:
        """Start every process of the stage (refusing ports another program holds)."""
        busy = [port for port in self.stage.ports(self.port).values() if not port_is_free(port)]
        if busy:
            raise PortInUse(f"port {busy[0]} is in use: stop what holds it or pick --port")
        if self.fresh:
            forget_data(self.data_dir)
        self._data_lock = lock_data(self.data_dir)  # held until this process exits
        # The last run's logs and record; its data stays in the data folder.
        shutil.rmtree(self.env["WORKSHOP_RUN_DIR"], ignore_errors=True)
        for name, process_port in self.stage.ports(self.port).items():
            self._spawn(name, process_port)
        self._write_record(up=False)
        control.make_folder(Path(self.env["WORKSHOP_RUN_DIR"]))

    def _record(self) -> Path:
        """Return the file that tells other commands this stage runs, and on which ports."""
        return Path(self.env["WORKSHOP_RUN_DIR"]) / RUNNING_RECORD

    def _write_record(self, up: bool) -> None:
        record = self._record()
        record.parent.mkdir(parents=True, exist_ok=True)
        written = record.with_suffix(".tmp")  # then renamed: a reader never sees half of it
        written.write_text(json.dumps(
            {"stage": self.stage.name, "pid": os.getpid(), "ports": self.stage.ports(self.port),
             "port": self.port, "mode": self.stage.mode, "run_dir": self.env["WORKSHOP_RUN_DIR"],
             "data_dir": str(self.data_dir), "up": up}
        ))  # fmt: skip
        written.replace(record)

    def start_extra(self, name: str, process: str, port: int, env: dict[str, str]) -> None:
        """Start one more copy of a process under a new name (another instance, a new version)."""
        self._spawn(name, port, process=process, extra_env=env)

    def _spawn(
        self,
        name: str,
        port: int,
        process: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self._specs[name] = (process, port, extra_env)
        self._started_at[name] = time.monotonic()
        command = next(p.command for p in self.stage.processes() if p.name == (process or name))
        env = {**self.env, **(extra_env or {}), "PORT": str(port)}
        child = subprocess.Popen(
            shlex.split(expand(command, env)),
            cwd=config.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # we stop children ourselves, in order
        )
        self.children[name] = child
        width = max(len(p.name) for p in self.stage.processes()) + 2
        log_file = logfiles.path(Path(self.env["WORKSHOP_RUN_DIR"]), name)
        relay = threading.Thread(
            target=self._relay, args=(name.ljust(width), child, log_file), daemon=True
        )
        relay.start()

    def _relay(self, label: str, child: subprocess.Popen, log_file: Path) -> None:
        """Print a process's output, prefixed with its name, and keep it in its log file
        (`workshop logs` follows those files)."""
        assert child.stdout is not None
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a", encoding="utf-8", buffering=1) as kept:  # a line at a time
            for line in child.stdout:
                if self.echo:
                    sys.stdout.write(f"{label} | {line}")
                    sys.stdout.flush()
                kept.write(line)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the front door is ready (answers /readyz 200), at most `timeout` s
        (by default longer for a larger sample: `ready_timeout`)."""
        deadline = time.monotonic() + (ready_timeout(self.env) if timeout is None else timeout)
        while time.monotonic() < deadline and self.failed() is None and not self.stop_requested:
            if is_ready(f"http://127.0.0.1:{self.port}"):
                return True
            time.sleep(0.2)
        return False

    def failed(self) -> str | None:
        """Return the name of a process that has exited, if any."""
        for name, child in self.children.items():
            if child.poll() is not None:
                return name
        return None

    def stop(self) -> None:
        """Stop every process: SIGTERM, then SIGKILL after a grace period."""
        self.stop_requested = True
        self._record().unlink(missing_ok=True)
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if self._data_lock is not None:  # the data folder is free for the next run
            os.close(self._data_lock)
            self._data_lock = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def stop_process(self, name: str) -> None:
        """Stop one process (a demo of a service going down); it stays down."""
        self._held.add(name)
        child = self.children[name]
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def kill_process(self, name: str) -> None:
        """Kill one process with SIGKILL, as a crash would (no clean stop); it stays down."""
        self._held.add(name)
        child = self.children[name]
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()

    def restart_process(self, name: str) -> None:
        """Start one stopped process again, on its own port (and with its own settings)."""
        self.stop_process(name)
        process, port, extra_env = self._specs.get(
            name, (None, self.stage.ports(self.port)[name], None)
        )
        self._held.discard(name)
        self._due.pop(name, None)
        self._spawn(name, port, process=process, extra_env=extra_env)

    def restart_processes(self, names: set[str]) -> None:
        """Stop some processes together (as Ctrl-C does), then start each again (not one
        stopped on purpose: it stays down)."""
        stopping = [n for n in sorted(names) if n in self.children and n not in self._held]
        for name in stopping:
            self._held.add(name)  # not a crash: the supervisor must not start it meanwhile
            self._due.pop(name, None)
            if self.children[name].poll() is None:
                os.killpg(self.children[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name in stopping:
            child = self.children[name]
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        for name in stopping:
            self._held.discard(name)
            process, port, extra_env = self._specs[name]
            self._spawn(name, port, process=process, extra_env=extra_env)

    def supervise(self, now: float) -> None:
        """Start again each process that exited on its own, once its pause is over."""
        for name, child in list(self.children.items()):
            if child.poll() is None or name in self._held:
                continue
            due = self._due.get(name)
            if due is None:
                if now - self._started_at.get(name, now) > STEADY_SECONDS:
                    self._restarts[name] = 0  # it had been up a while: not a crash loop
                count = self._restarts.get(name, 0)
                pause = RESTART_BACKOFF[min(count, len(RESTART_BACKOFF) - 1)]
                self._due[name] = now + pause
                print(f"workshop: process {name!r} exited ({child.returncode}); starting it "
                      f"again in {pause:.0f} s (restart {count + 1})", file=sys.stderr)  # fmt: skip
            elif now >= due:
                del self._due[name]
                self._restarts[name] = self._restarts.get(name, 0) + 1
                process, port, extra_env = self._specs[name]
                self._spawn(name, port, process=process, extra_env=extra_env)
                print(f"workshop: process {name!r} started again", file=sys.stderr)

    def request_stop(self, *_: object) -> None:
        """Ask the stage to stop: a signal handler, so it only sets a flag."""
        self.stop_requested = True

    def run_foreground(self, on_ready: Callable[[], None] | None = None) -> int:
        """Run until Ctrl-C/SIGTERM; return the exit status.

        A process that dies before the stage is ready stops the stage (something is wrong
        with the set-up). Once it is ready, a process that dies is reported and started
        again after a growing pause (see `supervise`), or, with `restart` off, left down
        while the rest keep running, so you can watch the others degrade without it.
        """
        # The handlers only set a flag, and the main loop looks at it. A handler that took
        # a lock (threading.Event.set) would hang when a second signal arrived while the
        # first held it; KeyboardInterrupt could break off the stop half done. Either way
        # servers kept their ports.
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.request_stop)
        try:
            return self._run_until_stopped(on_ready)
        finally:
            # All stopped: more signals have nothing to stop, and must not cut the exit short.
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)

    def _run_until_stopped(self, on_ready: Callable[[], None] | None) -> int:
        self.start()
        if not self.wait_ready():
            dead, asked = self.failed(), self.stop_requested
            self.stop()
            if asked:
                return 0  # stopped while starting
            print(f"workshop: {self.stage.name} did not start ({dead or 'timeout'})",
                  file=sys.stderr)  # fmt: skip
            return 1
        watcher = reload.Watcher(self.stage) if self.reload else None
        if watcher:
            watcher.start()
        # Only now is it up: a process that exits is started again (or reported), and a
        # saved file is seen. Whoever waits for the stage waits for this, not for /readyz,
        # which answers 200 a moment before this loop takes over.
        self._write_record(up=True)
        if on_ready:
            on_ready()
        try:
            self._watch_until_stopped(watcher)
        finally:
            if watcher:
                watcher.stop()
            self.stop()  # whatever ended the loop: no server keeps its port
        return 0

    def serve_control(self) -> None:
        """Do what another command asked of this stage (a lab attached to it: control.py).

        A request that is not one (not JSON, an unknown action or process) is answered with
        why, and changes nothing: whatever it holds, the stage runs on.
        """
        for path, request in control.requests_in(Path(self.env["WORKSHOP_RUN_DIR"])):
            do, name = request.get("do"), request.get("name")
            error = None
            try:
                self._do(do, name)
            except Exception as problem:  # noqa: BLE001 - a request must not stop the stage
                error = f"cannot {do!r} {name!r}: {problem}"
            control.answer(path, error)
            done = {"stop": "stopped", "kill": "killed", "start": "started"}.get(str(do), "?")
            said = error or f"process {name!r} {done}"
            print(f"workshop: {said} (asked by {str(request.get('by', 'another command'))[:40]})",
                  file=sys.stderr)  # fmt: skip

    def _do(self, do: object, name: object) -> None:
        if do not in control.ACTIONS:
            raise ValueError(f"not a request: {' or '.join(control.ACTIONS)} a process by name")
        if not isinstance(name, str) or name not in self.children:
            raise ValueError(f"no process of that name (processes: {', '.join(self.children)})")
        {"stop": self.stop_process, "kill": self.kill_process, "start": self.restart_process}[
            str(do)
        ](name)

    def _watch_until_stopped(self, watcher: reload.Watcher | None) -> None:
        reported: set[str] = set()
        while not self.stop_requested:
            self.serve_control()
            changed = watcher.take() if watcher else set()
            if changed:
                names = reload.affected(self.stage, changed)
                print(f"workshop: {reload.describe(changed)} changed; starting "
                      f"{', '.join(sorted(names))} again", file=sys.stderr)  # fmt: skip
                self.restart_processes(names)
            if self.restart:
                self.supervise(time.monotonic())
            else:
                for name, child in self.children.items():
                    if child.poll() is not None and name not in reported | self._held:
                        reported.add(name)
                        print(f"workshop: process {name!r} exited ({child.returncode}); "
                              "the rest keep running (--no-restart)", file=sys.stderr)  # fmt: skip
            time.sleep(WATCH_SECONDS)
