"""Signing keys of the mock Google.

A 2048-bit RSA key takes a noticeable moment to generate, so keys are made once per process
and shared by every mock started in it. A mock publishes one key at a time; rotation
(`/_mock/google/rotate-keys`) moves it to the next key, and `reset` goes back to the first.
The key rotated out is "withdrawn": still able to sign (as a leaked key would), unpublished.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from joserfc.jwk import KeySet, RSAKey

_cache: dict[int, RSAKey] = {}
_cache_lock = threading.Lock()

UNPUBLISHED = -1  # the index of a key that is never in any JWKS


def rsa_key(index: int) -> RSAKey:
    """The process-wide key number `index` (a fresh random kid, like Google's 40 hex chars)."""
    with _cache_lock:
        if index not in _cache:
            _cache[index] = RSAKey.generate_key(
                2048,
                parameters={"kid": secrets.token_hex(20), "alg": "RS256", "use": "sig"},
                private=True,
            )
        return _cache[index]


class KeyRing:
    """The key a mock signs with now and the JWKS that publishes it."""

    def __init__(self) -> None:
        self._index = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> RSAKey:
        with self._lock:
            index = self._index
        return rsa_key(index)

    @property
    def unpublished(self) -> RSAKey:
        """A valid key whose kid is never published: for the `kid="unpublished"` switch."""
        return rsa_key(UNPUBLISHED)

    @property
    def withdrawn(self) -> RSAKey:
        """The key the last rotation took out of the JWKS (before any: an unpublished one)."""
        with self._lock:
            index = self._index
        return rsa_key(index - 1 if index > 0 else UNPUBLISHED)

    def reset(self) -> None:
        with self._lock:
            self._index = 0

    def rotate(self) -> str:
        """Publish the next key and drop the old one; returns the new kid."""
        with self._lock:
            self._index += 1
            index = self._index
        return str(rsa_key(index).kid)

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.current]).as_dict(private=False)
