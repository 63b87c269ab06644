"""`workshop bench` needs the bench extra (locust, matplotlib, psutil); the runtime lock lacks it.

The runtime lock alone (`make run`) is simulated by a folder on PYTHONPATH whose `locust.py`
(and so on) raises ImportError, as the missing package would.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.timing import scaled

ROOT = Path(__file__).resolve().parents[2]
WORKSHOP = str(Path(sys.executable).with_name("workshop"))


def hiding(tmp_path: Path, modules: tuple[str, ...]) -> dict[str, str]:
    """Return an environment in which the given modules cannot be imported."""
    shim = tmp_path / "shim"
    shim.mkdir()
    for name in modules:
        (shim / f"{name}.py").write_text(f"raise ImportError('no module named {name}')\n")
    return {**os.environ, "PYTHONPATH": str(shim)}


@pytest.mark.parametrize(
    "missing",
    [("locust", "matplotlib", "psutil"), ("locust",), ("matplotlib",), ("psutil",)],
    ids=lambda missing: "-".join(missing),
)
def test_bench_without_its_extra_says_how_to_install_it_in_one_line(tmp_path, missing):
    out = tmp_path / "results"
    finished = subprocess.run(
        [WORKSHOP, "bench", "01-monolith", "--duration", "1", "--repeat", "1", "--out", str(out)],
        cwd=ROOT, env=hiding(tmp_path, missing), capture_output=True, text=True, timeout=scaled(60),
    )  # fmt: skip
    assert finished.returncode != 0
    [line] = finished.stderr.strip().splitlines()  # one line, no traceback
    named = re.fullmatch(
        r"Error: workshop bench needs the bench tools \(missing: (.+)\): `make bench` installs"
        r" them, or `pip install --require-hashes --no-deps -r requirements/bench.txt` in the"
        r" repository",
        line,
    )
    assert named, line
    # locust itself needs psutil: hiding psutil breaks it too, and the line may say so.
    assert set(missing) <= set(named.group(1).split(", ")) <= {*missing, "locust"}
    assert not out.exists()  # it stopped before starting anything


def test_the_bench_extra_holds_what_bench_imports_and_dev_includes_it():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {requirement.split(">")[0].split("<")[0].strip() for requirement in extras["bench"]}
    assert names == {"locust", "matplotlib", "psutil"}
    assert "workshop[bench]" in extras["dev"]
    # What the message (and `make bench`) installs: the bench lock pins each of them.
    for lock in ("bench", "dev"):
        pinned = re.findall(
            r"(?m)^([\w.-]+)==", (ROOT / "requirements" / f"{lock}.txt").read_text()
        )
        assert names <= set(pinned), lock
    # -B: as on a fresh clone, every step make would take.
    make_bench = subprocess.run(["make", "-n", "-B", "bench"], cwd=ROOT, capture_output=True,
                                text=True, timeout=scaled(60)).stdout  # fmt: skip
    assert "--require-hashes --no-deps" in make_bench
    assert "-r requirements/bench.txt" in make_bench
