"""Logging: JSON lines in production, readable lines in development, secrets always scrubbed.

Libraries log more than they should (Authlib logs the PKCE verifier at DEBUG; the
development server logs callback URLs with `?code=`), so a redaction filter sits on every
handler and scrubs each record before any formatter sees it. Every line made during a
request carries that request's id (also sent back as `X-Request-ID`).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from flask import Flask, Request, Response, has_request_context, request

from .masking import USERINFO_IN_TEXT
from .settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

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
    # Token formats recognisable on their own: the providers' token prefixes, our API tokens.
    (re.compile(r"\b(gh[oupsr]_|ya29\.|1//|EAA|4/0A)[A-Za-z0-9._~+/=-]{8,}"), r"\1[redacted]"),
    (re.compile(r"\b([a-z0-9_]+_pat_)[A-Za-z0-9_-]{16,}"), r"\1[redacted]"),
    # Credentials in a URL: redis://:password@host, postgresql://user:password@host.
    (USERINFO_IN_TEXT, r"\1[redacted]@"),
]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# msgspec (already here through Flask-Session) encodes a line ~10x faster than json.dumps,
# which matters for lines written on the request path. Unknown types become strings.
_ENCODER = msgspec.json.Encoder(enc_hook=str)


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
        if not hasattr(record, "request_id"):
            record.request_id = (
                request.environ.get(REQUEST_ID_KEY, "-") if has_request_context() else "-"
            )
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
        return _ENCODER.encode(entry).decode()


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


class _RequestIds:
    """Unique request ids without a random draw per request (a getrandom call costs more
    than the rest of the tagging): a random prefix per process, then a counter. A forked
    child (gunicorn --preload) draws its own prefix."""

    def __init__(self) -> None:
        self.restart()
        os.register_at_fork(after_in_child=self.restart)

    def restart(self) -> None:
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_request_ids = _RequestIds()
REQUEST_ID_KEY = "app.request_id"  # in the WSGI environ, with "app.started"


class RequestTagging:
    """WSGI middleware: gives each request its id (a safe incoming X-Request-ID is kept)
    and a start time, and sends the id back as X-Request-ID.

    It runs before Flask opens the session, so even a line logged while Redis is down
    carries the id, and it costs no Flask hook.
    """

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        incoming = environ.get("HTTP_X_REQUEST_ID")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else _request_ids.next()
        environ[REQUEST_ID_KEY] = request_id
        environ["app.started"] = time.monotonic()

        def start_with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_id)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SLOW_REQUEST = 1.0  # seconds: a request this slow is always logged


def is_notable(request: Request, status: int, seconds: float) -> bool:
    """A failure, a change, a slow request or a step of the sign-in flow.

    What is left (a fast, successful read) is most of the traffic, and the proxy's access
    log already has it: logging it here too would cost more than serving it.
    """
    return (
        status >= 400
        or request.method not in SAFE_METHODS
        or seconds >= SLOW_REQUEST
        or request.blueprint == "auth"
    )


def init_request_logging(app: Flask) -> None:
    """Tag every request (id, timer, X-Request-ID) and, in production, log a summary line
    of the requests REQUEST_LOG asks for (in development the server's request log does)."""
    app.wsgi_app = RequestTagging(app.wsgi_app)  # type: ignore[method-assign]
    settings = app.config["APP_SETTINGS"]
    mode = settings.request_log if settings.is_production else "off"
    if mode == "off":
        return
    access = logging.getLogger(f"{app.import_name}.request")

    @app.after_request
    def log_request(response: Response) -> Response:
        if not access.isEnabledFor(logging.INFO):
            return response
        current: Request = request._get_current_object()  # type: ignore[attr-defined]
        environ = current.environ
        started = environ.get("app.started")
        seconds = time.monotonic() - started if started else 0.0
        status = response.status_code
        if current.endpoint == "static" or (
            mode == "notable" and not is_notable(current, status, seconds)
        ):
            return response
        fields = {
            "event": "request",
            "method": current.method,
            "path": current.path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "provider": (current.view_args or {}).get("provider"),
        }
        # Method, path (never the query string) and status: nothing to redact.
        request_id = environ.get(REQUEST_ID_KEY, "-")
        access.info(
            "%(method)s %(path)s %(status)s",
            fields,
            extra={"fields": fields, "safe": True, "request_id": request_id},
        )
        return response
