"""Use the pages as a browser does: forms with the session's CSRF token, cookies kept."""

import re

import requests

from tests.acceptance.stage import Client

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: Client, path: str) -> str:
    """Return the CSRF token in a page's form (the session cookie stays in the client)."""
    page = client.get(path)
    found = _CSRF.search(page.text)
    assert found, f"no form with a CSRF token on {path} ({page.status_code})"
    return found.group(1)


def submit(client: Client, form_page: str, action: str, **fields: str) -> requests.Response:
    """Fill in the form on form_page and post it to action; return the page it lands on."""
    data = {**fields, "csrf_token": csrf_token(client, form_page)}
    return client.post(action, data=data)


def log_in(client: Client, username: str, password: str) -> requests.Response:
    """Log in through the login form; return the page it lands on."""
    landed = submit(client, "/login", "/login", username=username, password=password)
    assert f"Signed in as <b>{username}</b>" in landed.text, landed.text[:500]
    return landed
