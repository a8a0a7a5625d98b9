"""Provider tokens at rest: one record per (user, provider) in the database.

The access and refresh tokens are encrypted with MultiFernet over TOKEN_ENCRYPTION_KEY (the
first key encrypts, every key decrypts), so a new key can be put first without signing
anyone out, and `flask tokens reencrypt` then moves every record to it. Expiry, scope and the
link's health stay readable columns; nothing secret is in plaintext. A record that cannot be
decrypted is treated as no token (the user is asked to connect again), never as an error
page. The vault writes in the caller's transaction: commit after `save`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import CursorResult, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import ProviderToken, db

log = logging.getLogger(__name__)

REENCRYPT_BATCH = 200


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
        """Build from an OAuth token response; keep the old refresh token when none came.

        A kept refresh token keeps its health: one the provider already refused stays
        refused (an invalid_grant is for good), so a sign-in that brought no new one must
        not make it look alive. A link without refresh token (a provider whose access tokens
        are long-lived) is healed by the new access token itself.
        """
        expires_at = token.get("expires_at")
        if expires_at is None and token.get("expires_in") not in (None, ""):
            expires_at = int(time.time()) + int(token["expires_in"])
        fresh = token.get("refresh_token")
        kept = previous.refresh_token if previous and not fresh else None
        return cls(
            access_token=token["access_token"],
            token_type=str(token.get("token_type") or "bearer"),
            refresh_token=fresh or kept,
            expires_at=int(expires_at) if expires_at is not None else None,
            scope=token.get("scope"),
            reauth_required=bool(kept and previous and previous.reauth_required),
            updated_at=int(time.time()),
        )

    @property
    def has_usable_refresh_token(self) -> bool:
        """A refresh token the provider has not refused (what a consent prompt would bring)."""
        return bool(self.refresh_token) and not self.reauth_required

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
    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def load(self, user_id: str, provider: str) -> StoredToken | None:
        if self._fernet is None:
            return None
        row = db.session.get(ProviderToken, (user_id, provider), populate_existing=True)
        if row is None:
            return None
        try:
            access_token = self._fernet.decrypt(row.access_token_encrypted).decode()
            refresh_token = (
                self._fernet.decrypt(row.refresh_token_encrypted).decode()
                if row.refresh_token_encrypted
                else None
            )
        except (InvalidToken, ValueError, TypeError):
            log.warning("unreadable token record provider=%s user=%s", provider, user_id)
            return None
        return StoredToken(
            access_token=access_token,
            token_type=row.token_type,
            refresh_token=refresh_token,
            expires_at=row.expires_at,
            scope=row.scope,
            reauth_required=row.reauth_required,
            updated_at=row.updated_at,
        )

    def save(self, user_id: str, provider: str, token: StoredToken) -> None:
        """Insert or replace both tokens in one statement: a rotated pair is never half-saved."""
        if self._fernet is None:
            return  # no TOKEN_ENCRYPTION_KEY (development only): tokens are not kept
        values: dict[str, Any] = {
            "access_token_encrypted": self._fernet.encrypt(token.access_token.encode()),
            "refresh_token_encrypted": self._fernet.encrypt(token.refresh_token.encode())
            if token.refresh_token
            else None,
            "token_type": token.token_type,
            "expires_at": token.expires_at,
            "scope": token.scope,
            "reauth_required": token.reauth_required,
            "updated_at": int(time.time()),
        }
        dialect = db.session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(ProviderToken).values(user_id=user_id, provider=provider, **values)
        db.session.execute(
            statement.on_conflict_do_update(index_elements=["user_id", "provider"], set_=values)
        )

    def delete(self, user_id: str, provider: str) -> None:
        db.session.execute(
            delete(ProviderToken).where(
                ProviderToken.user_id == user_id, ProviderToken.provider == provider
            )
        )

    def mark_reauth_required(self, user_id: str, provider: str) -> None:
        db.session.execute(
            update(ProviderToken)
            .where(ProviderToken.user_id == user_id, ProviderToken.provider == provider)
            .values(reauth_required=True, updated_at=int(time.time()))
        )

    def reencrypt_all(self, batch: int = REENCRYPT_BATCH) -> tuple[int, int]:
        """Re-encrypt every record with the first key; returns (rewritten, unreadable).

        Works in batches in key order, committing each, so it can be interrupted and run
        again (re-encrypting a record twice is harmless). A record that a refresh rewrote
        meanwhile is left as the refresh wrote it: that is already under the first key.
        """
        if self._fernet is None:
            return 0, 0
        rewritten = unreadable = 0
        after = ("", "")
        while True:
            rows = db.session.execute(
                select(
                    ProviderToken.user_id,
                    ProviderToken.provider,
                    ProviderToken.access_token_encrypted,
                    ProviderToken.refresh_token_encrypted,
                )
                .where(tuple_(ProviderToken.user_id, ProviderToken.provider) > after)
                .order_by(ProviderToken.user_id, ProviderToken.provider)
                .limit(batch)
            ).all()
            if not rows:
                return rewritten, unreadable
            for user_id, provider, access, refresh in rows:
                try:
                    values = {
                        "access_token_encrypted": self._fernet.rotate(access),
                        "refresh_token_encrypted": self._fernet.rotate(refresh)
                        if refresh
                        else None,
                    }
                except InvalidToken:
                    unreadable += 1
                    continue
                # Compare-and-set on the old ciphertext: a concurrent refresh wins.
                result = db.session.execute(
                    update(ProviderToken)
                    .where(
                        ProviderToken.user_id == user_id,
                        ProviderToken.provider == provider,
                        ProviderToken.access_token_encrypted == access,
                    )
                    .values(**values)
                )
                rewritten += cast(CursorResult, result).rowcount
            db.session.commit()
            after = (rows[-1][0], rows[-1][1])
