"""Secrets are registered once and replaced everywhere devex writes text."""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()
_secrets: set[str] = set()
_MASK = "****"
# Short values (a 3-letter token in a test) would mask ordinary words everywhere.
_MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Remember a secret so that `mask` hides it from now on."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def register_basic_auth(user: str, secret: str) -> None:
    """Remember a Basic credential: the secret, and `base64(user:secret)` as an upstream echoing
    the `Authorization` header back (in an error body) would show it."""
    register_secret(secret)
    # Without its `=` padding: the unpadded text is inside the padded one and inside an echo
    # that dropped the padding, so either way nothing of the credential is left.
    register_secret(base64.b64encode(f"{user}:{secret}".encode()).decode().rstrip("="))


def mask(text: str) -> str:
    """Replace every registered secret, and credentials inside URLs, with ****."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return _URL_USERINFO.sub(r"\1" + _MASK + "@", text)


_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def mask_url(url: str) -> str:
    """A URL fit to print: no user info, and secrets masked."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc != parts.netloc:
        netloc = f"{_MASK}@{netloc}"
    return mask(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        return True
