"""Mock Microsoft: login.microsoftonline.com's v2.0 endpoints and Graph's OIDC userinfo, with
the quirks README.md lists: tenant paths and issuers, a pairwise `sub`, unverified emails,
AADSTS codes, a new refresh token at each sign-in and refresh, Graph's 429, no revocation.
Sources: https://learn.microsoft.com/ + graph/throttling, entra/identity-platform/ +
refresh-tokens, id-token-claims-reference, reference-error-codes.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from . import facts
from .core import bearer_token, json_response
from .oauth import AccessToken, OAuthErrors
from .openid_provider import OPENID_CHOICES, openid_switches
from .tenants import TEMPLATE, TenantProvider

NAME, TITLE, DISCOVERY = "microsoft", "Microsoft", "/.well-known/openid-configuration"
VARIABLE = "MICROSOFT_LOGIN_URL"
LOGIN = "https://login.microsoftonline.com"  # the issuers' origin, wherever the mock runs
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"  # personal accounts' tenant
CONTOSO = "4f1e7c2a-93d0-4b8e-a6d5-0c3b9e8f7a61"  # a work and school tenant
TENANTS = {"common": TEMPLATE, "organizations": TEMPLATE, "consumers": CONSUMERS}  # path -> issuer
TENANTS |= {CONSUMERS: CONSUMERS, CONTOSO: CONTOSO, "contoso.onmicrosoft.com": CONTOSO}
PERSONAS: dict[str, dict[str, Any]] = {  # a personal account's oid is zeros, then its PUID
    "ada": dict(name="Ada Lovelace", email="ada@example.com", tid=CONTOSO),
    "grace": dict(name="Grace Hopper", email="grace.hopper@outlook.com", tid=CONSUMERS),
}
PERSONAS["ada"]["oid"] = "8d3b5f0e-2c47-4a9e-b1f6-7e0a9c4d2b58"
PERSONAS["grace"]["oid"] = "00000000-0000-0000-5c1d-2e8b7a4f9036"
PERSONA_LABELS = dict(ada="Ada Lovelace (work, contoso)", grace="Grace Hopper (personal account)")
SWITCHES = dict(openid_switches(), email_verified=None, azp=None, tid=None)  # no azp/email_verified
CHOICES: dict[str, tuple[Any, ...]] = dict(OPENID_CHOICES, email_verified=(None, True, "true"))
AUTH_METHODS = ["client_secret_post", "private_key_jwt", "client_secret_basic"]  # as listed
CLAIMS = ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "email"]  # no email_verified
CLAIMS += ["preferred_username", "oid", "tid", "ver"]
GRAPH_PHOTO = "https://graph.microsoft.com/v1.0/me/photo/$value"  # needs a token to load
ROUTES: dict[str, str | tuple[str, ...]] = dict(discovery=f"/<tenant>/v2.0{DISCOVERY}")
ROUTES.update({name: f"/<tenant>/oauth2/v2.0/{name}" for name in ("authorize", "token")})
ROUTES.update(certs="/<tenant>/discovery/v2.0/keys", userinfo="/graph/oidc/userinfo")
ROUTES.update(revoke_sessions="/graph/v1.0/me/revokeSignInSessions", apps="/consent/Manage")
SORRY = "Sorry, but we're having trouble signing you in."  # the heading of its error pages
AADSTS = dict(client=7000215, code=70008, pkce=501481, refresh=700082)  # by Problem reason
AADSTS |= {"client.unknown": 700016, "code.used": 54005, "code.redirect": 500112}
AADSTS |= {"refresh.unknown": 50173, "outage": 90033}  # or group (reference-error-codes)


class Microsoft(TenantProvider):
    METHODS = dict(TenantProvider.METHODS, revoke_sessions=["POST"])

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """Also `ver`; with `profile`, `oid` and the email as `preferred_username`."""
        p = PERSONAS[user]
        profile = dict(oid=p["oid"], preferred_username=p["email"]) if "profile" in scopes else {}
        return dict(super().id_claims(user, scopes), ver="2.0", **profile)

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        claims = self.id_claims(record.user, record.scopes)
        shown: dict[str, Any] = {k: claims[k] for k in ("sub", "name", "email") if k in claims}
        given, _, family = PERSONAS[record.user]["name"].partition(" ")
        return dict(shown, given_name=given, family_name=family, picture=GRAPH_PHOTO)

    def quota_response(self) -> Response:
        error = dict(code="TooManyRequests", message="Too many requests. Please try again later.")
        return json_response(dict(error=error), 429, headers={"Retry-After": "5"})

    def revoke_sessions_view(self, **path: str) -> Response:
        """Graph's revokeSignInSessions: the person's refresh tokens die, the consent stays."""
        record = self.live_access(bearer_token() or "")
        if record is None:
            return self.invalid_token_response()
        self.end_refresh_tokens(record.user)
        return json_response(dict(value=True))


PROVIDER = Microsoft(
    NAME,
    personas=PERSONAS,
    pairwise_from="oid",
    issuer=f"{LOGIN}/<tenant>/v2.0",
    tenants=TENANTS,
    excludes={"organizations": CONSUMERS},  # every tenant's but the personal accounts'
    unknown_tenant=("invalid_tenant", "AADSTS90002: Tenant '{tenant}' not found."),
    error_pages=dict(  # as ERROR_PAGES (oauth.py) and ACCOUNT_PAGE (tenants.py)
        redirect=(SORRY, "AADSTS50011: The redirect URI '{redirect_uri}' does not match."),
        account=(SORRY, "AADSTS50020: {user}'s account does not exist in tenant '{tenant}'."),
    ),
    offline_on_consent=False,
    keep_used_refresh=True,
    rotate_refresh=True,
    refresh_lifetime=90 * 86400,
    routes=ROUTES,
    errors=OAuthErrors(
        {"client.unknown": ("unauthorized_client", 400, "Application not found.")},
        codes={reason: f"AADSTS{code}" for reason, code in AADSTS.items()},
    ),
    url_variable=VARIABLE,
    discovery=dict(token_endpoint_auth_methods_supported=AUTH_METHODS, claims_supported=CLAIMS),
)
register = PROVIDER.register
app_env = PROVIDER.app_env

KILL = facts.posted_by_person(VARIABLE, str(ROUTES["revoke_sessions"]), 200, bearer=True)
FACTS = facts.MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=False,
    unverified_email=lambda control: str(PERSONAS["ada"]["email"]),  # it always is
    revoke_endpoint=None,  # no revocation endpoint: only the person's own page removes the app
    api_variable=VARIABLE,
    issuer=f"{LOGIN}/{TEMPLATE}/v2.0",  # common's, as its discovery document says
    refresh=facts.expires_in_refresh(3600, kill=KILL),
    token_works=facts.userinfo_takes(VARIABLE, f"/common/v2.0{DISCOVERY}"),
    remove_app=facts.posted_by_person(VARIABLE, "/consent/Manage", 204, sub="subject"),
    rate_limits=(facts.RateLimit("throttled", {"userinfo": "quota"}, {"userinfo": "ok"}, (5, 5)),),
    malformed_settings={"MICROSOFT_CLIENT_SECRET": "0b6e4c3a-5d2f-4e1a-9b8c-7d6e5f4a3b2c"},  # an ID
)
