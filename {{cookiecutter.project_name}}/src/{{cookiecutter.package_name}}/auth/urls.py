"""Where we send people: absolute URLs we build and the `next` paths we accept."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from flask import current_app, request

MAX_NEXT_LENGTH = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def app_origin() -> str:
    """PUBLIC_URL when set; the request's own origin only when it is not."""
    public_url = current_app.config["APP_SETTINGS"].public_url
    return public_url or request.host_url.rstrip("/")


def external_url(path: str) -> str:
    """Redirect URIs are built from PUBLIC_URL, never from a forged Host header."""
    return app_origin() + path


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//") or _CONTROL.search(value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next(value: str | None) -> str | None:
    """A same-site relative path, or None. Encoded tricks are checked decoded too."""
    if not value or len(value) > MAX_NEXT_LENGTH:
        return None
    candidate = value
    for _ in range(3):  # %252F%252F... is still //
        if not _is_local_path(candidate):
            return None
        decoded = unquote(candidate)
        if decoded == candidate:
            return value
        candidate = decoded
    return None
