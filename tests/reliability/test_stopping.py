"""`workshop up` stops cleanly however the signal comes: SIGTERM forwarded twice or more
(as under `make run`) or Ctrl-C pressed again while it stops (a terminal sends SIGINT to
the whole foreground group). Every process exits and every port of the stage is free for
the next run."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.acceptance.stage import eventually
from tests.timing import scaled
from tooling.launcher import kill_survivors, process_tree
from tooling.runner import STOP_GRACE_SECONDS, free_base_port, is_ready, port_is_free
from tooling.stages import get_stage
from workshop import config

START_WITHIN = 150.0
# Stopping may wait out the grace period for a slow process, then kills it.
STOPPED_WITHIN = STOP_GRACE_SECONDS + 15.0
# A second signal hangs a handler that takes a lock only if it lands within microseconds
# of the first; a second of signals, a fraction of a millisecond apart, makes sure one does.
BURST_SECONDS = 1.0
MAX_GAP_SECONDS = 0.0003


def signal_burst(up: subprocess.Popen, signum: signal.Signals) -> None:
    """Send the process group a signal again and again, until it exits or the burst ends."""
    rng = random.Random(signum)
    end = time.monotonic() + BURST_SECONDS
    while time.monotonic() < end and up.poll() is None:
        try:
            os.killpg(up.pid, signum)
        except ProcessLookupError:
            return
        gap_end = time.perf_counter() + rng.uniform(0, MAX_GAP_SECONDS)
        while time.perf_counter() < gap_end:
            pass  # spin: sleep() would round the gap up to the scheduler's tick


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_repeated_signals_stop_every_process_and_free_every_port(signum, tmp_path: Path):
    stage = get_stage("03-services")
    port = free_base_port(len(stage.processes()))
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [str(Path(sys.executable).with_name("workshop")), "up", stage.name, "--port", str(port)],
        cwd=config.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    tree: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{port}"
        ready = eventually(lambda: up.poll() is None and is_ready(url), bool, within=START_WITHIN)
        assert ready, (tmp_path / "up.log").read_text()[-3000:]
        tree = process_tree(up.pid)
        assert len(tree) > len(stage.processes()), "every process of the stage runs"

        signal_burst(up, signum)
        try:
            up.wait(timeout=scaled(STOPPED_WITHIN))
        except subprocess.TimeoutExpired:
            limit = scaled(STOPPED_WITHIN)
            pytest.fail(f"`workshop up` still runs {limit:.0f} s after {signum.name}")
        left = eventually(lambda: [p for p in tree if alive(p)], lambda ps: not ps, within=15)
        assert not left, f"still running after `workshop up` exited: {left}"
        busy = [p for p in stage.ports(port).values() if not port_is_free(p)]
        assert not busy, f"ports still taken: {busy}"
        assert up.returncode == 0, f"not a clean stop: {up.returncode}"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        kill_survivors(tree)
        log.close()
