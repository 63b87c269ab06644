"""`workshop diff FROM TO`: what one step of the workshop changed, renamed files paired.

`diff -ru` shows a step that moves code to a new folder (02's front/ becomes 03's gateway/)
as whole files removed and whole files added, which hides the few lines that changed.
Here files pair first by their path in the stage folder, then a file only in FROM pairs
with a file of the same name only in TO when their lines are alike enough, so the move
reads as a rename with a short diff, and once two files of a folder moved that way, the
rest of the folder pairs with its namesakes too. The summary comes first and splits code
from docs, and the docs' changes show only with --docs, because a step's lesson is in its
code and its README changes would drown it.
"""

import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import click

from tooling import stages
from workshop import config

# Generated or local state, never part of a lesson (the .gitignore of the repository).
IGNORED_DIRS = {
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".workshop",
    "node_modules",
    ".git",
}
IGNORED_DIR_SUFFIXES = (".egg-info",)
IGNORED_FILE_SUFFIXES = (".pyc", ".pyo")
# .env may hold secrets: a diff printed on a projector must not show it.
IGNORED_FILES = {".env", ".DS_Store"}
DOC_SUFFIXES = {".md", ".rst"}
# Lines alike (difflib ratio) for two same-named files to count as one file moved. 02's
# front/client.py and 03's gateway/client.py share about a third of their lines.
SIMILARITY_THRESHOLD = 0.3
# A file about as alike to two others (02's restapi/store.py to each 03 service's store.py)
# was split or copied, not moved: pairing it with either one would be a guess.
AMBIGUITY_MARGIN = 0.05
# Lines alike for a namesake in a folder that moved to pair with it (front/api.py and
# gateway/api.py share 15 %): less than a tenth in common is another file of that name.
FOLDER_MOVE_THRESHOLD = 0.1
CONTEXT_LINES = 3
# git's letters in the file list: Modified, Renamed, Added, Deleted.
STATUS_LETTERS = {"changed": "M", "renamed": "R", "ported": "P", "added": "A", "removed": "D"}
# The shared package, beside the stage folders: a file new in TO may port one of its modules.
SHARED_PACKAGE = "workshop"


@dataclass(frozen=True)
class FileDiff:
    """One file of the step: a pair (same path or renamed) or a file only in one stage."""

    old_path: str | None
    new_path: str | None
    added: int
    removed: int
    hunks: tuple[str, ...]
    similarity: float | None = None
    binary: bool = False
    # The file is a port of a module of the shared package FROM uses (04's chassis/queries.py
    # of workshop/queries.py): old_path is that module's path in the repository.
    ported: bool = False

    @property
    def path(self) -> str:
        """Return the file's path in TO, or in FROM if it is gone."""
        return self.new_path or self.old_path or ""

    @property
    def paired(self) -> bool:
        """Tell whether the file is in both stages (at the same path or renamed)."""
        return self.old_path is not None and self.new_path is not None

    @property
    def renamed(self) -> bool:
        """Tell whether the file was paired across a change of path."""
        return self.paired and self.old_path != self.new_path

    @property
    def is_doc(self) -> bool:
        """Tell whether the file is documentation rather than code."""
        return PurePosixPath(self.path).suffix.lower() in DOC_SUFFIXES

    @property
    def status(self) -> str:
        """Return one of ported, renamed, changed, unchanged, added, removed."""
        if self.ported:
            return "ported"
        if self.renamed:
            return "renamed"
        if self.paired:
            return "changed" if self.hunks else "unchanged"
        return "added" if self.new_path else "removed"


@dataclass(frozen=True)
class StageDiff:
    """Every file of a step from stage folder `old` to `new`: code first, docs last."""

    old: Path
    new: Path
    files: tuple[FileDiff, ...]

    def with_status(self, status: str) -> list[FileDiff]:
        """Return the files of one status (see FileDiff.status)."""
        return [f for f in self.files if f.status == status]

    def line_counts(self, docs: bool, paired_only: bool = False) -> tuple[int, int]:
        """Return (added, removed) lines of the code files, or of the docs."""
        chosen = [f for f in self.files if f.is_doc == docs and (f.paired or not paired_only)]
        return sum(f.added for f in chosen), sum(f.removed for f in chosen)

    def code_only(self) -> "StageDiff":
        """Return the same step without its docs."""
        return replace(self, files=tuple(f for f in self.files if not f.is_doc))


@dataclass(frozen=True)
class _Content:
    lines: tuple[str, ...]
    binary: bool
    raw: bytes


# What `--async-only` reads as the same line in 03 and 04: the async keywords, and the
# async libraries as their blocking twins (Quart is Flask's, aiohttp's session is requests',
# PyMongo's async client its blocking one, purgatory's async breakers its sync ones,
# asyncio's sleep, Event and Lock time's and threading's, a call in asyncio.to_thread the
# call itself). What is left is the rest of the step.
ASYNC_TWINS = (
    (re.compile(r"\basync (def|with|for)\b"), r"\1"),
    (re.compile(r"\basyncio\.sleep\b"), "time.sleep"),
    # asyncio.to_thread(f, x) is how the loop makes the blocking call f(x).
    (re.compile(r"\basyncio\.to_thread\(([\w.]+)\)"), r"\1()"),
    (re.compile(r"\basyncio\.to_thread\(([\w.]+), "), r"\1("),
    (re.compile(r"\basyncio\.(Event|Lock)\b"), r"threading.\1"),
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\basync_(?=\w)"), ""),  # db.async_database, async_ping
    (re.compile(r"\bQuart\b"), "Flask"),
    (re.compile(r"(?<![A-Za-z0-9])quart\b"), "flask"),  # quart, and create_quart, init_quart
    (re.compile(r"(?<![A-Za-z0-9])aiohttp\b"), "requests"),  # and instrument_aiohttp
    # ... and aiohttp's names for what requests calls otherwise.
    (re.compile(r"\bClientResponse\b"), "Response"),
    (re.compile(r"\bClientConnectionError\b"), "ConnectionError"),
    (re.compile(r"\bClientError\b"), "RequestException"),
    (re.compile(r"\.status\b(?!_)"), ".status_code"),  # answer.status (both stages alike)
    (re.compile(r"\bredis\.asyncio\b"), "redis"),  # redis-py's asyncio twin
    (re.compile(r"\bAsyncCircuitBreakerFactory\b"), "SyncCircuitBreakerFactory"),  # purgatory
    (re.compile(r"\bClientSession\b"), "Session"),
    (re.compile(r"\bAsyncMongoClient\b"), "MongoClient"),
    (re.compile(r"\bAsyncDatabase\b"), "Database"),
    (re.compile(r"\bAsyncCollection\b"), "Collection"),
    (re.compile(r"\bAsyncIterator\b"), "Iterator"),
    (re.compile(r"\bAwaitable\[([^\]]*)\]"), r"\1"),
)


def async_twin(line: str) -> str:
    """Return a line with its async words read as their blocking twins (ASYNC_TWINS)."""
    line = _without_await_parentheses(line)
    for pattern, replacement in ASYNC_TWINS:
        line = pattern.sub(replacement, line)
    return line


def _primary(expression: str) -> bool:
    # A name, call, subscript or attribute: no space outside brackets (`a if b else c` is
    # not one, and its parentheses stay).
    depth = 0
    for char in expression:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if depth == 0 and char == " ":
            return False
    return True


def _without_await_parentheses(line: str) -> str:
    # `(await answer_of(r))["items"]` is `answer_of(r)["items"]`: the parentheses are there
    # only because `await` binds looser than a subscript or an attribute.
    start = line.find("(await ")
    while start != -1:
        depth, end = 0, None
        for index in range(start, len(line)):
            depth += {"(": 1, ")": -1}.get(line[index], 0)
            if depth == 0:
                end = index
                break
        called = start > 0 and (line[start - 1].isalnum() or line[start - 1] in "_)]")
        inner = line[start + len("(await ") : end] if end is not None else ""
        # A quote inside may hide a bracket from the count: such a line is left as it is.
        if end is None or called or not _primary(inner) or "'" in inner or '"' in inner:
            start = line.find("(await ", start + 1)
            continue
        line = line[:start] + line[start + 1 : end] + line[end + 1 :]
        start = line.find("(await ", start)
    return line


def stage_diff(old: Path, new: Path, normalise: Callable[[str], str] | None = None) -> StageDiff:
    """Compare two stage folders, pairing same-path files and then renamed ones; with
    `normalise`, every line of both is compared as `normalise` rewrites it."""
    old_files, new_files = _read_tree(old), _read_tree(new)
    if normalise is not None:
        old_files, new_files = _normalised(old_files, normalise), _normalised(new_files, normalise)
    old_label, new_label = old.name, new.name
    files = [
        _compare(path, path, old_files[path], new_files[path], old_label, new_label)
        for path in old_files.keys() & new_files.keys()
    ]
    gone = {p: c for p, c in old_files.items() if p not in new_files}
    arrived = {p: c for p, c in new_files.items() if p not in old_files}
    pairs = _pair_renames(gone, arrived)
    pairs += _pair_moved_folders(gone, arrived, pairs, new_files)
    for old_path, new_path, ratio in pairs:
        pair = _compare(
            old_path, new_path, gone.pop(old_path), arrived.pop(new_path), old_label, new_label
        )
        files.append(replace(pair, similarity=ratio))
    for shared_path, new_path, ratio, content in _ports(old, new, old_files, arrived, normalise):
        inside = shared_path.removeprefix(f"{SHARED_PACKAGE}/")  # labelled workshop/...
        pair = _compare(inside, new_path, content, arrived.pop(new_path), SHARED_PACKAGE, new_label)
        files.append(replace(pair, old_path=shared_path, similarity=ratio, ported=True))
    for path, content in gone.items():
        files.append(FileDiff(path, None, 0, len(content.lines), (), binary=content.binary))
    for path, content in arrived.items():
        hunks = _unified((), content.lines, "/dev/null", f"{new_label}/{path}")
        files.append(FileDiff(None, path, len(content.lines), 0, hunks, binary=content.binary))
    files.sort(key=lambda f: (f.is_doc, f.path, f.old_path or ""))
    return StageDiff(old, new, tuple(files))


def _normalised(files: dict[str, _Content], normalise: Callable[[str], str]) -> dict[str, _Content]:
    return {
        path: content if content.binary or PurePosixPath(path).suffix in DOC_SUFFIXES
        else replace(content, lines=tuple(normalise(line) for line in content.lines))
        for path, content in files.items()
    }  # fmt: skip


def _ignored(name: str, is_dir: bool) -> bool:
    if is_dir:
        return name in IGNORED_DIRS or name.endswith(IGNORED_DIR_SUFFIXES)
    return name in IGNORED_FILES or name.endswith(IGNORED_FILE_SUFFIXES)


def _read_tree(root: Path) -> dict[str, _Content]:
    files: dict[str, _Content] = {}
    for folder, dirs, names in os.walk(root):
        # Pruning here keeps os.walk out of node_modules and caches altogether.
        dirs[:] = [d for d in dirs if not _ignored(d, is_dir=True)]
        for name in names:
            path = Path(folder, name)
            if _ignored(name, is_dir=False) or not path.is_file():
                continue
            files[path.relative_to(root).as_posix()] = _read(path)
    return files


def _read(path: Path) -> _Content:
    raw = path.read_bytes()
    if b"\0" in raw:
        return _Content((), True, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Content((), True, raw)
    # str.splitlines would also split at form feeds and U+2028; a diff counts newlines only.
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return _Content(tuple(lines), False, raw)


def _similarity(a: _Content, b: _Content) -> float:
    if a.binary or b.binary:
        return 1.0 if a.raw == b.raw else 0.0
    # Whole lines, not characters: a moved file keeps its lines, and character matching
    # finds likeness between any two Python files.
    matcher = difflib.SequenceMatcher(None, a.lines, b.lines, autojunk=False)
    if matcher.real_quick_ratio() < SIMILARITY_THRESHOLD:
        return 0.0
    if matcher.quick_ratio() < SIMILARITY_THRESHOLD:
        return 0.0
    return matcher.ratio()


def _pair_renames(
    gone: dict[str, _Content], arrived: dict[str, _Content]
) -> list[tuple[str, str, float]]:
    candidates = []
    for old_path in gone:
        for new_path in arrived:
            if PurePosixPath(old_path).name != PurePosixPath(new_path).name:
                continue
            ratio = _similarity(gone[old_path], arrived[new_path])
            if ratio >= SIMILARITY_THRESHOLD:
                candidates.append((ratio, old_path, new_path))
    # Most alike first, so each file gets its best match; paths break ties for a stable output.
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    pairs: list[tuple[str, str, float]] = []
    used_old: set[str] = set()
    used_new: set[str] = set()
    for ratio, old_path, new_path in candidates:
        if old_path in used_old or new_path in used_new:
            continue
        # Candidates still free are no more alike than this one (the list is sorted).
        old_rivals = [
            r for r, o, n in candidates if o == old_path and n != new_path and n not in used_new
        ]
        new_rivals = [
            r for r, o, n in candidates if n == new_path and o != old_path and o not in used_old
        ]
        split = bool(old_rivals) and ratio - max(old_rivals) < AMBIGUITY_MARGIN
        merged = bool(new_rivals) and ratio - max(new_rivals) < AMBIGUITY_MARGIN
        if split or merged:
            # Leave the ambiguous side unpaired; the other side may still find its match.
            if split:
                used_old.add(old_path)
            if merged:
                used_new.add(new_path)
            continue
        pairs.append((old_path, new_path, ratio))
        used_old.add(old_path)
        used_new.add(new_path)
    return pairs


def _ports(
    old: Path,
    new: Path,
    old_files: dict[str, _Content],
    arrived: dict[str, _Content],
    normalise: Callable[[str], str] | None,
) -> list[tuple[str, str, float, _Content]]:
    """Pair a file new in TO with the module of the shared package it ports, when FROM
    imports that module and the two are alike (04's chassis/queries.py, the async port of
    workshop/queries.py that 03 uses; chassis/health.py, workshop/web/health.py's): the
    diff shows the port, not a new file."""
    shared = config.ROOT / SHARED_PACKAGE
    if not (old.parent == new.parent == config.ROOT):
        return []  # not two stages of this repository
    imported = "".join(line for c in old_files.values() for line in c.lines if "import" in line)
    found = []
    for new_path in sorted(arrived):
        stem = PurePosixPath(new_path).stem
        if not new_path.endswith(".py") or stem == "__init__":
            continue
        name = re.escape(stem)
        # workshop.web, workshop.web.health, `from workshop.web import health`, ...
        uses = re.search(
            rf"\b{SHARED_PACKAGE}(\.\w+)*(\.{name}\b| import [\w, ]*\b{name}\b)", imported
        )
        nested = sorted(shared.glob(f"*/{stem}.py"))  # workshop/web/health.py
        for candidate in (shared / f"{stem}.py", shared / stem / "__init__.py", *nested):
            if not (uses and candidate.is_file()):
                continue
            content = _read(candidate)
            if normalise is not None and not content.binary:
                content = replace(content, lines=tuple(normalise(line) for line in content.lines))
            ratio = _similarity(content, arrived[new_path])
            if ratio >= SIMILARITY_THRESHOLD:
                shared_path = candidate.relative_to(old.parent).as_posix()
                found.append((shared_path, new_path, ratio, content))
                break
    return found


def _pair_moved_folders(
    gone: dict[str, _Content],
    arrived: dict[str, _Content],
    pairs: list[tuple[str, str, float]],
    new_files: dict[str, _Content],
) -> list[tuple[str, str, float]]:
    """Pair the rest of a folder that moved: once two of its files paired into one new
    folder (02's front/auth.py and front/pages.py into 03's gateway/) and it is gone from
    the new stage, its other files pair with their namesakes there if they still share a
    tenth of their lines (front/client.py with gateway/client.py, a quarter alike, too
    little to pair on its own)."""
    votes: dict[str, dict[str, int]] = {}
    for old_path, new_path, _ in pairs:
        old_dir, new_dir = PurePosixPath(old_path).parent, PurePosixPath(new_path).parent
        if old_dir != new_dir:
            targets = votes.setdefault(str(old_dir), {})
            targets[str(new_dir)] = targets.get(str(new_dir), 0) + 1
    paired_old = {o for o, _, _ in pairs}
    paired_new = {n for _, n, _ in pairs}
    found = []
    for old_dir, targets in sorted(votes.items()):
        new_dir, count = max(targets.items(), key=lambda item: (item[1], item[0]))
        still_there = any(PurePosixPath(p).parent == PurePosixPath(old_dir) for p in new_files)
        if count < 2 or list(targets.values()).count(count) > 1 or still_there:
            continue  # one file is no folder move; a tie or a folder kept is a guess
        for old_path in sorted(gone):
            if old_path in paired_old or str(PurePosixPath(old_path).parent) != old_dir:
                continue
            new_path = str(PurePosixPath(new_dir) / PurePosixPath(old_path).name)
            if new_path in arrived and new_path not in paired_new:
                a, b = gone[old_path], arrived[new_path]
                if a.binary or b.binary:
                    ratio = 1.0 if a.raw == b.raw else 0.0
                else:
                    ratio = difflib.SequenceMatcher(None, a.lines, b.lines, autojunk=False).ratio()
                if ratio >= FOLDER_MOVE_THRESHOLD:
                    found.append((old_path, new_path, ratio))
                    paired_new.add(new_path)
    return found


def _compare(
    old_path: str, new_path: str, a: _Content, b: _Content, old_label: str, new_label: str
) -> FileDiff:
    from_label, to_label = f"{old_label}/{old_path}", f"{new_label}/{new_path}"
    if a.binary or b.binary:
        same = a.raw == b.raw
        hunks = () if same else (f"Binary files {from_label} and {to_label} differ\n",)
        return FileDiff(old_path, new_path, 0, 0, hunks, binary=True)
    hunks = _unified(a.lines, b.lines, from_label, to_label)
    added = sum(1 for line in hunks[2:] if line.startswith("+"))
    removed = sum(1 for line in hunks[2:] if line.startswith("-"))
    return FileDiff(old_path, new_path, added, removed, hunks)


def _unified(
    a: tuple[str, ...], b: tuple[str, ...], from_label: str, to_label: str
) -> tuple[str, ...]:
    # difflib.unified_diff's own format, without its autojunk: that treats lines frequent in
    # files over 200 lines (blank ones) as junk, which makes hunks of moved code harder to
    # read; stage files are small enough to go without.
    if a == b:
        return ()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    out = [f"--- {from_label}\n", f"+++ {to_label}\n"]
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(_ended(" " + line) for line in a[i1:i2])
                continue
            out.extend(_ended("-" + line) for line in a[i1:i2])
            out.extend(_ended("+" + line) for line in b[j1:j2])
    return tuple(out)


def _range(start: int, stop: int) -> str:
    # The unified format's rule: "3" for one line, "3,0" for none after line 3.
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if length == 0 else start + 1},{length}"


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def summary(step: StageDiff, docs: bool = True) -> list[str]:
    """Return the summary lines: files by status, then lines added and removed."""
    counts = {s: len(step.with_status(s)) for s in STATUS_LETTERS}
    ported = f"{counts['ported']} ported from the shared package, " if counts["ported"] else ""
    files = (
        f"{step.old.name} -> {step.new.name}: {counts['changed']} changed, "
        f"{counts['renamed']} renamed and paired, {ported}{counts['added']} added, "
        f"{counts['removed']} removed, {len(step.with_status('unchanged'))} unchanged files"
    )
    code_added, code_removed = step.line_counts(docs=False)
    paired_added, paired_removed = step.line_counts(docs=False, paired_only=True)
    lines = (
        f"lines: code +{code_added} -{code_removed} "
        f"(in paired files +{paired_added} -{paired_removed})"
    )
    if docs:
        docs_added, docs_removed = step.line_counts(docs=True)
        lines += f", docs +{docs_added} -{docs_removed}"
    return [files, lines]


def residue_line(plain: StageDiff, twins: StageDiff) -> str:
    """Say how much of the change in paired code files is left once async is read as its
    blocking twin (`--async-only`): the rest of the step, which is not the async lesson."""
    before = sum(plain.line_counts(docs=False, paired_only=True))
    left = sum(twins.line_counts(docs=False, paired_only=True))
    gone = 1 - left / before if before else 0.0
    return (
        f"async-only: {left} of {before} changed lines in paired code files are left once "
        f"async/await, Quart and aiohttp read as their blocking twins ({gone:.0%} vanish)"
    )


def render(
    step: StageDiff, stat: bool = False, full: bool = False, docs: bool = False
) -> Iterator[str]:
    """Yield the report, line by line: summary, file list, then each code file's hunks (and
    the docs' after them with `docs`: a step's lesson is in its code, and its README's
    account of it would otherwise be most of the diff)."""
    has_docs = any(f.is_doc for f in step.files)
    for line in summary(step, docs=has_docs):
        yield line + "\n"
    listed = [f for f in step.files if f.status != "unchanged"]
    if listed:
        yield "\n"
    width = max((len(_name(f)) for f in listed), default=0)
    for f in listed:
        yield f"  {STATUS_LETTERS[f.status]} {_name(f):<{width}}  +{f.added} -{f.removed}\n"
    if stat:
        return
    after_only = False
    hidden = [f for f in listed if f.is_doc and not docs]
    for f in listed:
        if f in hidden:
            continue
        if f.paired or (f.new_path and full and f.hunks):
            yield "\n"
            if f.ported:
                yield f"ported: {f.old_path} -> {f.new_path} ({f.similarity:.0%} alike)\n"
            elif f.renamed:
                yield f"renamed: {f.old_path} -> {f.new_path} ({f.similarity:.0%} alike)\n"
            yield from f.hunks
            after_only = False
            continue
        # A run of unpaired files reads as one list, as in diff -r.
        if not after_only:
            yield "\n"
        where = step.new.name if f.new_path else step.old.name
        count = f.added or f.removed
        size = "binary" if f.binary else f"{count} line{'' if count == 1 else 's'}"
        yield f"Only in {where}: {f.path} ({size})\n"
        after_only = True
    if hidden:
        names = ", ".join(_name(f) for f in hidden)
        yield f"\nDocs changed too ({names}): --docs shows them, after the code.\n"


def _name(f: FileDiff) -> str:
    return f"{f.old_path} -> {f.new_path}" if f.renamed else f.path


def _resolve(name: str) -> stages.Stage | Path:
    try:
        return stages.get_stage(name)
    except (KeyError, stages.NoStages):
        pass
    # Any folder works too: a stage in the making, or a copy of one.
    if Path(name).is_dir():
        return Path(name).resolve()
    known = ", ".join(s.name for s in stages.required_stages())
    raise click.UsageError(f"no stage {name!r} (stages: {known}) and no such folder")


def _next_stage(stage: stages.Stage) -> stages.Stage:
    names = [s.name for s in stages.all_stages()]
    index = names.index(stage.name)
    if index + 1 == len(names):
        raise click.UsageError(f"{stage.name} is the last stage: give TO")
    return stages.all_stages()[index + 1]


@click.command("diff")
@click.argument("from_name", metavar="FROM")
@click.argument("to_name", metavar="[TO]", required=False)
@click.option("--stat", is_flag=True, help="Only the summary and the list of files.")
@click.option("--code-only", is_flag=True, help="Leave out the docs (.md files) altogether.")
@click.option("--docs", is_flag=True, help="Show the docs' changes too, after the code's.")
@click.option("--full", is_flag=True, help="Show new files whole instead of only naming them.")
@click.option(
    "--async-only",
    is_flag=True,
    help="Read async/await, Quart and aiohttp as their blocking twins: what is left (03 -> 04).",
)
def diff(
    from_name: str,
    to_name: str | None,
    stat: bool,
    code_only: bool,
    docs: bool,
    full: bool,
    async_only: bool,
) -> None:
    """Show what changes from stage FROM to TO (default: the next stage), renames paired.

    FROM and TO are stage names or numbers (02-rest-api, 02, 2) or folders.
    """
    source = _resolve(from_name)
    if to_name is not None:
        target = _resolve(to_name)
    elif isinstance(source, stages.Stage):
        target = _next_stage(source)
    else:
        raise click.UsageError("give TO when FROM is a folder")
    old = source.path if isinstance(source, stages.Stage) else source
    new = target.path if isinstance(target, stages.Stage) else target
    step = stage_diff(old, new, normalise=async_twin if async_only else None)
    if code_only:
        step = step.code_only()
    try:
        if async_only:
            click.echo(residue_line(stage_diff(old, new), step))
        for line in render(step, stat=stat, full=full, docs=docs):
            click.echo(line, nl=False)
    except BrokenPipeError:
        # `workshop diff 2 3 | head` closed the pipe: stop quietly, as diff does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
