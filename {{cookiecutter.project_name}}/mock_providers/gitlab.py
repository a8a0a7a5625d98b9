"""Mock GitLab: gitlab.com or a self-managed instance, OpenID Connect over Doorkeeper.

Quirks kept on purpose: the issuer is the instance's URL; the ID token lives 120 s, has no
azp and of the person only sub, sub_legacy, email, email_verified, groups_direct and
auth_time, so the profile is read from /api/v4/user (an integer `id`; `confirmed_at` null
while the email is unconfirmed), which needs the read_user scope; access tokens live 7200 s,
token answers carry `created_at`, and every refresh retires the refresh token used (it is
then refused with invalid_grant); a rate limit is a plain-text 429 with RateLimit-* headers.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import Flask
from werkzeug.http import http_date
from werkzeug.wrappers import Response

from .core import json_response
from .facts import (
    MockControl,
    MockFacts,
    RateLimit,
    RefreshFacts,
    bearer_works,
    revoked_at_endpoint,
    spent_elsewhere,
)
from .oauth import AccessToken, OAuthErrors, Secret
from .openid_provider import OPENID_CHOICES, OpenIDProvider, openid_switches
from .pages import persona_avatar, persona_with
from .settings import MockSettings

NAME, TITLE = "gitlab", "GitLab"
DISCOVERY = "/.well-known/openid-configuration"
HEX = "0123456789abcdef"  # Doorkeeper's :hex generator: codes and tokens are 64 of these
PERSONAS: dict[str, dict[str, Any]] = {
    "ada": dict(sub="9182736", username="ada", name="Ada Lovelace", email="ada@example.com"),
    "grace": dict(sub="4451623", username="grace", name="Grace Hopper", email="grace@example.org"),
}
PERSONAS["ada"].update(public_email=None, groups=[])
PERSONAS["grace"].update(public_email="grace@example.org", groups=["navy/cobol"])
PERSONA_LABELS = {
    "ada": "Ada Lovelace, @ada, ada@example.com (no public email, no group)",
    "grace": "Grace Hopper, @grace, grace@example.org (public email, group navy/cobol)",
}
SWITCHES: dict[str, Any] = dict(
    openid_switches(id_token_lifetime=120, expires_in=7200), azp=None, retry_after=True
)
CHOICES: dict[str, tuple[Any, ...]] = dict(OPENID_CHOICES, retry_after=(True, False))
# Doorkeeper's answers (config/locales/doorkeeper.en.yml of the doorkeeper gem).
GRANT = (
    "invalid_grant",
    400,
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client.",
)
CLIENT = (
    "invalid_client",
    401,
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method.",
)
ERRORS = OAuthErrors(
    {"client": CLIENT, **dict.fromkeys(("code", "code.redirect", "pkce", "refresh"), GRANT)}
)
SCOPES = ["api", "read_api", "read_user", "read_repository", "openid", "profile", "email"]


def avatar_url(persona: dict[str, Any]) -> str:
    return f"{PROVIDER.base()}/uploads/-/system/user/avatar/{persona['sub']}/avatar.png"


class GitLab(OpenIDProvider):
    """Where GitLab is not the book (see the module's docstring)."""

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """GitLab's doorkeeper_openid_connect.rb: the primary email with the `email` scope,
        else the public one (if any)."""
        persona = PERSONAS[user]
        legacy = hashlib.sha256(f"{persona['sub']}-secret-key-base".encode()).hexdigest()
        claims: dict[str, Any] = dict(sub=persona["sub"], sub_legacy=legacy)
        email = persona["email"] if "email" in scopes else persona["public_email"]
        if email:
            claims.update(email=email, email_verified=self.switch("email_verified"))
        return dict(claims, groups_direct=persona["groups"], auth_time=int(time.time()))

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        persona, login = PERSONAS[record.user], PERSONAS[record.user]["username"]
        claims = self.id_claims(record.user, record.scopes)
        del claims["groups_direct"], claims["auth_time"]  # in the ID token only
        claims.update(name=persona["name"], nickname=login, preferred_username=login)
        profile = f"{self.base()}/{login}"
        return dict(claims, profile=profile, picture=avatar_url(persona), groups=persona["groups"])

    def token_extras(
        self, user: str, scopes: list[str], access: str, nonce: str | None
    ) -> dict[str, Any]:
        return dict(super().token_extras(user, scopes, access, nonce), created_at=int(time.time()))

    def quota_response(self) -> Response:
        """Rack::Attack's 429: plain text and RateLimit-* headers, with Retry-After or not."""
        reset = int(time.time()) + 30
        headers = {"RateLimit-Name": "throttle_authenticated_api", "RateLimit-Limit": "2000"}
        headers.update({"RateLimit-Observed": "2001", "RateLimit-Remaining": "0"})
        headers.update({"RateLimit-Reset": str(reset), "RateLimit-ResetTime": http_date(reset)})
        if self.switch("retry_after"):
            headers["Retry-After"] = "30"
        return Response("Retry later\n", 429, headers=headers, mimetype="text/plain")

    def user_view(self, **path: str) -> Response:
        return self.user_api(self.current_user)

    def current_user(self, record: AccessToken) -> Response:
        """GET /api/v4/user (lib/api/entities/user_public.rb): read_user, read_api or api."""
        if not {"read_user", "read_api", "api"} & set(record.scopes):
            text = "The request requires higher privileges than provided by the access token."
            body = dict(error="insufficient_scope", error_description=text, scope="api read_user")
            return json_response(body, 403)
        p = PERSONAS[record.user]
        confirmed = None if self.switch("email_verified") is False else "2015-12-10T09:00:00.000Z"
        return json_response(
            dict(id=int(p["sub"]), username=p["username"], name=p["name"], state="active")
            | dict(avatar_url=avatar_url(p), web_url=f"{self.base()}/{p['username']}")
            | dict(public_email=p["public_email"], email=p["email"], confirmed_at=confirmed)
        )

    def avatar_view(self, sub: str) -> Response:
        return persona_avatar(persona_with(PERSONAS, "sub", sub), sub)


PROVIDER = GitLab(
    NAME,
    personas=PERSONAS,
    code=Secret("", 64, HEX),
    access=Secret("", 64, HEX),
    refresh=Secret("", 64, HEX),
    refresh_with="always",
    rotate_refresh=True,
    errors=ERRORS,
    discovery=dict(scopes_supported=SCOPES),
    routes=dict(
        discovery=DISCOVERY,
        authorize="/oauth/authorize",
        token="/oauth/token",
        userinfo="/oauth/userinfo",
        revoke="/oauth/revoke",
        certs="/oauth/discovery/keys",
        user="/api/v4/user",
        avatar="/uploads/-/system/user/avatar/<sub>/avatar.png",
    ),
)


def register(app: Flask) -> list[str]:
    return PROVIDER.register(app)


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    client_id, secret = settings.credentials(NAME)
    url = f"{base}/{NAME}"
    return {"GITLAB_CLIENT_ID": client_id, "GITLAB_CLIENT_SECRET": secret, "GITLAB_URL": url}


# --- what the cross-provider tests need to know (mock_providers/facts.py) -----------------


def fact_unverified_email(control: MockControl) -> str:
    control.switch(NAME, email_verified=False)  # the ID token says so; confirmed_at is null
    return PERSONAS["ada"]["email"]


FACTS = MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=True,
    unverified_email=fact_unverified_email,
    profile_endpoint="user",
    revoke_endpoint="revoke",
    login_calls=2,  # the token, then /api/v4/user
    api_variable="GITLAB_URL",
    issuer="https://gitlab.com",  # GitLab.com's; the mock's is its own URL + /gitlab
    refresh=RefreshFacts(
        expiring={"expires_in": 60},
        long_lived={"expires_in": 7200},
        kill=spent_elsewhere("GITLAB_URL", "GITLAB", DISCOVERY),
    ),
    most_tokens={"expires_in": 60},
    token_works=lambda env, token: bearer_works(f"{env['GITLAB_URL']}/api/v4/user", token),
    remove_app=revoked_at_endpoint("GITLAB_URL", "GITLAB", DISCOVERY),  # as "Revoke" does
    token_refused={"userinfo": "unauthorized"},
    rate_limits=(
        RateLimit("throttled", {"userinfo": "quota"}, {"userinfo": "ok"}, (30, 30)),
        RateLimit(
            "reset-only",
            {"userinfo": "quota", "retry_after": False},
            {"userinfo": "ok", "retry_after": True},
            (28, 30),
        ),
    ),
    malformed_settings={"GITLAB_CLIENT_ID": "gloas-" + "0" * 64},  # the secret, pasted there
    malformed_findings=("GITLAB_CLIENT_ID",),
)
