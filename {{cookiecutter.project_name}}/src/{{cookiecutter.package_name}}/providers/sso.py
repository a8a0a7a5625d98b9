"""Single sign-on: any OpenID Connect provider (Keycloak, Okta, Auth0, Entra ID, Authentik...).

Everything comes from the issuer's discovery document, `<OIDC_ISSUER>/.well-known/openid-
configuration` (OIDC Discovery 4.1: a trailing slash of the issuer is dropped before the
path is appended), whose `issuer` must be OIDC_ISSUER exactly, trailing slash and all (4.3).
OIDC_NAME and OIDC_TITLE name it in routes and on its button (settings.py renames the class).
The profile is userinfo's: with an access token, OIDC Core 5.4 puts the claims there, and the
ID token may hold only `sub`. A logout may end the person's session at the provider too
(OIDC_END_SESSION_ON_LOGOUT, OpenID Connect RP-Initiated Logout 1.0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.flask_client import FlaskOAuth2App
from requests import Response
from requests.adapters import HTTPAdapter

from .base import Check, Fetch, Identity, ProviderConfig
from .errors import ProviderError
from .oidc import DISCOVERY_PATH, OIDCProvider

SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 3.3
YES, NO = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
END_SESSION = "OIDC_END_SESSION_ON_LOGOUT"


class SingleSignOnProvider(OIDCProvider):
    name = "sso"
    title = "Single sign-on"
    env_prefix = "OIDC"
    name_setting, title_setting = "OIDC_NAME", "OIDC_TITLE"
    # Each product has its own; OpenID's list of them links to their documentation.
    console_name = "admin console of your identity provider"
    console_url = "https://openid.net/developers/certified-openid-connect-implementations/"
    user_apps_url = ""  # set from the issuer: where the person manages their sign-ins
    discovery_setting = "OIDC_ISSUER"
    discovery_path = DISCOVERY_PATH
    url_settings = {discovery_setting: ""}  # required
    verbatim_urls = (discovery_setting,)
    option_settings = {"OIDC_SCOPES": "openid email profile", END_SESSION: "false"}
    option_patterns = {
        END_SESSION: ("(?i)" + "|".join(YES + NO), f"{END_SESSION} must be true or false")
    }
    claims = {**OIDCProvider.claims, "username": ("preferred_username",)}
    profile_fields = ("username", "email", "email_verified", "name", "avatar_url")

    def __init__(self, config: ProviderConfig, timeout: float, adapter: HTTPAdapter | None):
        super().__init__(config, timeout, adapter)
        self.user_apps_url = config.extra[self.discovery_setting]
        self.ends_provider_session = config.extra[END_SESSION].lower() in YES
        # OIDC_SCOPES, with `openid` first whatever was left out; the base adds
        # offline_access where the provider lists it.
        self.scope = " ".join(dict.fromkeys(["openid", *config.extra["OIDC_SCOPES"].split()]))

    @classmethod
    def validate(cls, client_id: str, extra: Mapping[str, str]) -> list[str]:
        scopes = extra["OIDC_SCOPES"].split()
        if all(SCOPE_TOKEN.fullmatch(scope) for scope in scopes):
            return super().validate(client_id, extra)
        problem = "OIDC_SCOPES must be scopes separated by spaces, e.g. 'openid email profile'"
        return [problem, *super().validate(client_id, extra)]

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        """No rule on the shape of a client id: each product has its own. One mistake fits all."""
        if config.client_secret != config.client_id:
            return []
        problem = "OIDC_CLIENT_SECRET is the same as OIDC_CLIENT_ID"
        return [Check("fail", problem, f"Copy the client's secret from the {cls.console_name}.")]

    @classmethod
    def discovery_url(cls, config: ProviderConfig) -> str:
        return config.extra[cls.discovery_setting].rstrip("/") + DISCOVERY_PATH

    @classmethod
    def issuer_expected(cls, config: ProviderConfig, issuer: Any) -> bool:
        return issuer == config.extra[cls.discovery_setting]

    def with_profile(
        self, client: FlaskOAuth2App, token: dict[str, Any], identity: Identity
    ) -> Identity:
        """Userinfo's profile; the ID token's claims where userinfo has none (or no userinfo
        at all: it is only RECOMMENDED, OIDC Discovery 3)."""
        if not self.metadata(client).get("userinfo_endpoint"):
            return identity
        profile = super().with_profile(client, token, identity)
        kept = {f: getattr(identity, f) for f in ("username", "name", "avatar_url")}
        kept = {f: value for f, value in kept.items() if getattr(profile, f) is None}
        if profile.email is None:  # an email goes with its verdict
            kept.update(email=identity.email, email_verified=identity.email_verified)
        return replace(profile, **kept)

    def end_session_url(
        self, client: FlaskOAuth2App, id_token: str | None, post_logout_uri: str
    ) -> str | None:
        """RP-Initiated Logout 1.0 section 2: the ID token as the hint, our client id, and
        where to come back (registered at the provider, exactly)."""
        if not self.ends_provider_session:
            return None
        try:
            endpoint = self.metadata(client).get("end_session_endpoint")
        except (requests.RequestException, ValueError, ProviderError):  # our logout is done
            return None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            return None
        params = {"client_id": self.config.client_id, "post_logout_redirect_uri": post_logout_uri}
        if id_token:
            params["id_token_hint"] = id_token
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    # --- `flask auth doctor` ------------------------------------------------------------

    @classmethod
    def other_callbacks(cls, config: ProviderConfig | None) -> dict[str, str]:
        if config is None or config.extra[END_SESSION].lower() not in YES:
            return super().other_callbacks(config)
        return {**super().other_callbacks(config), "post-logout redirect URI": "/"}

    @classmethod
    def probe_checks(cls, config: ProviderConfig, response: Response, fetch: Fetch) -> list[Check]:
        checks = super().probe_checks(config, response, fetch)
        if config.extra[END_SESSION].lower() not in YES or checks[0].status != "ok":
            return checks
        if not response.json().get("end_session_endpoint"):
            problem = f"{END_SESSION} is on but the provider has no end_session_endpoint"
            hint = "A logout here ends only this app's session."
            checks.append(Check("warn", problem, hint))
        return checks


ADAPTER = SingleSignOnProvider
