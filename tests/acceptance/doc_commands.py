"""Find the shell commands the docs tell a reader to type, and run them as a reader would.

A command is a line (or lines joined by `\\` or an open quote) of a ```sh, ```bash or
```shell block, a `$ ` line of a ```console block, or an inline code span that starts with
a command (`workshop`, `curl`, `make`, ...) and has at least two arguments: shorter spans
name a command (`workshop up`, `kill -9`) rather than say what to type.
"""

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.timing import scaled
from tooling.stages import all_stages, get_stage

ROOT = Path(__file__).resolve().parents[2]
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
COMMAND_WORDS = {"workshop", "make", "curl", "kill", "pgrep", "honcho", "gunicorn", "python",
                 "python3", "pip", "source", "for", "npx", "env", "cd"}  # fmt: skip
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w-]*)")
CODE_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*$")
STAGE_IN_COMMENT = re.compile(r"\bstage (\d\d)\b")


@dataclass(frozen=True)
class Command:
    """A command as a doc gives it, with where it is and the comment after it."""

    path: Path
    line: int
    text: str
    comment: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def stage(self) -> str:
        """Return the stage the command is for: its comment's, its folder's, else 01's."""
        named = STAGE_IN_COMMENT.search(self.comment)
        folder = self.path.relative_to(ROOT).parts[0]
        for stage in all_stages():
            if named and stage.name.startswith(named.group(1) + "-"):
                return stage.name
            if not named and stage.name == folder:
                return stage.name
        return all_stages()[0].name


def documents() -> list[Path]:
    """Return the docs whose commands are checked: READMEs, exercises and docs/."""
    stage_docs = [p for s in all_stages() for p in (s.path / "README.md", s.path / "EXERCISES.md")]
    found = [ROOT / "README.md", *stage_docs, ROOT / "docker" / "README.md",
             ROOT / "slides" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # fmt: skip
    return [path for path in found if path.exists()]


def split_comment(text: str) -> tuple[str, str]:
    """Split a shell command from its trailing `# comment`, minding quotes and escapes."""
    quote = None
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def is_complete(text: str) -> bool:
    """Tell whether a command is whole: no quote left open, no `\\` continuing it."""
    quote = None
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and quote is None:
            break  # a comment: nothing after it counts
    return quote is None and not escaped and not text.rstrip().endswith("\\")


def block_commands(path: Path, first_line: int, lines: list[str], language: str) -> list[Command]:
    """Return the commands of one fenced block."""
    commands: list[Command] = []
    pending: list[str] = []
    start = 0
    for offset, line in enumerate(lines):
        if language == "console" and not pending:
            if not line.startswith("$ "):
                continue  # output shown after a prompt
            line = line[2:]
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = first_line + offset
        pending.append(line)
        text = "\n".join(pending)
        if is_complete(text):
            command, comment = split_comment(text)
            commands.append(Command(path, start, command.strip(), comment))
            pending = []
    assert not pending, f"{path}:{start}: a command never ends (open quote or trailing \\)"
    return commands


def is_instruction(span: str) -> bool:
    """Tell whether an inline code span is a command to type (not a name or a path)."""
    words = span.split()
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return False
    starts = words[0] in COMMAND_WORDS or words[0].startswith(".venv/bin/")
    return starts and len(words) >= 3


def commands_in(path: Path) -> list[Command]:
    """Return every command of one doc, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    commands: list[Command] = []
    prose: list[tuple[int, str]] = []  # (line number, text) outside fenced blocks
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent, fence, language = opened.groups()
        body: list[str] = []
        first_line = i + 2  # the line after the fence, counted from 1
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if language in SHELL_BLOCKS:
            commands += block_commands(path, first_line, body, language)
        i += 1
    text = "\n".join(line for _, line in prose)
    numbers = [number for number, _ in prose]
    for found in CODE_SPAN.finditer(text):
        span = re.sub(r"\s*\n\s*", " ", found.group(1)).strip()
        if is_instruction(span):
            command, comment = split_comment(span)
            line = numbers[text.count("\n", 0, found.start())]
            commands.append(Command(path, line, command, comment))
    return sorted(commands, key=lambda c: c.line)


def all_commands() -> list[Command]:
    """Return every command of every checked doc."""
    return [command for path in documents() for command in commands_in(path)]


# --- running them -------------------------------------------------------------------------


def localize(text: str, stage: str, port: int, scratch: Path, data_dir: Path | None = None) -> str:
    """Point a command at a stage on its own ports (8000 -> port, 8100 -> port + 100, ...)
    and its own data folder (.workshop/data/<stage>, which is the reader's)."""

    url = f"http://127.0.0.1:{port}"

    def moved(match: re.Match) -> str:
        return f"{match.group(1)}{port + 100 * int(match.group(2))}"

    text = re.sub(r"((?:127\.0\.0\.1|localhost):)8([0-9])00\b", moved, text)
    text = re.sub(r"((?:--port|-p) |\bPORT=)8([0-9])00\b", moved, text)
    text = re.sub(rf"(\.workshop/run/{re.escape(stage)}-)8([0-9])00\b", moved, text)
    # Commands that find the stage themselves would find the reader's one stage on 8000
    # (or whichever ran last on this machine): tell them which.
    names_it = re.search(r"--(port|url)\b", text)
    if text.startswith("workshop data import ") and not names_it:
        text = text.replace("workshop data import ", f"workshop data import --url {url} ", 1)
    if not names_it:
        text = re.sub(r"^workshop (importers (add|list)|logs)\b", rf"\g<0> --port {port}", text)
    sync = get_stage(stage).ports(port).get("sync")
    if sync and not names_it:
        text = re.sub(r"^workshop sync (status|replay)\b",
                      rf"\g<0> --url http://127.0.0.1:{sync}", text)  # fmt: skip
    text = text.replace("/tmp/", f"{scratch}/")  # the doc's /tmp, not the paths put in
    if data_dir is not None:
        text = re.sub(rf"(\$PWD/)?\.workshop/data/{re.escape(stage)}\b", str(data_dir), text)
    return text


@dataclass
class Shell:
    """One reader's terminal: variables set by one command are there for the next."""

    scratch: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        venv_bin = str(Path(sys.executable).parent)  # "with the venv active"
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(Path(venv_bin).parent),
            # The one command that goes online fails fast instead (a closed local port).
            "REDDIT_URL": "http://127.0.0.1:9",
            **self.env,
        }
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def _script(self, command: str) -> tuple[Path, Path]:
        self._count += 1
        script = self.scratch / f"command-{self._count}.sh"
        state = self.scratch / f"command-{self._count}.env"
        # set -a: every variable a command sets is exported, so the next command sees it.
        script.write_text(f"set -a\n{command}\n__status=$?\nenv -0 > {state}\nexit $__status\n")
        return script, state

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a command to its end; keep the variables it set.

        Its output goes to files, not pipes: a job it leaves in the background (`... &`)
        keeps running while the next command runs, as in a terminal.
        """
        script, state = self._script(command)
        out, err = script.with_suffix(".out"), script.with_suffix(".err")
        with out.open("w") as stdout, err.open("w") as stderr:
            status = subprocess.run(
                ["bash", str(script)], cwd=ROOT, env=self.env, stdout=stdout, stderr=stderr,
                timeout=timeout,
            ).returncode  # fmt: skip
        finished = subprocess.CompletedProcess(
            command, status, out.read_text(errors="replace"), err.read_text(errors="replace")
        )
        if state.exists():
            pairs = (item.split("=", 1) for item in state.read_text().split("\0") if "=" in item)
            self.env = {k: v for k, v in pairs if k not in {"_", "SHLVL", "PWD", "OLDPWD"}}
        return finished

    def start(self, command: str, log: Path) -> subprocess.Popen:
        """Start a command that keeps running (a server), in its own process group."""
        script, _ = self._script(command)
        with log.open("w") as output:
            return subprocess.Popen(
                ["bash", str(script)], cwd=ROOT, env=self.env, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip


def wait_until(condition, within: float, every: float = 0.2) -> bool:
    """Wait until a condition holds; return whether it did in time (scaled(within) from now,
    as every limit in the suite: tests/timing.py)."""
    deadline = time.monotonic() + scaled(within)
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())
