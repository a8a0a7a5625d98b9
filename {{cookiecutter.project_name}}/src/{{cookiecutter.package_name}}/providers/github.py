"""GitHub: plain OAuth 2.0 (OAuth Apps and GitHub Apps), github.com or Enterprise Server.

Quirks handled here: token errors arrive as HTTP 200, the token body is form-encoded
unless JSON is asked for, a private email is only in /user/emails (which may 404 or 403),
a public one may be unverified, `name` may be null, the API refuses requests without a
User-Agent, a rate limit may be a bare 403 that only its message tells apart from a
refusal, and the grant can only be deleted with a live token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App
from requests.adapters import HTTPAdapter

from .base import Check, Identity, ProviderConfig, StoredGrant, clean_email, clean_subject
from .errors import InvalidProfile, ProviderBusy, ProviderError, RestartLogin, RevocationIncomplete
from .oauth2 import OAuth2Provider

API_VERSION = "2022-11-28"
# OAuth Apps: "Ov23li…" or 20 hex (classic); GitHub Apps: "Iv1.…" or "Iv23li…".
CLIENT_ID = re.compile(r"^(Ov23li\w{14}|Iv1\.[0-9a-f]{16}|Iv23li\w{14}|[0-9a-f]{20})$")
GITHUB_APP_CLIENT_ID = re.compile(r"^Iv(1\.|23li)")
CLIENT_SECRET = re.compile(r"^[0-9a-f]{40}$")
# "If you exceed a secondary rate limit, you will receive a 403 or 429 response and an error
# message that indicates that you exceeded a secondary rate limit. If the retry-after
# response header is present, [wait] that many seconds [...]. Otherwise, wait for at least
# one minute" (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api).
# The same page puts OAuth access token requests under a secondary limit of their own.
RATE_LIMIT_MESSAGE = re.compile(r"rate limit|abuse detection", re.IGNORECASE)
SECONDARY_WAIT = 60


def api_message(response: requests.Response) -> str:
    """The `message` of a GitHub error body (or the start of a body that is not JSON)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:1000]
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def best_email(emails: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The verified primary, else any verified address, else the (unverified) primary."""
    return (
        next((e for e in emails if e.get("primary") and e.get("verified") is True), None)
        or next((e for e in emails if e.get("verified") is True), None)
        or next((e for e in emails if e.get("primary")), None)
    )


class GitHubProvider(OAuth2Provider):
    name = "github"
    title = "GitHub"
    env_prefix = "GITHUB"
    console_name = "GitHub developer settings"
    console_url = "https://github.com/settings/developers"
    # Authorized OAuth Apps; a GitHub App's authorizations are at /settings/apps/authorizations
    # (each instance picks by its client id, on its own host: see __init__).
    user_apps_url = "https://github.com/settings/applications"
    url_settings = {
        "GITHUB_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
    }
    scope = "read:user user:email"
    # DELETE /applications/{client_id}/grant needs "a valid OAuth access_token"
    # (https://docs.github.com/rest/apps/oauth-applications#delete-an-app-authorization):
    # a GitHub App's 8-hour token is refreshed first, under the refresh lock.
    revoke_needs_live_token = True

    def __init__(self, config: ProviderConfig, timeout: float, adapter: HTTPAdapter | None):
        super().__init__(config, timeout, adapter)
        is_app = GITHUB_APP_CLIENT_ID.match(config.client_id)
        page = "apps/authorizations" if is_app else "applications"
        self.user_apps_url = f"{config.extra['GITHUB_URL']}/settings/{page}"

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        findings = []
        if not CLIENT_ID.match(config.client_id):
            findings.append(
                Check(
                    "fail",
                    "GITHUB_CLIENT_ID does not look like a GitHub client id "
                    "(Ov23li…, Iv1.…, Iv23li… or 20 hex characters)",
                    f"Copy the Client ID of your OAuth App from {cls.console_url}.",
                )
            )
        if not CLIENT_SECRET.match(config.client_secret):
            findings.append(
                Check(
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

    def compliance_fix(self, session: Any) -> None:
        super().compliance_fix(session)
        # A rate-limited token endpoint answers 403/429 with a JSON `message`, which Authlib
        # would take for a token: stop there with a clean 503.
        session.register_compliance_hook("access_token_response", self.stop_if_rate_limited)
        session.register_compliance_hook("refresh_token_response", self.stop_if_rate_limited)

    def stop_if_rate_limited(self, response: requests.Response) -> requests.Response:
        if self.is_rate_limited(response):
            raise self.busy(response)
        return response

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
        email, verified = self.confirmed_email(client, token, clean_email(user.get("email")))
        return Identity(
            provider=self.name,
            subject=clean_subject(user.get("id")),  # an integer; a missing or null one is refused
            username=user.get("login"),
            email=email,
            email_verified=verified,
            name=user.get("name") or user.get("login"),
            avatar_url=user.get("avatar_url"),
        )

    def confirmed_email(
        self, client: FlaskOAuth2App, token: dict[str, Any], public: str | None
    ) -> tuple[str | None, bool]:
        """The email and whether GitHub says it is verified, from /user/emails.

        A public profile email is no proof: "If an email address is undeliverable or
        bouncing, it will be unverified", and a managed user's address is an unverified
        placeholder until confirmed, yet either can stay the public one. Source:
        https://docs.github.com/en/account-and-profile/concepts/email-addresses
        Verification matters all over this app: ADMIN_EMAILS grants roles only to a verified
        address, `flask roles` and `flask users` find people by one, and the account page and
        /api/me say "verified". So the list is read at every sign-in: one call more than
        /user alone when the email is public, none more when it is private (only there).
        """
        emails = self.email_list(client, token)
        if emails is None:  # not allowed to read them: nothing confirms the public one
            return public, False
        if public:
            listed = next(
                (e for e in emails if str(e.get("email", "")).lower() == public.lower()), None
            )
            if listed is not None and listed.get("verified") is True:
                return public, True
        chosen = best_email(emails)
        if chosen is not None and (chosen.get("verified") is True or not public):
            return clean_email(chosen.get("email")), chosen.get("verified") is True
        return public, False

    def email_list(
        self, client: FlaskOAuth2App, token: dict[str, Any]
    ) -> list[Mapping[str, Any]] | None:
        """GET /user/emails; None when the token may not read them (not an error)."""
        response = client.get("user/emails", token=token, params={"per_page": 100})
        # 404: the token lacks user:email; 403: a GitHub App without the email permission.
        # A rate limit answers 403 too, and must fail the sign-in, never drop the email.
        if response.status_code in (403, 404) and not self.is_rate_limited(response):
            return None
        if response.status_code != 200:
            raise self.api_error(response, "user/emails")
        listing = response.json()
        if not isinstance(listing, list):
            raise InvalidProfile("the email list is not a JSON list")
        return [e for e in listing if isinstance(e, dict)]

    def revoke(self, client: FlaskOAuth2App, token: StoredGrant | None, subject: str) -> None:
        if token is None:  # nothing to ask with
            raise RevocationIncomplete("no_token")
        # The caller refreshed what could be refreshed. "Invalid tokens will return 404 NOT
        # FOUND" (https://docs.github.com/rest/apps/oauth-applications#check-a-token), the
        # answer for a grant that is gone too: asking with a dead token would prove nothing.
        if token.reauth_required or token.expires_within(0):
            raise RevocationIncomplete("token_dead")
        # Deleting the grant revokes every token of this app for the user (GitHub Apps'
        # refresh tokens included). It authenticates as the app, with Basic auth.
        url = f"{self.api_url}/applications/{self.config.client_id}/grant"
        response = client.delete(
            url,
            withhold_token=True,
            auth=(self.config.client_id, self.config.client_secret),
            json={"access_token": token.access_token},
            headers={"Accept": "application/vnd.github+json"},
        )
        if response.status_code == 204:
            return
        if response.status_code in (404, 422) and not self.is_rate_limited(response):
            # The token was refused (revoked at GitHub, expired by GitHub's clock, or
            # malformed): whether the grant went with it cannot be told from here.
            raise RevocationIncomplete("token_refused")
        raise self.api_error(response, "revoke")

    # --- rate limits ------------------------------------------------------------------

    def is_rate_limited(self, response: requests.Response) -> bool:
        """403 or 429 with a rate-limit header, or with a message naming a rate limit.

        A secondary limit may be a bare 403 (its `retry-after` comes only "if present"); a
        403 with neither, such as "Resource not accessible by integration", is a refusal.
        """
        if response.status_code not in (403, 429):
            return False
        headers = response.headers
        if response.status_code == 429 or headers.get("x-ratelimit-remaining") == "0":
            return True
        return "retry-after" in headers or bool(RATE_LIMIT_MESSAGE.search(api_message(response)))

    def retry_after(self, response: requests.Response) -> int:
        """GitHub's order: retry-after; the primary window's reset; else one minute."""
        if "retry-after" in response.headers:
            return super().retry_after(response)
        if response.headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(1, int(response.headers["x-ratelimit-reset"]) - int(time.time()))
            except (KeyError, ValueError):
                pass
        return SECONDARY_WAIT

    def busy(self, response: requests.Response) -> ProviderBusy:
        seconds = self.retry_after(response)
        return ProviderBusy(
            f"{self.title} is busy: try again in {seconds} s.",
            f"{self.title} limits how often this app may call it. Nothing is wrong with "
            f"your account: wait {seconds} seconds, then try again.",
            seconds,
        )

    def api_error(self, response: requests.Response, what: str) -> ProviderError:
        if self.is_rate_limited(response):
            return self.busy(response)
        return super().api_error(response, what)


ADAPTER = GitHubProvider
