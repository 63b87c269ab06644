"""The same Procfile runs under honcho, a standard runner, against the machine's broker."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.acceptance.stage import eventually
from tests.timing import scaled
from tooling.runner import free_base_port, is_ready
from tooling.stages import get_stage

ROOT = Path(__file__).resolve().parents[2]


def test_stage_03_runs_under_honcho_on_redis(redis_url, tmp_path):
    stage = get_stage("03-services")
    port = free_base_port(len(stage.processes()))
    bin_dir = Path(sys.executable).parent
    env_file = tmp_path / "honcho.env"
    addresses = subprocess.run(
        [bin_dir / "workshop", "env", stage.name, "--port", str(port)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    env_file.write_text(
        addresses + f"BROKER_URL={redis_url}\nWORKSHOP_DATA_DIR={tmp_path / 'run'}\n"
    )
    honcho = subprocess.Popen(
        [bin_dir / "honcho", "-f", str(stage.procfile), "-d", str(ROOT), "-e", str(env_file),
         "start", "-p", str(port)],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        assert eventually(lambda: is_ready(url), bool, within=120), "honcho's stage never settled"
        answer = requests.get(f"{url}/api/search", params={"q": "asyncio"}, timeout=scaled(10))
        assert answer.status_code == 200 and answer.json()["total"] > 0
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=scaled(30))
