"""An OpenID provider's signing keys (JWKS), cached as long as its response says.

Authlib keeps the first key set forever (a key the provider withdrew stayed trusted until a
restart) and re-fetches on every unknown kid. Here a stale set is fetched again before use
(must-revalidate: never used stale), and an unknown kid re-fetches a fresh set at most once
per JWKS_REFETCH_INTERVAL; otherwise the token is refused (invalid_key_id).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

# How long to trust a key set when its response has no usable max-age, the most we trust it
# whatever the header says, and the least (max-age=0 must not turn every login into a fetch).
JWKS_DEFAULT_MAX_AGE = 300
JWKS_MAX_AGE_CAP = 86400
JWKS_MIN_MAX_AGE = 1
# An unknown kid re-fetches at most once per this many seconds per process: forged kids
# cannot make us hammer the provider. 30 s is panva/jose's default `cooldownDuration`. A
# real new key is still fetched at once, unless forged kids used the re-fetch just before.
JWKS_REFETCH_INTERVAL = 30


def max_age(headers: Mapping[str, str]) -> float:
    """Seconds a certs response stays fresh: max-age minus Age (RFC 9111 4.2.1, 4.2.3).

    OpenID providers say to cache their keys as the HTTP response's cache directives allow,
    and send e.g. `Cache-Control: public, max-age=N, must-revalidate, no-transform`.
    """
    directives: dict[str, str] = {}
    for part in headers.get("Cache-Control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return JWKS_MIN_MAX_AGE
    try:
        seconds = int(directives["max-age"]) - int(headers.get("Age", "0") or 0)
    except (KeyError, ValueError):
        return JWKS_DEFAULT_MAX_AGE
    return min(max(seconds, JWKS_MIN_MAX_AGE), JWKS_MAX_AGE_CAP)


def key_set(response: requests.Response) -> dict[str, Any]:
    """The JWKS in a certs response; ValueError for anything else."""
    response.raise_for_status()
    keys = response.json()
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise ValueError("the JWKS is not a key set")
    return keys


class KeySetCache:
    """One process's copy of the JWKS, trusted until its max-age runs out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one fetch at a time; the others then find it
        self._keys: dict[str, Any] | None = None
        self._fresh_until = 0.0
        self._last_forced = -float(JWKS_REFETCH_INTERVAL)

    def get(self, fetch: Callable[[], requests.Response], force: bool) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._keys is not None and now < self._fresh_until:
                if not force or now - self._last_forced < JWKS_REFETCH_INTERVAL:
                    return self._keys
                self._last_forced = now
            response = fetch()
            keys = key_set(response)
            self._keys, self._fresh_until = keys, time.monotonic() + max_age(response.headers)
            return keys
