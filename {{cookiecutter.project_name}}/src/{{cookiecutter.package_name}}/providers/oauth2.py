"""The plain OAuth 2.0 adapter: the sequence of a login, refresh and revocation, once.

A provider module sets the declarations of `Provider` (base.py) and overrides the hooks
where its provider differs (oidc.py does so for OpenID Connect). Failures
leave as providers/errors.py's exceptions, or as what Authlib and requests raised: the app
turns both into pages (provider_errors.py).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, quote_plus

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App

from .base import Identity, Provider, StoredGrant, safe_code
from .errors import (
    LoginRefused,
    ProviderBusy,
    ProviderError,
    ProviderUnavailable,
    RefreshTokenDead,
    RevocationIncomplete,
    TokenRefused,
)

T = TypeVar("T")
NOT_FOR_API_CALLS = ("refresh_token", "expires_at", "expires_in")
# Token-endpoint error codes that say the app's own credentials are wrong.
CLIENT_CREDENTIAL_ERRORS = ("incorrect_client_credentials", "invalid_client", "unauthorized_client")
USED_CODE = "The sign-in code expired or was already used. Start again."


def json_token_fix(response: requests.Response) -> requests.Response:
    """Turn a form-encoded token response (some providers' default or legacy) into JSON.

    Authlib only understands JSON; without this a form body is a bare ValueError.
    """
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type and response.text and "=" in response.text:
        data = dict(parse_qsl(response.text.strip()))
        if "expires" in data and "expires_in" not in data:
            data["expires_in"] = data.pop("expires")
        response._content = json.dumps(data).encode()
        response.headers["Content-Type"] = "application/json"
    return response


def basic_authorization(client_id: str, client_secret: str) -> str:
    """client_secret_basic's header: both form-encoded first (RFC 6749 2.3.1).

    Authlib sends them as they are, which breaks on a secret with `+`, `%` or `:`.
    """
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def form_encoded_basic(auth: Any, method: str, uri: str, headers: dict, body: Any) -> tuple:
    """Authlib's client_secret_basic, as RFC 6749 says (registered in `registration`)."""
    headers["Authorization"] = basic_authorization(auth.client_id, auth.client_secret)
    return uri, headers, body


def oauth_error_code(response: requests.Response) -> str:
    """The RFC 6749 `error` of an answer's JSON body, or "" for any other body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return safe_code(body.get("error", "")) if isinstance(body, dict) else ""


class OAuth2Provider(Provider):
    """Authorization code flow with a user API: subclasses add endpoints and the profile."""

    # How the app authenticates at the token endpoint: in the body, as plain OAuth 2
    # providers document it (some refuse Basic auth); a provider may declare another.
    token_auth_method: ClassVar[str] = "client_secret_post"  # noqa: S105 - a method name
    # The header with the Unix time a rate limit ends, for a 429 without Retry-After.
    reset_header: ClassVar[str] = ""
    # Codes the provider puts in error_description, more telling than its generic `error`:
    # regular expression -> the standard code whose hint applies (redirect_uri_mismatch, ...).
    description_codes: ClassVar[dict[str, str]] = {}

    # --- Authlib registration ---------------------------------------------------------

    def registration(self) -> dict[str, Any]:
        """Keyword arguments for `OAuth.register` (endpoints are added by subclasses)."""
        client_kwargs: dict[str, Any] = {
            "scope": self.scope,
            "token_endpoint_auth_method": self.token_auth_method,
            "default_timeout": self.timeout,
        }
        if self.uses_pkce:
            client_kwargs["code_challenge_method"] = "S256"
        return {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "client_kwargs": client_kwargs,
            "client_auth_methods": [("client_secret_basic", form_encoded_basic)],
            "compliance_fix": self.compliance_fix,
        }

    def compliance_fix(self, session: Any) -> None:
        """Called by Authlib for each session it creates: pool, token body, API headers."""
        if self.adapter is not None:
            session.mount("https://", self.adapter)
            session.mount("http://", self.adapter)
        session.register_compliance_hook("access_token_response", json_token_fix)
        session.register_compliance_hook("refresh_token_response", json_token_fix)
        hook = self.protected_request_hook()
        if hook:
            session.register_compliance_hook("protected_request", hook)

    def protected_request_hook(self) -> Callable[[str, dict, Any], tuple] | None:
        return None

    def authorize_params(
        self, client: FlaskOAuth2App, has_refresh_token: bool | None = None
    ) -> dict[str, Any]:
        return {}

    def login_options(self, args: Mapping[str, str]) -> dict[str, Any]:
        return {}  # a provider ignores what it does not offer (see `email_rerequest`)

    # --- the callback -----------------------------------------------------------------

    def complete_login(
        self, client: FlaskOAuth2App, args: Mapping[str, str]
    ) -> tuple[Identity, dict[str, Any]]:
        """Finish the login from the callback query: check, exchange the code, read the profile."""
        self.check_callback(args)
        token = self.exchange_code(client)
        # Without refresh token and expiry, Authlib cannot refresh behind our back
        # (a provider's token may live hours but a mock's may live seconds).
        api_token = {k: v for k, v in token.items() if k not in NOT_FOR_API_CALLS}
        identity = self.fetch_identity(client, api_token)
        return identity, self.login_token(client, token)

    def check_callback(self, args: Mapping[str, str]) -> None:
        """Errors the provider sent back in the redirect, before any token request."""
        error = args.get("error")
        if error == "access_denied":
            raise LoginRefused(
                403,
                "access_denied",
                f"You cancelled signing in with {self.title}.",
                f"To sign in, try again and approve access at {self.title}.",
                calm=True,
            )
        if error:
            code = safe_code(error)
            hint = (
                self.redirect_hint()
                if code == "redirect_uri_mismatch"
                else f"Check the app's settings in the {self.console_name} ({self.console_url})."
            )
            message = f"{self.title} refused the sign-in ({code})."
            raise LoginRefused(
                400, "provider_error", message, hint, details={"provider_error": code}
            )
        if not args.get("code"):
            raise LoginRefused(
                400,
                "missing_code",
                f"{self.title} sent no authorization code.",
                "Start the sign-in again from the login page.",
            )

    def exchange_code(self, client: FlaskOAuth2App) -> dict[str, Any]:
        return self.token_request(client.authorize_access_token)

    def token_request(self, send: Callable[[], T]) -> T:
        """One call to the token endpoint; an OAuth error in its answer gets a hint."""
        try:
            return send()
        except MismatchingStateError:  # ours, not the provider's: the app explains it
            raise
        except OAuthError as exc:
            raise self.token_refused(exc) from exc

    def fetch_identity(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        """The identity behind a fresh login's token response."""
        raise NotImplementedError

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        return self.fetch_identity(client, token)

    def login_token(self, client: FlaskOAuth2App, token: dict[str, Any]) -> dict[str, Any]:
        """The token to keep after a login (a provider may swap it for a long-lived one)."""
        return token

    # --- tokens after login -----------------------------------------------------------

    def refresh(self, client: FlaskOAuth2App, token: StoredGrant) -> dict[str, Any]:
        try:
            return client.fetch_access_token(
                grant_type="refresh_token", refresh_token=token.refresh_token
            )
        except OAuthError as exc:
            code, _ = self.unwrap_oauth_error(exc)
            if self.is_dead_refresh_token(code):
                raise RefreshTokenDead(code) from exc
            raise self.token_refused(exc) from exc

    def is_dead_refresh_token(self, code: str) -> bool:
        """The provider will never accept this refresh token again: ask the user."""
        return code in ("invalid_grant", "bad_refresh_token", "invalid_token", "190")

    def revoke(self, client: FlaskOAuth2App, token: StoredGrant | None, subject: str) -> None:
        raise NotImplementedError

    def revoke_token(self, client: FlaskOAuth2App, url: str, token: StoredGrant) -> None:
        """RFC 7009: the refresh token (it takes the grant along), else the access token.

        The app authenticates as at the token endpoint (RFC 7009 2.1). Only a 200 is done,
        or what `already_revoked` accepts; a refusal is RevocationIncomplete, and a provider
        that is down or rate-limiting raises (nothing was decided).
        """
        value, hint = (
            (token.refresh_token, "refresh_token")
            if token.refresh_token
            else (token.access_token, "access_token")
        )
        data = {"token": value, "token_type_hint": hint}
        headers = {}
        if self.client_auth_method(client) == "client_secret_basic":
            headers["Authorization"] = basic_authorization(
                self.config.client_id, self.config.client_secret
            )
        else:
            data.update(client_id=self.config.client_id, client_secret=self.config.client_secret)
        response = client.post(url, withhold_token=True, data=data, headers=headers)
        if response.status_code == 200 or self.already_revoked(response):
            return
        if response.status_code == 429 or response.status_code >= 500:
            raise self.api_error(response, "revoke")
        raise RevocationIncomplete(f"refused_{response.status_code}")

    def client_auth_method(self, client: FlaskOAuth2App) -> str:
        return self.token_auth_method

    def already_revoked(self, response: requests.Response) -> bool:
        """A refusal that still means the grant is gone (e.g. a documented 400 invalid_token)."""
        return False

    # --- errors -----------------------------------------------------------------------

    def unwrap_oauth_error(self, exc: OAuthError) -> tuple[str, str]:
        """The error's code and description; a code in the description that says more than
        the generic `error` (see `description_codes`) wins."""
        error = exc.error
        if isinstance(error, dict):  # some providers nest their error object
            code = safe_code(error.get("code", "error"))
            description = str(error.get("message", ""))
        else:
            code, description = safe_code(error), str(exc.description or "")
        codes = self.description_codes.items()
        said = (standard for pattern, standard in codes if re.search(pattern, description))
        return next(said, code), description

    def token_refused(self, exc: OAuthError) -> ProviderError:
        return self.token_error(*self.unwrap_oauth_error(exc))

    def token_error(self, code: str, description: str) -> ProviderError:
        hints = dict.fromkeys(CLIENT_CREDENTIAL_ERRORS, self.credentials_hint()) | {
            "redirect_uri_mismatch": self.redirect_hint(),
            "bad_verification_code": USED_CODE,
            "invalid_grant": USED_CODE,
            "unverified_user_email": f"Verify your email address at {self.title}, then try again.",
        }
        return LoginRefused(
            400,
            "token_error",
            f"{self.title} refused to complete the sign-in ({code}).",
            hints.get(code, "Start the sign-in again."),
            details={"provider_error": code, "description": description[:200]},
        )

    def api_error(self, response: requests.Response, what: str) -> ProviderError:
        """A failed call to the provider's API (the profile, a revocation)."""
        if response.status_code in (401, 403) and not self.is_rate_limited(response):
            return TokenRefused(
                f"{self.title} refused to share your profile ({response.status_code}).",
                "Start the sign-in again and approve the requested access.",
                details={"endpoint": what},
            )
        if self.is_rate_limited(response) or response.status_code == 429:
            return ProviderBusy(
                f"{self.title} is rate-limiting this app.",
                "Wait a minute and try again.",
                self.retry_after(response),
            )
        return ProviderUnavailable(
            f"{self.title} answered with an error ({response.status_code}).",
            details={"endpoint": what},
        )

    def is_rate_limited(self, response: requests.Response) -> bool:
        return response.status_code == 429

    def retry_after(self, response: requests.Response) -> int:
        reset = response.headers.get(self.reset_header, "") if self.reset_header else ""
        if "Retry-After" not in response.headers and reset.isdigit():
            return max(1, int(reset) - int(time.time()))
        try:
            return max(1, int(response.headers.get("Retry-After", "60")))
        except ValueError:
            return 60
