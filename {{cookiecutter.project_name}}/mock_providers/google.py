"""Mock Google: OpenID Connect the way accounts.google.com and oauth2.googleapis.com do it.

Quirks kept on purpose: a bad client or redirect URI gets an error *page* (never a redirect
back), the callback carries the expanded scope list plus authuser/prompt, a refresh token
comes only with access_type=offline on a consent screen, refresh never rotates it, a refresh
token refused once stays refused, revoking withdraws the consent (the next sign-in shows the
consent screen and brings a refresh token again), the revoke endpoint answers GET with 404,
an unknown token at revocation is a 400, and the certs (JWKS) carry Google's Cache-Control.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, quote_plus

from flask import Flask, abort, redirect, request
from werkzeug.wrappers import Response

from .core import URLSAFE, append_query, base_url, json_response
from .facts import (
    MockControl,
    MockFacts,
    RateLimit,
    RefreshFacts,
    refresh_refused,
    revoked_at_endpoint,
    userinfo_takes,
)
from .oauth import AccessToken, AuthRequest, OAuthErrors, Secret
from .openid_provider import OPENID_CHOICES, OpenIDProvider, openid_switches
from .pages import error_page, persona_avatar, persona_with
from .settings import MockSettings

NAME = "google"
TITLE = "Google"
# The app's credentials here (MockSettings.credentials), shaped like real ones.
CLIENT = ("mock-google-client-id.apps.googleusercontent.com", "mock-google-client-secret")
ISSUER = "https://accounts.google.com"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"
SCOPE_URLS = {"email": EMAIL_SCOPE, "profile": PROFILE_SCOPE}
SCOPE_ALIASES = {url: name for name, url in SCOPE_URLS.items()}

PERSONAS: dict[str, dict[str, Any]] = {
    "ada": dict(
        sub="104612381937451032001",
        email="ada.lovelace@gmail.com",
        name="Ada Lovelace",
        given_name="Ada",
        family_name="Lovelace",
        hd=None,
    ),
    "grace": dict(
        sub="117293840192837465002",
        email="grace@example.com",
        name="Grace Hopper",
        given_name="Grace",
        family_name="Hopper",
        hd="example.com",
    ),
}
PERSONA_LABELS = {
    "ada": "Ada Lovelace, ada.lovelace@gmail.com (personal Gmail account, no hd)",
    "grace": "Grace Hopper, grace@example.com (Google Workspace, hd=example.com)",
}

SWITCHES: dict[str, Any] = dict(
    openid_switches(iss="https", expires_in=3599, certs_max_age=21600),
    hd=None,
)
CHOICES: dict[str, tuple[Any, ...]] = dict(OPENID_CHOICES)

# Google's token-endpoint and revocation answers, by refusal (see oauth.Problem).
ERRORS = OAuthErrors(
    {
        "client.missing": ("invalid_request", 400, "Could not determine client ID from request."),
        "client.unknown": ("invalid_client", 401, "The OAuth client was not found."),
        "client.secret": ("invalid_client", 401, "Unauthorized"),
        "grant_type": ("unsupported_grant_type", 400, "Invalid grant_type: {detail}"),
        "code": ("invalid_grant", 400, "Bad Request"),
        "code.redirect": ("redirect_uri_mismatch", 400, "Bad Request"),
        "pkce.missing": ("invalid_grant", 400, "Missing code verifier."),
        "pkce": ("invalid_grant", 400, "Invalid code verifier."),
        "refresh": ("invalid_grant", 400, "Token has been expired or revoked."),
        "token": ("invalid_token", 400, "Token expired or revoked"),
    },
    outage=("internal_failure", "Backend Error"),
)
DISCOVERY: dict[str, Any] = dict(
    response_types_supported=[
        "code",
        "token",
        "id_token",
        "code token",
        "code id_token",
        "token id_token",
        "code token id_token",
        "none",
    ],
    scopes_supported=["openid", "email", "profile"],
    claims_supported=[
        "aud",
        "email",
        "email_verified",
        "exp",
        "family_name",
        "given_name",
        "iat",
        "iss",
        "name",
        "picture",
        "sub",
    ],
    grant_types_supported=[
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],
)


def short_scopes(scopes: list[str]) -> set[str]:
    return {SCOPE_ALIASES.get(scope, scope) for scope in scopes}


def expand_scopes(scopes: list[str], first: list[str], urls: list[str]) -> list[str]:
    """`first` (short names wanted), the URLs of `urls`, then the other scopes as sent."""
    wanted = short_scopes(scopes)
    out = [name for name in first if name in wanted]
    out += [SCOPE_URLS[name] for name in urls if name in wanted]
    return out + [s for s in scopes if s not in ("openid", "email", "profile", *SCOPE_ALIASES)]


def callback_scope(scopes: list[str]) -> str:
    """The callback's `scope`: short names, then their URLs, then openid, as Google sends it."""
    out = expand_scopes(scopes, ["email", "profile"], ["profile", "email"])
    return " ".join(out + (["openid"] if "openid" in scopes else []))


def picture_url(persona: dict[str, Any]) -> str:
    return f"{base_url()}/google/a/{persona['sub']}=s96-c"


class Google(OpenIDProvider):
    """Where Google is not the book (see the module's docstring)."""

    METHODS = dict(OpenIDProvider.METHODS, revoke=["GET", "POST"])

    def refuse_authorization(self, req: AuthRequest) -> Response | None:
        if req.client_id != self.client_id:
            return error_page(
                NAME,
                "Access blocked: Authorization Error",
                "The OAuth client was not found. Error 401: invalid_client "
                f"(client_id={req.client_id!r})",
                401,
            )
        if req.redirect_uri != self.registered_redirect:
            return error_page(
                NAME,
                "Access blocked: This app's request is invalid",
                "Error 400: redirect_uri_mismatch. You can't sign in because this app sent an "
                f"invalid request. redirect_uri={req.redirect_uri!r} is not registered for this "
                f"client (registered: {self.registered_redirect!r}).",
                400,
            )
        problem = None
        if req.response_type != "code":
            problem = "Required parameter is missing or unsupported: response_type"
        elif not req.scopes:
            problem = "Missing required parameter: scope"
        elif req.challenge and req.method not in ("plain", "S256"):
            problem = "Invalid code_challenge_method"
        if problem is None:
            return None
        message = f"Error 400: invalid_request. {problem}"
        return error_page(NAME, "Access blocked: Authorization Error", message, 400)

    def offline(self, req: AuthRequest, consent_shown: bool) -> bool:
        return request.args.get("access_type") == "offline" and consent_shown

    def approved(self, req: AuthRequest, user: str, code: str, consent_shown: bool) -> Response:
        """Google's callback, to the byte: state first, its scope list, authuser, hd, prompt."""
        query = [f"state={quote_plus(req.state)}"] if req.state is not None else []
        query += [
            f"code={quote(code, safe='')}",
            f"scope={quote_plus(callback_scope(req.scopes), safe=':/')}",
            "authuser=0",
        ]
        if PERSONAS[user]["hd"]:
            query.append(f"hd={quote_plus(PERSONAS[user]['hd'])}")
        query.append(f"prompt={'consent' if consent_shown else 'none'}")
        query += [f"iss={quote_plus(value)}" for _, value in self.response_iss()]  # switched on
        return redirect(append_query(req.redirect_uri, "&".join(query)))

    def token_scope(self, scopes: list[str]) -> str:
        """The token answer's `scope`: openid, then full URLs only."""
        head = ["openid"] if "openid" in short_scopes(scopes) else []
        return " ".join(head + expand_scopes(scopes, [], ["email", "profile"]))

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        persona = PERSONAS[user]
        wanted = short_scopes(scopes)
        claims: dict[str, Any] = dict(sub=persona["sub"])
        hd = persona["hd"] if self.switch("hd") is None else self.switch("hd")
        if hd:
            claims["hd"] = hd
        if "email" in wanted:
            claims.update(email=persona["email"], email_verified=self.switch("email_verified"))
        if "profile" in wanted:
            claims.update(name=persona["name"], picture=picture_url(persona))
            claims.update(given_name=persona["given_name"], family_name=persona["family_name"])
        return claims

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        """userinfo has the persona's own hd whatever the `hd` switch says."""
        persona = PERSONAS[record.user]
        claims = self.id_claims(record.user, record.scopes)
        claims.pop("hd", None)
        return dict(claims, hd=persona["hd"]) if persona["hd"] else claims

    def quota_response(self) -> Response:
        message = (
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of "
            "service 'openidconnect.googleapis.com'."
        )
        error = dict(code=429, message=message, status="RESOURCE_EXHAUSTED")
        return json_response(dict(error=error), 429)

    def invalid_token_response(self) -> Response:
        return json_response(
            dict(error="invalid_request", error_description="Invalid Credentials"),
            401,
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                'error="invalid_token"'
            },
        )

    def revoke_view(self, **path: str) -> Response:
        """POST only, like oauth2.googleapis.com/revoke (a GET there is a plain 404)."""
        if request.method != "POST":
            abort(404)
        return super().revoke_view()


PROVIDER = Google(
    NAME,
    personas=PERSONAS,
    issuer=ISSUER,
    iss_aliases=dict(https=ISSUER, bare="accounts.google.com"),
    code=Secret("4/0A", 90, URLSAFE),
    access=Secret("ya29.a0", 160, URLSAFE),
    refresh=Secret("1//0g", 100, URLSAFE),
    params_in=("args", "form"),
    revoke_auth=False,
    revoke_unknown="refuse",
    routes=dict(
        discovery="/.well-known/openid-configuration",
        authorize="/o/oauth2/v2/auth",
        token="/token",
        userinfo=("/v1/userinfo", "/oauth2/v3/userinfo"),
        revoke="/revoke",
        certs="/oauth2/v3/certs",
    ),
    errors=ERRORS,
    discovery=DISCOVERY,
)
bp = PROVIDER.blueprint()


def register(app: Flask) -> list[str]:
    return PROVIDER.register(app)


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    return {
        "GOOGLE_CLIENT_ID": settings.client_id(NAME),
        "GOOGLE_CLIENT_SECRET": settings.client_secret(NAME),
        "GOOGLE_SERVER_METADATA_URL": f"{base}/google/.well-known/openid-configuration",
    }


@bp.get("/a/<path:name>")
def picture(name: str) -> Response:
    sub = name.split("=")[0]
    return persona_avatar(persona_with(PERSONAS, "sub", sub), sub)


# --- what the cross-provider tests need to know (mock_providers/facts.py) -----------------

FACT_DISCOVERY = "GOOGLE_SERVER_METADATA_URL"


def fact_unverified_email(control: MockControl) -> str:
    control.switch(NAME, email_verified=False)
    return PERSONAS["ada"]["email"]


FACTS = MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=True,
    unverified_email=fact_unverified_email,
    profile_endpoint="userinfo",
    revoke_endpoint="revoke",
    login_calls=1,
    api_variable=FACT_DISCOVERY,
    api_path="/.well-known/openid-configuration",
    issuer="https://accounts.google.com",
    refresh=RefreshFacts(
        expiring={"expires_in": 60},
        long_lived={"expires_in": 3599},
        kill=refresh_refused(NAME, FACT_DISCOVERY, "GOOGLE"),
        reconsent={"access_type": "offline", "prompt": "consent"},
    ),
    most_tokens={"expires_in": 60},
    token_works=userinfo_takes(FACT_DISCOVERY),
    remove_app=revoked_at_endpoint(FACT_DISCOVERY, "GOOGLE"),  # as "remove access" does
    token_refused={"userinfo": "unauthorized"},
    rate_limits=(RateLimit("quota", {"userinfo": "quota"}, {"userinfo": "ok"}, (1, 3600)),),
    malformed_settings={"GOOGLE_CLIENT_ID": "123456789012-abc.example.com"},
    malformed_findings=("GOOGLE_CLIENT_ID",),
)
