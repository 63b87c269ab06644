"""`workshop solve STAGE N`: apply the reference solution of a stage's exercise N.

Each exercise that asks you to write code has a solution in solutions/<stage>/, a patch
named after it (`2-add-a-subscriber.patch`), whose first lines say what it does. `workshop
solve` applies it with `git apply` (which checks first that the files are as the patch
expects: with your own edits in the way it changes nothing and says which file), and
`--undo` takes it back out. Fell behind, or broke something? `git diff` shows what you
changed, `git stash` puts it aside, and `workshop solve` catches you up.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tooling.stages import Stage
from workshop import config

SOLUTIONS = "solutions"


class SolveError(Exception):
    """A solution that does not exist, or does not apply to the files as they are."""


@dataclass(frozen=True)
class Solution:
    """One exercise's reference solution: a patch against the repository."""

    stage: str
    number: int
    patch: Path

    @property
    def summary(self) -> str:
        """The patch's first line: what the solution does."""
        return self.patch.read_text(encoding="utf-8").splitlines()[0].strip()

    def files(self) -> list[str]:
        """Return the files the patch changes, as paths from the repository."""
        text = self.patch.read_text(encoding="utf-8")
        return [line.split(" b/", 1)[1] for line in text.splitlines()
                if line.startswith("diff --git ")]  # fmt: skip


def solutions(stage: Stage) -> list[Solution]:
    """Return a stage's reference solutions, by exercise number."""
    folder = config.ROOT / SOLUTIONS / stage.name
    found = []
    for patch in sorted(folder.glob("*.patch")):
        number = patch.name.split("-", 1)[0]
        if number.isdigit():
            found.append(Solution(stage.name, int(number), patch))
    return sorted(found, key=lambda s: s.number)


def solution(stage: Stage, number: int) -> Solution:
    """Return the solution of one exercise, or raise SolveError naming the ones there are."""
    known = solutions(stage)
    for candidate in known:
        if candidate.number == number:
            return candidate
    numbers = ", ".join(str(s.number) for s in known) or "none"
    raise SolveError(f"{stage.name} has no solution for exercise {number} (solutions: {numbers})")


def apply(chosen: Solution, undo: bool = False) -> list[str]:
    """Apply a solution to the repository (or take it back out); return the files changed."""
    reverse = ["--reverse"] if undo else []
    for check in (["--check"], []):  # all or nothing: check every file first
        done = subprocess.run(
            ["git", "apply", *check, *reverse, str(chosen.patch)],
            cwd=config.ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            state = "the solution is not in" if undo else "the files are not as the exercise starts"
            raise SolveError(
                f"{state}, so nothing changed:\n{done.stderr.strip()}\n"
                "`git diff` shows your edits; `git stash` puts them aside."
            )
    return chosen.files()
