"""Server-side sessions in Redis (Flask-Session), hardened.

- The Redis key is a SHA-256 of the session id, so a Redis dump yields no usable cookie.
- The value is encrypted and authenticated (AES-256-GCM, key derived from SECRET_KEY, the
  Redis key as associated data): Authlib keeps the PKCE verifier and nonce in the session
  during a login, and Flask-Session's decoder would otherwise fall back to pickle on data it
  cannot read. AES-GCM with one key object costs a microsecond per request; Fernet, ~20.
- A session that has not signed in yet lives a few minutes, not the full lifetime.
- With SESSION_REFRESH_EACH_REQUEST off, a request that only reads costs one GET.
- An ended session stays ended. A request loads its session at the start and saves it at the
  end; if the session was ended in between (another device signed it out, a role or the
  account went, a logout in another tab), an unconditional SET would bring it back with a
  fresh lifetime. So a session that was loaded is saved with SET XX (only while its record
  still exists), and a new one with SET NX (never over a record). Single-key commands:
  Redis Cluster works as before.
- Changing a user rewrites their other sessions' copy with compare-and-set (a one-key
  script), so a request saving its own session at that moment is never undone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import msgspec
import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, Response, current_app
from flask_session.base import ServerSideSession
from flask_session.redis import RedisSession, RedisSessionInterface
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)

LOGIN_ATTEMPT_TTL = 15 * 60  # seconds a not-yet-signed-in session is kept


NONCE_BYTES = 12
# rewrite's write: set the record (keeping its TTL) only while it still holds what was read.
SWAP_IF_UNCHANGED = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""
SWAPPED, CHANGED = 1, -1
REWRITE_ROUNDS = 5


def derive_key(secret_key: str, purpose: bytes) -> bytes:
    """A 256-bit key for one purpose, derived from SECRET_KEY with HKDF."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret_key.encode()
    )


class StoredSession(RedisSession):
    """A session that knows whether its record existed when this request loaded it."""

    def __init__(
        self, initial: dict | None = None, sid: str | None = None, permanent: bool | None = None
    ) -> None:
        super().__init__(initial, sid, permanent)
        # Flask-Session passes the stored data for a loaded session and nothing for a new one.
        self.stored = initial is not None


class SecureRedisSessionInterface(RedisSessionInterface):
    session_class = StoredSession

    def __init__(
        self, app: Flask, client: redis.Redis | RedisCluster, key_prefix: str, secret_key: str
    ):
        with warnings.catch_warnings():
            # Flask-Session only knows redis.Redis and would swap a RedisCluster for a
            # client of localhost:6379 (with just a warning): we set the real one below.
            warnings.simplefilter("ignore", RuntimeWarning)
            super().__init__(app, client=client, key_prefix=key_prefix, permanent=False)
        self.client = client
        self._aead = AESGCM(derive_key(secret_key, b"flask-session"))
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(dict)

    def _get_store_id(self, sid: str) -> str:
        return self.key_prefix + hashlib.sha256(sid.encode()).hexdigest()

    def store_key(self, session: ServerSideSession) -> str:
        """The Redis key of this session (a hash of its id, never the id itself)."""
        return self._get_store_id(session.sid)

    def record_exists(self, session: ServerSideSession) -> bool:
        """Is this session's record still in Redis (not ended since the request began)?"""
        return bool(self.client.exists(self.store_key(session)))

    def rewrite(self, store_keys: Sequence[str], changes: dict) -> int:
        """Update values inside other live sessions (each TTL kept); returns how many.

        One pipeline of GETs and one of compare-and-set writes for any number of sessions.
        A record that its own request rewrote between our read and our write is read again
        (up to REWRITE_ROUNDS times), so that request's write is never undone; a record
        that ended meanwhile stays ended.
        """
        written = 0
        pending = list(store_keys)
        for _ in range(REWRITE_ROUNDS):
            reads = self.client.pipeline(transaction=False)
            for store_key in pending:
                reads.get(store_key)
            swaps = self.client.pipeline(transaction=False)
            swapped: list[str] = []
            for store_key, blob in zip(pending, reads.execute(), strict=True):
                data = self._open(store_key, blob)
                if data is not None:
                    data.update(changes)
                    # EVAL, not EVALSHA: a script in a pipeline must not depend on a cache
                    # that a cluster node may lack; one key each, so any cluster routes it.
                    # (redis-py's ClusterPipeline has no `eval` method, only the command.)
                    sealed = self._seal(store_key, data)
                    swaps.execute_command("EVAL", SWAP_IF_UNCHANGED, 1, store_key, blob, sealed)
                    swapped.append(store_key)
            outcomes = swaps.execute() if swapped else []
            written += sum(1 for outcome in outcomes if outcome == SWAPPED)
            pending = [
                key for key, outcome in zip(swapped, outcomes, strict=True) if outcome == CHANGED
            ]
            if not pending:
                break
        if pending:
            log.warning(
                "%d sessions kept changing: their copy of the user is not updated", len(pending)
            )
        return written

    def regenerate(self, session: ServerSideSession) -> None:
        """A new id (at sign-in): its record is new, so it is created, never updated."""
        if session:  # as the base: an empty session keeps its id
            super().regenerate(session)
            session.stored = False

    def _seal(self, store_id: str, data: dict) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, self._encoder.encode(data), store_id.encode())

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        # Raw bytes: the client is built without decode_responses (redis.py).
        return self._open(store_id, cast(bytes | None, self.client.get(store_id)))

    def _open(self, store_id: str, blob: bytes | None) -> dict | None:
        """A record's data, or None when it is gone or unreadable."""
        if not blob:
            return None
        try:
            nonce, ciphertext = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
            plain = self._aead.decrypt(nonce, ciphertext, store_id.encode())
            return self._decoder.decode(plain)
        except (InvalidTag, ValueError, msgspec.DecodeError):
            # Written with another SECRET_KEY, or tampered with: start a fresh session.
            log.warning("discarding an unreadable session record")
            return None

    def save_session(
        self, app: Flask, session: ServerSideSession | None, response: Response
    ) -> None:
        if session is None:  # it never opened (Redis failed): the 503 has nothing to save
            return
        # A request that changed nothing writes nothing (SESSION_REFRESH_EACH_REQUEST is
        # off): answer it here, without the cookie and storage bookkeeping of the base.
        if not session.modified:
            if session.accessed:
                # As the base's `response.vary.add`, without parsing Vary into a set: Vary
                # is a list, so one more field line adds to it. Nothing edits the response
                # after the session is saved.
                response.headers.add("Vary", "Cookie")
            return
        if not session:  # emptied (logout, a deleted user): delete the record and the cookie
            if session.stored:
                self._delete_session(self.store_key(session))
            # With the attributes it was set with: Flask-Session 0.8 sends only the path,
            # and browsers ignore a __Host- cookie without Secure (so it would stay).
            response.delete_cookie(
                self.get_cookie_name(app),
                path=self.get_cookie_path(app),
                domain=self.get_cookie_domain(app),
                secure=self.get_cookie_secure(app),
                httponly=self.get_cookie_httponly(app),
                samesite=self.get_cookie_samesite(app),
            )
            response.headers.add("Vary", "Cookie")
            return
        super().save_session(app, session, response)

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        signed_in = "user_id" in session
        ttl = int(session_lifetime.total_seconds()) if signed_in else LOGIN_ATTEMPT_TTL
        stored = getattr(session, "stored", False)
        written = self.client.set(
            store_id, self._seal(store_id, dict(session)), ex=ttl, xx=stored, nx=not stored
        )
        if written:
            session.stored = True  # a second save in this request updates it
        elif stored:
            log.info("not saving a session that ended during this request")
        else:
            log.warning("not saving a new session over an existing record")


def session_store() -> SecureRedisSessionInterface:
    """The app's session interface, with its own methods (Flask types only the base)."""
    return cast(SecureRedisSessionInterface, current_app.session_interface)
