"""Personal API tokens: random, prefixed, stored only as a SHA-256 hash, scoped, expiring.

Keys: `<prefix>pat:<sha256>` holds the token's metadata (with a TTL at its expiry);
`<prefix>pats:<user_id>` maps each token id of a user to that hash; usage lives in
`<prefix>pat_usage:<id>` and is written at most once a minute per process, so a request
authenticated by a token reads two keys (token, user) and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

TOKEN_PREFIX = "{{ cookiecutter.package_name }}_pat_"  # noqa: S105 - a public marker
# The scopes a token can carry, and what each allows.
SCOPES = {
    "profile:read": "read your profile (/api/me)",
    "admin": "use the admin API (only if you have the admin role)",
}
USAGE_FLUSH_SECONDS = 60


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class ApiToken:
    id: str
    user_id: str
    name: str
    scopes: list[str]
    created_at: int
    expires_at: int

    # The token protocol of Authlib's BearerTokenValidator.
    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False  # a revoked token is deleted, so it is never found

    def get_scope(self) -> str:
        return " ".join(self.scopes)


class ApiTokenStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._pending: dict[str, tuple[float, int]] = {}  # token id -> (last flush, uses)
        self._lock = threading.Lock()

    def _token_key(self, token_hash: str) -> str:
        return f"{self.prefix}pat:{token_hash}"

    def _index_key(self, user_id: str) -> str:
        return f"{self.prefix}pats:{user_id}"

    def _usage_key(self, token_id: str) -> str:
        return f"{self.prefix}pat_usage:{token_id}"

    def create(
        self, user_id: str, name: str, scopes: list[str], lifetime: int
    ) -> tuple[ApiToken, str]:
        """A new token and its secret, which is returned once and never stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits
        now = int(time.time())
        token = ApiToken(
            id=secrets.token_hex(8),
            user_id=user_id,
            name=name,
            scopes=sorted(set(scopes)),
            created_at=now,
            expires_at=now + lifetime,
        )
        token_hash = hash_token(secret)
        pipe = self.client.pipeline(transaction=False)  # keys in different cluster slots
        pipe.set(self._token_key(token_hash), json.dumps(asdict(token)), ex=lifetime)
        pipe.hset(self._index_key(user_id), token.id, token_hash)
        pipe.execute()
        return token, secret

    def find(self, secret: str) -> ApiToken | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None  # garbage costs no Redis call
        raw = self.client.get(self._token_key(hash_token(secret)))
        return ApiToken(**json.loads(raw)) if raw else None

    def list(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live tokens, without secrets, newest first, with their usage."""
        index = self.client.hgetall(self._index_key(user_id))
        if not index:
            return []
        ids = [i.decode() for i in index]
        pipe = self.client.pipeline(transaction=False)
        for token_id in ids:
            pipe.get(self._token_key(index[token_id.encode()].decode()))
            pipe.hgetall(self._usage_key(token_id))
        results = pipe.execute()
        tokens, expired = [], []
        for token_id, raw, usage in zip(ids, results[::2], results[1::2], strict=True):
            if raw is None:
                expired.append(token_id)
                continue
            token = json.loads(raw)
            token["last_used_at"] = (
                int(usage[b"last_used_at"]) if b"last_used_at" in usage else None
            )
            token["uses_today"] = int(usage.get(f"day:{time.strftime('%Y-%m-%d')}".encode(), 0))
            token.pop("user_id", None)
            tokens.append(token)
        if expired:  # expired tokens vanish by TTL: tidy the index
            self.client.hdel(self._index_key(user_id), *expired)
        return sorted(tokens, key=lambda t: t["created_at"], reverse=True)

    def revoke(self, user_id: str, token_id: str) -> bool:
        token_hash = self.client.hget(self._index_key(user_id), token_id)
        if token_hash is None:
            return False
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self._token_key(token_hash.decode()))
        pipe.delete(self._usage_key(token_id))
        pipe.hdel(self._index_key(user_id), token_id)
        pipe.execute()
        return True

    def revoke_all(self, user_id: str) -> None:
        for token_id in self.client.hkeys(self._index_key(user_id)):
            self.revoke(user_id, token_id.decode())

    def record_use(self, token: ApiToken, on_flush: Callable[[ApiToken, int], None]) -> None:
        """Count a use; write last-used time and the day's count at most once a minute."""
        now = time.time()
        with self._lock:
            last_flush, uses = self._pending.get(token.id, (0.0, 0))
            uses += 1
            if now - last_flush < USAGE_FLUSH_SECONDS:
                self._pending[token.id] = (last_flush, uses)
                return
            self._pending[token.id] = (now, 0)
        key = self._usage_key(token.id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, "last_used_at", int(now))
        pipe.hincrby(key, f"day:{time.strftime('%Y-%m-%d')}", uses)
        pipe.expireat(key, token.expires_at)
        pipe.execute()
        on_flush(token, uses)
