"""`workshop diff`: stage-to-stage diffs that pair renamed files, summary first."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.timing import scaled
from tooling import stages
from tooling.diff import FileDiff, StageDiff, async_twin, diff, residue_line, stage_diff

ROOT = Path(__file__).resolve().parents[2]
STAGES = stages.all_stages()
NEIGHBOURS = list(zip(STAGES, STAGES[1:], strict=False))

PAGES = "".join(f"def page_{i}() -> str:\n    return 'page {i}'\n\n\n" for i in range(10))
CLIENT = "".join(
    f"def call_{i}(url: str) -> dict:\n    return get(url, {i})\n\n\n" for i in range(8)
)
INIT = '"""The front."""\n\nfrom flask import Flask\n\n\ndef create_app() -> Flask:\n'
STORE = "".join(f"def find_{i}(db) -> list:\n    return list(db.c{i}.find())\n\n" for i in range(6))


def write(root: Path, files: dict[str, str]) -> Path:
    """Create a fake stage folder from {relative path: text}."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def by_old_path(step: StageDiff) -> dict[str, FileDiff]:
    return {f.old_path: f for f in step.files if f.old_path}


@pytest.fixture
def fake_step(tmp_path: Path) -> tuple[Path, Path]:
    """A small step like 02 -> 03: front/ moves to gateway/, the store splits in two."""
    old = write(
        tmp_path / "02-old",
        {
            "Procfile": "web: gunicorn front\n",
            "README.md": "# Old\n\nOne front.\n",
            "front/__init__.py": INIT + "    return Flask('front')\n",
            "front/pages.py": PAGES,
            "front/client.py": CLIENT,
            "front/gone.py": "x = 1\n",
            "restapi/store.py": STORE,
        },
    )
    new = write(
        tmp_path / "03-new",
        {
            "Procfile": "web: gunicorn gateway\nsearch: gunicorn search\n",
            "README.md": "# New\n\nA gateway and services.\n",
            "gateway/__init__.py": INIT + "    return Flask('gateway')\n",
            "search/__init__.py": '"""Search."""\n\nimport search\n',
            "gateway/pages.py": PAGES.replace("page 3", "page three") + "def extra(): ...\n",
            "gateway/client.py": CLIENT.replace("get(url, 5)", "post(url, 5)"),
            "gateway/gone.py": "completely = 'different'\nso = 'not a rename'\n",
            # As alike to the old store as each other: a split, not a rename.
            "search/store.py": STORE.replace("c1", "posts"),
            "users/store.py": STORE.replace("c2", "users"),
        },
    )
    return old, new


@pytest.mark.parametrize(
    ("old", "new"), NEIGHBOURS, ids=[f"{a.name}->{b.name}" for a, b in NEIGHBOURS]
)
def test_every_step_has_code_hunks(old: stages.Stage, new: stages.Stage) -> None:
    step = stage_diff(old.path, new.path)
    changed_code = [
        f
        for f in step.files
        if f.paired and f.path.endswith(".py") and f.hunks and f.added + f.removed > 0
    ]
    assert changed_code, f"no paired .py file changed from {old.name} to {new.name}"
    assert any(line.startswith("@@ ") for line in changed_code[0].hunks)


def test_02_to_03_pairs_the_front_with_the_gateway() -> None:
    step = stage_diff(stages.get_stage("02").path, stages.get_stage("03").path)
    pages = by_old_path(step)["front/pages.py"]
    assert pages.new_path == "gateway/pages.py"
    assert pages.status == "renamed"
    assert pages.hunks[:2] == (
        "--- 02-rest-api/front/pages.py\n",
        "+++ 03-services/gateway/pages.py\n",
    )
    # The folder moved: its other files pair with their namesakes that share some lines.
    for name in ("__init__.py", "api.py", "client.py"):
        assert by_old_path(step)[f"front/{name}"].new_path == f"gateway/{name}", name


def test_renamed_files_pair_by_name_and_likeness(fake_step: tuple[Path, Path]) -> None:
    step = stage_diff(*fake_step)
    files = by_old_path(step)
    assert files["front/pages.py"].new_path == "gateway/pages.py"
    assert files["front/client.py"].new_path == "gateway/client.py"
    # gateway's __init__ is more alike than search's: the best match wins.
    assert files["front/__init__.py"].new_path == "gateway/__init__.py"
    assert files["Procfile"].status == "changed"
    # Same name, nothing alike: removed and added, not renamed.
    assert files["front/gone.py"].new_path is None
    assert "gateway/gone.py" in {f.new_path for f in step.with_status("added")}
    # Equally alike to two new stores: pairing either would be a guess.
    assert files["restapi/store.py"].new_path is None


def test_code_comes_before_docs_and_lines_split(fake_step: tuple[Path, Path]) -> None:
    step = stage_diff(*fake_step)
    kinds = [f.is_doc for f in step.files]
    assert kinds == sorted(kinds) and kinds[-1] is True
    docs_added, docs_removed = step.line_counts(docs=True)
    assert (docs_added, docs_removed) == (2, 2)
    code_added, _ = step.line_counts(docs=False)
    assert code_added > docs_added
    assert not any(f.is_doc for f in step.code_only().files)


def test_generated_files_are_ignored(fake_step: tuple[Path, Path]) -> None:
    old, new = fake_step
    junk = {
        "front/__pycache__/pages.cpython-311.pyc": "bytecode",
        "gateway/__pycache__/pages.cpython-311.pyc": "other bytecode",
        "stray.pyc": "bytecode",
        ".pytest_cache/v/cache/lastfailed": "{}",
        "workshop.egg-info/PKG-INFO": "Name: workshop",
        ".workshop/secret_key": "s3cret",
        "node_modules/left-pad/index.js": "module.exports = 1",
    }
    write(old, junk)
    write(new, {path: text + " changed" for path, text in junk.items()})
    paths = {p for f in stage_diff(old, new).files for p in (f.old_path, f.new_path) if p}
    assert paths
    ignored = ("__pycache__", ".pyc", ".pytest_cache", "egg-info", ".workshop", "node_modules")
    assert not [p for p in paths if any(part in p for part in ignored)]


def test_a_stage_against_its_copy_with_caches_is_unchanged(tmp_path: Path) -> None:
    stage = STAGES[-1].path
    copy = tmp_path / stage.name
    shutil.copytree(stage, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    write(copy, {"__pycache__/x.cpython-311.pyc": "junk", "gateway/__pycache__/y.pyc": "junk"})
    step = stage_diff(stage, copy)
    assert step.files
    assert {f.status for f in step.files} == {"unchanged"}


def test_cli_prints_the_summary_before_the_hunks(fake_step: tuple[Path, Path]) -> None:
    old, new = fake_step
    result = CliRunner().invoke(diff, [str(old), str(new)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(
        "02-old -> 03-new: 2 changed, 3 renamed and paired, 4 added, 2 removed"
    )
    assert lines[1].startswith("lines: code +")
    first_hunk = next(i for i, line in enumerate(lines) if line.startswith("@@ "))
    assert first_hunk > 1
    renamed = next(i for i, line in enumerate(lines) if line.startswith("renamed: front/pages"))
    assert lines[renamed].startswith("renamed: front/pages.py -> gateway/pages.py (")
    assert lines[renamed + 1 : renamed + 3] == [
        "--- 02-old/front/pages.py",
        "+++ 03-new/gateway/pages.py",
    ]
    # Code hunks only; the docs are named, and shown after the code with --docs.
    assert "--- 02-old/README.md" not in lines
    assert lines[-1] == "Docs changed too (README.md): --docs shows them, after the code."
    with_docs = CliRunner().invoke(diff, [str(old), str(new), "--docs"]).output.splitlines()
    assert with_docs.index("--- 02-old/Procfile") < with_docs.index("--- 02-old/README.md")
    assert f"Only in 03-new: users/store.py ({len(STORE.splitlines())} lines)" in lines
    assert "+++ 03-new/users/store.py" not in lines


def test_cli_options(fake_step: tuple[Path, Path]) -> None:
    old, new = fake_step
    runner = CliRunner()
    stat = runner.invoke(diff, [str(old), str(new), "--stat"]).output
    assert "R front/pages.py -> gateway/pages.py" in stat
    assert "@@ " not in stat
    code_only = runner.invoke(diff, [str(old), str(new), "--code-only"]).output
    assert "README.md" not in code_only and "docs" not in code_only
    full = runner.invoke(diff, [str(old), str(new), "--full"]).output.splitlines()
    added = full.index("+++ 03-new/users/store.py")
    assert full[added - 1] == "--- /dev/null"
    assert full[added + 1] == f"@@ -0,0 +1,{len(STORE.splitlines())} @@"


def test_cli_resolves_stage_numbers_and_defaults_to_the_next_stage() -> None:
    first, second = STAGES[0], STAGES[1]
    number = first.name.split("-")[0].lstrip("0")
    output = CliRunner().invoke(diff, [number, "--stat"]).output
    assert output.startswith(f"{first.name} -> {second.name}: ")
    unknown = CliRunner().invoke(diff, ["no-such-stage", "02"])
    assert unknown.exit_code != 0
    assert "no stage 'no-such-stage'" in unknown.output


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_diff_as_the_readme_says() -> None:
    result = subprocess.run(
        ["make", "diff", "FROM=02-rest-api", "TO=03-services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stderr
    assert "02-rest-api -> 03-services: " in result.stdout
    lines = result.stdout.splitlines()
    pages = lines.index("+++ 03-services/gateway/pages.py")
    assert lines[pages + 1].startswith("@@ ")
    assert result.stdout.index("renamed and paired") < result.stdout.index("@@ ")


def test_async_only_leaves_what_is_not_the_async_step(tmp_path: Path) -> None:
    blocking = "import requests\n\ndef fetch(url):\n    return requests.get(url)\n\nLIMIT = 5\n"
    asynchronous = (
        "import aiohttp\n\nasync def fetch(url):\n    return await aiohttp.get(url)\n\nLIMIT = 6\n"
    )
    old = write(tmp_path / "03-old", {"client.py": blocking})
    new = write(tmp_path / "04-new", {"client.py": asynchronous})
    assert async_twin("    async with Quart(app) as q: await q") == "    with Flask(app) as q: q"
    plain, twins = stage_diff(old, new), stage_diff(old, new, normalise=async_twin)
    assert sum(plain.line_counts(docs=False)) == 8  # four lines changed, each -1 +1
    assert twins.files[0].hunks[-2:] == ("-LIMIT = 5\n", "+LIMIT = 6\n")
    assert residue_line(plain, twins).startswith("async-only: 2 of 8 changed lines")
    output = CliRunner().invoke(diff, [str(old), str(new), "--async-only"]).output
    assert output.splitlines()[0].endswith("(75% vanish)")


@pytest.mark.parametrize(
    ("asynchronous", "blocking"),
    [
        ('    return (await answer_of(r, 200))["items"]', '    return answer_of(r, 200)["items"]'),
        (
            "x = n + (await relay.pending() if relay else 0)",
            "x = n + (relay.pending() if relay else 0)",
        ),
        (
            "    hashed = await asyncio.to_thread(hash_password, password)",
            "    hashed = hash_password(password)",
        ),
        ("await asyncio.to_thread(save)", "save()"),
        ("if answer.status == 401:", "if answer.status_code == 401:"),
        ("except aiohttp.ClientError:", "except requests.RequestException:"),
        ("client = redis.asyncio.Redis.from_url(url)", "client = redis.Redis.from_url(url)"),
        ("app = web.create_quart(__name__)", "app = web.create_flask(__name__)"),
        ("await asyncio.sleep(1.0)", "time.sleep(1.0)"),
    ],
)
def test_async_only_reads_each_async_form_as_its_blocking_twin(asynchronous, blocking) -> None:
    assert async_twin(asynchronous) == blocking


def test_the_04_readme_says_how_much_of_03_to_04_is_the_async_step() -> None:
    old, new = stages.get_stage("03").path, stages.get_stage("04").path
    line = residue_line(stage_diff(old, new), stage_diff(old, new, normalise=async_twin))
    measured = int(re.search(r"\((\d+)% vanish\)", line).group(1))
    readme = (new / "README.md").read_text()
    said = int(re.search(r"today\s+(\d+) % of the changed lines", readme).group(1))
    assert abs(said - measured) <= 2, f"04-async/README.md says {said} %; {line}"


def test_03_to_04_shows_the_chassis_ports_of_the_shared_package() -> None:
    """04's chassis/queries.py, web.py, bodies.py and health.py port workshop/queries.py and
    workshop/web's modules, which 03 imports: the diff pairs them (ported), so no chassis
    file of 04 reads as new."""
    step = stage_diff(stages.get_stage("03").path, stages.get_stage("04").path)
    ported = {f.new_path: f.old_path for f in step.with_status("ported")}
    assert ported == {
        "chassis/queries.py": "workshop/queries.py",
        "chassis/web.py": "workshop/web/__init__.py",
        "chassis/bodies.py": "workshop/web/bodies.py",
        "chassis/health.py": "workshop/web/health.py",
    }
    assert not [f.path for f in step.with_status("added") if f.path.startswith("chassis/")]
    queries = next(f for f in step.files if f.new_path == "chassis/queries.py")
    assert queries.hunks[:2] == ("--- workshop/queries.py\n", "+++ 04-async/chassis/queries.py\n")
