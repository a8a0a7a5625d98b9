"""Logging: JSON lines in production, readable lines in development, secrets always scrubbed.

Libraries log more than they should (Authlib logs the PKCE verifier at DEBUG; the
development server logs callback URLs with `?code=`), so a redaction filter sits on every
handler and scrubs each record before any formatter sees it. Every line made during a
request carries that request's id (also sent back as `X-Request-ID`).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from .settings import Settings

_SENSITIVE_PARAMS = (
    "code|state|access_token|refresh_token|id_token|code_verifier|client_secret|"
    "fb_exchange_token|appsecret_proof|token|password|nonce|signed_request"
)
_PATTERNS = [
    (re.compile(rf"(?i)\b({_SENSITIVE_PARAMS})=([^&\s\"']+)"), r"\1=[redacted]"),
    (
        re.compile(rf"(?i)([\"']?(?:{_SENSITIVE_PARAMS})[\"']?\s*:\s*)[\"'][^\"']+[\"']"),
        r"\1'[redacted]'",
    ),
    (re.compile(r"(?i)(code_verifier:\s*)\S+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic|oauth)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)((?:__host-)?session=)[^;\s]+"), r"\1[redacted]"),
    # Token formats recognisable on their own: GitHub, Google, Facebook, our API tokens.
    (re.compile(r"\b(gh[oupsr]_|ya29\.|1//|EAA|4/0A)[A-Za-z0-9._~+/=-]{8,}"), r"\1[redacted]"),
    (re.compile(r"\b([a-z0-9_]+_pat_)[A-Za-z0-9_-]{16,}"), r"\1[redacted]"),
]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs the formatted message; attaches the request id for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "safe", False):  # our own request lines hold no secrets
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Exception text can carry secrets too (e.g. a URL with a code).
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, and the event's fields."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # formatting the time is the slow part: once a second
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        entry: dict[str, Any] = {
            "time": self._stamp,
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
    if settings.is_production:
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        )
    for name in ("", "werkzeug", "gunicorn.error", "gunicorn.access"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
            if name == "":
                handler.setFormatter(formatter)
    # Authlib's DEBUG output includes the PKCE verifier: keep it quiet unless asked.
    authlib = logging.getLogger("authlib")
    authlib.setLevel(max(logging.INFO, authlib.level))


def init_request_logging(app: Flask) -> None:
    """A request id for every request and one summary line per request."""
    access = logging.getLogger(f"{app.import_name}.request")

    @app.before_request
    def start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        g.started = time.monotonic()

    production = app.config["APP_SETTINGS"].is_production

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        # In development the server's own request log says the same.
        if production and request.endpoint != "static":
            fields = {
                "event": "request",
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.monotonic() - g.get("started", 0.0)) * 1000, 1),
                "provider": (request.view_args or {}).get("provider"),
            }
            # Method, path (never the query string) and status: nothing to redact.
            access.info(
                "%(method)s %(path)s %(status)s", fields, extra={"fields": fields, "safe": True}
            )
        return response
