"""Configuration from the environment, with defaults that run on a laptop.

Every process reads the same variables; `workshop up` sets the ones that tie a stage's
processes together (ports, addresses, the development secret).
"""

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where local, untracked state lives (the generated development secret).
STATE_DIR = Path(os.environ.get("WORKSHOP_STATE_DIR", ROOT / ".workshop"))

DEFAULT_PORT = 8000
# Bodies of ordinary JSON calls stay small; uploads for ingest get a larger allowance.
MAX_JSON_BYTES = 64 * 1024
MAX_INGEST_BYTES = 32 * 1024 * 1024


def env(name: str, default: str | None = None) -> str | None:
    """Return an environment variable, treating an empty value as unset."""
    value = os.environ.get(name, "")
    return value if value else default


def is_production() -> bool:
    """Tell whether the process runs with production settings (no generated secrets)."""
    return env("WORKSHOP_ENV", "development") == "production"


def secret_key() -> str:
    """Return the signing secret: SECRET_KEY, or a generated one kept for local development.

    The generated secret is written once under .workshop/ (git-ignored), so sessions and
    tokens survive a restart and every process of a stage signs with the same key.
    """
    configured = env("SECRET_KEY")
    if configured:
        return configured
    if is_production():
        raise RuntimeError("SECRET_KEY must be set when WORKSHOP_ENV=production")
    path = STATE_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def mongo_url() -> str | None:
    """Return MONGO_URL: a real MongoDB server when set, the embedded emulation when not."""
    return env("MONGO_URL")
