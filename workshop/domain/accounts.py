"""Users: who may register, with which password, and how passwords are kept."""

import functools
import os
import re
import threading
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,32}")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
MAX_PREFERRED_TOPICS = 16
# A few passwords every list of leaked passwords starts with.
COMMON_PASSWORDS = frozenset(
    {"password", "password1", "12345678", "123456789", "qwertyui", "iloveyou", "letmein1"}
)


def username_problem(username: Any) -> str | None:
    """Say what is wrong with a username, or None if it is acceptable."""
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        return "username must be 3-32 letters, digits, '_' or '-'"
    return None


def password_problem(password: Any, username: str = "") -> str | None:
    """Say why a password is too weak or invalid, or None if it is acceptable."""
    if not isinstance(password, str):
        return "password must be a string"
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters"
    if password.lower() in COMMON_PASSWORDS or password.lower() == username.lower():
        return "password is too easy to guess"
    return None


# Hashing is slow on purpose (~0.1 s of CPU and 16 MB of memory each, scrypt): a crowd
# registering at once would start fifty at a time, each slower for the others and all of
# them in memory together. So at most one per core hashes; the rest wait their turn (the
# gateway waits 30 s for a password call).
_HASHING = threading.BoundedSemaphore(os.cpu_count() or 2)


def hash_password(password: str) -> str:
    """Return a salted hash of a password; the password itself is never stored."""
    with _HASHING:
        return generate_password_hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether a password matches its stored hash."""
    with _HASHING:
        return check_password_hash(password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("no user has this password: it only takes time to check")


def check_login(password_hash: str | None, password: str) -> bool:
    """Tell whether a login is right; `password_hash` is None when no such user exists.

    An unknown username is checked against a dummy hash: both paths take as long, so the
    time of an answer does not tell which usernames exist (it did: ~1 ms against ~70 ms).
    """
    if password_hash is None:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(password_hash, password)
