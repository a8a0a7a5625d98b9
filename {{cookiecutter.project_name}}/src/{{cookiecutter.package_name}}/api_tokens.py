"""Personal API tokens: random, prefixed, stored only as a SHA-256 hash, scoped, expiring.

The records live in the database (models.ApiToken), so they survive a Redis flush. A request
authenticated by a token costs one indexed query (the token with its owner) and no write:
use is counted in memory and written at most once a minute per process, with the day's
count kept in Redis (`<prefix>pat_usage:<id>`, a counter that may be lost).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload

from .models import ApiToken, User, db
from .redis import RedisClient
from .users import UserView

log = logging.getLogger(__name__)

TOKEN_PREFIX = "{{ cookiecutter.package_name }}_pat_"  # noqa: S105 - a public marker
# The scopes a token can carry, and what each allows.
SCOPES = {
    "profile:read": "read your profile (/api/me)",
    "admin": "use the admin API (only if you have the admin role)",
}
USAGE_FLUSH_SECONDS = 60
SHOWN_PREFIX = len(TOKEN_PREFIX) + 4  # "<package>_pat_AbCd…": enough to tell tokens apart


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class TokenGrant:
    """A valid token as the guards see it, with its owner loaded in the same query."""

    id: str
    user_id: str
    name: str
    scopes: list[str]
    created_at: int
    expires_at: int
    user: UserView | None = None

    # The token protocol of Authlib's BearerTokenValidator.
    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False  # a revoked token is deleted, so it is never found

    def get_scope(self) -> str:
        return " ".join(self.scopes)

    @classmethod
    def from_model(cls, token: ApiToken) -> TokenGrant:
        return cls(
            id=token.id,
            user_id=token.user_id,
            name=token.name,
            scopes=token.scopes.split(),
            created_at=token.created_at,
            expires_at=token.expires_at,
            user=UserView.from_model(token.user),
        )


class TooManyTokens(Exception):  # noqa: N818
    """The user already holds MAX_API_TOKENS_PER_USER live tokens."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class ApiTokenStore:
    def __init__(self, client: RedisClient, prefix: str, max_per_user: int = 50) -> None:
        self.client = client
        self.prefix = prefix
        self.max_per_user = max_per_user
        self._pending: dict[str, tuple[float, int]] = {}  # token id -> (last flush, uses)
        self._lock = threading.Lock()

    def _usage_key(self, token_id: str) -> str:
        return f"{self.prefix}pat_usage:{token_id}"

    def create(
        self, user_id: str, name: str, scopes: list[str], lifetime: int
    ) -> tuple[TokenGrant, str]:
        """A new token and its secret, which is returned once and never stored (not committed).

        Raises TooManyTokens when the user already holds `max_per_user` live tokens.
        """
        self._make_room(user_id)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits
        now = int(time.time())
        token = ApiToken(
            id=secrets.token_hex(8),
            user_id=user_id,
            token_hash=hash_token(secret),
            prefix=secret[:SHOWN_PREFIX],
            name=name,
            scopes=" ".join(sorted(set(scopes))),
            created_at=now,
            expires_at=now + lifetime,
            use_count=0,
        )
        db.session.add(token)
        db.session.flush()
        grant = TokenGrant(token.id, user_id, name, token.scopes.split(), now, token.expires_at)
        return grant, secret

    def _make_room(self, user_id: str) -> None:
        """Delete the user's expired tokens, then count the live ones against the cap.

        So a user's rows stay bounded too, and the list is never long. The owner's row is
        locked first (FOR UPDATE on PostgreSQL; SQLite lets one writer in at a time), so two
        creations at once cannot both take the last place.
        """
        now = int(time.time())
        db.session.execute(select(User.id).where(User.id == user_id).with_for_update())
        db.session.execute(
            delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.expires_at <= now)
        )
        live = db.session.scalar(
            select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id)
        )
        if (live or 0) >= self.max_per_user:
            raise TooManyTokens(self.max_per_user)

    def find(self, secret: str) -> TokenGrant | None:
        """The token and its owner in one indexed query; None for anything unknown."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None  # garbage costs no query
        token = (
            db.session.execute(
                select(ApiToken)
                .where(ApiToken.token_hash == hash_token(secret))
                .options(
                    joinedload(ApiToken.user).joinedload(User.identities),
                    joinedload(ApiToken.user).joinedload(User.role_grants),
                )
            )
            .unique()
            .scalar_one_or_none()
        )
        return TokenGrant.from_model(token) if token else None

    def list(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live tokens, without secrets, newest first, with their usage.

        One query and one Redis pipeline, for at most MAX_API_TOKENS_PER_USER tokens.
        """
        tokens = db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.expires_at > int(time.time()))
            .order_by(ApiToken.created_at.desc(), ApiToken.id)
        ).all()
        if not tokens:
            return []
        pipe = self.client.pipeline(transaction=False)
        day = f"day:{time.strftime('%Y-%m-%d')}"
        for token in tokens:
            pipe.hget(self._usage_key(token.id), day)
        uses_today = pipe.execute()
        return [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "scopes": t.scopes.split(),
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "last_used_at": t.last_used_at,
                "uses": t.use_count,
                "uses_today": int(today or 0),
            }
            for t, today in zip(tokens, uses_today, strict=True)
        ]

    def revoke(self, user_id: str, token_id: str) -> bool:
        """Delete one of the user's tokens (not committed); False when there is none."""
        result = db.session.execute(
            delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
        )
        return bool(cast(CursorResult, result).rowcount)

    def record_use(self, token: TokenGrant, on_flush: Callable[[TokenGrant, int], None]) -> None:
        """Count a use; write last-used time and counts at most once a minute (and commit)."""
        now = time.time()
        with self._lock:
            last_flush, uses = self._pending.get(token.id, (0.0, 0))
            uses += 1
            if now - last_flush < USAGE_FLUSH_SECONDS:
                self._pending[token.id] = (last_flush, uses)
                return
            self._pending[token.id] = (now, 0)
        try:
            db.session.execute(
                update(ApiToken)
                .where(ApiToken.id == token.id)
                .values(last_used_at=int(now), use_count=ApiToken.use_count + uses)
            )
            on_flush(token, uses)
            db.session.commit()
        except SQLAlchemyError as exc:
            # Bookkeeping must not fail the request it counts: keep the uses for next time.
            db.session.rollback()
            log.warning("token usage not recorded (%s): will retry", type(exc).__name__)
            with self._lock:
                self._pending[token.id] = (0.0, self._pending[token.id][1] + uses)
            return
        key = self._usage_key(token.id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(key, f"day:{time.strftime('%Y-%m-%d')}", uses)
        pipe.expire(key, 2 * 24 * 3600)
        pipe.execute()
