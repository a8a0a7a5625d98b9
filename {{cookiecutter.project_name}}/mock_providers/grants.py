"""What a provider hands out and remembers: codes, access and refresh tokens, consents.

`Grants(name, ...)` declares the rules RFC 6749 and 7636 leave to a provider (what codes
and tokens look like, their lifetimes, how strictly a code is redeemed, refresh-token
rotation and reuse detection) and does the work on the provider's `Store` under the mock's
lock: codes bound to client, redirect URI and PKCE challenge; access tokens linked to their
refresh token, so revoking either kills both. `OAuthServer` (oauth.py) adds the endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from flask import request

from .core import BASE62, URLSAFE, Store, b64url, random_text, state
from .oauth_errors import Problem


def pkce_ok(challenge: str, method: str, verifier: str | None) -> bool:
    """RFC 7636: does `verifier` match the challenge sent at the authorize step?"""
    if not verifier:
        return False
    computed = b64url(hashlib.sha256(verifier.encode()).digest()) if method == "S256" else verifier
    return hmac.compare_digest(computed, challenge)


@dataclass(frozen=True)
class Secret:
    """What a provider's codes or tokens look like: a fixed prefix, then random characters."""

    prefix: str
    length: int
    alphabet: str = BASE62

    def make(self) -> str:
        return self.prefix + random_text(self.length, self.alphabet)


@dataclass
class Code:
    """An authorization code: single use, short-lived, bound to client, redirect and PKCE."""

    client_id: str
    redirect_uri: str
    user: str
    scopes: list[str]
    challenge: str | None = None
    method: str = "plain"
    nonce: str | None = None
    offline: bool = False  # redeeming it brings a refresh token too
    created: float = field(default_factory=time.time)
    used: bool = False


@dataclass
class AccessToken:
    user: str
    client_id: str
    scopes: list[str]
    expires_at: float | None  # None: never expires (some providers' access tokens)
    refresh_token: str | None = None
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False  # refused, yet told apart from an unknown token (some providers)
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at >= time.time())


@dataclass
class RefreshToken:
    user: str
    client_id: str
    scopes: list[str]
    expires_at: float | None = None
    family: str = ""  # the first token of a rotation chain: reuse detection ends them all
    access_tokens: set[str] = field(default_factory=set)


@dataclass
class AuthRequest:
    """The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, OIDC Core)."""

    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None = None
    nonce: str | None = None
    challenge: str | None = None
    method: str = "plain"
    response_type: str = ""
    prompt: tuple[str, ...] = ()

    @classmethod
    def parse(cls, scopes: Callable[[str], list[str]] = str.split) -> AuthRequest:
        args = request.args
        return cls(
            client_id=args.get("client_id", ""),
            redirect_uri=args.get("redirect_uri", ""),
            scopes=scopes(args.get("scope", "")),
            state=args.get("state"),
            nonce=args.get("nonce"),
            challenge=args.get("code_challenge") or None,
            method=args.get("code_challenge_method", "plain"),
            response_type=args.get("response_type", ""),
            prompt=tuple(args.get("prompt", "").split()),
        )


@dataclass
class Grants:
    """One provider's rules for codes and tokens, and the operations on its store."""

    name: str
    _: KW_ONLY
    code: Secret = Secret("", 43, URLSAFE)
    access: Secret = Secret("", 43, URLSAFE)
    refresh: Secret = Secret("", 64, URLSAFE)
    code_lifetime: int = 600
    access_lifetime: int = 3600  # unless the provider has an `expires_in` switch
    refresh_lifetime: int | None = None  # None: refresh tokens never expire
    redirect_check: str = "exact"  # "if_sent": only a redirect_uri the token request repeats
    burn_code_on_error: bool = True  # a refused redemption spends the code all the same
    verifier_without_challenge: str = "ignore"  # "refuse": a stray code_verifier is an error
    rotate_refresh: bool = False  # refresh retires the token used (and its access tokens)
    keep_used_refresh: bool = False  # rotation leaves the token used valid
    reuse_detection: bool = False  # a retired refresh token used again ends its whole family

    @property
    def store(self) -> Store:
        return state().store(self.name)

    def switch(self, name: str) -> Any:
        return state().switch(self.name, name)

    def option(self, name: str, default: Any = None) -> Any:
        """A switch this provider may not have: its value, else `default`."""
        mock = state()
        with mock.lock:
            return mock.switches[self.name].get(name, default)

    # --- codes -----------------------------------------------------------------------------

    def new_code(
        self, req: AuthRequest, user: str, *, scopes: list[str] | None = None, offline: bool = False
    ) -> str:
        mock = state()
        code = mock.mint(self.code.make())
        record = Code(
            req.client_id,
            req.redirect_uri,
            user,
            req.scopes if scopes is None else scopes,
            req.challenge,
            req.method,
            req.nonce,
            offline,
        )
        with mock.lock:
            self.store.codes[code] = record
        return code

    def redeem(
        self, client_id: str, data: Mapping[str, str], *, require_pkce: bool = False
    ) -> Code:
        """The code of a token request, now spent; or the Problem that refuses it."""
        mock = state()
        with mock.lock:
            record: Code | None = self.store.codes.get(data.get("code", ""))
            if record is None:
                raise Problem("code.unknown")
            if record.used:
                raise Problem("code.used")
            if time.time() - record.created > self.code_lifetime:
                raise Problem("code.expired")
            if record.client_id != client_id:
                raise Problem("code.client")
            record.used = self.burn_code_on_error  # spent even if refused below?
            sent = data.get("redirect_uri")
            if (sent or self.redirect_check == "exact") and sent != record.redirect_uri:
                raise Problem("code.redirect")
            verifier = data.get("code_verifier")
            if record.challenge:
                if not verifier:
                    raise Problem("pkce.missing")
                if not pkce_ok(record.challenge, record.method, verifier):
                    raise Problem("pkce.wrong")
            elif verifier and self.verifier_without_challenge == "refuse":
                raise Problem("pkce.unexpected")
            elif require_pkce:
                raise Problem("pkce.required")
            record.used = True
        return record

    # --- tokens ----------------------------------------------------------------------------

    def new_access(
        self,
        user: str,
        client_id: str,
        scopes: list[str],
        lifetime: float | None,
        *,
        refresh_token: str | None = None,
        secret: Secret | None = None,
        **extra: Any,
    ) -> str:
        """A new access token (lifetime None: it never expires), linked to its refresh token."""
        mock = state()
        value = mock.mint((secret or self.access).make())
        now = time.time()
        expires_at = None if lifetime is None else now + lifetime
        with mock.lock:
            record = AccessToken(user, client_id, list(scopes), expires_at, refresh_token, now)
            record.extra.update(extra)
            self.store.tokens[value] = record
            if refresh_token:
                self.store.refresh_tokens[refresh_token].access_tokens.add(value)
        return value

    def new_refresh(
        self,
        user: str,
        client_id: str,
        scopes: list[str],
        *,
        lifetime: float | None = None,
        family: str = "",
        secret: Secret | None = None,
    ) -> str:
        """A new refresh token; `lifetime` None: the provider's `refresh_lifetime`."""
        mock = state()
        value = mock.mint((secret or self.refresh).make())
        lifetime = self.refresh_lifetime if lifetime is None else lifetime
        expires_at = None if lifetime is None else time.time() + lifetime
        with mock.lock:
            self.store.refresh_tokens[value] = RefreshToken(
                user, client_id, list(scopes), expires_at, family or value
            )
        return value

    def token(self, value: str) -> AccessToken | None:
        """The access token's record, dead or alive."""
        with state().lock:
            return self.store.tokens.get(value)

    def live_access(self, value: str) -> AccessToken | None:
        record = self.token(value)
        return record if record is not None and record.alive() else None

    def use_refresh(self, client_id: str, value: str) -> RefreshToken:
        """The refresh token of a refresh request, checked; with rotation it is retired (its
        access tokens die), and with reuse detection a retired one used again ends its family."""
        mock = state()
        with mock.lock:
            retired: dict[str, str] = self.store.extra.setdefault("retired_refresh_tokens", {})
            record: RefreshToken | None = self.store.refresh_tokens.get(value)
            if record is None and self.reuse_detection and value in retired:
                family = retired[value]
                for other, live in list(self.store.refresh_tokens.items()):
                    if live.family == family:
                        self.kill_refresh(other)
                raise Problem("refresh.reused")
            if record is None:
                raise Problem("refresh.unknown")
            if record.client_id != client_id:
                raise Problem("refresh.client")
            if record.expires_at is not None and record.expires_at < time.time():
                raise Problem("refresh.expired")
            if self.rotate_refresh and not self.keep_used_refresh:
                self.kill_refresh(value)
                retired[value] = record.family
        return record

    def kill_refresh(self, value: str) -> RefreshToken | None:
        """End a refresh token and every access token issued with it."""
        with state().lock:
            record = self.store.refresh_tokens.pop(value, None)
            for access in record.access_tokens if record else ():
                self.store.tokens.pop(access, None)
        return record

    def revoke(self, value: str, *, pair: bool = True) -> AccessToken | RefreshToken | None:
        """RFC 7009: end a live access token (and, with `pair`, its refresh token) or a refresh
        token (and its access tokens). None: unknown, expired or already revoked."""
        with state().lock:
            access = self.live_access(value)
            if access is None:
                return self.kill_refresh(value)
            del self.store.tokens[value]
            if pair and access.refresh_token:
                self.kill_refresh(access.refresh_token)
            return access

    def drop_grant(self, user: str, client_id: str) -> None:
        """Every access and refresh token of this client for this user ends."""
        with state().lock:
            for kind in (self.store.tokens, self.store.refresh_tokens):
                for value, record in list(kind.items()):
                    if (record.user, record.client_id) == (user, client_id):
                        del kind[value]

    def end_refresh_tokens(self, user: str) -> None:
        """Every refresh token of the person ends, of any client (a sign-out everywhere)."""
        with state().lock:
            for value, record in list(self.store.refresh_tokens.items()):
                if record.user == user:
                    del self.store.refresh_tokens[value]

    def holders(self, client_id: str) -> list[str]:
        """The personas holding any token of this client."""
        with state().lock:
            records = [*self.store.tokens.values(), *self.store.refresh_tokens.values()]
        return sorted({r.user for r in records if r.client_id == client_id})

    def grant_consent(self, client_id: str, user: str) -> bool:
        """Record the person's consent; True if it is a first one (a consent screen is due)."""
        with state().lock:
            first = (client_id, user) not in self.store.consents
            self.store.consents.add((client_id, user))
        return first

    def withdraw_consent(self, client_id: str, user: str) -> None:
        with state().lock:
            self.store.consents.discard((client_id, user))
