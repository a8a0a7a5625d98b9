"""Signing keys of the mock OpenID providers: one key ring per issuer.

A 2048-bit RSA key takes a noticeable moment to generate, so each key is made once per
process (per issuer and index) and shared by every mock started in it. A ring publishes one
key at a time; rotation (`/_mock/<provider>/rotate-keys`) moves it to the next key, and
`reset` goes back to the first. The key rotated out is "withdrawn": still able to sign (as a
leaked key would), unpublished. Rings of different issuers never share a key, so a token
signed for one issuer never verifies against another's JWKS.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from joserfc.jwk import ECKey, Key, KeySet, RSAKey

_cache: dict[tuple[str, int], RSAKey] = {}
_ec_cache: dict[str, ECKey] = {}
_cache_lock = threading.Lock()

UNPUBLISHED = -1  # the index of a key that is never in any JWKS


def rsa_key(issuer: str, index: int) -> RSAKey:
    """The process-wide key number `index` of `issuer` (a random kid, like real ones)."""
    with _cache_lock:
        if (issuer, index) not in _cache:
            _cache[(issuer, index)] = RSAKey.generate_key(
                2048,
                parameters={"kid": secrets.token_hex(20), "alg": "RS256", "use": "sig"},
                private=True,
            )
        return _cache[(issuer, index)]


def ec_key(issuer: str) -> ECKey:
    """The issuer's P-256 key, for ES256 (a client registered for it, say)."""
    with _cache_lock:
        if issuer not in _ec_cache:
            _ec_cache[issuer] = ECKey.generate_key(
                "P-256",
                parameters={"kid": secrets.token_hex(20), "alg": "ES256", "use": "sig"},
                private=True,
            )
        return _ec_cache[issuer]


class KeyRing:
    """The key one issuer signs with now and the JWKS that publishes it."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._index = 0
        self._lock = threading.Lock()

    def _key(self, index: int) -> RSAKey:
        return rsa_key(self.issuer, index)

    @property
    def current(self) -> RSAKey:
        with self._lock:
            index = self._index
        return self._key(index)

    @property
    def unpublished(self) -> RSAKey:
        """A valid key whose kid is never published: for the `kid="unpublished"` switch."""
        return self._key(UNPUBLISHED)

    @property
    def withdrawn(self) -> RSAKey:
        """The key the last rotation took out of the JWKS (before any: an unpublished one)."""
        with self._lock:
            index = self._index
        return self._key(index - 1 if index > 0 else UNPUBLISHED)

    def reset(self) -> None:
        with self._lock:
            self._index = 0

    def rotate(self) -> str:
        """Publish the next key and drop the old one; returns the new kid."""
        with self._lock:
            self._index += 1
            index = self._index
        return str(self._key(index).kid)

    @property
    def ec(self) -> ECKey:
        return ec_key(self.issuer)

    def jwks(self, *, ec: bool = False) -> dict[str, Any]:
        """The current key; with `ec`, the EC key too (published only while it signs)."""
        keys: list[Key] = [self.current, *([self.ec] if ec else [])]
        return dict(KeySet(keys).as_dict(private=False))
