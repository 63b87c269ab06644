"""Shared test set-up: the repository root on sys.path for the stage packages."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Stage folders start with a digit, so their packages are imported from inside them.
for stage_dir in ("01-monolith",):
    sys.path.insert(0, str(ROOT / stage_dir))
