"""What of a URL may be echoed: a message (settings problems, the doctor, logs) shows where
a URL points, never the credentials in it.

Mistyped URLs are the ones echoed most (to say what is wrong with them), so the masking
does not trust the URL to be well formed: everything before the last "@" of the part
after the scheme is userinfo, whatever characters it holds (a password with an unescaped
"/" or "#", a URL with no scheme at all).
"""

from __future__ import annotations

import re

MASK = "***"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Query parameters that carry credentials, e.g. ?password=… (libpq), ?token=…, ?api_key=…
_SECRET_PARAM = re.compile(
    r"(?i)([?&;][^=&;#]*(?:pass|secret|token|key|auth|credential)[^=&;#]*=)[^&;#]*"
)
# A URL inside a longer text (a log line, an exception): scheme://userinfo@ (logs.py)
USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\"<>]+@")


def mask_url(url: str) -> str:
    """The URL with its userinfo (user and password) and secret query values as ***."""
    scheme = _SCHEME.match(url)
    prefix = scheme.group(0) if scheme else ""
    rest = url[len(prefix) :]
    if "@" in rest:
        rest = f"{MASK}@{rest.rpartition('@')[2]}"
    return prefix + _SECRET_PARAM.sub(rf"\g<1>{MASK}", rest)
