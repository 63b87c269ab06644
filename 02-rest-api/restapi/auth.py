"""Who is calling the API: a signed token, checked against the users resource."""

from eve.auth import TokenAuth as EveTokenAuth
from flask import request

from restapi import store
from workshop import tokens


def token_user(token: str | None) -> str | None:
    """Return the registered user a token names, or None."""
    username = tokens.verify(token) if token else None
    if username is None or store.get_db().users.find_one({"username": username}) is None:
        return None
    return username


def request_user() -> str | None:
    """Return the user of the current request's bearer token, or None (custom endpoints)."""
    return token_user(tokens.bearer(request.headers.get("Authorization")))


class TokenAuth(EveTokenAuth):
    """Eve's token auth: a valid token of an existing user; Eve's auth_field gets the name."""

    def check_auth(self, token: str, allowed_roles: list, resource: str, method: str) -> bool:
        username = token_user(token)
        if username is None:
            return False
        self.set_request_auth_value(username)
        return True
