"""Google: OpenID Connect. The identity comes from the ID token, validated per OIDC Core 3.1.3.7.

Authlib validates the signature, nonce, exp, iat and azp; we add what it leaves out:
RS256 only (the discovery document could list `none`), `aud` must be exactly our client,
both of Google's issuer spellings, and the hosted-domain claim when one is configured.
Google's signing keys are cached as long as its certs response says, not forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App

from ..masking import mask_url
from .base import (
    Finding,
    Identity,
    InvalidProfile,
    Provider,
    ProviderConfig,
    RevocationIncomplete,
    as_bool,
    clean_subject,
    login_error,
)

if TYPE_CHECKING:
    from ..tokens.vault import StoredToken

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
ID_TOKEN_LEEWAY = 120  # seconds of clock skew tolerated on iat/exp
# The key set (JWKS): how long to trust it when the certs response has no usable max-age,
# the most we trust it whatever the header says, and the least (max-age=0 must not turn
# every login into a fetch).
JWKS_DEFAULT_MAX_AGE = 300
JWKS_MAX_AGE_CAP = 86400
JWKS_MIN_MAX_AGE = 1
# An unknown kid re-fetches at most once per this many seconds per process: forged kids
# cannot make us hammer Google. 30 s is panva/jose's default `cooldownDuration`. A real
# new key is still fetched at once, unless forged kids used the re-fetch just before.
JWKS_REFETCH_INTERVAL = 30


def max_age(headers: Mapping[str, str]) -> float:
    """Seconds a certs response stays fresh: max-age minus Age (RFC 9111 4.2.1, 4.2.3).

    Google: cache the keys "using the cache directives of the HTTP response"
    (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken);
    it sends `Cache-Control: public, max-age=N, must-revalidate, no-transform`.
    """
    directives: dict[str, str] = {}
    for part in headers.get("Cache-Control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return JWKS_MIN_MAX_AGE
    try:
        seconds = int(directives["max-age"]) - int(headers.get("Age", "0") or 0)
    except (KeyError, ValueError):
        return JWKS_DEFAULT_MAX_AGE
    return min(max(seconds, JWKS_MIN_MAX_AGE), JWKS_MAX_AGE_CAP)


class KeySetCache:
    """One process's copy of the JWKS, trusted until its max-age runs out.

    Authlib keeps the first key set forever (a key Google withdrew stayed trusted until a
    restart) and re-fetches on every unknown kid. Here a stale set is fetched again before
    use (must-revalidate: never used stale), and an unknown kid re-fetches a fresh set at
    most once per JWKS_REFETCH_INTERVAL; otherwise the token is refused (invalid_key_id).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one fetch at a time; the others then find it
        self._keys: dict[str, Any] | None = None
        self._fresh_until = 0.0
        self._last_forced = -float(JWKS_REFETCH_INTERVAL)

    def get(self, fetch: Callable[[], requests.Response], force: bool) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._keys is not None and now < self._fresh_until:
                if not force or now - self._last_forced < JWKS_REFETCH_INTERVAL:
                    return self._keys
                self._last_forced = now
            response = fetch()
            response.raise_for_status()
            keys = response.json()
            if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
                raise ValueError("the JWKS is not a key set")
            self._keys, self._fresh_until = keys, time.monotonic() + max_age(response.headers)
            return keys


class GoogleOAuthApp(FlaskOAuth2App):
    """Authlib's client with the key set cached per process by `KeySetCache`.

    The discovery document stays cached for the process's life, as Authlib does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_set_cache = KeySetCache()

    def fetch_jwk_set(self, force: bool = False) -> dict[str, Any]:
        """Called by Authlib's parse_id_token: first plain, again with force on unknown kid."""

        def fetch() -> requests.Response:
            uri = self.load_server_metadata().get("jwks_uri")
            if not uri:
                raise ValueError("the discovery document has no jwks_uri")
            with self._get_session() as session:
                return session.request("GET", uri, withhold_token=True)

        return self.key_set_cache.get(fetch, force)


class GoogleProvider(Provider):
    name = "google"
    title = "Google"
    env_prefix = "GOOGLE"
    console_name = "Google Cloud console"
    console_url = "https://console.cloud.google.com/apis/credentials"
    user_apps_url = "https://myaccount.google.com/connections"
    url_settings = {
        "GOOGLE_SERVER_METADATA_URL": "https://accounts.google.com/.well-known/openid-configuration"
    }
    option_settings = {"GOOGLE_HOSTED_DOMAIN": ""}
    scope = "openid email profile"

    @classmethod
    def credential_findings(cls, config: ProviderConfig) -> list[Finding]:
        if not config.client_id.endswith(".apps.googleusercontent.com"):
            return [
                Finding(
                    "fail",
                    "GOOGLE_CLIENT_ID does not end in .apps.googleusercontent.com",
                    f"Copy the OAuth client ID of a Web application from {cls.console_url}.",
                )
            ]
        return []

    @classmethod
    def probe_findings(cls, config: ProviderConfig, response: requests.Response) -> list[Finding]:
        url = config.extra["GOOGLE_SERVER_METADATA_URL"]
        try:
            metadata = response.json() if response.status_code == 200 else None
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            return [
                Finding(
                    "fail",
                    f"the discovery document at {mask_url(url)} did not load "
                    f"(HTTP {response.status_code})",
                    "Check GOOGLE_SERVER_METADATA_URL.",
                )
            ]
        issuer = metadata.get("issuer")
        expected = url.removesuffix("/.well-known/openid-configuration")
        if issuer not in GOOGLE_ISSUERS and issuer != expected:
            return [
                Finding(
                    "fail",
                    f"the discovery document's issuer {issuer!r} does not match {mask_url(url)}",
                    "ID tokens from it would be refused: check GOOGLE_SERVER_METADATA_URL.",
                )
            ]
        return [Finding("ok", f"discovery document loaded; issuer {issuer}")]

    @classmethod
    def probe_url(cls, config: ProviderConfig) -> str:
        return config.extra["GOOGLE_SERVER_METADATA_URL"]

    @property
    def hosted_domain(self) -> str:
        return self.config.extra["GOOGLE_HOSTED_DOMAIN"].lower()

    def registration(self) -> dict[str, Any]:
        return {
            **super().registration(),
            "server_metadata_url": self.config.extra["GOOGLE_SERVER_METADATA_URL"],
            "client_cls": GoogleOAuthApp,
        }

    def authorize_params(self, has_refresh_token: bool | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"access_type": "offline"}
        # Google sends a refresh token only at the first consent; ask again only when a
        # signed-in user has none stored, or only a dead one (refused with invalid_grant
        # for good), so returning users are not asked every time. A sign-in that did not
        # know comes back here signed in (auth.views._wants_refresh_consent).
        if has_refresh_token is False:
            params["prompt"] = "consent"
        if self.hosted_domain:
            # `hd` only pre-selects the account chooser; the claim is what we enforce.
            params["hd"] = self.hosted_domain
        return params

    def exchange_code(self, client: FlaskOAuth2App) -> dict[str, Any]:
        metadata = client.load_server_metadata()
        # Authlib would accept any algorithm the discovery document lists (even `none`).
        metadata["id_token_signing_alg_values_supported"] = ["RS256"]
        issuer = metadata.get("issuer")
        issuers = list(GOOGLE_ISSUERS) if issuer in GOOGLE_ISSUERS else [issuer]
        token = client.authorize_access_token(
            leeway=ID_TOKEN_LEEWAY,
            claims_options={
                "iss": {"essential": True, "values": issuers},
                # Authlib's default only checks azp; the audience must be us.
                "aud": {"essential": True, "value": self.config.client_id},
                "sub": {"essential": True},
            },
        )
        if "id_token" not in token or not token.get("userinfo"):
            raise login_error(
                400,
                "invalid_id_token",
                "Google sent no identity token.",
                "Start the sign-in again; the app asks for the `openid` scope.",
            )
        return token

    def revoke(self, client: FlaskOAuth2App, token: StoredToken | None, subject: str) -> None:
        if token is None:  # nothing to ask with
            raise RevocationIncomplete("no_token")
        endpoint = self.call(client.load_server_metadata).get("revocation_endpoint")
        if not endpoint:
            return
        response = self.call(
            lambda: client.post(
                endpoint,
                withhold_token=True,
                data={"token": token.refresh_token or token.access_token},
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        )
        # 400 invalid_token: already expired or revoked, which is what we wanted.
        if response.status_code not in (200, 400):
            raise self.api_error(response, "revoke")

    def fetch_identity(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        claims: Mapping[str, Any] = token["userinfo"]
        audience = claims.get("aud")
        if isinstance(audience, list) and any(a != self.config.client_id for a in audience):
            # OIDC Core 3.1.3.7 (3): reject audiences we do not trust.
            raise login_error(
                400, "invalid_id_token", "The Google identity token names other audiences."
            )
        if self.hosted_domain and str(claims.get("hd", "")).lower() != self.hosted_domain:
            raise login_error(
                403,
                "hosted_domain_mismatch",
                f"Only {self.hosted_domain} Google Workspace accounts may sign in here.",
                f"Sign in with your {self.hosted_domain} account.",
            )
        return self.identity_from_claims(claims)

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        endpoint = client.load_server_metadata()["userinfo_endpoint"]
        response = client.get(endpoint, token=token)
        if response.status_code != 200:
            raise self.api_error(response, "userinfo")
        return self.identity_from_claims(response.json())

    def identity_from_claims(self, claims: Mapping[str, Any]) -> Identity:
        """ID-token claims and the userinfo answer share these names."""
        if not isinstance(claims, Mapping):
            raise InvalidProfile("the profile is not a JSON object")
        return Identity(
            provider=self.name,
            subject=clean_subject(claims.get("sub")),  # refuses a missing, null or empty one
            username=None,
            email=claims.get("email"),
            email_verified=bool(claims.get("email"))
            and as_bool(claims.get("email_verified", claims.get("verified_email"))),
            name=claims.get("name"),
            avatar_url=claims.get("picture"),
        )
