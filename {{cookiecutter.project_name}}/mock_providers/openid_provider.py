"""An OpenID provider by the book, made from declarations: the base of every OIDC mock.

`OpenIDProvider(name, personas=..., routes=...)` serves discovery, authorize, token (with an
ID token), userinfo, revocation and the JWKS, signs with keys of its own (`keys.KeyRing`
per provider) and has the ID-token switches. A provider with quirks subclasses it and
overrides the hooks of `OAuthServer` and the few below (README.md); a provider without
quirks only declares (the README's "Adding a provider").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from flask import Flask, request
from werkzeug.wrappers import Response

from .core import b64url, bearer_token, json_response, pause, state
from .id_tokens import ID_TOKEN_CHOICES, id_token_switches, jwks_response, mint_id_token
from .oauth import AccessToken, AuthRequest, OAuthServer
from .pages import persona_avatar, persona_with

ROUTES: dict[str, str | tuple[str, ...]] = dict(
    discovery="/.well-known/openid-configuration",
    authorize="/authorize",
    token="/token",
    userinfo="/userinfo",
    revoke="/revoke",
    certs="/jwks",
)
# Discovery fields naming the endpoints (OpenID Connect Discovery §3, RFC 8414).
ENDPOINT_FIELDS = dict(
    authorize="authorization_endpoint",
    token="token_endpoint",
    userinfo="userinfo_endpoint",
    revoke="revocation_endpoint",
    certs="jwks_uri",
)
# The standard claims each scope asks for (OIDC Core §5.4), taken from the persona.
SCOPE_CLAIMS = dict(
    profile=("name", "given_name", "family_name", "preferred_username", "picture", "locale"),
    email=("email",),
)


def openid_switches(
    *,
    iss: str = "issuer",
    id_token_lifetime: int = 3600,
    expires_in: int = 3600,
    certs_max_age: int = 3600,
) -> dict[str, Any]:
    """The switches of an OpenID provider mock, with their defaults."""
    return dict(
        **id_token_switches(iss, id_token_lifetime),
        email_verified=True,
        refresh="ok",  # "invalid_grant": the refresh token presented dies for good
        userinfo="ok",
        # The discovery document's issuer: "issuer" (the mock's own), or any other value.
        discovery_issuer="issuer",
        # RFC 9207's `iss` in the callback: "declared" (as the provider does: `callback_iss`),
        # "correct", "missing" or "wrong" (each advertised in discovery), "wrong-unadvertised".
        response_iss="declared",
        expires_in=expires_in,
        certs_max_age=certs_max_age,
    )


def pairwise_subject(client_id: str, local_id: str) -> str:
    """A pairwise `sub` (OIDC Core §8.1): one per person and client, so that clients cannot
    correlate people."""
    return b64url(hashlib.sha256(f"{client_id}|{local_id}".encode()).digest())


OPENID_CHOICES: dict[str, tuple[Any, ...]] = dict(
    email_verified=(True, "true", False),
    **ID_TOKEN_CHOICES,
    refresh=("ok", "invalid_grant"),
    userinfo=("ok", "quota", "unauthorized"),
    discovery_issuer=("issuer", "https://evil.example"),
    response_iss=("declared", "correct", "missing", "wrong", "wrong-unadvertised"),
)
WRONG_ISSUER = "https://evil.example"  # the `wrong` answers' issuer: another provider's


@dataclass
class OpenIDProvider(OAuthServer):
    """Discovery, ID tokens, userinfo and JWKS on top of the OAuth 2 server."""

    _: KW_ONLY
    personas: dict[str, dict[str, Any]] = field(default_factory=dict)
    issuer: str | None = None  # None: the mock's own URL for this provider
    iss_aliases: dict[str, str] = field(default_factory=dict)  # more values of the iss switch
    callback_iss: bool = False  # RFC 9207: the callback carries `iss`
    discovery: dict[str, Any] = field(default_factory=dict)  # fields added or replaced
    refresh_with: str = "offline_access"
    # The persona's key whose pairwise_subject with the client id is `sub`; None: its `sub`.
    pairwise_from: str | None = None
    routes: dict[str, str | tuple[str, ...]] = field(default_factory=lambda: dict(ROUTES))

    METHODS: ClassVar[dict[str, list[str]]] = dict(
        OAuthServer.METHODS, userinfo=["GET", "POST"], apps=["POST"]
    )

    def register(self, app: Flask) -> list[str]:
        app.extensions["mock_providers"].key_ring(self.name)  # rotate-keys works from now on
        return super().register(app)

    def issuer_url(self) -> str:
        return self.issuer or self.base()

    # --- hooks -----------------------------------------------------------------------------

    def authorization_problem(self, req: AuthRequest) -> tuple[str, str] | None:
        if "openid" not in req.scopes:
            return "invalid_scope", "The scope must include openid."
        return super().authorization_problem(req)

    def callback_params(self, req: AuthRequest, code: str) -> list[tuple[str, str]]:
        return [*super().callback_params(req, code), *self.response_iss()]

    def error_params(self, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*params, *self.response_iss()]  # RFC 9207 2: error responses carry it too

    def response_iss(self) -> list[tuple[str, str]]:
        """The callback's `iss` parameter, if any, as the `response_iss` switch says."""
        how = self.switch("response_iss")
        if how == "correct" or (how == "declared" and self.callback_iss):
            return [("iss", self.issuer_url())]
        return [("iss", WRONG_ISSUER)] if how.startswith("wrong") else []

    def sends_iss(self) -> bool:
        """Whether discovery says callbacks carry `iss` (RFC 9207 section 3)."""
        how = self.switch("response_iss")
        return how in ("correct", "missing", "wrong") or (how == "declared" and self.callback_iss)

    def token_extras(
        self, user: str, scopes: list[str], access: str, nonce: str | None
    ) -> dict[str, Any]:
        if not self.switch("id_token") or "openid" not in scopes:
            return {}
        return {"id_token": state().mint(self.id_token(user, scopes, access, nonce))}

    def id_token(self, user: str, scopes: list[str], access: str, nonce: str | None) -> str:
        mock = state()
        with mock.lock:
            switches = dict(mock.switches[self.name])
        return mint_id_token(
            switches,
            mock.key_ring(self.name),
            issuer=self.token_issuer(user),
            aliases=self.iss_aliases,
            client_id=self.client_id,
            client_secret=self.client_secret,
            claims=self.id_claims(user, scopes),
            access_token=access,
            nonce=nonce,
        )

    def token_issuer(self, user: str) -> str:
        """The `iss` of a user's tokens (a multi-tenant issuer puts the tenant in it)."""
        return self.issuer_url()

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """`sub`, then the persona's standard claims for the scopes granted."""
        persona = self.personas[user]
        claims: dict[str, Any] = dict(sub=self.subject(persona))
        for scope in scopes:
            for name in SCOPE_CLAIMS.get(scope, ()):
                if persona.get(name) is not None:
                    claims[name] = persona[name]
        if "email" in claims and self.switch("email_verified") is not None:  # None: no claim
            claims["email_verified"] = self.switch("email_verified")
        return claims

    def subject(self, persona: dict[str, Any]) -> str:
        if self.pairwise_from is None:
            return str(persona["sub"])
        return pairwise_subject(self.client_id, persona[self.pairwise_from])

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        return self.id_claims(record.user, record.scopes)

    def avatar_url(self, persona: dict[str, Any]) -> str:
        """The persona's picture, where a declared `avatar` route (a path with <sub>) serves
        it: initials, so pictures work offline."""
        return self.url("avatar").replace("<sub>", persona["sub"])

    def avatar_view(self, sub: str) -> Response:
        return persona_avatar(persona_with(self.personas, "sub", sub), sub)

    def quota_response(self) -> Response:
        """The `userinfo="quota"` answer: RFC 6585's 429."""
        body = dict(error="rate_limited", error_description="Too many requests.")
        return json_response(body, 429, headers={"Retry-After": "60"})

    def invalid_token_response(self) -> Response:
        """RFC 6750 §3.1: a missing, unknown, expired or revoked bearer token."""
        body = dict(error="invalid_token", error_description="The access token is invalid.")
        return json_response(
            body, 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )

    # --- endpoints -------------------------------------------------------------------------

    def discovery_view(self, **path: str) -> Response:
        """The discovery document, every endpoint pointing at this mock."""
        named = self.switch("discovery_issuer")
        doc: dict[str, Any] = dict(issuer=self.issuer_url() if named == "issuer" else named)
        doc.update(
            {key: self.url(name) for name, key in ENDPOINT_FIELDS.items() if name in self.routes}
        )
        offline = ["offline_access"] if self.refresh_with == "offline_access" else []
        doc.update(
            response_types_supported=["code"],
            subject_types_supported=["public" if self.pairwise_from is None else "pairwise"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=["openid", "email", "profile", *offline],
            token_endpoint_auth_methods_supported=list(self.client_auth),
            claims_supported=["sub", "iss", "aud", "exp", "iat", "email", "email_verified", "name"],
            code_challenge_methods_supported=["plain", "S256"],
            grant_types_supported=list(self.grants()),
        )
        if "revoke" in self.routes and self.revoke_auth:
            doc["revocation_endpoint_auth_methods_supported"] = list(self.client_auth)
        if self.sends_iss():
            doc["authorization_response_iss_parameter_supported"] = True
        doc.update(self.discovery)
        return json_response(doc, headers={"Cache-Control": "public, max-age=3600"})

    def certs_view(self, **path: str) -> Response:
        """The JWKS, cacheable for `certs_max_age` seconds."""
        ring = state().key_ring(self.name)
        ec = self.switch("alg") == "ES256"  # the provider signs with an EC key: it publishes it
        return jwks_response(ring, int(self.switch("certs_max_age")), ec=ec)

    def apps_view(self, **path: str) -> Response:
        """A declared `apps` route: the person removes the app on their account page (POST
        sub=<the app's subject>): every token of the grant ends, and the consent (204)."""
        sub = request.form.get("sub", "")
        for user, persona in self.personas.items():
            if self.subject(persona) == sub:
                self.drop_grant(user, self.client_id)
                self.withdraw_consent(self.client_id, user)
        return Response(status=204)

    def userinfo_view(self, **path: str) -> Response:
        return self.user_api(lambda record: json_response(self.userinfo_claims(record)))

    def user_api(
        self, answer: Callable[[AccessToken], Response], scopes: tuple[str, ...] = ()
    ) -> Response:
        """A call with the person's access token (userinfo, or a provider's own user API): the
        `delay` and `userinfo` switches, the token, one of
        `scopes` if any are named (RFC 6750 3.1: else 403 insufficient_scope), `answer`."""
        pause(self.name)
        mode = self.switch("userinfo")
        if mode == "quota":
            return self.quota_response()
        record = self.live_access(bearer_token() or request.args.get("access_token", ""))
        if mode == "unauthorized" or record is None:
            return self.invalid_token_response()
        if scopes and not set(scopes) & set(record.scopes):
            text = "The request requires higher privileges than provided by the access token."
            body = dict(error="insufficient_scope", error_description=text, scope=" ".join(scopes))
            challenge = f'Bearer error="insufficient_scope", scope="{body["scope"]}"'
            return json_response(body, 403, headers={"WWW-Authenticate": challenge})
        return answer(record)
