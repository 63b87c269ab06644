"""Fill a folder with every locked package, for the laptops of a classroom, once.

On the morning of a workshop thirty laptops install the project at once, often on a poor
network. An instructor runs this the day before (`make wheelhouse`), copies the folder to a
USB stick or serves it on the room's network, and attendees install from it with no package
index: `make run WHEELHOUSE=/media/usb/wheelhouse`.

It downloads, with pip and checked against the lock's hashes, the wheel of every package in
the locks (requirements/*.txt) for each platform and Python a laptop may have (Linux and
macOS, x86-64 and arm64, CPython 3.11 to 3.14), or its source archive where it publishes no
wheel for one (built at install with the locked build tools of requirements/build.txt).
Then it checks that every platform and Python has a file for every package, and says which
do not.

Standard library only: it runs with any Python 3.11, before the project is installed.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("build", "runtime", "bench", "dev")
# The platforms of the room's laptops: (system, machine as wheels name it).
PLATFORMS = {
    "linux-x86_64": ("linux", "x86_64"),
    "linux-arm64": ("linux", "aarch64"),
    "macos-x86_64": ("macos", "x86_64"),
    "macos-arm64": ("macos", "arm64"),
}
OLDEST_MACOS = (12, 0)  # what Apple still supported when the lock was made
NEWEST_GLIBC_MINOR = 28  # manylinux_2_28: Debian 10, Ubuntu 18.10 and later
PYTHONS = ("3.11", "3.12", "3.13", "3.14")


def published_files() -> dict[tuple[str, str], tuple[list[str], bool]]:
    """Return each locked (project, version)'s wheel file names and whether it has a source
    archive (a lock may hold two versions of a project, for older and newer Pythons)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {
        (normalise(p["name"]), p["version"]): (
            [w["url"].rsplit("/", 1)[-1] for w in p.get("wheels", [])],
            "sdist" in p,
        )
        for p in lock["package"]
    }


def current_platform() -> str:
    """Return this machine's entry of PLATFORMS."""
    import platform

    system = {"Linux": "linux", "Darwin": "macos"}.get(platform.system(), "")
    machine = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
    return f"{system}-{machine.get(platform.machine(), platform.machine())}"


def platform_tags(platform: str) -> list[str]:
    """Return the platform tags of the wheels a platform's pip installs, best first."""
    from pip._vendor.packaging.tags import mac_platforms

    system, machine = PLATFORMS[platform]
    if system == "macos":
        return list(mac_platforms(OLDEST_MACOS, machine))
    manylinux = [f"manylinux_2_{minor}_{machine}" for minor in range(NEWEST_GLIBC_MINOR, 4, -1)]
    return [*manylinux, f"manylinux2014_{machine}", f"manylinux2010_{machine}",
            f"manylinux1_{machine}"]  # fmt: skip


def download(folder: Path, locks: list[str], platform: str, python: str) -> list[str]:
    """Download one platform's and one Python's files of the locks into folder; return the
    projects that have neither a wheel for them nor a source archive.

    A project with no wheel for the platform and Python comes as its source archive (built
    at install with the locked build tools). pip judges a requirement's marker by the Python
    it runs on, not the one named by --python-version, so the markers are judged here and
    pip gets the chosen lines only.
    """
    supported = supported_tags(platform, python)
    published = published_files()
    lines, from_source, gaps = [], [], []
    for name, version, hashes in locked(locks, platform, python):
        wheels, has_source = published.get((normalise(name), version), ([], False))
        if not any(wheel_tags(w)[1] & supported for w in wheels):
            if not has_source:
                gaps.append(name)
                continue
            from_source.append(name)
        lines.append(f"{name}=={version} " + " ".join(f"--hash={h}" for h in hashes))
    tags = [arg for tag in platform_tags(platform) for arg in ("--platform", tag)]
    as_source = f" ({', '.join(from_source)} as source)" if from_source else ""
    print(f"wheelhouse: {platform}, Python {python}{as_source}", flush=True)
    # A fresh folder per platform and Python: pip's handling of files already in its --dest
    # (kept from another platform's pass) is not to be relied on; new files are moved in.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
        chosen = Path(scratch) / "requirements.txt"
        chosen.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files = Path(scratch) / "files"
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes",
                   "--no-deps", "--dest", str(files), *tags, "--python-version", python,
                   "--implementation", "cp", "--only-binary", ":all:",
                   "--no-binary", ",".join(from_source) or ":none:", "-r", str(chosen)]  # fmt: skip
        subprocess.run(command, check=True)
        for path in files.iterdir():
            if not (folder / path.name).exists():
                path.replace(folder / path.name)
    return gaps


def supported_tags(platform: str, python: str) -> set[str]:
    """Return the wheel tags CPython `python` installs on a platform."""
    from pip._vendor.packaging.tags import compatible_tags, cpython_tags

    platforms = platform_tags(platform)
    version = tuple(int(part) for part in python.split("."))
    supported = {str(t) for t in cpython_tags(version, platforms=platforms)}
    interpreter = "cp" + python.replace(".", "")
    return supported | {str(t) for t in compatible_tags(version, interpreter, platforms)}


def wheel_tags(name: str) -> tuple[str, set[str]]:
    """Return a wheel file's project (normalised) and its compatibility tags."""
    project, *_, python_tag, abi_tag, platform_tag = name[: -len(".whl")].split("-")
    tags = {
        f"{py}-{abi}-{plat}"
        for py in python_tag.split(".")
        for abi in abi_tag.split(".")
        for plat in platform_tag.split(".")
    }
    return normalise(project), tags


def normalise(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


def locked(locks: list[str], platform: str, python: str) -> list[tuple[str, str, list[str]]]:
    """Return (project, version, hashes) of every package the locks install on a platform
    and Python, their markers judged for that platform and Python (the oldest patch
    release: some markers name one)."""
    system, machine = PLATFORMS[platform]
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux" if system == "linux" else "darwin",
        "platform_system": "Linux" if system == "linux" else "Darwin",
        "platform_machine": machine,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
    }  # fmt: skip
    found: dict[str, tuple[str, str, list[str]]] = {}
    for lock in locks:
        text = (ROOT / "requirements" / f"{lock}.txt").read_text(encoding="utf-8")
        for entry in re.split(r"\n(?=[A-Za-z0-9])", text.replace("\\\n", " ")):
            pinned = re.match(r"^([A-Za-z0-9][\w.-]*)==(\S+)(?:\s*;\s*([^-\n]*?))?\s+--hash", entry)
            if pinned and applies(pinned.group(3), environment):
                hashes = re.findall(r"--hash=(\S+)", entry)
                found[normalise(pinned.group(1))] = (pinned.group(1), pinned.group(2), hashes)
    return list(found.values())


def applies(marker: str | None, environment: dict[str, str]) -> bool:
    """Judge an environment marker with pip's own evaluator (pip vendors packaging)."""
    if not marker:
        return True
    from pip._vendor.packaging.markers import Marker

    return Marker(marker).evaluate(environment)


def missing(folder: Path, locks: list[str], platform: str, python: str) -> list[str]:
    """Return the locked projects with no file in folder for a platform and Python."""
    supported = supported_tags(platform, python)
    present: set[str] = set()
    for path in folder.iterdir():
        if path.suffix == ".whl":
            project, tags = wheel_tags(path.name)
            if tags & supported:
                present.add(project)
        elif path.name.endswith((".tar.gz", ".zip")):
            present.add(normalise(re.split(r"-\d", path.name, maxsplit=1)[0]))
    wanted = {normalise(name) for name, _, _ in locked(locks, platform, python)}
    return sorted(wanted - present)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT / "wheelhouse")
    parser.add_argument("--lock", action="append", choices=LOCKS,
                        help="which locks (default: all: what make run, make test and make "
                        "bench install)")  # fmt: skip
    parser.add_argument("--platform", action="append", choices=[*PLATFORMS, "current"],
                        help="which platforms (default: all)")  # fmt: skip
    parser.add_argument("--python", action="append", choices=PYTHONS,
                        help="which Pythons (default: all)")  # fmt: skip
    args = parser.parse_args()
    locks = args.lock or list(LOCKS)
    if "build" not in locks:
        locks.insert(0, "build")  # setuptools builds the project and the source archives
    platforms = [current_platform() if p == "current" else p for p in args.platform or PLATFORMS]
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        parser.error(f"no wheels for this platform ({unknown[0]}): pick from {list(PLATFORMS)}")
    pythons = args.python or list(PYTHONS)
    args.folder.mkdir(parents=True, exist_ok=True)
    gaps = []
    for platform in platforms:
        for python in pythons:
            unpublished = download(args.folder, locks, platform, python)
            gaps += [f"{platform}, Python {python}: {name} publishes nothing for it"
                     for name in unpublished]  # fmt: skip
            gaps += [f"{platform}, Python {python}: no file for {project}"
                     for project in missing(args.folder, locks, platform, python)]  # fmt: skip
    files = list(args.folder.iterdir())
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"wheelhouse: {len(files)} files, {size:.0f} MB in {args.folder}")
    if gaps:
        print("wheelhouse: incomplete:\n  " + "\n  ".join(gaps), file=sys.stderr)
        return 1
    print(f"install from it with: make run WHEELHOUSE={args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
