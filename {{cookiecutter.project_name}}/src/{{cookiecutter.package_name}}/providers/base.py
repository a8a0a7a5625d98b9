"""What every provider shares: the normalised Identity, its cleaning, and the adapter protocol.

`Provider` is what the app asks of an adapter; oauth2.py implements it for plain OAuth 2.0
and oidc.py for OpenID Connect, so a provider module only says how its provider differs.
Nothing here knows the app: settings.py reads a `ProviderConfig`, the doctor prints the
`Check`s, and the app's error handling shows what providers/errors.py raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, ClassVar, NamedTuple, Protocol
from urllib.parse import urlsplit

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App
from requests import Response
from requests.adapters import HTTPAdapter

from .errors import InvalidProfile, ProviderError

# Column sizes in models.py: longer values would make PostgreSQL refuse the row.
MAX_SUBJECT = 255
MAX_NAME = 255
MAX_EMAIL = 320
MAX_URL = 2048
# What a provider adapter's str(None) or a JSON null turned into text would give: never an id.
NOT_A_SUBJECT = frozenset({"None", "null", "undefined", "NaN"})
_SAFE_CODE = re.compile(r"[^a-z0-9_.-]")
Fetch = Callable[[str], Response]


def clean_subject(value: Any) -> str:
    """The account id as text; InvalidProfile for anything that cannot key an account.

    Providers send ids as integers or as strings. A missing, null, empty or oddly typed id
    must never become a shared subject such as "None".
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


def as_bool(value: Any) -> bool:
    """Providers send booleans as true, "true" or even "True"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def safe_code(value: Any) -> str:
    """Provider error codes are echoed on our pages: keep them short and inert."""
    return _SAFE_CODE.sub("", str(value).lower())[:64] or "unknown"


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


class Check(NamedTuple):
    """A provider's verdict on one point of its configuration, for `flask auth doctor`."""

    status: str  # "ok", "warn" or "fail"
    message: str
    hint: str | None = None


class StoredGrant(Protocol):
    """The app's stored token for one link, as an adapter reads it (tokens/vault.py)."""

    access_token: str
    refresh_token: str | None
    reauth_required: bool

    def expires_within(self, seconds: int) -> bool: ...

    def as_oauth_token(self) -> dict[str, Any]: ...


class Provider:
    """The adapter protocol: declarations, configuration checks and the calls the app makes."""

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
    # What it asks for; an instance may set its own from configuration.
    scope: str
    uses_pkce: ClassVar[bool] = True
    # Other URLs of ours to register in the provider's console: {label: path}.
    extra_callbacks: ClassVar[dict[str, str]] = {}
    # True when `revoke` needs a live access token: the caller refreshes an expiring one
    # first, under the refresh lock (accounts.revoke_grant).
    revoke_needs_live_token: ClassVar[bool] = False
    # The /login/<name> query that asks the person again for an email they declined (the
    # account page then offers "Share your email"); empty: the provider asks anyway, or never.
    email_rerequest: ClassVar[dict[str, str]] = {}
    # Scripts in static/ that every page loads while this provider is enabled: for what its
    # redirects leave in the browser (the Content-Security-Policy allows no inline script).
    page_scripts: ClassVar[tuple[str, ...]] = ()
    # Option -> (a regular expression its whole value must match, the message if not).
    option_patterns: ClassVar[dict[str, tuple[str, str]]] = {}
    # "client_id" or "client_secret" -> (a regular expression a wrong value fully matches,
    # the problem, the hint with {console_name}): a value of another kind pasted there, say.
    credential_mistakes: ClassVar[dict[str, tuple[str, str, str]]] = {}
    # Of `url_settings`, those kept exactly as given: an issuer is compared byte for byte
    # (OIDC Discovery 4.3), so its trailing slash is no typo. The others lose theirs.
    verbatim_urls: ClassVar[tuple[str, ...]] = ()
    # Variables that rename it (one provider module for any company's identity provider):
    # its `name` in routes and records, its `title` on the button. settings.py reads them.
    name_setting: ClassVar[str] = ""
    title_setting: ClassVar[str] = ""
    # Whether a logout here also ends the person's session at the provider (`end_session_url`).
    ends_provider_session: bool = False

    def __init__(self, config: ProviderConfig, timeout: float, adapter: HTTPAdapter | None):
        self.config = config
        self.timeout = timeout
        self.adapter = adapter  # the app's shared connection pool, mounted on every session

    @classmethod
    def renamed(cls, name: str, title: str) -> type[Provider]:
        """This provider under another name and title (`name_setting`, `title_setting`)."""
        if (name, title) == (cls.name, cls.title):
            return cls
        attributes = {"__module__": cls.__module__, "name": name, "title": title}
        return type(cls.__name__, (cls,), attributes)

    @classmethod
    def other_callbacks(cls, config: ProviderConfig | None) -> dict[str, str]:
        """Other URLs of ours to register in its console under `config` (None: disabled),
        {label: path}: by default `extra_callbacks`."""
        return dict(cls.extra_callbacks)

    @property
    def icon(self) -> str:
        """Its button's picture in static/: named after its module, whatever its name."""
        return self.__module__.rpartition(".")[2] + ".svg"

    # --- configuration and `flask auth doctor` ------------------------------------------

    @classmethod
    def validate(cls, client_id: str, extra: Mapping[str, str]) -> list[str]:
        """Problems with this provider's values, one line each, naming the variable: by
        default, the message of each of `option_patterns` that its value does not match."""
        patterns = cls.option_patterns.items()
        return [text for name, (rule, text) in patterns if not re.fullmatch(rule, extra[name])]

    @classmethod
    def credential_checks(cls, config: ProviderConfig) -> list[Check]:
        """Credentials that cannot be right (a pasted secret in the id field, say): by
        default, a failure for each of `credential_mistakes` the credential matches."""
        return [
            Check("fail", problem, hint.format(console_name=cls.console_name))
            for attribute, (rule, problem, hint) in cls.credential_mistakes.items()
            if re.fullmatch(rule, getattr(config, attribute), re.IGNORECASE)
        ]

    @classmethod
    def lifetime_checks(cls, config: ProviderConfig, today: date) -> list[Check]:
        """Deadlines in the configuration as of `today` (a pinned API version that expires)."""
        return []

    @classmethod
    def probe_url(cls, config: ProviderConfig) -> str:
        """A URL of the provider that answers without a token (reachability, clock)."""
        return next(iter(config.extra.values()))

    @classmethod
    def probe_checks(cls, config: ProviderConfig, response: Response, fetch: Fetch) -> list[Check]:
        """What the answer from `probe_url` says (the doctor measured reachability and clock).

        `fetch(url)` GETs another URL as the doctor does (its session, timeout, no redirects).
        """
        return [Check("ok", f"{cls.title} is reachable")]

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

    # --- the calls: oauth2.py implements them -------------------------------------------

    def registration(self) -> dict[str, Any]:
        """Keyword arguments for Authlib's `OAuth.register`."""
        raise NotImplementedError

    def authorize_params(
        self, client: FlaskOAuth2App, has_refresh_token: bool | None = None
    ) -> dict[str, Any]:
        """Extra query parameters for the authorization redirect (`client` knows discovery).

        `has_refresh_token` is None when nobody is signed in (we cannot know), else whether
        the signed-in user already has a refresh token for this provider.
        """
        raise NotImplementedError

    def login_options(self, args: Mapping[str, str]) -> dict[str, Any]:
        """Authorization parameters the person asked for in /login/<provider>'s query."""
        raise NotImplementedError

    def complete_login(
        self, client: FlaskOAuth2App, args: Mapping[str, str]
    ) -> tuple[Identity, dict]:
        """The identity and the token to keep, from the callback's query."""
        raise NotImplementedError

    def refresh(self, client: FlaskOAuth2App, token: StoredGrant) -> dict[str, Any]:
        """A new token response; RefreshTokenDead when the person must consent again."""
        raise NotImplementedError

    def revoke(self, client: FlaskOAuth2App, token: StoredGrant | None, subject: str) -> None:
        """Withdraw the app's grant at the provider, so it no longer lists this app.

        A token that is dead only counts as revoked when the grant is gone with it; otherwise
        raise RevocationIncomplete. Raises ProviderError (or what requests raises) when the
        provider could not be asked (down, slow, rate-limited, wrong secret).
        """
        raise NotImplementedError

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        """The current profile, from the user API, with a stored token."""
        raise NotImplementedError

    def token_refused(self, exc: OAuthError) -> ProviderError:
        """What an OAuth error from the token endpoint means, with a hint."""
        raise NotImplementedError

    def end_session_url(
        self, client: FlaskOAuth2App, id_token: str | None, post_logout_uri: str
    ) -> str | None:
        """Where to send the browser after our logout to end its session at the provider
        too (OpenID Connect RP-Initiated Logout); None: nowhere, our logout is all."""
        return None
