"""Which running stage a command talks to (tooling/target.py): --url, --port, else
the stage started last, named on stderr."""

import click
import pytest

from tooling import target
from tooling.stages import all_stages
from workshop.config import DEFAULT_PORT

# What `workshop up` records for two stages, newest first (as running_stages() returns them).
NEWER = {"stage": "03-services", "pid": 1, "port": 9100, "run_dir": "/run/03",
         "ports": {"web": 9100, "sync": 9600}}  # fmt: skip
OLDER = {"stage": "01-monolith", "pid": 2, "port": 9000, "run_dir": "/run/01",
         "ports": {"web": 9000}}  # fmt: skip


@pytest.fixture
def running(monkeypatch):
    """The stages `workshop up` runs, as the test sets them (newest first)."""
    records: list[dict] = []
    monkeypatch.setattr(target, "running_stages", lambda: list(records))
    return records


def test_without_port_or_url_the_stage_started_last_is_picked_and_named(running, capsys):
    running += [NEWER, OLDER]
    picked = target.pick(None, None)
    assert picked == target.Target("http://127.0.0.1:9100", NEWER)
    said = capsys.readouterr()
    assert said.out == ""  # stdout is the command's answer
    (line,) = said.err.splitlines()
    assert "03-services on port 9100" in line and "started last" in line


def test_a_port_or_url_picks_that_stage_and_says_nothing(running, capsys):
    running += [NEWER, OLDER]
    assert target.pick(9000, None) == target.Target("http://127.0.0.1:9000", OLDER)
    assert target.pick(None, "http://localhost:9000/") == target.Target(
        "http://localhost:9000", OLDER
    )
    # A stage elsewhere (containers, another machine): its address, with no record.
    assert target.pick(None, "http://10.0.0.5:9000") == target.Target("http://10.0.0.5:9000")
    assert capsys.readouterr().err == ""


def test_with_no_stage_running_the_default_port_is_tried_and_said(running, capsys):
    assert target.pick(None, None) == target.Target("http://127.0.0.1:8000")
    assert "trying http://127.0.0.1:8000" in capsys.readouterr().err


def test_port_and_url_together_are_refused(running):
    with pytest.raises(click.UsageError, match="not both"):
        target.pick(9000, "http://127.0.0.1:9000")


def test_commands_that_read_the_run_folder_need_a_stage_workshop_up_runs(running):
    with pytest.raises(click.ClickException, match="no stage runs: start one"):
        target.pick_running(None, None, "hint")
    running.append(OLDER)
    assert target.pick_running(9000, None, "hint").record == OLDER
    for port, url in ((9100, None), (None, "http://10.0.0.5:9000")):
        with pytest.raises(click.ClickException, match="no stage started with `workshop up`"):
            target.pick_running(port, url, "hint")


def test_sync_commands_find_the_newest_stage_with_a_sync_service(running, capsys):
    running += [OLDER, NEWER]  # the monolith started last: it has no sync service
    assert target.pick_sync(None, None) == target.SyncTarget("http://127.0.0.1:9600", NEWER)
    assert "the sync service of 03-services on port 9100" in capsys.readouterr().err
    assert target.pick_sync(9100, None).url == "http://127.0.0.1:9600"
    assert target.pick_sync(None, "http://sync:8000/") == target.SyncTarget("http://sync:8000")
    with pytest.raises(click.ClickException, match="01-monolith has no sync service"):
        target.pick_sync(9000, None)
    with pytest.raises(click.ClickException, match="no stage started with `workshop up` runs on"):
        target.pick_sync(9900, None)


def test_sync_commands_without_a_running_stage_try_the_default_ports(running, capsys):
    last = [s for s in all_stages() if "sync" in s.ports(DEFAULT_PORT)][-1]
    picked = target.pick_sync(None, None)
    assert picked == target.SyncTarget(f"http://127.0.0.1:{last.ports(DEFAULT_PORT)['sync']}")
    assert f"trying {last.name}'s default, {picked.url}" in capsys.readouterr().err
