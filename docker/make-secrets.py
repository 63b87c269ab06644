#!/usr/bin/env python3
"""Fill in the secrets of a settings file for the containers, made on this machine.

    python3 docker/make-secrets.py docker/.env            # compose (docker/.env.example's copy)
    python3 docker/make-secrets.py docker/k8s/secret.env  # Kubernetes (kustomization.yaml)

Every secret docker/.env.example names (SECRET_KEY, and each name with PASSWORD in it) gets
a value of its own, secrets.token_urlsafe(32), where the file leaves it empty or does not
have it; a value already set is kept, so running it again changes nothing. A file that does
not exist is made. The file is left readable by its owner only. Nothing else is changed,
and no value is printed. Only the standard library: it runs with any Python 3.9+.
"""

import re
import secrets
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent / ".env.example"
SECRET = re.compile(r"SECRET_KEY|[A-Z0-9_]*PASSWORD[A-Z0-9_]*")
LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def secret_names() -> list[str]:
    """Return the secrets docker/.env.example names, in its order."""
    found = (LINE.match(line) for line in EXAMPLE.read_text().splitlines())
    return [m.group(1) for m in found if m and SECRET.fullmatch(m.group(1))]


def fill(path: Path) -> tuple[list[str], list[str]]:
    """Give every secret a value in the file at path; return the names filled and kept."""
    lines = path.read_text().splitlines() if path.exists() else []
    filled, kept = [], []
    values: dict[str, int] = {}  # name -> its (last) line
    for number, line in enumerate(lines):
        match = LINE.match(line)
        if match:
            values[match.group(1)] = number
    for name in secret_names():
        number = values.get(name)
        if number is not None and LINE.match(lines[number]).group(2).strip():
            kept.append(name)
            continue
        line = f"{name}={secrets.token_urlsafe(32)}"
        if number is None:
            lines.append(line)
        else:
            lines[number] = line
        filled.append(name)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return filled, kept


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python3 docker/make-secrets.py FILE", file=sys.stderr)
        return 2
    path = Path(arguments[0])
    filled, kept = fill(path)
    print(f"{path}: {len(filled)} secrets made, {len(kept)} already set and kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
