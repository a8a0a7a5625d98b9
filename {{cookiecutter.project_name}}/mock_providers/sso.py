"""Mock single sign-on: a company's OpenID provider by the book, at `{mock}/sso`.

Like panva's oidc-provider with its defaults (the paths too): the ID token has only `sub` when
an access token comes with it, the profile is userinfo's (OIDC Core 5.4); a refresh token only
with `offline_access` and a consent (Core 11), rotated; client_secret_basic first; revocation
authenticates the client (RFC 7009 2.1); callbacks carry `iss` (RFC 9207); the end-session
endpoint (RP-Initiated Logout 1.0) takes its own id_token_hint and the app's home page only.
"""

from __future__ import annotations

from typing import Any

from flask import request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response

from . import facts
from .core import json_response, state
from .oauth import AccessToken, redirect_back
from .openid_provider import OPENID_CHOICES, ROUTES, OpenIDProvider, openid_switches
from .pages import error_page
from .settings import MockSettings

NAME, TITLE, DISCOVERY = "sso", "Single sign-on", "/.well-known/openid-configuration"
VARIABLE = "OIDC_ISSUER"
CLIENT = ("mock-sso-client-id", "mock-sso-client-secret")
PERSONAS: dict[str, dict[str, Any]] = {
    "ada": dict(sub="5c1f0d6e-ada", name="Ada Lovelace", email="ada@example.com"),
    "grace": dict(sub="8e2b7a4f-grace", name="Grace Hopper", email="grace@example.org"),
}
for login, person in PERSONAS.items():  # the profile scope's claims (OIDC Core 5.4)
    person.update(preferred_username=login, given_name=person["name"].split()[0])
PERSONA_LABELS = {name: f"{p['name']}, @{name}, {p['email']}" for name, p in PERSONAS.items()}
SWITCHES: dict[str, Any] = dict(openid_switches(), end_session="ok")  # "unadvertised": none
CHOICES: dict[str, tuple[Any, ...]] = dict(OPENID_CHOICES, end_session=("ok", "unadvertised"))
PATHS = dict(ROUTES, authorize="/auth", userinfo="/me", revoke="/token/revocation")
PATHS.update(end_session="/session/end", avatar="/avatar/<sub>")  # panva's oidc-provider's
FAILED = "Logout failed"


class SingleSignOn(OpenIDProvider):
    """The book's OpenID provider, with an end-session endpoint."""

    METHODS = dict(OpenIDProvider.METHODS, end_session=["GET", "POST"])

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        return dict(sub=self.subject(self.personas[user]))  # the claims are userinfo's

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        claims = super().id_claims(record.user, record.scopes)
        if "profile" in record.scopes:
            claims["picture"] = self.avatar_url(self.personas[record.user])
        return claims

    def discovery_view(self, **path: str) -> Response:
        doc = super().discovery_view(**path).get_json()
        if self.switch("end_session") == "ok":
            doc["end_session_endpoint"] = self.url("end_session")
        return json_response(doc, headers={"Cache-Control": "public, max-age=3600"})

    def hinted_subject(self, id_token: str) -> str | None:
        """The `sub` of an ID token this provider issued to the client (it may have expired)."""
        ring = state().key_ring(self.name)
        try:
            claims = jwt.decode(id_token, KeySet([ring.current, ring.withdrawn])).claims
        except (JoseError, ValueError):
            return None
        ours = claims.get("iss") == self.issuer_url() and claims.get("aud") == self.client_id
        return str(claims.get("sub")) if ours else None

    def end_session_view(self, **path: str) -> Response:
        """RP-Initiated Logout 1.0 section 2: the person's session here ends; then back to
        the registered post_logout_redirect_uri (with `state`), or a signed-out page."""
        params, hint = request.values, request.values.get("id_token_hint")
        subject = self.hinted_subject(hint) if hint else None
        if hint and subject is None:
            return error_page(self.name, FAILED, "id_token_hint is not valid.", 400)
        back, client = params.get("post_logout_redirect_uri"), params.get("client_id")
        if client not in (None, self.client_id) or (back and not (client or subject)):
            return error_page(self.name, FAILED, "Unknown client.", 400)
        if back and back != state().settings.app_url.rstrip("/") + "/":
            text = f"post_logout_redirect_uri={back!r} is not registered for this client."
            return error_page(self.name, FAILED, text, 400)
        if not back:
            return error_page(self.name, "Signed out", "You are signed out.", 200)
        return redirect_back(back, [], params.get("state"))


PROVIDER = SingleSignOn(NAME, personas=PERSONAS, routes=PATHS, callback_iss=True)
PROVIDER.rotate_refresh = PROVIDER.reuse_detection = True  # a reused one ends its family
register = PROVIDER.register


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    client_id, secret = settings.credentials(NAME)
    return dict(OIDC_CLIENT_ID=client_id, OIDC_CLIENT_SECRET=secret, OIDC_ISSUER=f"{base}/{NAME}")


FACTS = facts.MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=True,
    unverified_email=facts.unverified_by_switch(NAME, PERSONAS["ada"]["email"]),
    revoke_endpoint="revoke",
    login_calls=2,  # the token, then userinfo
    api_variable=VARIABLE,
    issuer=facts.SAME_AS_DOCUMENT,  # OIDC_ISSUER: the mock's URL + /sso
    refresh=facts.expires_in_refresh(3600, kill=facts.spent_elsewhere(VARIABLE, "OIDC", DISCOVERY)),
    token_works=facts.userinfo_takes(VARIABLE, DISCOVERY),
    remove_app=facts.revoked_at_endpoint(VARIABLE, "OIDC", DISCOVERY),
    rate_limits=(facts.RateLimit("busy", {"userinfo": "quota"}, {"userinfo": "ok"}, (60, 60)),),
    malformed_settings={"OIDC_CLIENT_SECRET": CLIENT[0]},  # the client id, pasted twice
)
