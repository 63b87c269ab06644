"""API tokens: signed, so any service holding the secret can check one without a lookup."""

from itsdangerous import BadSignature, URLSafeTimedSerializer

from workshop import config

TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600
_SALT = "api-token"


def _serializer(secret: str | None = None) -> URLSafeTimedSerializer:
    # An explicit secret is checked too: "" or a short key would sign forgeable tokens.
    key = config.secret_key() if secret is None else config.check_secret(secret)
    return URLSafeTimedSerializer(key, salt=_SALT)


def issue(username: str, secret: str | None = None) -> str:
    """Return a token that proves who the bearer is."""
    return _serializer(secret).dumps({"user": username})


def verify(token: str, secret: str | None = None) -> str | None:
    """Return the username a token was issued to, or None if it is forged or expired."""
    try:
        data = _serializer(secret).loads(token, max_age=TOKEN_LIFETIME_SECONDS)
    except BadSignature:
        return None
    user = data.get("user") if isinstance(data, dict) else None
    return user if isinstance(user, str) else None


def bearer(authorization: str | None) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
