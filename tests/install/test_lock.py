"""The locks: they agree with pyproject.toml, and they install as the image and a classroom do.

requirements/*.txt pin every package with its hashes (scripts/lock.sh writes them from
uv.lock). The image installs the runtime lock with the pip its base image ships, so a test
does the same; a classroom installs from a wheelhouse with no package index, so a test does
that with the network off (a network namespace of its own, where `unshare` is allowed).
"""

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.timing import scaled

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCK = ROOT / "scripts" / "lock.sh"
DOCKERFILE = ROOT / "docker" / "app.Dockerfile"
# The pip each base image ships (CPython 3.11's ensurepip bundles pip 24.0): a new base image
# must say its pip here, and the install below is tried with it.
IMAGE_PIP = {"python:3.11.14-slim-bookworm": "24.0"}
# What the runtime lock must make importable: each stage's frameworks and drivers.
RUNTIME_IMPORTS = ("flask", "eve", "pymongo", "mongomock", "kombu", "celery", "quart",
                   "uvicorn", "aiohttp", "gunicorn", "honcho", "opentelemetry.sdk.trace",
                   "prometheus_client", "tooling.cli")  # fmt: skip


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def lock_check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(folder / "scripts" / "lock.sh"), "--check"], cwd=folder,
                          env={**os.environ, "UV": str(BIN / "uv"), "UV_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=scaled(300))  # fmt: skip


def test_the_locks_match_pyproject():
    done = lock_check(ROOT)
    assert done.returncode == 0, done.stderr


def project_copy(tmp_path: Path) -> Path:
    """Copy what the lock is made from (and checked by) into a folder of the test's own."""
    copy = tmp_path / "project"
    (copy / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "README.md", "scripts/lock.sh"):
        shutil.copy2(ROOT / name, copy / name)
    shutil.copytree(ROOT / "requirements", copy / "requirements")
    return copy


def test_the_check_fails_when_pyproject_asks_what_the_lock_does_not_hold(tmp_path):
    copy = project_copy(tmp_path)
    pyproject = copy / "pyproject.toml"
    pinned = re.search(r"^flask==(\S+)", (copy / "requirements/runtime.txt").read_text(), re.M)
    text = pyproject.read_text()
    assert '"flask>=' in text
    # A floor above the locked version: the lock no longer satisfies pyproject.toml.
    pyproject.write_text(re.sub(r'"flask>=[^"]*"', '"flask>=99"', text))
    done = lock_check(copy)
    assert done.returncode != 0 and "make lock" in done.stderr, (pinned, done.stderr)


def test_the_check_fails_when_a_requirements_file_is_edited_by_hand(tmp_path):
    copy = project_copy(tmp_path)
    runtime = copy / "requirements" / "runtime.txt"
    runtime.write_text(re.sub(r"^flask==\S+", "flask==3.0.0", runtime.read_text(), flags=re.M))
    done = lock_check(copy)
    assert done.returncode != 0 and "requirements/runtime.txt" in done.stderr, done.stderr


def pinned_versions(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / f"{lock}.txt").read_text()
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", text, re.M)}


def test_each_lock_holds_the_one_before_it_at_the_same_versions():
    """make run installs runtime, make bench adds bench, make test adds dev: one set of versions."""
    runtime, bench, dev = (pinned_versions(n) for n in ("runtime", "bench", "dev"))
    assert runtime.items() <= bench.items() <= dev.items()
    assert {"locust", "matplotlib"} <= bench.keys() - runtime.keys()
    assert {"playwright", "schemathesis", "ruff", "uv"} <= dev.keys() - bench.keys()
    assert not {"pytest", "locust", "playwright", "schemathesis"} & runtime.keys()


def image_pip() -> str:
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=([^@\s]+)", DOCKERFILE.read_text(), re.M)
    assert image in IMAGE_PIP, f"say which pip {image} ships in IMAGE_PIP"
    return IMAGE_PIP[image]


def new_venv(path: Path, pip: str | None = None) -> Path:
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    if pip:
        run([str(python), "-m", "pip", "install", "--quiet", f"pip=={pip}"], timeout=scaled(300))
    return python


@pytest.mark.timeout(1200)
def test_the_image_installs_the_runtime_lock_with_the_pip_its_base_image_ships(tmp_path):
    """As docker/app.Dockerfile does: wheels from the lock in one stage, installed in the next."""
    pip = image_pip()
    source = tmp_path / "src"
    (source / "requirements").mkdir(parents=True)
    for name in ("requirements/build.txt", "requirements/runtime.txt", "pyproject.toml",
                 "README.md"):  # fmt: skip
        shutil.copy2(ROOT / name, source / name)
    for package in ("workshop", "tooling"):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    builder = new_venv(tmp_path / "builder", pip)
    assert run([str(builder), "-m", "pip", "--version"]).stdout.startswith(f"pip {pip} ")
    wheels = tmp_path / "wheels"
    locked = ["--require-hashes", "--no-deps"]
    run([str(builder), "-m", "pip", "install", "--quiet", *locked, "-r",
         "requirements/build.txt"], cwd=source, timeout=scaled(600))  # fmt: skip
    run([str(builder), "-m", "pip", "wheel", "--quiet", *locked, "--no-build-isolation",
         "--wheel-dir", str(wheels), "-r", "requirements/runtime.txt"], cwd=source,
        timeout=scaled(900))  # fmt: skip
    run([str(builder), "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(wheels), "."], cwd=source, timeout=scaled(300))  # fmt: skip

    runtime = new_venv(tmp_path / "runtime", pip)
    run([str(runtime), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         *map(str, wheels.glob("*.whl"))], timeout=scaled(600))  # fmt: skip
    run([str(runtime), "-m", "pip", "check"])  # every package's own requirements are met
    run([str(runtime), "-c", "; ".join(f"import {m}" for m in RUNTIME_IMPORTS)], cwd=tmp_path)
    installed = run([str(runtime), "-m", "pip", "list", "--format", "freeze"]).stdout
    assert not re.search(r"^(pytest|locust|playwright)==", installed, re.M)


def network_off() -> list[str]:
    """Return a command prefix that runs a command with no network, or skip the test."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        return ["unshare", "-n"]
    pytest.skip("cannot start a process without network here (unshare -n is not allowed)")


@pytest.mark.timeout(1200)
def test_make_setup_installs_from_a_wheelhouse_with_the_network_off(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    run([sys.executable, str(ROOT / "scripts" / "wheelhouse.py"), str(wheelhouse),
         "--lock", "runtime", "--platform", "current", "--python", python],
        timeout=scaled(900))  # fmt: skip
    offline = network_off()
    probe = subprocess.run([*offline, sys.executable, "-c",
                            "import socket; socket.create_connection(('pypi.org', 443), 3)"],
                           capture_output=True)  # fmt: skip
    assert probe.returncode != 0, "the network is still on"
    target = tmp_path / "venv"
    # No pip configuration of this machine's (extra indexes, find-links) may help.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "",
           "PIP_INDEX_URL": "http://127.0.0.1:9/unreachable"}  # fmt: skip
    run([*offline, "make", "--no-print-directory", "-C", str(ROOT), "setup", f"VENV={target}",
         f"WHEELHOUSE={wheelhouse}", f"PYTHON={sys.executable}"], env=env,
        timeout=scaled(900))  # fmt: skip
    run([str(target / "bin" / "python"), "-m", "pip", "check"])
    stages = run([str(target / "bin" / "workshop"), "stages"], cwd=tmp_path).stdout
    assert "01-monolith" in stages and "04-async" in stages
