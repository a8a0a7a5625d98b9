"""Google: OpenID Connect (oidc.py) and what is Google's own.

Both issuer spellings, the hosted-domain claim when one is configured (the `hd` parameter
only pre-selects the account chooser), a refresh token only at the first consent unless
asked again, a client id that says what it is, and a revoke endpoint that answers an
already-dead token with 400 invalid_token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App

from .base import Check, ProviderConfig
from .errors import LoginRefused
from .oauth2 import oauth_error_code
from .oidc import OIDCProvider

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


class GoogleProvider(OIDCProvider):
    name = "google"
    title = "Google"
    env_prefix = "GOOGLE"
    console_name = "Google Cloud console"
    console_url = "https://console.cloud.google.com/apis/credentials"
    user_apps_url = "https://myaccount.google.com/connections"
    discovery_setting = "GOOGLE_SERVER_METADATA_URL"
    url_settings = {
        discovery_setting: "https://accounts.google.com/.well-known/openid-configuration"
    }
    option_settings = {"GOOGLE_HOSTED_DOMAIN": ""}
    issuer_spellings = GOOGLE_ISSUERS
    claims = {**OIDCProvider.claims, "email_verified": ("email_verified", "verified_email")}

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        if config.client_id.endswith(".apps.googleusercontent.com"):
            return []
        return [
            Check(
                "fail",
                "GOOGLE_CLIENT_ID does not end in .apps.googleusercontent.com",
                f"Copy the OAuth client ID of a Web application from {cls.console_url}.",
            )
        ]

    @property
    def hosted_domain(self) -> str:
        return self.config.extra["GOOGLE_HOSTED_DOMAIN"].lower()

    def authorize_params(
        self, client: FlaskOAuth2App, has_refresh_token: bool | None = None
    ) -> dict[str, Any]:
        params = {**super().authorize_params(client, has_refresh_token), "access_type": "offline"}
        # Google sends a refresh token only at the first consent; ask again only when a
        # signed-in user has none stored, or only a dead one (refused with invalid_grant
        # for good), so returning users are not asked every time. A sign-in that did not
        # know comes back here signed in (auth.views._wants_refresh_consent).
        if has_refresh_token is False:
            params["prompt"] = "consent"
        if self.hosted_domain:
            params["hd"] = self.hosted_domain  # pre-selects; the claim is what we enforce
        return params

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        if self.hosted_domain and str(claims.get("hd", "")).lower() != self.hosted_domain:
            raise LoginRefused(
                403,
                "hosted_domain_mismatch",
                f"Only {self.hosted_domain} Google Workspace accounts may sign in here.",
                f"Sign in with your {self.hosted_domain} account.",
            )

    def already_revoked(self, response: requests.Response) -> bool:
        """Google's documented answer for a token already expired or revoked."""
        return response.status_code == 400 and oauth_error_code(response) == "invalid_token"


ADAPTER = GoogleProvider
