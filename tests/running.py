"""Whole stages for the tests that stop, pause or restart one of a stage's processes.

`workshop up`'s own runner (StageRunner) on free ports, with the environment a test gives;
the tests that only talk to a stage's front door use the acceptance suite's stages.
"""

import contextlib
from collections.abc import Iterator

from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import all_stages, get_stage

START_WITHIN = 150.0  # on a quiet machine: waited for scaled (tests/timing.py)
# 03 and 04: the stages where changes travel through a broker to a sync service.
SYNCED_STAGES = [s.name for s in all_stages() if "sync" in {p.name for p in s.processes()}]


@contextlib.contextmanager
def running_stage(name: str, env: dict[str, str] | None = None) -> Iterator[StageRunner]:
    """Run a stage until the block ends; fail if it is not ready in scaled(START_WITHIN) s.

    Its data lives in a folder of its own, removed when it stops (StageRunner's default).
    """
    stage = get_stage(name)
    runner = StageRunner(stage, free_base_port(len(stage.processes())), env or {})
    runner.start()
    try:
        ready = runner.wait_ready(scaled(START_WITHIN))
        assert ready, f"{name} did not start (exited: {runner.failed()})"
        yield runner
    finally:
        runner.stop()
