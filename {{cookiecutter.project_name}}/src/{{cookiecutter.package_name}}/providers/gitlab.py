"""GitLab: OpenID Connect (oidc.py), gitlab.com or self-managed, whose issuer is GITLAB_URL.

The ID token has only sub, sub_legacy, email, email_verified and groups_direct
(https://docs.gitlab.com/integration/openid_connect_provider/): the username, name and
avatar come from /api/v4/user, whose integer `id` is the `sub`. Tokens live two hours and
each refresh spends the refresh token (the app keeps the new one). A 429 may come without
Retry-After (https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/):
RateLimit-Reset then says when.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App
from requests.adapters import HTTPAdapter

from .base import Check, Identity, ProviderConfig, clean_subject
from .errors import InvalidProfile
from .oidc import DISCOVERY_PATH, OIDCProvider

NOT_IN_ID_TOKEN = {"username": (), "name": (), "avatar_url": ()}


class GitLabProvider(OIDCProvider):
    name = "gitlab"
    title = "GitLab"
    env_prefix = "GITLAB"
    console_name = "GitLab application settings"
    console_url = "https://gitlab.com/-/user_settings/applications"
    user_apps_url = console_url  # "Authorized applications", on the instance (see __init__)
    discovery_setting = "GITLAB_URL"
    discovery_path = DISCOVERY_PATH
    url_settings = {discovery_setting: "https://gitlab.com"}
    scope = "openid profile email read_user"  # read_user: /api/v4/user
    claims = {**OIDCProvider.claims, **NOT_IN_ID_TOKEN}
    profile_fields = tuple(NOT_IN_ID_TOKEN)

    def __init__(self, config: ProviderConfig, timeout: float, adapter: HTTPAdapter | None):
        super().__init__(config, timeout, adapter)
        self.user_apps_url = f"{config.extra['GITLAB_URL']}/-/user_settings/applications"

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        # Secrets start "gloas-", after an instance's own prefix if it sets one
        # (https://gitlab.com/gitlab-org/gitlab/-/merge_requests/131601).
        if "gloas-" not in config.client_id:
            return []
        problem = "GITLAB_CLIENT_ID holds the application's Secret (gloas-…), not its ID"
        return [Check("fail", problem, f"Copy the Application ID from {cls.console_url}.")]

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        """/api/v4/user; `confirmed_at` is null until the primary email is confirmed
        (https://docs.gitlab.com/api/users/#get-the-current-user)."""
        response = client.get(f"{self.config.extra['GITLAB_URL']}/api/v4/user", token=token)
        if response.status_code != 200:
            raise self.api_error(response, "user")
        user = response.json()
        if not isinstance(user, dict):
            raise InvalidProfile("the profile is not a JSON object")
        subject = clean_subject(user.get("id"))  # an integer, the ID token's sub as text
        fields = {f: user.get(f) for f in ("username", "email", "name", "avatar_url")}
        return Identity(self.name, subject, email_verified=bool(user.get("confirmed_at")), **fields)

    def retry_after(self, response: requests.Response) -> int:
        reset = response.headers.get("RateLimit-Reset", "")
        if "Retry-After" in response.headers or not reset.isdigit():
            return super().retry_after(response)
        return max(1, int(reset) - int(time.time()))


ADAPTER = GitLabProvider
