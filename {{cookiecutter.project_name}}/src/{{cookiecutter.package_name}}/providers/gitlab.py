"""GitLab: OpenID Connect (oidc.py), gitlab.com or self-managed; the issuer is GITLAB_URL.

The ID token has only sub, sub_legacy, email, email_verified and groups_direct
(https://docs.gitlab.com/integration/openid_connect_provider/), so the rest comes from
/api/v4/user. Each refresh spends the refresh token (the app keeps the new one).
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_client import FlaskOAuth2App
from requests.adapters import HTTPAdapter

from .base import Check, Identity, ProviderConfig, clean_subject
from .errors import InvalidProfile
from .oidc import DISCOVERY_PATH, OIDCProvider


class GitLabProvider(OIDCProvider):
    name = "gitlab"
    title = "GitLab"
    env_prefix = "GITLAB"
    console_name = "GitLab application settings"
    console_url = "https://gitlab.com/-/user_settings/applications"
    discovery_setting = "GITLAB_URL"
    discovery_path = DISCOVERY_PATH
    url_settings = {discovery_setting: "https://gitlab.com"}
    scope = "openid profile email read_user"  # read_user: /api/v4/user
    profile_fields = ("username", "name", "avatar_url")
    # A 429 may lack Retry-After; this says when, in Unix time
    # (https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/).
    reset_header = "RateLimit-Reset"

    def __init__(self, config: ProviderConfig, timeout: float, adapter: HTTPAdapter | None):
        super().__init__(config, timeout, adapter)  # "Authorized applications" are there too:
        self.user_apps_url = f"{config.extra['GITLAB_URL']}/-/user_settings/applications"

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        # Secrets start "gloas-" (https://gitlab.com/gitlab-org/gitlab/-/merge_requests/131601).
        problem = "GITLAB_CLIENT_ID holds the application's Secret (gloas-…), not its ID"
        hint = f"Copy the Application ID from {cls.console_url}."
        return [Check("fail", problem, hint)] if "gloas-" in config.client_id else []

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        response = client.get(f"{self.config.extra['GITLAB_URL']}/api/v4/user", token=token)
        if response.status_code != 200:
            raise self.api_error(response, "user")
        user = response.json()
        if not isinstance(user, dict):
            raise InvalidProfile("the profile is not a JSON object")
        # `id` is the ID token's sub; `confirmed_at` stays null until the primary email is
        # confirmed (https://docs.gitlab.com/api/users/#get-the-current-user).
        fields = {f: user.get(f) for f in ("username", "email", "name", "avatar_url")}
        verified = bool(user.get("confirmed_at"))
        return Identity(self.name, clean_subject(user.get("id")), email_verified=verified, **fields)


ADAPTER = GitLabProvider
