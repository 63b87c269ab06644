"""The instructor's deck stays presentable and true: an agenda with times, a speaker note on
every slide, and every repository path, `make` target and `workshop` command it names exists."""

import re
import subprocess
from itertools import takewhile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.timing import scaled
from tooling.cli import main
from tooling.stages import all_stages
from workshop.config import ROOT

DECK = ROOT / "slides" / "workshop.md"
NOTE_MIN_WORDS = 20
# Marp reads a comment that parses as YAML with one of these keys (optionally `_`-prefixed) as
# a directive, not as a note: Marpit's global and local directives, marp-core's and marp-cli's.
MARP_DIRECTIVES = {
    "headingDivider", "lang", "style", "theme", "size", "math", "marp", "title",
    "description", "author", "image", "keywords", "url", "backgroundColor",
    "backgroundImage", "backgroundPosition", "backgroundRepeat", "backgroundSize", "class",
    "color", "footer", "header", "paginate", "transition",
}  # fmt: skip
FILE_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".toml", ".png", ".html", ".sh"}
PATH_SHAPE = re.compile(r"[\w.-]+(/[\w.-]+)*/?")
STAGE_NAME = re.compile(r"\b\d\d-[a-z]+(?:-[a-z]+)*")
COMMAND = re.compile(r"(?:^|\s)(?:\.venv/bin/)?(make|workshop)(?=\s|$)((?:\s+[^\s#|;&)]+)*)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
STAGES = {stage.name: stage.path for stage in all_stages()}


def split_slides(text: str) -> list[str]:
    """Split a Marp deck into slides: after the front matter, on `---` lines outside code."""
    lines = text.splitlines()
    assert lines[0] == "---", "the deck starts with its front matter"
    body = lines[lines.index("---", 1) + 1 :]
    slides, current, in_code = [], [], False
    for line in body:
        if line.startswith("```"):
            in_code = not in_code
        if line == "---" and not in_code:
            slides.append("\n".join(current))
            current = []
        else:
            current.append(line)
    slides.append("\n".join(current))
    return slides


SLIDES = split_slides(DECK.read_text(encoding="utf-8"))


def title(slide: str) -> str:
    """Return a slide's `# ` heading."""
    return next((line[2:] for line in slide.splitlines() if line.startswith("# ")), "")


def is_directive(comment: str) -> bool:
    """Tell whether Marp takes a comment for a directive (so it is no speaker note)."""
    try:
        parsed = yaml.load(comment, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects
    except yaml.YAMLError:
        return False
    return isinstance(parsed, dict) and any(k.lstrip("_") in MARP_DIRECTIVES for k in parsed)


def speaker_notes(slide: str) -> list[str]:
    """Return a slide's HTML comments that Marp shows as speaker notes."""
    comments = re.findall(r"<!--(.*?)-->", FENCE.sub("", slide), re.S)
    return [c.strip() for c in comments if not is_directive(c.strip())]


def inline_code(slide: str) -> list[str]:
    """Return the backticked spans outside code blocks."""
    return re.findall(r"`([^`\n]+)`", FENCE.sub("", slide))


def commands(slide: str) -> list[str]:
    """Every `make ...` and `workshop ...` command on a slide, in code blocks or inline."""
    code_lines = [
        line.split(" #")[0] for block in FENCE.findall(slide) for line in block.splitlines()
    ]
    found = []
    for text in code_lines + inline_code(slide):
        found += [f"{tool}{args}".strip() for tool, args in COMMAND.findall(text)]
    return found


def folders_for(slide: str) -> list[Path]:
    """Where a slide's relative paths may live: the root, and for "Stage NN" the stage and the
    one before it (a step's slide says what the previous stage's file became)."""
    folders = [ROOT]
    if match := re.search(r"\bStage (\d\d)\b", title(slide)):
        number = int(match.group(1))
        folders += [path for name, path in STAGES.items() if int(name[:2]) in (number - 1, number)]
    return folders


def looks_like_path(span: str) -> bool:
    """Tell whether a backticked span names a file or folder (not a URL path or an identifier)."""
    return bool(PATH_SHAPE.fullmatch(span)) and ("/" in span or Path(span).suffix in FILE_SUFFIXES)


SLIDE_IDS = [f"{n + 1}-{title(s)[:30]}" for n, s in enumerate(SLIDES)]


def test_the_deck_has_an_agenda_with_times_for_every_stage() -> None:
    agendas = [s for s in SLIDES if "agenda" in title(s).lower()]
    assert agendas, "no slide titled Agenda"
    agenda = agendas[0]
    times = re.findall(r"\b([01]\d|2[0-3]):([0-5]\d)\b", agenda)
    minutes = [int(h) * 60 + int(m) for h, m in times]
    assert len(minutes) >= 6, f"an agenda needs times, found {times}"
    assert minutes == sorted(minutes), "the agenda's times run forward"
    missing = [name for name in STAGES if name not in agenda]
    assert not missing, f"the agenda leaves out {missing}"


@pytest.mark.parametrize("slide", SLIDES, ids=SLIDE_IDS)
def test_every_slide_has_a_speaker_note(slide: str) -> None:
    words = sum(len(note.split()) for note in speaker_notes(slide))
    assert words >= NOTE_MIN_WORDS, f"{title(slide)!r}: speaker note of {words} words"


@pytest.mark.parametrize("slide", SLIDES, ids=SLIDE_IDS)
def test_every_path_on_a_slide_exists(slide: str) -> None:
    folders = folders_for(slide)
    missing = [
        span
        for span in inline_code(slide)
        if looks_like_path(span) and not any((folder / span).exists() for folder in folders)
    ]
    assert not missing, f"{title(slide)!r} names paths that do not exist: {missing}"


@pytest.mark.parametrize("slide", SLIDES, ids=SLIDE_IDS)
def test_every_command_on_a_slide_exists(slide: str) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    wrong = []
    for command in commands(slide):
        tool, *words = command.split()
        wrong += [
            f"{command}: no stage {n}" for n in STAGE_NAME.findall(command) if n not in STAGES
        ]
        if tool == "make":
            wrong += [
                f"{command}: no target {w}" for w in words if "=" not in w and w not in targets
            ]
        else:
            # The command's words up to its arguments, e.g. `sync status`, must be a command.
            names = list(takewhile(lambda w: re.fullmatch(r"[a-z]+", w), words))
            result = CliRunner().invoke(main, [*names, "--help"])
            usage = result.output.splitlines()[0] if result.output else ""
            if names and (result.exit_code != 0 or "COMMAND [ARGS]" in usage):
                wrong.append(f"{command}: not a workshop command")
    assert not wrong, f"{title(slide)!r}: {wrong}"


def test_make_slides_runs_the_marp_command_the_slides_readme_gives() -> None:
    """The deck is built by Marp from npm (no network here): `make slides` and the README
    must name the same command, so following either builds the same file."""
    dry = subprocess.run(["make", "-n", "slides"], cwd=ROOT, capture_output=True, text=True,
                         timeout=scaled(60), check=True)  # fmt: skip
    command = "npx --yes @marp-team/marp-cli@4 slides/workshop.md -o slides/workshop.html"
    # Under `make test`, make prints "Entering directory" lines around what it would run.
    assert [line for line in dry.stdout.splitlines() if "marp-cli" in line] == [command]
    readme = (ROOT / "slides" / "README.md").read_text()
    assert f"`{command}`" in readme
    assert "`npx --yes @marp-team/marp-cli@4 --notes slides/workshop.md -o notes.txt`" in readme
