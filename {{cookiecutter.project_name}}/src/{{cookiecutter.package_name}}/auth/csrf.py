"""CSRF defence for cookie-authenticated state-changing requests.

A per-session token (created at login, so reading pages never writes the session) must
come back in the form or the X-CSRF-Token header, and a browser's Origin /
Sec-Fetch-Site must not say the request came from another site.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

from ..errors import AppError
from .urls import app_origin


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token() -> str:
    return session.get("csrf", "")


def check_csrf() -> None:
    refused = AppError(
        403,
        "csrf_failed",
        "This request did not come from this site's own pages.",
        "Reload the page and try again.",
    )
    origin = request.headers.get("Origin")
    if origin and origin != app_origin():
        raise refused
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise refused
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise refused
