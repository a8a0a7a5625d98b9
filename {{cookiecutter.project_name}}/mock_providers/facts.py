"""What the cross-provider tests need to know about a mock provider, declared by the mock.

Each provider module ends with `FACTS = MockFacts(...)`, and `facts()` collects them for
every enabled provider. A test that holds for every provider reads these facts instead of
naming providers, so a new provider (an adapter, and a mock module with its FACTS) is
tested by every cross-provider test without an edit to one of them.

The callables take what they need as arguments (the `MockControl`, the app's environment
from `RunningMock.app_env()`, a `AppGrant`) and talk to the mock over real HTTP, as the app
does: a test needs no import of the provider's module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import requests

from .control import MockControl

# The app's environment as `RunningMock.app_env()` gives it: where the provider is, and the
# client credentials registered with it.
Env = Mapping[str, str]
SAME_AS_DOCUMENT = ""  # `MockFacts.issuer` of a provider whose issuer is its own URL
Switches = Mapping[str, Any]
TIMEOUT = 10


@dataclass(frozen=True)
class AppGrant:
    """What the app holds for one person at one provider: their id there and the tokens."""

    subject: str
    access_token: str
    refresh_token: str | None = None


@dataclass(frozen=True)
class RateLimit:
    """A rate limit the mock can put on the app's profile call, and how the app answers it."""

    id: str  # names the case in test ids
    switches: Switches  # impose it
    undo: Switches  # lift it again (the switches' defaults)
    retry_after: tuple[int, int]  # the Retry-After (seconds, inclusive) the app must send


@dataclass(frozen=True)
class RefreshFacts:
    """How the provider's refresh tokens can be had, and lost."""

    # Switches: the next sign-in brings a refresh token and an access token already due
    # for refresh (it expires within the app's leeway), so every API call refreshes.
    expiring: Switches
    # Switches: tokens issued from now on have hours to live, so nothing refreshes.
    long_lived: Switches
    # The stored refresh token dies at the provider (revoked there, or used first by someone
    # else), while the person's consent stays: the app's next refresh is refused.
    kill: Callable[[MockControl, Env, AppGrant], None]
    # Authorization parameters a sign-in must carry to get a new refresh token while the
    # provider still remembers the consent (some give one only on a consent screen).
    reconsent: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MockFacts:
    """One mock provider, as the tests that hold for every provider need to know it.

    The endpoint fields are the counter names of `MockControl.requests()[name]`.
    """

    name: str  # the provider's name: the mock module's NAME, /login/<name>
    # A second person at this provider (the `user` switch): another subject, and another
    # email or none. Any test that needs "someone else" signs them in.
    other_persona: str
    # The email of the default persona's profile, and whether the app may count it as
    # verified by the provider (an unverified one never makes an admin).
    email: str | None
    email_verified: bool
    # Make the default persona's email one the app must treat as unverified (some providers'
    # always is); returns that address, as the app will show it.
    unverified_email: Callable[[MockControl], str]
    authorize_endpoint: str = "authorize"  # where the browser is sent to sign in
    token_endpoint: str = "token"  # the code exchange, and refreshes
    profile_endpoint: str = "userinfo"  # what `/api/providers/<name>/profile` calls
    # Where the app's revocation of the grant lands; None: no app can revoke one there
    # (no revocation endpoint), so the app names the provider in `?unrevoked=` for the person.
    revoke_endpoint: str | None
    # The most requests one sign-in makes here (token and profile reads), once the app has
    # cached what it caches (discovery, keys): by default the token request alone.
    login_calls: int = 1
    # The app variable naming the host that serves its API calls, its revocation and the
    # doctor's probe; `api_path` is what to append to a bare host put there (for one, the
    # discovery document's path, since the variable names the document itself).
    api_variable: str
    api_path: str = ""
    # An OpenID Connect provider's issuer, as its discovery document states it: a fixed URL
    # (a constant), or SAME_AS_DOCUMENT when it is where the document is (a document at
    # `X/.well-known/openid-configuration` says `X`, as Keycloak's does). None: no ID token.
    issuer: str | None = None
    refresh: RefreshFacts | None  # None: no refresh tokens (long-lived access tokens)
    # Switches under which a sign-in and each API call mint every kind of secret this
    # provider has (refreshed, rotated or exchanged tokens), for leak checks. By default an
    # OpenID provider's `expires_in` switch at 60 s: every API call refreshes.
    most_tokens: Switches = field(default_factory=lambda: {"expires_in": 60})
    # Whether the provider still takes this access token (a live token of a live grant).
    token_works: Callable[[Env, str], bool]
    # The person removes the app in the provider's settings: the grant and its tokens die.
    remove_app: Callable[[MockControl, Env, AppGrant], None]
    # Switches after which the profile endpoint refuses the access token as the provider
    # does for a grant it dropped by itself; None: `remove_app` is the only way. By default
    # an OpenID provider's `userinfo` switch.
    token_refused: Switches | None = field(default_factory=lambda: {"userinfo": "unauthorized"})
    rate_limits: tuple[RateLimit, ...]
    # A sign-in that changes nothing still changes the profile (some sign the picture
    # URL anew each time), so the other sessions rightly get it.
    profile_changes_each_sign_in: bool = False
    # Settings `flask auth doctor` must fail (credentials that cannot be this provider's,
    # an expired API version), and text each of its failures must contain (by default the
    # names of those settings).
    malformed_settings: Mapping[str, str]
    malformed_findings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.malformed_findings:
            object.__setattr__(self, "malformed_findings", tuple(self.malformed_settings))


@cache
def facts() -> Mapping[str, MockFacts]:
    """The FACTS of every enabled mock provider, by name, in registry order."""
    from . import load_providers  # the registry lives in the package, which imports us

    found: dict[str, MockFacts] = {}
    for name, module in load_providers().items():
        declared = getattr(module, "FACTS", None)
        if not isinstance(declared, MockFacts) or declared.name != name:
            raise TypeError(f"{module.__name__} must end with FACTS = MockFacts(name={name!r})")
        found[name] = declared
    return MappingProxyType(found)


# --- HTTP helpers the modules' facts share ---------------------------------------------


def call(method: str, url: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, url, timeout=TIMEOUT, **kwargs)


def expect(response: requests.Response, *statuses: int) -> requests.Response:
    """The response, if its status is one of `statuses`; else an error naming the call (its
    path only: a query may carry a token)."""
    if response.status_code not in statuses:
        where = f"{response.request.method} {urlsplit(response.url).path}"
        raise AssertionError(f"{where}: {response.status_code} {response.text[:200]}")
    return response


def oidc_metadata(metadata_url: str) -> dict[str, Any]:
    """An OpenID Connect discovery document (its endpoints)."""
    return expect(call("GET", metadata_url), 200).json()


def refresh_at(url: str, env: Env, prefix: str, refresh_token: str | None) -> requests.Response:
    """Spend a refresh token at a token endpoint, with the app's client credentials (form)."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token or "",
        "client_id": env[f"{prefix}_CLIENT_ID"],
        "client_secret": env[f"{prefix}_CLIENT_SECRET"],
    }
    return call("POST", url, data=form, headers={"Accept": "application/json"})


def bearer_works(url: str, access_token: str, **headers: str) -> bool:
    """Whether a GET with this bearer token is answered 200."""
    headers["Authorization"] = f"Bearer {access_token}"
    return call("GET", url, headers=headers).status_code == 200


# --- facts any OpenID Connect provider can use as they are ------------------------------


def expires_in_refresh(
    long_lived: int, kill: Callable[[MockControl, Env, AppGrant], None]
) -> RefreshFacts:
    """`refresh` of a provider with the `expires_in` switch: 60 s (inside the app's leeway),
    or `long_lived` seconds."""
    return RefreshFacts({"expires_in": 60}, {"expires_in": long_lived}, kill)


def unverified_by_switch(name: str, email: str) -> Callable[[MockControl], str]:
    """`unverified_email` of a provider with the `email_verified` switch: False says the
    default persona's `email` is unverified."""

    def unverify(control: MockControl) -> str:
        control.switch(name, email_verified=False)
        return email

    return unverify


def oidc_endpoint(env: Env, variable: str, name: str, path: str = "") -> str:
    """An endpoint of the discovery document at `env[variable] + path`, e.g. "token_endpoint"."""
    return oidc_metadata(env[variable] + path)[name]


def userinfo_takes(variable: str, path: str = "") -> Callable[[Env, str], bool]:
    """`token_works` of an OpenID Connect provider: its userinfo endpoint takes the token."""

    def works(env: Env, access_token: str) -> bool:
        return bearer_works(oidc_endpoint(env, variable, "userinfo_endpoint", path), access_token)

    return works


def revoked_at_endpoint(
    variable: str, prefix: str, path: str = ""
) -> Callable[[MockControl, Env, AppGrant], None]:
    """`remove_app` where discovery names a revocation endpoint (RFC 7009): revoking the
    refresh token (else the access token), with client credentials, ends the grant."""

    def remove(control: MockControl, env: Env, grant: AppGrant) -> None:
        form = {
            "token": grant.refresh_token or grant.access_token,
            "client_id": env[f"{prefix}_CLIENT_ID"],
            "client_secret": env[f"{prefix}_CLIENT_SECRET"],
        }
        revoke = oidc_endpoint(env, variable, "revocation_endpoint", path)
        expect(call("POST", revoke, data=form), 200)

    return remove


def refresh_refused(
    name: str, variable: str, prefix: str, path: str = ""
) -> Callable[[MockControl, Env, AppGrant], None]:
    """`RefreshFacts.kill` of an OpenID provider with the `refresh` switch: its token endpoint
    refuses the refresh token once and for good (a grant revoked there); the consent stays."""

    def kill(control: MockControl, env: Env, grant: AppGrant) -> None:
        control.switch(name, refresh="invalid_grant")
        try:
            url = oidc_endpoint(env, variable, "token_endpoint", path)
            refused = refresh_at(url, env, prefix, grant.refresh_token)
        finally:
            control.switch(name, refresh="ok")
        expect(refused, 400)

    return kill


def spent_elsewhere(
    variable: str, prefix: str, path: str = ""
) -> Callable[[MockControl, Env, AppGrant], None]:
    """`refresh.kill` where refresh tokens rotate: someone else spent the stored one first
    (at the discovered token endpoint), so the app holds a retired one."""

    def kill(control: MockControl, env: Env, grant: AppGrant) -> None:
        url = oidc_endpoint(env, variable, "token_endpoint", path)
        expect(refresh_at(url, env, prefix, grant.refresh_token), 200)

    return kill


def posted_by_person(
    variable: str, path: str, status: int, *, bearer: bool = False, **form: str
) -> Callable[[MockControl, Env, AppGrant], None]:
    """`remove_app` or `RefreshFacts.kill` that the person does at the provider: a POST to
    `env[variable] + path` with the grant's access token as bearer if `bearer`, and a form of
    the grant's attributes (`form`: field -> AppGrant attribute, e.g. sub="subject")."""

    def post(control: MockControl, env: Env, grant: AppGrant) -> None:
        headers = {"Authorization": f"Bearer {grant.access_token}"} if bearer else {}
        data = {name: getattr(grant, attribute) for name, attribute in form.items()}
        expect(call("POST", env[variable] + path, headers=headers, data=data), status)

    return post
