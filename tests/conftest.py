"""Shared test set-up: the repository root on sys.path for the stage packages."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Stage folders start with a digit, so their packages are imported from inside them.
# Every stage names its front door `front`: sys.path finds 01's; tests/unit/test_openapi.py
# shows how to import another stage's afresh.
for stage_dir in ("03-services", "02-rest-api", "01-monolith"):
    sys.path.insert(0, str(ROOT / stage_dir))
