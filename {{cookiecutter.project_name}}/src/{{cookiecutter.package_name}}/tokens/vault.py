"""Provider tokens at rest: one encrypted record per (user, provider) in Redis.

MultiFernet over TOKEN_ENCRYPTION_KEY: the first key encrypts, every key decrypts, so a
new key can be put first without signing anyone out, and `flask tokens reencrypt` then
moves every record to it. A record that cannot be decrypted is treated as no token (the
user is asked to connect again), never as an error page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)


@dataclass
class StoredToken:
    """What we keep of a provider's token response, plus the link's health."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - a token type, not a secret
    refresh_token: str | None = None
    expires_at: int | None = None
    scope: str | None = None
    # True once the provider refused the refresh token or the access token for good.
    reauth_required: bool = False
    updated_at: int = 0

    @classmethod
    def from_response(
        cls, token: dict[str, Any], previous: StoredToken | None = None
    ) -> StoredToken:
        """Build from an OAuth token response; keep the old refresh token when none came."""
        expires_at = token.get("expires_at")
        if expires_at is None and token.get("expires_in") not in (None, ""):
            expires_at = int(time.time()) + int(token["expires_in"])
        refresh_token = token.get("refresh_token") or (previous.refresh_token if previous else None)
        return cls(
            access_token=token["access_token"],
            token_type=str(token.get("token_type") or "bearer"),
            refresh_token=refresh_token,
            expires_at=int(expires_at) if expires_at is not None else None,
            scope=token.get("scope"),
            updated_at=int(time.time()),
        )

    def expires_within(self, seconds: int) -> bool:
        return self.expires_at is not None and self.expires_at - seconds <= time.time()

    def as_oauth_token(self) -> dict[str, Any]:
        """The dict Authlib sends an API request with.

        Without expiry or refresh token on purpose: refreshing is ours (single-flight, saved
        to the vault); Authlib refreshing on its own would spend a rotating refresh token
        behind the vault's back.
        """
        return {"access_token": self.access_token, "token_type": self.token_type}


class TokenVault:
    def __init__(self, client: redis.Redis, prefix: str, keys: tuple[str, ...]):
        self.client = client
        self.prefix = prefix
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None
        self._compare_and_set = client.register_script(self._COMPARE_AND_SET)

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def key(self, user_id: str, provider: str) -> str:
        return f"{self.prefix}token:{user_id}:{provider}"

    def load(self, user_id: str, provider: str) -> StoredToken | None:
        if self._fernet is None:
            return None
        blob = self.client.get(self.key(user_id, provider))
        if not blob:
            return None
        try:
            return StoredToken(**json.loads(self._fernet.decrypt(blob)))
        except (InvalidToken, ValueError, TypeError):
            log.warning("unreadable token record provider=%s user=%s", provider, user_id)
            return None

    def save(self, user_id: str, provider: str, token: StoredToken) -> None:
        if self._fernet is None:
            return  # no TOKEN_ENCRYPTION_KEY (development only): tokens are not kept
        blob = self._fernet.encrypt(json.dumps(asdict(token)).encode())
        self.client.set(self.key(user_id, provider), blob)

    def delete(self, user_id: str, provider: str) -> None:
        self.client.delete(self.key(user_id, provider))

    def mark_reauth_required(self, user_id: str, provider: str) -> None:
        token = self.load(user_id, provider)
        if token is not None:
            token.reauth_required = True
            self.save(user_id, provider, token)

    _COMPARE_AND_SET = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2])
            return 1
        end
        return 0
    """

    def _all_keys(self) -> Iterator[bytes]:
        yield from self.client.scan_iter(match=f"{self.prefix}token:*", count=500)

    def reencrypt_all(self) -> tuple[int, int]:
        """Re-encrypt every record with the first key; returns (rewritten, unreadable)."""
        if self._fernet is None:
            return 0, 0
        rewritten = unreadable = 0
        for key in self._all_keys():
            for _attempt in range(5):
                blob = self.client.get(key)
                if not blob:
                    break
                try:
                    rotated = self._fernet.rotate(blob)
                except InvalidToken:
                    unreadable += 1
                    break
                # Compare-and-set: a refresh that rewrote the record meanwhile wins, and we
                # try again on its value (a single-key script works on Redis Cluster too).
                if self._compare_and_set(keys=[key], args=[blob, rotated]):
                    rewritten += 1
                    break
        return rewritten, unreadable
