"""Configuration from the environment, with defaults that run on a laptop.

Every process reads the same variables; `workshop up` sets the ones that tie a stage's
processes together (ports, addresses, the development secret).
"""

import os
import secrets
from pathlib import Path

# Where the package sits: in a checkout (an editable install, the tests), the repository.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
# Names the workshop's repository when the package was installed outside it (`pip install .`).
HOME_ENV = "WORKSHOP_HOME"
# A stage is a folder NN-name with a Procfile (tooling/stages.py).
STAGE_PROCFILES = "[0-9][0-9]-*/Procfile"


def holds_stages(folder: Path) -> bool:
    """Tell whether a folder holds the workshop's stage folders (NN-name/Procfile)."""
    return any(folder.glob(STAGE_PROCFILES))


def find_root(here: Path | None = None) -> Path | None:
    """Return the workshop's repository: WORKSHOP_HOME if set, else the checkout the package
    is used from, else the current folder or the nearest parent holding stage folders.

    The stages are folders of the repository, not part of the package: after a plain `pip
    install .` the package's parent is site-packages' parent, so the command looks where
    it runs. None: no repository found (WORKSHOP_HOME, if set, is returned as it is).
    """
    home = os.environ.get(HOME_ENV, "")
    if home:
        return Path(home).expanduser().resolve()
    if holds_stages(PACKAGE_PARENT):
        return PACKAGE_PARENT
    here = (here or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if holds_stages(folder)), None)


# Without a repository the command still runs what needs none (data sample, doctor) here.
ROOT = find_root() or Path.cwd().resolve()
# Where local, untracked state lives (the generated development secret).
STATE_DIR = Path(os.environ.get("WORKSHOP_STATE_DIR", ROOT / ".workshop"))

DEFAULT_PORT = 8000
# A signing secret shorter than this is refused (token_urlsafe(32) gives 43 characters).
MIN_SECRET_LENGTH = 32
# Placeholders people paste into settings: refused in production, whatever their length.
WEAK_SECRET_WORDS = ("changeme", "change-me", "change_me", "secret", "password", "example",
                     "replace", "default", "insecure", "0123456789", "abcdef")  # fmt: skip
GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
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


class InsecureSecret(RuntimeError):
    """The signing secret is missing, too short, or (in production) a known weak value."""


def check_secret(secret: str | None, production: bool = False) -> str:
    """Return a signing secret that is sound, or raise InsecureSecret saying why.

    An empty key signs tokens anyone can forge; a short one can be guessed. In production,
    placeholders ("changeme...", one character repeated) are refused too.
    """
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        raise InsecureSecret(
            f"SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters; make one with "
            f"{GENERATE_HINT}"
        )
    if production and (
        len(set(secret)) < 8 or any(word in secret.lower() for word in WEAK_SECRET_WORDS)
    ):
        raise InsecureSecret(f"SECRET_KEY is a known weak value; make one with {GENERATE_HINT}")
    return secret


def secret_key() -> str:
    """Return the signing secret: SECRET_KEY, or a generated one kept for local development.

    The generated secret is written under .workshop/ (git-ignored), so sessions and tokens
    survive a restart and every process of a stage signs with the same key; a file left
    empty or short (an interrupted first run, an edit) is generated again. A SECRET_KEY
    that is short, or weak in production, is refused (InsecureSecret).
    """
    configured = env("SECRET_KEY")
    if configured:
        return check_secret(configured, is_production())
    if is_production():
        raise InsecureSecret("SECRET_KEY must be set when WORKSHOP_ENV=production")
    path = STATE_DIR / "secret_key"
    try:
        return check_secret(path.read_text().strip())
    except (OSError, InsecureSecret):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return check_secret(path.read_text().strip())


DATA_DIR_ENV = "WORKSHOP_DATA_DIR"


def data_dir() -> Path:
    """Return the folder a stage keeps what it stores in, from one run to the next.

    `workshop up` gives each stage one (.workshop/data/<stage>, WORKSHOP_DATA_DIR): the
    embedded databases, the filesystem broker's queued messages, Celery's queue and
    results, the importers named at run time. A process started alone, without it, keeps
    its messages under .workshop/run and its databases in memory.
    """
    return Path(env(DATA_DIR_ENV) or STATE_DIR / "run")


SAMPLE_POSTS_ENV = "WORKSHOP_SAMPLE_POSTS"
DEFAULT_SAMPLE_POSTS = 3000


def sample_posts() -> int:
    """Return how many generated posts the sample holds (WORKSHOP_SAMPLE_POSTS, else 3,000)."""
    value = env(SAMPLE_POSTS_ENV, str(DEFAULT_SAMPLE_POSTS)) or ""
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"{SAMPLE_POSTS_ENV} must be a whole number of posts, not {value!r}")
    return int(value)


def mongo_url() -> str | None:
    """Return MONGO_URL: a real MongoDB server when set, the embedded emulation when not."""
    return env("MONGO_URL")
