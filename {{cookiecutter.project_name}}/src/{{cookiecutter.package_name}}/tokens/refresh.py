"""A usable access token for (user, provider), refreshed at most once at a time.

Single-flight across threads, processes and hosts: a Redis lock per (user, provider),
and the vault is read again once the lock is held, so whoever waited finds the token the
winner just stored (and committed before letting go of the lock) instead of spending a
refresh token that may already be rotated.
"""

from __future__ import annotations

import logging

from authlib.integrations.flask_client import FlaskOAuth2App
from redis.exceptions import LockError

from ..errors import AppError
from ..models import db
from ..provider_errors import provider_failures
from ..providers import Provider
from ..providers.errors import RefreshTokenDead
from ..redis import RedisClient
from .vault import StoredToken, TokenVault

log = logging.getLogger(__name__)

REFRESH_LEEWAY = 120  # seconds: refresh a token that expires this soon (Authlib's is 60)
LOCK_TIMEOUT = 30  # the lock frees itself if its holder dies
LOCK_WAIT = 15  # how long a request waits for another one's refresh


class ReauthRequired(Exception):  # noqa: N818 - a state, not a failure of ours
    """The link needs the user to consent again (dead refresh token, revoked grant...)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class TokenService:
    def __init__(self, client: RedisClient, vault: TokenVault, prefix: str) -> None:
        self.client = client
        self.vault = vault
        self.prefix = prefix

    def store_login_token(self, user_id: str, provider: Provider, token: dict) -> StoredToken:
        """Keep the token of a successful login; a response without a refresh token keeps ours.

        Ours stays marked dead if the provider refused it (`StoredToken.from_response`): the
        login route then asks for consent again. Written in the login's transaction: the
        caller commits.
        """
        previous = self.vault.load(user_id, provider.name)
        stored = StoredToken.from_response(token, previous)
        self.vault.save(user_id, provider.name, stored)
        return stored

    def fresh_token(self, user_id: str, provider: Provider, client: FlaskOAuth2App) -> StoredToken:
        token = self._usable(user_id, provider)
        if not token.expires_within(REFRESH_LEEWAY):
            return token
        lock = self.client.lock(
            f"{self.prefix}lock:refresh:{user_id}:{provider.name}",
            timeout=LOCK_TIMEOUT,
            blocking_timeout=LOCK_WAIT,
        )
        try:
            with lock:
                token = self._usable(user_id, provider)  # someone may have refreshed already
                if not token.expires_within(REFRESH_LEEWAY):
                    return token
                return self._refresh(user_id, provider, client, token)
        except LockError as exc:
            raise AppError(
                503,
                "refresh_busy",
                f"The {provider.title} token is being refreshed.",
                "Try again in a moment.",
                retry_after=2,
            ) from exc

    def _usable(self, user_id: str, provider: Provider) -> StoredToken:
        token = self.vault.load(user_id, provider.name)
        if token is None:
            raise ReauthRequired(provider.name, "no stored token")
        if token.reauth_required:
            raise ReauthRequired(provider.name, "the provider refused the token")
        if not token.refresh_token and token.expires_within(0):
            self.mark_reauth(user_id, provider.name, "expired without refresh token")
            raise ReauthRequired(provider.name, "expired")
        return token

    def _refresh(
        self, user_id: str, provider: Provider, client: FlaskOAuth2App, token: StoredToken
    ) -> StoredToken:
        if not token.refresh_token:
            return token  # about to expire but cannot be refreshed: use it while it lasts
        try:
            with provider_failures(provider):
                response = provider.refresh(client, token)
        except RefreshTokenDead as exc:
            self.mark_reauth(user_id, provider.name, f"refresh refused ({exc.code})")
            raise ReauthRequired(provider.name, exc.code) from exc
        refreshed = StoredToken.from_response(response, token)
        # One statement replaces access and refresh token together, committed before the
        # lock is released: a rotated refresh token is never half-saved.
        self.vault.save(user_id, provider.name, refreshed)
        db.session.commit()
        log.info("token refreshed provider=%s user=%s", provider.name, user_id)
        return refreshed

    def mark_reauth(self, user_id: str, provider: str, reason: str) -> None:
        log.info("link needs re-consent provider=%s user=%s reason=%s", provider, user_id, reason)
        self.vault.mark_reauth_required(user_id, provider)
        db.session.commit()
