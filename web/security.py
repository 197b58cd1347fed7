"""The secret that signs cookies and CSRF tokens, and the signing itself.

The session cookie carries the session's random token, signed (itsdangerous) so a tampered cookie is
refused before the database is asked. A form's CSRF token is an HMAC of the session token: nothing to
store, the same on every worker, useless with another session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

from orchestrator.settings import Settings

SESSION_COOKIE = "tongban_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def secret_key(settings: Settings) -> str:
    """The configured secret, or the one kept in <home>/.tongban/secret.key (made once, 0600; workers
    starting together agree on the first one written)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.path(".tongban/secret.key")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
        handle.flush()
        os.fsync(handle.fileno())
    return _read(path)


def _read(path: Path) -> str:
    for _ in range(100):  # another worker may be between its create and its write
        text = path.read_text().strip()
        if text:
            return text
        import time

        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: delete it and start again, or set TONGBAN_SECRET_KEY")


class Signer:
    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._cookies = URLSafeSerializer(key, salt="tongban-session")

    def cookie(self, token: str) -> str:
        return self._cookies.dumps(token)

    def token_of(self, cookie: str) -> str | None:
        try:
            value = self._cookies.loads(cookie)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def csrf(self, token: str) -> str:
        return hmac.new(self._key, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()[:40]

    def csrf_ok(self, token: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf(token), given or "")
