"""Mock GitLab: gitlab.com or a self-managed instance, OpenID Connect over Doorkeeper.

Quirks kept: the issuer is the instance's URL; the ID token lives 120 s, has no azp and, of
the person, only sub, sub_legacy, email, email_verified and groups_direct, so the profile is
/api/v4/user (an integer `id`; `confirmed_at` null while the email is unconfirmed), which
needs the read_user scope; access tokens live 7200 s; each refresh retires the refresh token
used (then refused: invalid_grant); a rate limit is Rack::Attack's plain-text 429. Sources:
https://docs.gitlab.com/ + integration/openid_connect_provider/, integration/oauth_provider/,
api/oauth2/, api/users/, administration/settings/user_and_ip_rate_limits/.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from werkzeug.http import http_date
from werkzeug.wrappers import Response

from . import facts
from .core import json_response
from .oauth import AccessToken, Secret
from .openid_provider import OPENID_CHOICES, OpenIDProvider, openid_switches

NAME, TITLE, DISCOVERY = "gitlab", "GitLab", "/.well-known/openid-configuration"
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
SWITCHES = dict(openid_switches(id_token_lifetime=120, expires_in=7200), azp=None)
SWITCHES.update(retry_after=True, user_id=None)  # user_id: /api/v4/user's `id`, if not the sub
CHOICES: dict[str, tuple[Any, ...]] = dict(OPENID_CHOICES, retry_after=(True, False))
HEX64 = Secret("", 64, "0123456789abcdef")  # Doorkeeper's :hex codes and tokens
ROUTES: dict[str, str | tuple[str, ...]] = dict(discovery=DISCOVERY, user="/api/v4/user")
ROUTES.update({name: f"/oauth/{name}" for name in ("authorize", "token", "userinfo", "revoke")})
ROUTES.update(certs="/oauth/discovery/keys", avatar="/uploads/-/system/user/avatar/<sub>/")
THROTTLE = dict(Name="throttle_authenticated_api", Limit="2000", Observed="2001", Remaining="0")
QUOTA = facts.RateLimit("throttled", {"userinfo": "quota"}, {"userinfo": "ok"}, (30, 30))


class GitLab(OpenIDProvider):
    """Where GitLab is not the book (see the module's docstring)."""

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """doorkeeper_openid_connect.rb: the primary email with `email`, else the public one."""
        p = PERSONAS[user]
        legacy = hashlib.sha256(f"{p['sub']}-secret-key-base".encode()).hexdigest()
        claims: dict[str, Any] = dict(sub=p["sub"], sub_legacy=legacy, groups_direct=p["groups"])
        email = p["email"] if "email" in scopes else p["public_email"]
        if email:
            claims.update(email=email, email_verified=self.switch("email_verified"))
        return claims

    def userinfo_claims(self, record: AccessToken) -> dict[str, Any]:
        p, claims = PERSONAS[record.user], self.id_claims(record.user, record.scopes)
        claims.update(name=p["name"], nickname=p["username"], preferred_username=p["username"])
        claims.update(profile=f"{self.base()}/{p['username']}", picture=self.avatar_url(p))
        return {k: v for k, v in claims.items() if k != "groups_direct"} | {"groups": p["groups"]}

    def quota_response(self) -> Response:
        reset = int(time.time()) + 30
        headers = {f"RateLimit-{name}": value for name, value in THROTTLE.items()}
        headers.update({"RateLimit-Reset": str(reset), "RateLimit-ResetTime": http_date(reset)})
        retry = {"Retry-After": "30"} if self.switch("retry_after") else {}
        return Response("Retry later\n", 429, headers=headers | retry, mimetype="text/plain")

    def user_view(self, **path: str) -> Response:
        """GET /api/v4/user, as lib/api/entities/user_public.rb shows the person themself."""
        return self.user_api(self.current_user, scopes=("api", "read_api", "read_user"))

    def current_user(self, record: AccessToken) -> Response:
        p = PERSONAS[record.user]
        confirmed = None if self.switch("email_verified") is False else "2015-12-10T09:00:00Z"
        user = {k: p[k] for k in ("username", "name", "email", "public_email")}
        user["id"] = int(p["sub"]) if self.switch("user_id") is None else self.switch("user_id")
        user.update(state="active", web_url=f"{self.base()}/{p['username']}")
        return json_response(dict(user, avatar_url=self.avatar_url(p), confirmed_at=confirmed))


PROVIDER = GitLab(
    NAME,
    personas=PERSONAS,
    routes=ROUTES,
    code=HEX64,
    access=HEX64,
    refresh=HEX64,
    refresh_with="always",
    rotate_refresh=True,
    url_variable="GITLAB_URL",
    discovery=dict(scopes_supported=["api", "read_api", "read_user", "openid", "profile", "email"]),
)
register = PROVIDER.register
app_env = PROVIDER.app_env

SPENT = facts.spent_elsewhere("GITLAB_URL", "GITLAB", DISCOVERY)  # someone used it first
FACTS = facts.MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=True,
    unverified_email=facts.unverified_by_switch(NAME, PERSONAS["ada"]["email"]),
    profile_endpoint="user",
    revoke_endpoint="revoke",
    login_calls=2,  # the token, then /api/v4/user
    api_variable="GITLAB_URL",
    issuer=facts.SAME_AS_DOCUMENT,  # GITLAB_URL: gitlab.com, or the mock's URL + /gitlab
    refresh=facts.expires_in_refresh(7200, kill=SPENT),
    token_works=lambda env, token: facts.bearer_works(env["GITLAB_URL"] + "/api/v4/user", token),
    remove_app=facts.revoked_at_endpoint("GITLAB_URL", "GITLAB", DISCOVERY),  # as "Revoke" does
    rate_limits=(QUOTA,),  # Retry-After 30; test_gitlab.py: without it, RateLimit-Reset
    malformed_settings={"GITLAB_CLIENT_ID": "gloas-" + "0" * 64},  # the secret, pasted there
    malformed_findings=("GITLAB_CLIENT_ID",),
)
