"""`workshop up --reload` starts a process again when its code changes, and only that one.

The test saves a new file in 03's search package (a file of its own, removed at the end),
as an attendee saves an edit: the log names the file and the process, search comes back
as a new process with its data, and the other services keep running untouched. A change
outside any one service's package (here the chassis) would start them all: see
tests/unit/test_reload.py for which change starts which process.
"""

import uuid
from pathlib import Path

from tests.acceptance.stage import eventually
from tests.reliability.test_supervision import found, process_on, ready
from tooling.launcher import LaunchedStage
from tooling.stages import get_stage

STAGE = "03-services"


def test_a_saved_change_starts_the_process_that_runs_it_again(tmp_path: Path) -> None:
    stage = LaunchedStage(STAGE, tmp_path, env={"MONGO_URL": ""}, options=["--reload"])
    stage.start()
    probe = get_stage(STAGE).path / "search" / f"_reload_probe_{uuid.uuid4().hex[:8]}.py"
    try:
        before = found(stage.url)
        ports = get_stage(STAGE).ports(stage.port)
        search, tag = process_on(ports["search"]), process_on(ports["tag"])
        assert search is not None and tag is not None
        probe.write_text('"""Saved by tests/reliability/test_reload.py; removed after it."""\n')
        log = Path(stage.log_path)
        said = f"{STAGE}/search/{probe.name} changed; starting search again"
        assert eventually(lambda: said in log.read_text(), bool, 30), stage.log_tail()
        back = eventually(lambda: process_on(ports["search"]),
                          lambda p: p is not None and p.pid != search.pid, 60)  # fmt: skip
        assert back is not None and back.pid != search.pid
        assert eventually(lambda: ready(stage.url), bool, 60), stage.log_tail()
        assert eventually(lambda: found(stage.url), lambda n: n == before, 30) == before
        untouched = process_on(ports["tag"])
        assert untouched is not None and untouched.pid == tag.pid, "tag was started again"
    finally:
        probe.unlink(missing_ok=True)
        assert stage.stop() == 0
