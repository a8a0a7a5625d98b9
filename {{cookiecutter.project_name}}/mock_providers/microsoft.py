"""Mock Microsoft: the identity platform's v2.0 endpoints (login.microsoftonline.com) and
Graph's OpenID Connect userinfo, for work, school and personal accounts.

Quirks kept on purpose: every path starts with the tenant (common, organizations, consumers,
a tenant's id or domain) and an account outside it gets Microsoft's error page; the issuer
of common and organizations is a template each ID token fills with its `tid`; `sub` is
pairwise (per client id); ID tokens carry `tid`, `oid` and an email that nobody verified
(no `email_verified`); every sign-in with offline_access brings a refresh token and every
refresh a new one (the old one stays valid); errors carry AADSTS codes; Graph throttles with
429 and Retry-After; and nothing revokes a grant but the person, on their account page.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from . import facts
from .core import bearer_token, json_response
from .oauth import AccessToken, AuthRequest, OAuthErrors
from .openid_provider import OPENID_CHOICES, openid_switches, pairwise_subject
from .settings import MockSettings
from .tenants import TEMPLATE, TenantProvider

NAME, TITLE, DISCOVERY = "microsoft", "Microsoft", "/.well-known/openid-configuration"
REVOKE_SESSIONS = "/graph/v1.0/me/revokeSignInSessions"
LOGIN = "https://login.microsoftonline.com"  # the issuers' origin, wherever the mock runs
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"  # personal accounts' tenant
CONTOSO = "4f1e7c2a-93d0-4b8e-a6d5-0c3b9e8f7a61"  # a work and school tenant
# What the tenant in a path puts in the issuer.
TENANTS = {"common": TEMPLATE, "organizations": TEMPLATE, "consumers": CONSUMERS}
TENANTS |= {CONSUMERS: CONSUMERS, CONTOSO: CONTOSO, "contoso.onmicrosoft.com": CONTOSO}
PERSONAS: dict[str, dict[str, Any]] = {  # a personal account's oid is zeros, then its PUID
    "ada": dict(name="Ada Lovelace", email="ada@example.com", tid=CONTOSO),
    "grace": dict(name="Grace Hopper", email="grace.hopper@outlook.com", tid=CONSUMERS),
}
PERSONAS["ada"]["oid"] = "8d3b5f0e-2c47-4a9e-b1f6-7e0a9c4d2b58"
PERSONAS["grace"]["oid"] = "00000000-0000-0000-5c1d-2e8b7a4f9036"
PERSONA_LABELS = {
    "ada": "Ada Lovelace, ada@example.com (work or school account, tenant contoso)",
    "grace": "Grace Hopper, grace.hopper@outlook.com (personal Microsoft account)",
}
# Microsoft sends no `email_verified`: a value here adds one that the app must not believe.
SWITCHES: dict[str, Any] = dict(openid_switches(), email_verified=None, azp=None, tid=None)
CHOICES: dict[str, tuple[Any, ...]] = dict(OPENID_CHOICES, email_verified=(None, True, "true"))
AUTH_METHODS = "client_secret_post private_key_jwt client_secret_basic"  # as discovery lists
CLAIMS = "sub iss aud exp iat nonce name preferred_username oid tid ver email"
GRAPH_PHOTO = "https://graph.microsoft.com/v1.0/me/photo/$value"  # needs a token to load
# Graph throttles with 429 and a Retry-After (learn.microsoft.com/graph/throttling): 5 s here.
RETRY_AFTER = 5
ROUTES: dict[str, str | tuple[str, ...]] = dict(discovery=f"/<tenant>/v2.0{DISCOVERY}")
ROUTES.update({name: f"/<tenant>/oauth2/v2.0/{name}" for name in ("authorize", "token")})
ROUTES.update(certs="/<tenant>/discovery/v2.0/keys", userinfo="/graph/oidc/userinfo")
ROUTES.update(revoke_sessions=REVOKE_SESSIONS, apps="/consent/Manage")
SORRY = "Sorry, but we're having trouble signing you in."  # the heading of its error pages
PAGES = dict(  # its error pages, as ERROR_PAGES (oauth.py) and ACCOUNT_PAGE (tenants.py)
    redirect=(SORRY, "AADSTS50011: The redirect URI '{redirect_uri}' does not match."),
    account=(SORRY, "AADSTS50020: {user}'s account does not exist in tenant '{tenant}'."),
)
ERRORS = OAuthErrors(
    {  # https://learn.microsoft.com/entra/identity-platform/reference-error-codes
        "client": ("invalid_client", 401, "AADSTS7000215: Invalid client secret provided."),
        "client.unknown": ("unauthorized_client", 400, "AADSTS700016: Application not found."),
        "code": ("invalid_grant", 400, "AADSTS70008: The authorization code has expired."),
        "code.used": ("invalid_grant", 400, "AADSTS54005: Authorization code already redeemed."),
        "code.redirect": ("invalid_grant", 400, "AADSTS500112: The reply address does not match."),
        "pkce": ("invalid_grant", 400, "AADSTS501481: The Code_Verifier does not match."),
        "refresh": ("invalid_grant", 400, "AADSTS700082: The refresh token has expired."),
        "refresh.unknown": ("invalid_grant", 400, "AADSTS50173: The provided grant was revoked."),
    },
    outage=("temporarily_unavailable", "AADSTS90033: The service is temporarily unavailable."),
)


def pairwise(client_id: str, persona: dict[str, Any]) -> str:
    """`sub`: one per person and app, so apps cannot correlate people."""
    return pairwise_subject(client_id, persona["oid"])


class Microsoft(TenantProvider):
    """Where Microsoft is not the book (see the module's docstring)."""

    METHODS = dict(TenantProvider.METHODS, revoke_sessions=["POST"])

    def admits(self, tenant: str, account_tenant: str) -> bool:
        """`organizations` is every tenant's but the personal accounts'."""
        personal = tenant == "organizations" and account_tenant == CONSUMERS
        return super().admits(tenant, account_tenant) and not personal

    def offline(self, req: AuthRequest, consent_shown: bool) -> bool:
        return "offline_access" in req.scopes  # at every sign-in, not only on a consent screen

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """The standard claims, `tid` and `ver`; with `profile`, `oid` and the email as
        `preferred_username`."""
        claims = dict(super().id_claims(user, scopes), tid=self.token_tenant(user), ver="2.0")
        if "profile" in scopes:
            claims.update(oid=PERSONAS[user]["oid"], preferred_username=PERSONAS[user]["email"])
        return claims

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        claims = self.id_claims(record.user, record.scopes)
        shown: dict[str, Any] = {k: claims[k] for k in ("sub", "name", "email") if k in claims}
        given, _, family = PERSONAS[record.user]["name"].partition(" ")
        return dict(shown, given_name=given, family_name=family, picture=GRAPH_PHOTO)

    def quota_response(self) -> Response:
        error = dict(code="TooManyRequests", message="Too many requests. Please try again later.")
        return json_response(dict(error=error), 429, headers={"Retry-After": str(RETRY_AFTER)})

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
    unknown_tenant=("invalid_tenant", "AADSTS90002: Tenant '{tenant}' not found."),
    error_pages=PAGES,
    client_auth=("client_secret_basic", "client_secret_post"),
    keep_used_refresh=True,
    rotate_refresh=True,
    refresh_lifetime=90 * 86400,  # learn.microsoft.com/entra/identity-platform/refresh-tokens
    routes=ROUTES,
    errors=ERRORS,
    discovery=dict(
        token_endpoint_auth_methods_supported=AUTH_METHODS.split(),
        claims_supported=CLAIMS.split(),
    ),
)


register = PROVIDER.register


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    client_id, secret = settings.credentials(NAME)
    env = dict(MICROSOFT_CLIENT_ID=client_id, MICROSOFT_CLIENT_SECRET=secret)
    return dict(env, MICROSOFT_LOGIN_URL=f"{base}/{NAME}")


# --- what the cross-provider tests need to know (mock_providers/facts.py) -----------------

VARIABLE = "MICROSOFT_LOGIN_URL"
QUOTA = facts.RateLimit("throttled", {"userinfo": "quota"}, {"userinfo": "ok"}, (RETRY_AFTER,) * 2)
# The person signs out everywhere (Graph's revokeSignInSessions): the refresh token dies
# while the consent stays, so the next sign-in brings a new one.
KILL = facts.posted_by_person(VARIABLE, REVOKE_SESSIONS, 200, bearer=True)


FACTS = facts.MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=False,
    unverified_email=lambda control: str(PERSONAS["ada"]["email"]),  # it always is
    profile_endpoint="userinfo",
    revoke_endpoint=None,  # no revocation endpoint: only the person's own page removes the app
    login_calls=1,
    api_variable=VARIABLE,
    issuer=f"{LOGIN}/{TEMPLATE}/v2.0",  # common's, as its discovery document says
    refresh=facts.RefreshFacts(
        expiring={"expires_in": 60}, long_lived={"expires_in": 3600}, kill=KILL
    ),
    most_tokens={"expires_in": 60},
    token_works=facts.userinfo_takes(VARIABLE, f"/common/v2.0{DISCOVERY}"),
    remove_app=facts.posted_by_person(VARIABLE, "/consent/Manage", 204, sub="subject"),  # apps_view
    token_refused={"userinfo": "unauthorized"},
    rate_limits=(QUOTA,),
    # A client secret's ID pasted where its Value belongs.
    malformed_settings={"MICROSOFT_CLIENT_SECRET": "0b6e4c3a-5d2f-4e1a-9b8c-7d6e5f4a3b2c"},
    malformed_findings=("MICROSOFT_CLIENT_SECRET",),
)
