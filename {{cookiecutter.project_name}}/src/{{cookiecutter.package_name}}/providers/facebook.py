"""Facebook Login: plain OAuth 2.0 over a versioned Graph API.

Quirks handled here: every URL carries FACEBOOK_GRAPH_VERSION (each version lives about two
years: see GRAPH_VERSIONS), scopes are comma-separated, credentials go in the body (Basic auth
gets "Missing client_id"), errors are nested objects, /me returns only id and name unless
`fields` is given, the email may be absent (or declined: `?rerequest=1` asks again) and is
never verified, Graph calls carry `appsecret_proof`, /me sometimes answers a bare `false`,
codes 1 and 2 mean "try again", and revocation falls back to the app access token once the
user token has expired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App

from .base import Check, Identity, ProviderConfig, StoredGrant, as_bool, clean_subject, safe_code
from .errors import (
    ProviderBusy,
    ProviderError,
    ProviderUnavailable,
    TokenRefused,
)
from .oauth2 import OAuth2Provider

log = logging.getLogger(__name__)

GRAPH_VERSION_PATTERN = re.compile(r"^v\d{1,2}\.\d$")
CHANGELOG_URL = "https://developers.facebook.com/docs/graph-api/changelog/versions/"
# Graph API versions: release date and expiry date, from Meta's changelog (CHANGELOG_URL,
# checked 2026-12-07). A version expires two years after the next one ships, so the newest
# one's expiry is "TBD" (None here): it lives at least two years from its own release.
# Add each new version here when it ships, and move DEFAULT_GRAPH_VERSION to it.
GRAPH_VERSIONS: dict[str, tuple[date, date | None]] = {
    "v18.0": (date(2023, 9, 12), date(2026, 1, 26)),
    "v19.0": (date(2024, 1, 23), date(2026, 5, 21)),
    "v20.0": (date(2024, 5, 21), date(2026, 9, 24)),
    "v21.0": (date(2024, 10, 2), date(2027, 1, 21)),
    "v22.0": (date(2025, 1, 21), date(2027, 5, 20)),
    "v23.0": (date(2025, 5, 29), date(2027, 10, 8)),
    "v24.0": (date(2025, 10, 8), date(2028, 2, 18)),
    "v25.0": (date(2026, 2, 18), date(2028, 7, 29)),
    "v26.0": (date(2026, 7, 29), None),
}
DEFAULT_GRAPH_VERSION = "v26.0"
EXPIRY_WARNING = timedelta(days=90)  # `auth doctor` warns this long before a version expires

DEFAULT_RETRY_AFTER = 300  # seconds, when Facebook does not say
MIN_RETRY_AFTER = 60  # seconds: a rolling hour's usage does not drop faster than calls age out
TRANSIENT_RETRY_AFTER = 30  # seconds: "temporary issue due to downtime. Wait and retry"
REVOKE_ATTEMPTS = 2  # a transient error while revoking is tried once more...
REVOKE_PAUSE = 0.5  # ...after this many seconds
LONG_LIVED_AFTER = 7 * 24 * 3600  # seconds: a token lasting less is a short-lived one
# Graph error codes, from "Handling Errors":
# https://developers.facebook.com/docs/graph-api/guides/error-handling
THROTTLING_CODES = {4, 17, 32, 341, 613}
# 1 "API Unknown" and 2 "API Service": "temporary issue due to downtime. Wait and retry".
# Seen as HTTP 500 or 4xx, type OAuthException, with "is_transient": true
# (Trustroots/trustroots#673, facebook/facebook-nodejs-business-sdk#84).
TRANSIENT_CODES = {1, 2}
AUTH_CODES = {102, 190}
TRANSIENT = "provider_unavailable"  # the error code of a 503 "try again" (Retry-After)


def graph_version(version: str) -> tuple[int, int]:
    major, minor = version.removeprefix("v").split(".")
    return int(major), int(minor)


def two_years_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 2)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 2, day=28)


def graph_version_finding(version: str, today: date) -> Check:
    """Is the pinned Graph version still served on `today`, and for how long?"""
    move = (
        f"Set FACEBOOK_GRAPH_VERSION to {DEFAULT_GRAPH_VERSION} or a newer version "
        f"({CHANGELOG_URL}) and test the sign-in."
    )
    known = GRAPH_VERSIONS.get(version)
    if known is None:
        oldest = min(GRAPH_VERSIONS, key=graph_version)
        newest = max(GRAPH_VERSIONS, key=graph_version)
        if graph_version(version) > graph_version(newest):
            return Check(
                "warn",
                f"FACEBOOK_GRAPH_VERSION {version} is newer than this app's table of Graph "
                f"versions (up to {newest}): its expiry is not checked",
                f"Add it to GRAPH_VERSIONS in providers/facebook.py from {CHANGELOG_URL}.",
            )
        if graph_version(version) < graph_version(oldest):
            gone = GRAPH_VERSIONS[oldest][1]
            return Check(
                "fail",
                f"FACEBOOK_GRAPH_VERSION {version} is older than {oldest}, which expired on "
                f"{gone}: Meta no longer serves it",
                move,
            )
        return Check("fail", f"FACEBOOK_GRAPH_VERSION {version} is no Graph API version", move)
    released, expires = known
    if expires is None:  # the newest: Meta sets its expiry when the next version ships
        earliest = two_years_after(released)
        if today >= earliest - EXPIRY_WARNING:
            return Check(
                "warn",
                f"FACEBOOK_GRAPH_VERSION {version} may expire from {earliest}: this app's "
                "table of Graph versions is out of date",
                f"Check {CHANGELOG_URL} and update GRAPH_VERSIONS in providers/facebook.py.",
            )
        return Check("ok", f"FACEBOOK_GRAPH_VERSION {version} is served until {earliest} at least")
    if today >= expires:
        return Check(
            "fail",
            f"FACEBOOK_GRAPH_VERSION {version} expired on {expires}: Meta no longer serves it",
            move,
        )
    if today >= expires - EXPIRY_WARNING:
        days = (expires - today).days
        return Check(
            "warn",
            f"FACEBOOK_GRAPH_VERSION {version} expires on {expires}, in {days} day(s)",
            move,
        )
    return Check("ok", f"FACEBOOK_GRAPH_VERSION {version} is served until {expires}")


def is_transient(error: ProviderError) -> bool:
    return error.code == TRANSIENT and error.status == 503


def appsecret_proof(access_token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def error_object(response: requests.Response) -> dict[str, Any]:
    """Graph's nested `error` object, or {} for any other body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def app_usage_percent(response: requests.Response) -> int | None:
    """The highest of X-App-Usage's percentages (calls, CPU time, total time), if sent."""
    try:
        usage = json.loads(response.headers.get("X-App-Usage", ""))
        return max(int(value) for value in usage.values())
    except (ValueError, TypeError, AttributeError):
        return None


class FacebookProvider(OAuth2Provider):
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
    option_settings = {"FACEBOOK_GRAPH_VERSION": DEFAULT_GRAPH_VERSION}
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
    email_rerequest = {"rerequest": "1"}  # see login_options
    page_scripts = ("facebook_fragment.js",)  # drops the "#_=_" it appends to its redirect

    @classmethod
    def validate(cls, client_id: str, extra: Mapping[str, str]) -> list[str]:
        version = extra["FACEBOOK_GRAPH_VERSION"]
        if GRAPH_VERSION_PATTERN.match(version):
            return []
        return [f"FACEBOOK_GRAPH_VERSION must look like {DEFAULT_GRAPH_VERSION}, got {version!r}"]

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        findings = []
        if not config.client_id.isdigit() or not 14 <= len(config.client_id) <= 17:
            findings.append(
                Check(
                    "fail",
                    "FACEBOOK_CLIENT_ID is not a Facebook App ID (15-16 digits)",
                    f"Copy the App ID from {cls.console_url} (App settings, Basic).",
                )
            )
        if not re.fullmatch(r"[0-9a-f]{32}", config.client_secret):
            findings.append(
                Check(
                    "fail",
                    "FACEBOOK_CLIENT_SECRET is not 32 hex characters as an App Secret is",
                    "Copy the App Secret from App settings, Basic.",
                )
            )
        return findings

    @classmethod
    def lifetime_checks(cls, config: ProviderConfig, today: date) -> list[Check]:
        version = config.extra["FACEBOOK_GRAPH_VERSION"]
        if not GRAPH_VERSION_PATTERN.match(version):
            return []  # a configuration problem, reported as such
        return [graph_version_finding(version, today)]

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

    def login_options(self, args: Mapping[str, str]) -> dict[str, Any]:
        """`/login/facebook?rerequest=1`: ask again for a permission the person declined.

        Facebook never asks again for a declined permission (the email, say) unless the
        dialog gets auth_type=rerequest ("Manually Build a Login Flow", Re-asking for
        Declined Permissions).
        """
        return {"auth_type": "rerequest"} if args.get("rerequest") == "1" else {}

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
            raise ProviderUnavailable(
                "Facebook returned an empty profile.", "Try signing in again in a moment."
            )
        picture = profile.get("picture")
        data = picture.get("data") if isinstance(picture, dict) else None
        avatar = data.get("url") if isinstance(data, dict) else None
        return Identity(
            provider=self.name,
            subject=clean_subject(profile.get("id")),  # refuses a missing, null or empty id
            username=None,
            email=profile.get("email") or None,  # missing, or declined in the dialog
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

    def refresh(self, client: FlaskOAuth2App, token: StoredGrant) -> dict[str, Any]:
        raise NotImplementedError("Facebook has no refresh tokens")

    # --- revocation -------------------------------------------------------------------

    def revoke(self, client: FlaskOAuth2App, token: StoredGrant | None, subject: str) -> None:
        """DELETE /{app-scoped-user-id}/permissions: the app leaves the person's settings.

        With the user token while it lives; once it has expired (about 60 days), lost data
        access (90 days) or died otherwise, or when none is stored, with the app access token
        `{app-id}|{app-secret}`, which this edge also accepts ("User Permissions" reference,
        Deleting: https://developers.facebook.com/docs/graph-api/reference/user/permissions/).
        A refused user token is never "already revoked": only a success is.
        """
        if token is not None and not token.reauth_required and not token.expires_within(0):
            error = self.delete_permissions(client, subject, token.as_oauth_token())
            if error is None:
                return
            if not isinstance(error, TokenRefused):  # down, throttled, transient: not done
                raise error
            log.info("user token refused at revocation, asking with the app token")
        error = self.delete_permissions(client, subject, self.app_token())
        if error is None:
            return
        if isinstance(error, TokenRefused):
            raise ProviderUnavailable(
                "Facebook refused this app's own credentials.",
                self.credentials_hint(),
                code="revocation_refused",
            )
        raise error

    def app_token(self) -> dict[str, str]:
        """The app access token: no network call, the App ID and Secret joined by `|`."""
        value = f"{self.config.client_id}|{self.config.client_secret}"
        return {"access_token": value, "token_type": "bearer"}

    def delete_permissions(
        self, client: FlaskOAuth2App, subject: str, token: dict[str, str]
    ) -> ProviderError | None:
        """None once Facebook says success; a transient error is tried once more first."""
        attempt = 1
        while True:
            response = client.delete(f"{subject}/permissions", token=token)
            if response.status_code == 200:
                return None
            error = self.graph_error(response, "permissions")
            if not is_transient(error) or attempt >= REVOKE_ATTEMPTS:
                return error
            attempt += 1
            time.sleep(REVOKE_PAUSE)

    # --- errors -----------------------------------------------------------------------

    def graph_json(self, response: requests.Response, what: str) -> Any:
        if response.status_code == 200:
            return response.json()
        raise self.graph_error(response, what)

    def graph_error(self, response: requests.Response, what: str) -> ProviderError:
        error = error_object(response)
        code = error.get("code")
        if code in THROTTLING_CODES:
            log.warning("Facebook throttles this app usage=%s", app_usage_percent(response))
            return ProviderBusy(
                "Facebook is rate-limiting this app.",
                "Wait a few minutes and try again.",
                self.retry_after(response),
            )
        if code in TRANSIENT_CODES or as_bool(error.get("is_transient")):
            return self.transient_error(what, code)
        if code in AUTH_CODES or error.get("type") == "OAuthException":
            return TokenRefused(
                "Facebook did not accept the sign-in token.",
                "Start the sign-in again.",
                {
                    "provider_error": safe_code(code),
                    "subcode": safe_code(error.get("error_subcode", "")),
                },
            )
        if code == 100 and "appsecret_proof" in str(error.get("message", "")):
            return TokenRefused("Facebook refused the app secret proof.", self.credentials_hint())
        return ProviderUnavailable(
            f"Facebook answered with an error ({response.status_code}).",
            details={"endpoint": what, "code": safe_code(code)},
        )

    def transient_error(self, what: str, code: Any) -> ProviderError:
        """Facebook's "try again later": a 503 that keeps the link, never "reconnect"."""
        return ProviderUnavailable(
            "Facebook had a temporary problem.",
            status=503,
            code=TRANSIENT,
            retry_after=TRANSIENT_RETRY_AFTER,
            details={"endpoint": what, "code": safe_code(code)},
        )

    def retry_after(self, response: requests.Response) -> int:
        """Seconds until the app's hourly budget frees up, from X-App-Usage.

        This app's calls use user and app tokens, so Platform Rate Limits apply and report in
        X-App-Usage: percentages of the budget used over a rolling hour. (The minutes in
        X-Business-Use-Case-Usage are for system-user and Page tokens.) Rate limits:
        https://developers.facebook.com/docs/graph-api/overview/rate-limiting/
        Usage falls as calls age out of the hour: at u% (100 or more) and an even pace,
        back under 100% takes about (u - 100) / u of an hour.
        """
        usage = app_usage_percent(response)
        if usage is None or usage < 100:
            return DEFAULT_RETRY_AFTER
        return max(MIN_RETRY_AFTER, min(3600, 3600 * (usage - 100) // usage))

    def token_refused(self, exc: OAuthError) -> ProviderError:
        # A token-endpoint answer flagged transient (code 2, "is_transient": true) under a
        # 4xx: try again. Code 1 alone is no signal there: it is also "Error validating
        # client secret".
        error = exc.error
        if isinstance(error, dict) and (
            error.get("code") == 2 or as_bool(error.get("is_transient"))
        ):
            return self.transient_error("oauth/access_token", error.get("code"))
        return super().token_refused(exc)

    def token_error(self, code: str, description: str) -> ProviderError:
        # Facebook's token errors are numeric codes inside a nested object.
        if code == "100" and "redirect_uri" in description:
            return super().token_error("redirect_uri_mismatch", description)
        if code == "100" and "has been used" in description:
            return super().token_error("invalid_grant", description)
        if code in ("1", "101"):
            return super().token_error("invalid_client", description)
        return super().token_error(code, description)


ADAPTER = FacebookProvider
