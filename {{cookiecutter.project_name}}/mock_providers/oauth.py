"""The OAuth 2 authorization server every mock is made of, declared once per provider.

`OAuthServer(name, ...)` holds what RFC 6749, 7636 and 7009 leave to a provider (what its
codes and tokens look like, how clients authenticate, where parameters may come from, the
code and refresh-token rules, its error style) and does the work on the provider's `Store`:
codes bound to client, redirect URI and PKCE challenge; access tokens linked to their refresh
token, so revoking either kills both; refresh with optional rotation and reuse detection;
consents. A mock mounts the standard endpoints (`blueprint()`) and overrides the hooks where
its provider differs, or calls the operations from views of its own where the provider is
too far from the RFCs (GitHub's REST revocation, Facebook's Graph API).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Flask, redirect, request
from werkzeug.wrappers import Response

from .core import (
    BASE62,
    URLSAFE,
    Store,
    append_query,
    b64url,
    base_url,
    basic_credentials,
    json_response,
    no_store,
    pause,
    random_text,
    state,
)
from .pages import decide, error_page

T = TypeVar("T")
Grant = Callable[[str, dict[str, str]], Response]

# RFC 6749 §5.2 and RFC 7009 §2.2.1 answers, by `Problem` reason or group:
# (error, HTTP status, description). A provider rewords them in its `ErrorStyle`.
RFC_ERRORS: dict[str, tuple[str, int, str]] = {
    "client.missing": ("invalid_request", 400, "The request has no client_id."),
    "client": ("invalid_client", 401, "Client authentication failed."),
    "grant_type": ("unsupported_grant_type", 400, "Unsupported grant_type: {detail}"),
    "code": ("invalid_grant", 400, "The authorization code is invalid, used or expired."),
    "code.redirect": ("invalid_grant", 400, "redirect_uri differs from the authorization's."),
    "pkce": ("invalid_grant", 400, "The code_verifier does not match the code_challenge."),
    "refresh": ("invalid_grant", 400, "The refresh token is invalid, expired or revoked."),
    "token": ("invalid_request", 400, "The request has no token to revoke."),
}


def pkce_ok(challenge: str, method: str, verifier: str | None) -> bool:
    """RFC 7636: does `verifier` match the challenge sent at the authorize step?"""
    if not verifier:
        return False
    computed = b64url(hashlib.sha256(verifier.encode()).digest()) if method == "S256" else verifier
    return hmac.compare_digest(computed, challenge)


def redirect_back(
    uri: str,
    params: list[tuple[str, str]],
    state: str | None = None,
    *,
    fragment: str | None = None,
    safe: str = "",
) -> Response:
    """A 302 to the client's redirect URI with `params`, then `state` if the client sent one."""
    if state is not None:
        params = [*params, ("state", state)]
    return redirect(append_query(uri, urlencode(params, safe=safe), fragment=fragment))


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
    expires_at: float | None  # None: never expires (GitHub's OAuth-App tokens)
    refresh_token: str | None = None
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False  # refused, yet told apart from an unknown token (Facebook)
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


class Problem(Exception):
    """A refused token or revocation request, by reason; the provider's `ErrorStyle` words it.

    Reasons are "group.detail": client.missing|unknown|secret, code.unknown|used|expired|
    client|redirect, pkce.missing|wrong|unexpected|required, refresh.unknown|expired|client|
    reused, grant_type, token.missing|unknown.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail

    def pick(self, *tables: Mapping[str, T]) -> T:
        """The entry for this reason, else for its group, from the first table that has one."""
        for table in tables:
            for key in (self.reason, self.reason.partition(".")[0]):
                if key in table:
                    return table[key]
        raise KeyError(self.reason)


class ErrorStyle(Protocol):
    """How a provider answers a refused request and an outage of its token endpoint."""

    def refuse(self, problem: Problem) -> Response: ...

    def unavailable(self, status: int) -> Response: ...


@dataclass
class OAuthErrors:
    """RFC 6749 JSON errors; `table` rewords them by reason or group (see `Problem`)."""

    table: Mapping[str, tuple[str, int, str]] = field(default_factory=dict)
    outage: tuple[str, str] = ("temporarily_unavailable", "The server is unavailable.")

    def refuse(self, problem: Problem) -> Response:
        error, status, description = problem.pick(self.table, RFC_ERRORS)
        body = dict(error=error, error_description=description.format(detail=problem.detail))
        return json_response(body, status)

    def unavailable(self, status: int) -> Response:
        error, description = self.outage
        return json_response(dict(error=error, error_description=description), status)


@dataclass
class OAuthServer:
    """One provider's OAuth 2 rules and state; the standard endpoints with hooks to override."""

    name: str
    _: KW_ONLY
    code: Secret = Secret("", 43, URLSAFE)
    access: Secret = Secret("", 43, URLSAFE)
    refresh: Secret = Secret("", 64, URLSAFE)
    code_lifetime: int = 600
    access_lifetime: int = 3600  # unless the provider has an `expires_in` switch
    refresh_lifetime: int | None = None  # None: refresh tokens never expire
    # Client authentication methods (RFC 6749 §2.3.1) in the order they are looked for.
    client_auth: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    # Where token and revocation requests may carry parameters: "args", "form", "json".
    params_in: tuple[str, ...] = ("form",)
    default_grant: str | None = None  # the grant a token request without grant_type gets
    redirect_check: str = "exact"  # "if_sent": only a redirect_uri the token request repeats
    burn_code_on_error: bool = True  # a refused redemption spends the code all the same
    verifier_without_challenge: str = "ignore"  # "refuse": a stray code_verifier is an error
    refresh_with: str = "always"  # codes bring refresh tokens: always | offline_access | never
    rotate_refresh: bool = False  # refresh retires the token used (and its access tokens)
    reuse_detection: bool = False  # a retired refresh token used again ends its whole family
    revoke_auth: bool = True  # RFC 7009 §2.1: revocation authenticates the client
    revoke_unknown: str = "ok"  # RFC 7009 §2.2: 200 for an unknown token; "refuse": 400
    # Endpoint name -> path (or paths) under `prefix`; the names count requests.
    routes: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    prefix: str = ""  # default "/<name>"
    errors: ErrorStyle = field(default_factory=OAuthErrors)

    METHODS: ClassVar[dict[str, list[str]]] = dict(
        authorize=["GET", "POST"], token=["POST"], revoke=["POST"]
    )

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"/{self.name}"
        self._blueprint: Blueprint | None = None

    # --- declarations read at request time -----------------------------------------------

    @property
    def store(self) -> Store:
        return state().store(self.name)

    @property
    def client_id(self) -> str:
        return state().settings.client_id(self.name)

    @property
    def client_secret(self) -> str:
        return state().settings.client_secret(self.name)

    @property
    def registered_redirect(self) -> str:
        return state().settings.callback(self.name)

    def switch(self, name: str) -> Any:
        return state().switch(self.name, name)

    def option(self, name: str, default: Any = None) -> Any:
        """A switch this provider may not have: its value, else `default`."""
        mock = state()
        with mock.lock:
            return mock.switches[self.name].get(name, default)

    def base(self) -> str:
        """This provider's absolute base URL (the mock's, then `prefix`)."""
        return base_url() + self.prefix

    def url(self, endpoint: str) -> str:
        path = self.routes[endpoint]
        return self.base() + (path if isinstance(path, str) else path[0])

    # --- mounting --------------------------------------------------------------------------

    def blueprint(self) -> Blueprint:
        """The declared `routes`, each served by the `<name>_view` method (made once)."""
        if self._blueprint is None:
            self._blueprint = Blueprint(self.name, __name__)
            for endpoint, paths in self.routes.items():
                view = getattr(self, f"{endpoint}_view")
                methods = self.METHODS.get(endpoint, ["GET"])
                for path in (paths,) if isinstance(paths, str) else paths:
                    self._blueprint.add_url_rule(path, endpoint, view, methods=methods)
        return self._blueprint

    def register(self, app: Flask) -> list[str]:
        app.register_blueprint(self.blueprint(), url_prefix=self.prefix)
        return [self.name]

    # --- clients and parameters ------------------------------------------------------------

    def params(self) -> dict[str, str]:
        """The request's parameters from where this provider reads them."""
        data: dict[str, str] = {}
        if "args" in self.params_in:
            data.update(request.args.items())
        if "form" in self.params_in:
            data.update(request.form.items())
        body = request.get_json(silent=True) if "json" in self.params_in else None
        if isinstance(body, dict):  # octokit sends JSON
            data.update({key: "" if v is None else str(v) for key, v in body.items()})
        return data

    def client_ok(self, client_id: str, secret: str) -> bool:
        return client_id == self.client_id and hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        )

    def authenticate(self, data: Mapping[str, str]) -> str:
        """The client's id, by the first declared method the request uses; else a Problem."""
        found: tuple[str, str] | None = None
        for method in self.client_auth:
            if method == "client_secret_basic":
                found = basic_credentials()
            elif data.get("client_id"):
                found = (data["client_id"], data.get("client_secret", ""))
            if found:
                break
        if not found or not found[0]:
            raise Problem("client.missing")
        if found[0] != self.client_id:
            raise Problem("client.unknown")
        if not self.client_ok(*found):
            raise Problem("client.secret")
        return found[0]

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
            if self.rotate_refresh:
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

    # --- the standard endpoints and their hooks --------------------------------------------

    def authorize_view(self, **path: str) -> Response:
        """RFC 6749 §4.1.1: check the request, ask (or let the switches decide), redirect."""
        req = AuthRequest.parse(self.parse_scopes)
        refused = self.refuse_authorization(req)
        if refused is not None:
            return refused

        def approve(user: str) -> Response:
            consent_shown = self.grant_consent(req.client_id, user) or "consent" in req.prompt
            code = self.new_code(req, user, offline=self.offline(req, consent_shown))
            return self.approved(req, user, code, consent_shown)

        return decide(
            self.name,
            client_id=req.client_id,
            scopes=req.scopes,
            redirect_uri=req.redirect_uri,
            approve=approve,
            deny=lambda: self.denied(req),
        )

    def parse_scopes(self, raw: str) -> list[str]:
        return raw.split()

    def refuse_authorization(self, req: AuthRequest) -> Response | None:
        """A bad client or redirect URI gets a page, never a redirect (§4.1.2.1); any other
        bad parameter is sent back to the client."""
        if req.client_id != self.client_id:
            message = f"No client with client_id {req.client_id!r}."
            return error_page(self.name, "Unknown client", message, 400)
        if req.redirect_uri != self.registered_redirect:
            message = f"redirect_uri={req.redirect_uri!r} is not registered for this client."
            return error_page(self.name, "Redirect URI mismatch", message, 400)
        problem = self.authorization_problem(req)
        if problem is None:
            return None
        error, description = problem
        query = [("error", error), ("error_description", description)]
        return redirect_back(req.redirect_uri, query, req.state)

    def authorization_problem(self, req: AuthRequest) -> tuple[str, str] | None:
        if req.response_type != "code":
            return "unsupported_response_type", "Only response_type=code is supported."
        if req.challenge and req.method not in ("plain", "S256"):
            return "invalid_request", "code_challenge_method must be plain or S256."
        return None

    def offline(self, req: AuthRequest, consent_shown: bool) -> bool:
        """Whether the code brings a refresh token (`refresh_with`; OIDC Core §11 for
        offline_access: only when the consent screen was shown)."""
        if self.refresh_with == "offline_access":
            return "offline_access" in req.scopes and consent_shown
        return self.refresh_with == "always"

    def callback_params(self, req: AuthRequest, code: str) -> list[tuple[str, str]]:
        return [("code", code)]

    def approved(self, req: AuthRequest, user: str, code: str, consent_shown: bool) -> Response:
        return redirect_back(req.redirect_uri, self.callback_params(req, code), req.state)

    def denied(self, req: AuthRequest) -> Response:
        return redirect_back(req.redirect_uri, [("error", "access_denied")], req.state)

    def token_view(self, **path: str) -> Response:
        """The token endpoint: outage switches, client authentication, then the grant."""
        pause(self.name)
        status = self.switch("token_http_status")
        if status:
            return no_store(self.errors.unavailable(int(status)))
        try:
            refused = self.before_token()
            if refused is not None:
                return refused
            data = self.params()
            client_id = self.authenticate(data)
            grant_type = data.get("grant_type") or self.default_grant or ""
            grant = self.grants().get(grant_type)
            if grant is None:
                raise Problem("grant_type", grant_type)
            return no_store(grant(client_id, data))
        except Problem as problem:
            return no_store(self.errors.refuse(problem))

    def before_token(self) -> Response | None:
        """A provider's own refusal before anything is checked (e.g. a rate limit)."""
        return None

    def grants(self) -> dict[str, Grant]:
        return {"authorization_code": self.code_grant, "refresh_token": self.refresh_grant}

    def code_grant(self, client_id: str, data: dict[str, str]) -> Response:
        record = self.redeem(client_id, data)
        refresh = None
        if record.offline:
            refresh = self.new_refresh(record.user, client_id, record.scopes)
        return self.token_answer(record, client_id, refresh, new_refresh=True)

    def refresh_grant(self, client_id: str, data: dict[str, str]) -> Response:
        value = data.get("refresh_token", "")
        if self.option("refresh") == "invalid_grant":
            self.kill_refresh(value)  # the switch models a grant revoked or expired meanwhile
        record = self.use_refresh(client_id, value)
        if self.rotate_refresh:
            value = self.new_refresh(record.user, client_id, record.scopes, family=record.family)
        return self.token_answer(record, client_id, value, new_refresh=self.rotate_refresh)

    def token_answer(
        self, grant: Code | RefreshToken, client_id: str, refresh: str | None, *, new_refresh: bool
    ) -> Response:
        """RFC 6749 §5.1: a new access token for the grant's user and scopes."""
        lifetime = int(self.option("expires_in", self.access_lifetime))
        access = self.new_access(
            grant.user, client_id, grant.scopes, lifetime, refresh_token=refresh
        )
        body: dict[str, Any] = dict(access_token=access, expires_in=lifetime)
        if refresh and new_refresh:
            body["refresh_token"] = refresh
        body.update(scope=self.token_scope(grant.scopes), token_type="Bearer")
        nonce = grant.nonce if isinstance(grant, Code) else None
        body.update(self.token_extras(grant.user, grant.scopes, access, nonce))
        return json_response(body)

    def token_scope(self, scopes: list[str]) -> str:
        return " ".join(scopes)

    def token_extras(
        self, user: str, scopes: list[str], access: str, nonce: str | None
    ) -> dict[str, Any]:
        """More fields of a token answer (an OpenID provider's `id_token`)."""
        return {}

    def revoke_view(self, **path: str) -> Response:
        """RFC 7009: authenticate the client (`revoke_auth`), end the token and its pair, and
        withdraw the consent; an unknown token is done already unless `revoke_unknown`."""
        try:
            data = self.params()
            if self.revoke_auth:
                self.authenticate(data)
            value = data.get("token", "")
            if not value:
                raise Problem("token.missing")
            record = self.revoke(value)
            if record is None and self.revoke_unknown == "refuse":
                raise Problem("token.unknown")
        except Problem as problem:
            return self.errors.refuse(problem)
        if record is not None:
            self.withdraw_consent(record.client_id, record.user)
        return json_response({})
