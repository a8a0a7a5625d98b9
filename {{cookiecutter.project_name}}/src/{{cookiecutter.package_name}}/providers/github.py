"""GitHub: plain OAuth 2.0 (OAuth Apps and GitHub Apps), github.com or Enterprise Server.

Quirks handled here: token errors arrive as HTTP 200, the token body is form-encoded
unless JSON is asked for, a private email is only in /user/emails (which may 404 or 403),
`name` may be null, and the API refuses requests without a User-Agent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App

from .base import (
    Finding,
    Identity,
    InvalidProfile,
    Provider,
    ProviderConfig,
    RestartLogin,
    RevocationIncomplete,
    clean_email,
)

if TYPE_CHECKING:
    from ..tokens.vault import StoredToken

API_VERSION = "2022-11-28"
# OAuth Apps: "Ov23li…" or 20 hex (classic); GitHub Apps: "Iv1.…" or "Iv23li…".
CLIENT_ID = re.compile(r"^(Ov23li\w{14}|Iv1\.[0-9a-f]{16}|Iv23li\w{14}|[0-9a-f]{20})$")
CLIENT_SECRET = re.compile(r"^[0-9a-f]{40}$")


class GitHubProvider(Provider):
    name = "github"
    title = "GitHub"
    env_prefix = "GITHUB"
    console_name = "GitHub developer settings"
    console_url = "https://github.com/settings/developers"
    # Authorized OAuth Apps; a GitHub App's authorizations are at /settings/apps/authorizations.
    user_apps_url = "https://github.com/settings/applications"
    url_settings = {
        "GITHUB_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
    }
    scope = "read:user user:email"

    @classmethod
    def credential_findings(cls, config: ProviderConfig) -> list[Finding]:
        findings = []
        if not CLIENT_ID.match(config.client_id):
            findings.append(
                Finding(
                    "fail",
                    "GITHUB_CLIENT_ID does not look like a GitHub client id "
                    "(Ov23li…, Iv1.…, Iv23li… or 20 hex characters)",
                    f"Copy the Client ID of your OAuth App from {cls.console_url}.",
                )
            )
        if not CLIENT_SECRET.match(config.client_secret):
            findings.append(
                Finding(
                    "warn",
                    "GITHUB_CLIENT_SECRET is not 40 hex characters as GitHub's are",
                    "Generate a new client secret in the app's settings and copy it whole.",
                )
            )
        return findings

    @classmethod
    def probe_url(cls, config: ProviderConfig) -> str:
        return config.extra["GITHUB_API_URL"] + "/"

    @property
    def api_url(self) -> str:
        return self.config.extra["GITHUB_API_URL"]

    def registration(self) -> dict[str, Any]:
        web = self.config.extra["GITHUB_URL"]
        return {
            **super().registration(),
            "authorize_url": f"{web}/login/oauth/authorize",
            "access_token_url": f"{web}/login/oauth/access_token",
            "api_base_url": f"{self.api_url}/",
        }

    def protected_request_hook(self):
        def github_headers(url: str, headers: dict, body: Any) -> tuple:
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = API_VERSION
            return url, headers, body

        return github_headers

    def check_callback(self, args: Mapping[str, str]) -> None:
        # "Install & Authorize" on a GitHub App comes back without our state: the code
        # cannot be trusted, so start a normal login (the user is not asked again).
        if args.get("setup_action") and not args.get("state"):
            raise RestartLogin
        super().check_callback(args)

    def fetch_identity(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        response = client.get("user", token=token)
        if response.status_code != 200:
            raise self.api_error(response, "user")
        user = response.json()
        if not isinstance(user, dict):
            raise InvalidProfile("the user is not a JSON object")
        email = clean_email(user.get("email"))
        verified = email is not None
        # GitHub only lets a verified address be the public profile email; a private
        # one has to be read from /user/emails (one extra call, only when needed).
        if not email:
            email, verified = self.primary_email(client, token)
        return Identity(
            provider=self.name,
            subject=user.get("id"),  # an integer; Identity refuses a missing or null one
            username=user.get("login"),
            email=email,
            email_verified=verified,
            name=user.get("name") or user.get("login"),
            avatar_url=user.get("avatar_url"),
        )

    def primary_email(
        self, client: FlaskOAuth2App, token: dict[str, Any]
    ) -> tuple[str | None, bool]:
        response = client.get("user/emails", token=token, params={"per_page": 100})
        # 404: the token lacks user:email; 403: a GitHub App without the email permission.
        if response.status_code in (403, 404) and not self.is_rate_limited(response):
            return None, False
        if response.status_code != 200:
            raise self.api_error(response, "user/emails")
        listing = response.json()
        if not isinstance(listing, list):
            raise InvalidProfile("the email list is not a JSON list")
        emails: list[Mapping[str, Any]] = [e for e in listing if isinstance(e, dict)]
        chosen = (
            next((e for e in emails if e.get("primary") and e.get("verified")), None)
            or next((e for e in emails if e.get("verified")), None)
            or next((e for e in emails if e.get("primary")), None)
        )
        if not chosen:
            return None, False
        return chosen.get("email"), bool(chosen.get("verified"))

    def revoke(self, client: FlaskOAuth2App, token: StoredToken | None, subject: str) -> None:
        if token is None:  # nothing to ask with
            raise RevocationIncomplete("no_token")
        # Deleting the grant revokes every token of this app for the user (GitHub Apps'
        # refresh tokens included). It authenticates as the app, with Basic auth.
        url = f"{self.api_url}/applications/{self.config.client_id}/grant"
        response = self.call(
            lambda: client.delete(
                url,
                withhold_token=True,
                auth=(self.config.client_id, self.config.client_secret),
                json={"access_token": token.access_token},
                headers={"Accept": "application/vnd.github+json"},
            )
        )
        # 404/422: the token or grant is already gone.
        if response.status_code not in (204, 404, 422):
            raise self.api_error(response, "revoke")

    def is_rate_limited(self, response: requests.Response) -> bool:
        if response.status_code == 429:
            return True
        return response.status_code == 403 and (
            response.headers.get("x-ratelimit-remaining") == "0"
            or "retry-after" in response.headers
        )

    def retry_after(self, response: requests.Response) -> int:
        if "retry-after" in response.headers:
            return super().retry_after(response)
        try:
            return max(1, int(response.headers["x-ratelimit-reset"]) - int(time.time()))
        except (KeyError, ValueError):
            return 60
