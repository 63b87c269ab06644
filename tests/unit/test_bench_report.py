"""The bench report's description of the run says what was true of it."""

import os
from pathlib import Path

from tooling.bench import BenchOptions, run_description


def options() -> BenchOptions:
    return BenchOptions(stages=["01-monolith"], scenarios=["reads"], duration=5, users=2,
                        repeat=1, out=Path("/tmp/bench"), command="workshop bench")  # fmt: skip


def test_the_load_note_appears_only_when_the_load_passed_the_core_count() -> None:
    cores = os.cpu_count() or 1
    quiet = run_description(options(), 60.0, (cores * 0.5, cores * 0.4))
    busy = run_description(options(), 60.0, (cores * 0.5, cores * 3.0))
    assert "other programs competed" not in quiet
    assert "other programs competed" in busy
