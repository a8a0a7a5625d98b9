"""Logging with a redaction filter in front of every handler.

Libraries log more than they should (Authlib logs the PKCE verifier at DEBUG; the
development server logs callback URLs with `?code=`), so secrets are scrubbed from every
record before any handler formats it.
"""

from __future__ import annotations

import logging
import re

from .settings import Settings

_SENSITIVE_PARAMS = (
    "code|state|access_token|refresh_token|id_token|code_verifier|client_secret|"
    "fb_exchange_token|appsecret_proof|token|password"
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
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    for name in ("", "werkzeug", "gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
    # Authlib's DEBUG output includes the PKCE verifier: never let it through.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger("authlib").level))
