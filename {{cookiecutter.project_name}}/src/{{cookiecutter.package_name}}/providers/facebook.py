"""Facebook Login: plain OAuth 2.0 over a versioned Graph API.

Quirks handled here: every URL carries FACEBOOK_GRAPH_VERSION, scopes are comma-separated,
credentials go in the body (Basic auth gets "Missing client_id"), errors are nested objects,
/me returns only id and name unless `fields` is given, the email may be absent and is never
verified, Graph calls carry `appsecret_proof`, and /me sometimes answers a bare `false`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from authlib.integrations.flask_client import FlaskOAuth2App

from ..errors import AppError
from .base import (
    Finding,
    Identity,
    Provider,
    ProviderConfig,
    RevocationIncomplete,
    login_error,
    safe_code,
)

if TYPE_CHECKING:
    from ..tokens.vault import StoredToken

log = logging.getLogger(__name__)

GRAPH_VERSION_PATTERN = re.compile(r"^v\d{1,2}\.\d$")
# Meta keeps a version usable two years after its successor ships; as of late 2026 the
# oldest still served is about v21.0. Update with Meta's changelog.
OLDEST_SUPPORTED_GRAPH_VERSION = "v21.0"
# Graph error codes (fb-php's classification): throttling and authentication.
DEFAULT_RETRY_AFTER = 300  # seconds, when Facebook does not say
LONG_LIVED_AFTER = 7 * 24 * 3600  # seconds: a token lasting less is a short-lived one
THROTTLING_CODES = {4, 17, 32, 341, 613}
AUTH_CODES = {102, 190}


def graph_version(version: str) -> tuple[int, int]:
    major, minor = version.removeprefix("v").split(".")
    return int(major), int(minor)


def appsecret_proof(access_token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class FacebookProvider(Provider):
    name = "facebook"
    title = "Facebook"
    env_prefix = "FACEBOOK"
    console_name = "Meta for Developers dashboard"
    console_url = "https://developers.facebook.com/apps"
    user_apps_url = "https://www.facebook.com/settings?tab=applications"
    url_settings = {
        "FACEBOOK_URL": "https://www.facebook.com",
        "FACEBOOK_GRAPH_URL": "https://graph.facebook.com",
    }
    option_settings = {"FACEBOOK_GRAPH_VERSION": "v24.0"}
    scope = "email,public_profile"
    extra_callbacks = {
        "Deauthorize callback URL": "/auth/facebook/deauthorize",
        "Data deletion request URL": "/auth/facebook/data-deletion",
    }
    # No PKCE: Facebook's classic manual flow does not take it. Meta documents
    # code_challenge/code_verifier only for its OIDC flow (scope `openid`, a nonce and an ID
    # token; marked "still in testing"), "OIDC Code Flow with PKCE for Manually Built Facebook
    # Login Flows":
    # https://developers.facebook.com/documentation/facebook-login/guides/advanced/oidc-token
    # "Manually Build a Login Flow", this app's flow, lists no PKCE parameter:
    # https://developers.facebook.com/documentation/facebook-login/guides/advanced/manual-flow
    # Sent without `openid`, the challenge is dropped and the token request that then carries
    # the verifier is refused: "code_verifier param is provided without a code_challenge in
    # authorization request." (code 1; better-auth/better-auth#186, NangoHQ/nango#7156 on
    # v22.0 and v26.0). Turning it on would break every real Facebook sign-in. So a leaked
    # code can still be redeemed by whoever uses it first (a code is single-use and only
    # works with our redirect_uri and App Secret); closing that needs the OIDC flow.
    uses_pkce = False

    @classmethod
    def validate(cls, client_id: str, extra: Mapping[str, str], problems: list[str]) -> None:
        if not GRAPH_VERSION_PATTERN.match(extra["FACEBOOK_GRAPH_VERSION"]):
            problems.append(
                "FACEBOOK_GRAPH_VERSION must look like v24.0, got "
                f"{extra['FACEBOOK_GRAPH_VERSION']!r}"
            )

    @classmethod
    def credential_findings(cls, config: ProviderConfig) -> list[Finding]:
        findings = []
        if not config.client_id.isdigit() or not 14 <= len(config.client_id) <= 17:
            findings.append(
                Finding(
                    "fail",
                    "FACEBOOK_CLIENT_ID is not a Facebook App ID (15-16 digits)",
                    f"Copy the App ID from {cls.console_url} (App settings, Basic).",
                )
            )
        if not re.fullmatch(r"[0-9a-f]{32}", config.client_secret):
            findings.append(
                Finding(
                    "fail",
                    "FACEBOOK_CLIENT_SECRET is not 32 hex characters as an App Secret is",
                    "Copy the App Secret from App settings, Basic.",
                )
            )
        version = config.extra["FACEBOOK_GRAPH_VERSION"]
        if GRAPH_VERSION_PATTERN.match(version) and graph_version(version) < graph_version(
            OLDEST_SUPPORTED_GRAPH_VERSION
        ):
            findings.append(
                Finding(
                    "fail",
                    f"FACEBOOK_GRAPH_VERSION {version} is older than "
                    f"{OLDEST_SUPPORTED_GRAPH_VERSION}, the oldest version Meta still serves",
                    "Move to a current version (see Meta's changelog) and test the login.",
                )
            )
        return findings

    @classmethod
    def probe_url(cls, config: ProviderConfig) -> str:
        return f"{config.extra['FACEBOOK_GRAPH_URL']}/{config.extra['FACEBOOK_GRAPH_VERSION']}/me"

    @property
    def graph_base(self) -> str:
        extra = self.config.extra
        return f"{extra['FACEBOOK_GRAPH_URL']}/{extra['FACEBOOK_GRAPH_VERSION']}"

    def registration(self) -> dict[str, Any]:
        extra = self.config.extra
        dialog = f"{extra['FACEBOOK_URL']}/{extra['FACEBOOK_GRAPH_VERSION']}/dialog/oauth"
        return {
            **super().registration(),
            "authorize_url": dialog,
            "access_token_url": f"{self.graph_base}/oauth/access_token",
            "api_base_url": f"{self.graph_base}/",
        }

    def protected_request_hook(self):
        secret = self.config.client_secret

        def add_appsecret_proof(url: str, headers: dict, body: Any) -> tuple:
            scheme, _, token = headers.get("Authorization", "").partition(" ")
            if token and scheme.lower() in ("bearer", "oauth"):
                parts = urlsplit(url)
                query = [(k, v) for k, v in parse_qsl(parts.query) if k != "appsecret_proof"]
                query.append(("appsecret_proof", appsecret_proof(token, secret)))
                url = urlunsplit(parts._replace(query=urlencode(query)))
            return url, headers, body

        return add_appsecret_proof

    def check_callback(self, args: Mapping[str, str]) -> None:
        # Facebook adds error_reason=user_denied and error_code=200 to a refusal.
        if args.get("error_reason") == "user_denied" and not args.get("error"):
            args = {**args, "error": "access_denied"}
        super().check_callback(args)

    def fetch_identity(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        response = client.get("me", token=token, params={"fields": "id,name,email,picture"})
        profile = self.graph_json(response, "me")
        if not isinstance(profile, dict):
            # Facebook is known to answer a bare `false` now and then.
            raise AppError(
                502,
                "provider_unavailable",
                "Facebook returned an empty profile.",
                "Try signing in again in a moment.",
            )
        picture = profile.get("picture")
        data = picture.get("data") if isinstance(picture, dict) else None
        avatar = data.get("url") if isinstance(data, dict) else None
        return Identity(
            provider=self.name,
            subject=profile.get("id"),  # Identity refuses a missing, null or empty id
            username=None,
            email=profile.get("email") or None,
            email_verified=False,  # Facebook gives no verification signal
            name=profile.get("name"),
            avatar_url=avatar,
        )

    def login_token(self, client: FlaskOAuth2App, token: dict[str, Any]) -> dict[str, Any]:
        """Swap a short-lived token (hours) for a long-lived one (about 60 days)."""
        expires_in = token.get("expires_in")
        if expires_in is not None and int(expires_in) >= LONG_LIVED_AFTER:
            return token
        try:
            return client.fetch_access_token(
                grant_type="fb_exchange_token", fb_exchange_token=token["access_token"]
            )
        except Exception as exc:  # the short-lived token still works: keep it
            log.warning("could not exchange for a long-lived token: %s", type(exc).__name__)
            return token

    def refresh(self, client: FlaskOAuth2App, token: StoredToken) -> dict[str, Any]:
        raise NotImplementedError("Facebook has no refresh tokens")

    def revoke(self, client: FlaskOAuth2App, token: StoredToken | None, subject: str) -> None:
        if token is None:  # nothing to ask with
            raise RevocationIncomplete("no_token")
        response = self.call(
            lambda: client.delete(f"{subject}/permissions", token=token.as_oauth_token())
        )
        if response.status_code == 200:
            return
        error = self.graph_error(response, "permissions")
        if error.code != "profile_error":  # 190: the token is already dead
            raise error

    def graph_json(self, response: requests.Response, what: str) -> Any:
        if response.status_code == 200:
            return response.json()
        raise self.graph_error(response, what)

    def graph_error(self, response: requests.Response, what: str) -> AppError:
        try:
            error = response.json().get("error", {})
        except (ValueError, AttributeError):
            error = {}
        code = error.get("code") if isinstance(error, dict) else None
        if code in THROTTLING_CODES:
            return AppError(
                503,
                "provider_rate_limited",
                "Facebook is rate-limiting this app.",
                "Wait a few minutes and try again.",
                retry_after=self.retry_after(response),
            )
        if code in AUTH_CODES or (
            isinstance(error, dict) and error.get("type") == "OAuthException"
        ):
            return login_error(
                400,
                "profile_error",
                "Facebook did not accept the sign-in token.",
                "Start the sign-in again.",
                provider_error=safe_code(code),
                subcode=safe_code(error.get("error_subcode", "")),
            )
        if code == 100 and "appsecret_proof" in str(error.get("message", "")):
            return login_error(
                400,
                "profile_error",
                "Facebook refused the app secret proof.",
                self.credentials_hint(),
            )
        return AppError(
            502,
            "provider_unavailable",
            f"Facebook answered with an error ({response.status_code}).",
            "Try again in a moment.",
            details={"endpoint": what, "code": safe_code(code)},
        )

    def retry_after(self, response: requests.Response) -> int:
        """Minutes from the business-use-case usage header, else five minutes."""
        try:
            usage = json.loads(response.headers.get("X-Business-Use-Case-Usage", "{}"))
            minutes = max(
                int(entry.get("estimated_time_to_regain_access", 0))
                for entries in usage.values()
                for entry in entries
            )
        except (ValueError, TypeError, AttributeError):
            minutes = 0
        return minutes * 60 if minutes > 0 else DEFAULT_RETRY_AFTER

    def token_error(self, code: str, description: str) -> AppError:
        # Facebook's token errors are numeric codes inside a nested object.
        if code == "100" and "redirect_uri" in description:
            return super().token_error("redirect_uri_mismatch", description)
        if code == "100" and "has been used" in description:
            return super().token_error("invalid_grant", description)
        if code in ("1", "101"):
            return super().token_error("invalid_client", description)
        return super().token_error(code, description)
