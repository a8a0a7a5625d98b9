"""What every provider adapter shares: the normalised Identity and the login plumbing.

A provider module only describes how its provider differs (endpoints, scopes, the
shape of its profile and of its errors); the sequence of a login lives here once.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App
from flask import g, has_app_context
from joserfc.errors import JoseError

from ..errors import AppError
from ..http import mount
from ..masking import mask_url

if TYPE_CHECKING:
    from ..tokens.vault import StoredToken


class InvalidProfile(ValueError):
    """The provider's answer has no usable account id, or is not the object it should be."""


class RevocationIncomplete(Exception):  # noqa: N818 - an outcome the person must act on
    """The provider may still list this app for the person: we could not withdraw the grant.

    Raised by `Provider.revoke` when asking is impossible (the token is dead and cannot be
    refreshed) or the provider kept failing; the person is sent to `user_apps_url` instead.
    `reason` is a short code for logs and the audit trail, never a token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Column sizes in models.py: longer values would make PostgreSQL refuse the row.
MAX_SUBJECT = 255
MAX_NAME = 255
MAX_EMAIL = 320
MAX_URL = 2048
# What a provider adapter's str(None) or a JSON null turned into text would give: never an id.
NOT_A_SUBJECT = frozenset({"None", "null", "undefined", "NaN"})


def clean_subject(value: Any) -> str:
    """The account id as text; InvalidProfile for anything that cannot key an account.

    Providers send ids as integers (GitHub) or strings (Google, Facebook). A missing, null,
    empty or oddly typed id must never become a shared subject such as "None".
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise InvalidProfile(f"the account id is {kind}")
    if not value or value in NOT_A_SUBJECT:
        raise InvalidProfile("the account id is empty")
    if len(value) > MAX_SUBJECT or not value.isprintable() or value.strip() != value:
        raise InvalidProfile("the account id is malformed")
    return value


def clean_text(value: Any, limit: int) -> str | None:
    """A display value (name, login): text on one line, cut to fit; anything else is None."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return "".join(c for c in text if c.isprintable())[:limit] or None


def clean_email(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_EMAIL or "@" not in value:
        return None
    if not value.isprintable() or any(c.isspace() for c in value):
        return None
    return value


def clean_url(value: Any) -> str | None:
    """Only absolute http(s) URLs are kept (avatars end up in <img src>)."""
    if not isinstance(value, str) or len(value) > MAX_URL or not value.isprintable():
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


@dataclass(frozen=True)
class Identity:
    """One provider account, normalised: the shape of an entry in /api/me `identities`.

    Every provider builds its identities here, so the checks below hold for all of them:
    the subject is a non-empty id (an int becomes text; null, "", a list... raise
    InvalidProfile), and the other fields are text of the right size or None.
    """

    provider: str
    subject: str
    username: str | None
    email: str | None
    email_verified: bool
    name: str | None
    avatar_url: str | None

    def __post_init__(self) -> None:
        email = clean_email(self.email)
        values = {
            "subject": clean_subject(self.subject),
            "username": clean_text(self.username, MAX_NAME),
            "email": email,
            "email_verified": email is not None and self.email_verified is True,
            "name": clean_text(self.name, MAX_NAME),
            "avatar_url": clean_url(self.avatar_url),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProviderConfig:
    """One provider's settings; `extra` holds its URLs and options by variable name."""

    name: str
    client_id: str
    client_secret: str
    extra: Mapping[str, str] = field(default_factory=dict)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(name: str, value: str, production: bool, problems: list[str]) -> None:
    """Provider URLs must be absolute; plain http is only tolerated for loopback mocks."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"{name} must be an absolute http(s) URL, got {mask_url(value)!r}")
    elif production and parts.scheme == "http" and not is_loopback_url(value):
        problems.append(f"{name} must use https:// in production (got {mask_url(value)!r})")


NOT_FOR_API_CALLS = ("refresh_token", "expires_at", "expires_in")


@dataclass(frozen=True)
class Finding:
    """One result of `flask auth doctor`: status is "ok", "warn" or "fail"."""

    status: str
    message: str
    hint: str | None = None


CLOCK_SKEW_WARN = 10  # seconds
CLOCK_SKEW_FAIL = 60  # half of the ID-token leeway: logins start failing beyond it


def clock_finding(title: str, response: requests.Response, elapsed: float) -> Finding:
    """Compare the provider's Date header with our clock."""
    date = response.headers.get("Date")
    if not date:
        return Finding("warn", f"{title} sent no Date header: clock skew not measured")
    try:
        theirs = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Finding("warn", f"{title} sent an unreadable Date header")
    skew = theirs - (time.time() - elapsed / 2)
    if abs(skew) <= CLOCK_SKEW_WARN:
        return Finding("ok", f"clock within {CLOCK_SKEW_WARN}s of {title}'s")
    status = "fail" if abs(skew) > CLOCK_SKEW_FAIL else "warn"
    direction = "behind" if skew > 0 else "ahead of"
    return Finding(
        status,
        f"this server's clock is {abs(skew):.0f}s {direction} {title}'s",
        "Sync the clock (NTP): tokens will look issued in the future or already expired.",
    )


class RestartLogin(Exception):  # noqa: N818 - a signal, not an error
    """The callback cannot be used, but a fresh authorization will succeed silently."""


def as_bool(value: Any) -> bool:
    """Providers send booleans as true, "true" or even "True"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def login_error(status: int, code: str, message: str, hint: str | None = None, **details: Any):
    known = {k: v for k, v in details.items() if v is not None}
    return AppError(status, code, message, hint, details=known)


def invalid_state_error() -> AppError:
    return login_error(
        400,
        "invalid_state",
        "This sign-in attempt has expired or was already used.",
        "Start again from the login page. If it keeps happening, allow cookies for this "
        "site, and finish signing in within 15 minutes in the same browser tab.",
    )


_SAFE_CODE = re.compile(r"[^a-z0-9_.-]")


def safe_code(value: Any) -> str:
    """Provider error codes are echoed on our pages: keep them short and inert."""
    return _SAFE_CODE.sub("", str(value).lower())[:64] or "unknown"


def remember_provider_clock(response: requests.Response) -> requests.Response:
    """Keep the token endpoint's Date header: it measures our clock skew if the ID token fails."""
    if has_app_context():
        g.provider_date = response.headers.get("Date")
    return response


def clock_skew_seconds() -> int | None:
    """Provider time minus ours, from the last token response of this request."""
    date = g.get("provider_date") if has_app_context() else None
    if not date:
        return None
    try:
        return int(parsedate_to_datetime(date).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def json_token_fix(response: requests.Response) -> requests.Response:
    """Turn a form-encoded token response (GitHub's default, Facebook's legacy) into JSON.

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


class Provider:
    """Base adapter: subclasses set the class attributes and override the hooks."""

    name: ClassVar[str]
    title: ClassVar[str]
    env_prefix: ClassVar[str]
    console_name: ClassVar[str]
    console_url: ClassVar[str]
    # Where a person removes this app's access themselves (when revocation by us failed).
    user_apps_url: str
    # Variables with URLs (and their defaults) that this provider reads.
    url_settings: ClassVar[dict[str, str]] = {}
    # Other variables (and their defaults) that this provider reads.
    option_settings: ClassVar[dict[str, str]] = {}
    scope: ClassVar[str]
    uses_pkce: ClassVar[bool] = True
    # Other URLs of ours to register in the provider's console: {label: path}.
    extra_callbacks: ClassVar[dict[str, str]] = {}
    # True when `revoke` needs a live access token: the caller refreshes an expiring one
    # first, under the refresh lock (accounts.revoke_grant).
    revoke_needs_live_token: ClassVar[bool] = False

    def __init__(
        self, config: ProviderConfig, timeout: float, adapter: requests.adapters.HTTPAdapter
    ):
        self.config = config
        self.timeout = timeout
        self.adapter = adapter

    # --- configuration -------------------------------------------------------------

    @classmethod
    def config_from_env(
        cls, env: Mapping[str, str], production: bool, problems: list[str]
    ) -> ProviderConfig | None:
        """None when the provider is not configured; problems get one line per bad value.

        Only one of the two credentials is a mistake, not a switch: silently leaving the
        provider off would hide the typo until someone tries to sign in.
        """
        id_name, secret_name = f"{cls.env_prefix}_CLIENT_ID", f"{cls.env_prefix}_CLIENT_SECRET"
        client_id = env.get(id_name, "").strip()
        client_secret = env.get(secret_name, "").strip()
        if not (client_id and client_secret):
            if client_id or client_secret:
                given, missing = (id_name, secret_name) if client_id else (secret_name, id_name)
                problems.append(
                    f"{missing} is not set but {given} is: set both to enable {cls.title}, "
                    "or neither to leave it off"
                )
            return None
        extra: dict[str, str] = {}
        for variable, default in cls.url_settings.items():
            value = (env.get(variable, "").strip() or default).rstrip("/")
            check_url(variable, value, production, problems)
            extra[variable] = value
        for variable, default in cls.option_settings.items():
            extra[variable] = env.get(variable, "").strip() or default
        cls.validate(client_id, extra, problems)
        return ProviderConfig(cls.name, client_id, client_secret, extra)

    @classmethod
    def validate(cls, client_id: str, extra: Mapping[str, str], problems: list[str]) -> None:
        """Provider-specific checks of the values above."""

    # --- `flask auth doctor` ------------------------------------------------------------

    @classmethod
    def credential_findings(cls, config: ProviderConfig) -> list[Finding]:
        """Credentials that cannot be right (a pasted secret in the id field, say)."""
        return []

    @classmethod
    def lifetime_findings(cls, config: ProviderConfig, today: date) -> list[Finding]:
        """Deadlines in the configuration as of `today` (a pinned API version that expires)."""
        return []

    @classmethod
    def probe_url(cls, config: ProviderConfig) -> str:
        """A URL of the provider that answers without a token (reachability, clock)."""
        return next(iter(config.extra.values()))

    @classmethod
    def diagnose(
        cls, config: ProviderConfig, http: requests.Session, timeout: float
    ) -> list[Finding]:
        findings = cls.credential_findings(config) or [
            Finding("ok", "client id and secret look well-formed")
        ]
        url = cls.probe_url(config)
        started = time.monotonic()
        try:
            response = http.get(url, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            findings.append(
                Finding(
                    "fail",
                    f"{mask_url(url)} is unreachable ({type(exc).__name__})",
                    "Check the URL, DNS, firewall and proxy settings, and REQUESTS_CA_BUNDLE.",
                )
            )
            return findings
        findings.append(clock_finding(cls.title, response, time.monotonic() - started))
        findings.extend(cls.probe_findings(config, response))
        return findings

    @classmethod
    def probe_findings(cls, config: ProviderConfig, response: requests.Response) -> list[Finding]:
        return [Finding("ok", f"{cls.title} is reachable")]

    # --- Authlib registration ---------------------------------------------------------

    def registration(self) -> dict[str, Any]:
        """Keyword arguments for `OAuth.register` (endpoints are added by subclasses)."""
        client_kwargs: dict[str, Any] = {
            "scope": self.scope,
            "token_endpoint_auth_method": "client_secret_post",
            "default_timeout": self.timeout,
        }
        if self.uses_pkce:
            client_kwargs["code_challenge_method"] = "S256"
        return {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "client_kwargs": client_kwargs,
            "compliance_fix": self.compliance_fix,
        }

    def compliance_fix(self, session: Any) -> None:
        """Called by Authlib for each session it creates: pool, token body, API headers."""
        mount(session, self.adapter)
        session.register_compliance_hook("access_token_response", remember_provider_clock)
        session.register_compliance_hook("access_token_response", json_token_fix)
        session.register_compliance_hook("refresh_token_response", json_token_fix)
        hook = self.protected_request_hook()
        if hook:
            session.register_compliance_hook("protected_request", hook)

    def protected_request_hook(self) -> Callable[[str, dict, Any], tuple] | None:
        return None

    def authorize_params(self, has_refresh_token: bool | None = None) -> dict[str, Any]:
        """Extra query parameters for the authorization redirect.

        `has_refresh_token` is None when nobody is signed in (we cannot know), else whether
        the signed-in user already has a refresh token for this provider.
        """
        return {}

    def login_options(self, args: Mapping[str, str]) -> dict[str, Any]:
        """Authorization parameters the person asked for in /login/<provider>'s query
        (Facebook: `?rerequest=1`); a provider ignores what it does not offer."""
        return {}

    # --- the callback -----------------------------------------------------------------

    def complete_login(
        self, client: FlaskOAuth2App, args: Mapping[str, str]
    ) -> tuple[Identity, dict[str, Any]]:
        """Finish the login from the callback query: check, exchange the code, read the profile."""
        self.check_callback(args)
        try:
            token = self.exchange_code(client)
            # Without refresh token and expiry, Authlib cannot refresh behind our back
            # (a GitHub App token lives 8 h but a mock's may live seconds).
            api_token = {k: v for k, v in token.items() if k not in NOT_FOR_API_CALLS}
            identity = self.fetch_identity(client, api_token)
            return identity, self.login_token(client, token)
        except AppError:
            raise
        except Exception as exc:  # translated into one clear page; nothing half-done survives
            raise self.translate(exc) from exc

    def check_callback(self, args: Mapping[str, str]) -> None:
        """Errors the provider sent back in the redirect, before any token request."""
        error = args.get("error")
        if error:
            if error == "access_denied":
                cancelled = login_error(
                    403,
                    "access_denied",
                    f"You cancelled signing in with {self.title}.",
                    f"To sign in, try again and approve access at {self.title}.",
                )
                cancelled.calm = True
                raise cancelled
            raise self.provider_redirect_error(safe_code(error))
        if not args.get("code"):
            raise login_error(
                400,
                "missing_code",
                f"{self.title} sent no authorization code.",
                "Start the sign-in again from the login page.",
            )

    def provider_redirect_error(self, code: str) -> AppError:
        if code == "redirect_uri_mismatch":
            hint = self.redirect_hint()
        else:
            hint = f"Check the app's settings in the {self.console_name} ({self.console_url})."
        return login_error(
            400,
            "provider_error",
            f"{self.title} refused the sign-in ({code}).",
            hint,
            provider_error=code,
        )

    def exchange_code(self, client: FlaskOAuth2App) -> dict[str, Any]:
        return client.authorize_access_token()

    def login_token(self, client: FlaskOAuth2App, token: dict[str, Any]) -> dict[str, Any]:
        """The token to keep after a login (Facebook swaps it for a long-lived one)."""
        return token

    # --- tokens after login -----------------------------------------------------------

    def refresh(self, client: FlaskOAuth2App, token: StoredToken) -> dict[str, Any]:
        return client.fetch_access_token(
            grant_type="refresh_token", refresh_token=token.refresh_token
        )

    def is_dead_refresh_token(self, code: str) -> bool:
        """The provider will never accept this refresh token again: ask the user."""
        return code in ("invalid_grant", "bad_refresh_token", "invalid_token", "190")

    def revoke(self, client: FlaskOAuth2App, token: StoredToken | None, subject: str) -> None:
        """Withdraw the app's grant at the provider, so it no longer lists this app.

        A token that is dead only counts as revoked when the grant is gone with it; otherwise
        raise RevocationIncomplete. Raises AppError when the provider could not be asked
        (down, slow, rate-limited, wrong secret).
        """
        raise NotImplementedError

    def call(self, send: Callable[[], Any]) -> Any:
        """Run one provider call, turning transport failures into 502/504 errors."""
        try:
            return send()
        except Exception as exc:
            raise self.translate(exc) from exc

    def fetch_identity(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        """The identity behind a fresh login's token response."""
        raise NotImplementedError

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        """The current profile, from the user API, with a stored token."""
        return self.fetch_identity(client, token)

    # --- errors ---------------------------------------------------------------------

    def translate(self, exc: Exception) -> AppError:
        """Map what Authlib, joserfc and requests raise to a page with a hint."""
        if isinstance(exc, MismatchingStateError):
            return invalid_state_error()
        if isinstance(exc, InvalidProfile):
            return AppError(
                502,
                "invalid_profile",
                f"{self.title} sent a profile this app cannot use ({exc}).",
                "Try again in a moment. If it keeps happening, the provider's API may have "
                "changed: check for an update of this app.",
            )
        if isinstance(exc, OAuthError):
            return self.token_error(*self.unwrap_oauth_error(exc))
        if isinstance(exc, JoseError):
            return login_error(
                400,
                "invalid_id_token",
                f"The identity token from {self.title} failed validation.",
                "Start the sign-in again. If it keeps failing, check that this server's clock "
                "is correct (an ID token 'issued in the future' means the clock is behind).",
                reason=safe_code(getattr(exc, "error", "jose_error")),
                description=str(getattr(exc, "description", "") or "")[:200],
                clock_skew_seconds=clock_skew_seconds(),
            )
        if isinstance(exc, requests.Timeout):
            return AppError(
                504,
                "provider_timeout",
                f"{self.title} did not answer in time.",
                "Try again in a moment.",
            )
        if isinstance(exc, requests.RequestException | ValueError):
            return AppError(
                502,
                "provider_unavailable",
                f"{self.title} could not be reached or sent an unreadable answer.",
                "Try again in a moment.",
                details={"exception": type(exc).__name__},
            )
        raise exc

    def unwrap_oauth_error(self, exc: OAuthError) -> tuple[str, str]:
        error = exc.error
        if isinstance(error, dict):  # Facebook nests its error object
            return safe_code(error.get("code", "error")), str(error.get("message", ""))
        return safe_code(error), str(exc.description or "")

    def token_error(self, code: str, description: str) -> AppError:
        hints = {
            "incorrect_client_credentials": self.credentials_hint(),
            "invalid_client": self.credentials_hint(),
            "unauthorized_client": self.credentials_hint(),
            "redirect_uri_mismatch": self.redirect_hint(),
            "bad_verification_code": "The sign-in code expired or was already used. Start again.",
            "invalid_grant": "The sign-in code expired or was already used. Start again.",
            "unverified_user_email": f"Verify your email address at {self.title}, then try again.",
        }
        return login_error(
            400,
            "token_error",
            f"{self.title} refused to complete the sign-in ({code}).",
            hints.get(code, "Start the sign-in again."),
            provider_error=code,
            description=description[:200],
        )

    def credentials_hint(self) -> str:
        return (
            f"Check {self.env_prefix}_CLIENT_ID and {self.env_prefix}_CLIENT_SECRET against "
            f"the {self.console_name} ({self.console_url})."
        )

    def redirect_hint(self) -> str:
        return (
            f"Register this app's callback URL, <PUBLIC_URL>/auth/{self.name}/callback, exactly "
            f"in the {self.console_name} ({self.console_url})."
        )

    def api_error(self, response: requests.Response, what: str) -> AppError:
        """A failed profile call during login."""
        if response.status_code in (401, 403) and not self.is_rate_limited(response):
            return login_error(
                400,
                "profile_error",
                f"{self.title} refused to share your profile ({response.status_code}).",
                "Start the sign-in again and approve the requested access.",
                endpoint=what,
            )
        if self.is_rate_limited(response) or response.status_code == 429:
            return AppError(
                503,
                "provider_rate_limited",
                f"{self.title} is rate-limiting this app.",
                "Wait a minute and try again.",
                retry_after=self.retry_after(response),
            )
        return AppError(
            502,
            "provider_unavailable",
            f"{self.title} answered with an error ({response.status_code}).",
            "Try again in a moment.",
            details={"endpoint": what},
        )

    def is_rate_limited(self, response: requests.Response) -> bool:
        return response.status_code == 429

    def retry_after(self, response: requests.Response) -> int:
        try:
            return max(1, int(response.headers.get("Retry-After", "60")))
        except ValueError:
            return 60
