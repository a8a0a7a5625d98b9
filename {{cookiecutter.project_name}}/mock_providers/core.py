"""State shared by the mock providers, and the small HTTP helpers every provider uses.

One `MockState` lives in `app.extensions["mock_providers"]`. Everything a test can
observe or change (switches, issued codes and tokens, request counters, minted secrets)
is in it, guarded by one lock, so `/_mock/reset` can put the mock back to a clean start.
"""

from __future__ import annotations

import base64
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from flask import Response, current_app, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from .keys import KeyRing
from .settings import MockSettings

# Switches every provider has; each provider module adds its own in `SWITCHES`.
COMMON_SWITCHES: dict[str, Any] = {
    "user": "ada",
    "deny": False,
    "token_http_status": None,
    "delay": 0.0,
    "interactive": None,
    # Seconds this provider's clock is off: its Date header (and ID tokens' iat) follow it.
    "clock_skew": 0,
}

R = TypeVar("R", bound=BaseResponse)

BASE62 = string.ascii_letters + string.digits
URLSAFE = BASE62 + "-_"


def random_text(length: int, alphabet: str = BASE62) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class Store:
    """What one provider has handed out since the last reset."""

    codes: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)
    refresh_tokens: dict[str, Any] = field(default_factory=dict)
    consents: set[tuple[str, str]] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)


class MockState:
    """Switches, stores, counters and minted secrets of every enabled provider."""

    def __init__(self, settings: MockSettings, providers: Mapping[str, ModuleType]):
        self.settings = settings
        self.providers = dict(providers)
        self.lock = threading.RLock()
        # Signing keys of each provider that publishes a JWKS (see `key_ring`).
        self.key_rings: dict[str, KeyRing] = {}
        self.blueprint_provider: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.switches = {name: self.default_switches(name) for name in self.providers}
            self.stores = {name: Store() for name in self.providers}
            self.counts: dict[str, Counter[str]] = {name: Counter() for name in self.providers}
            self.minted: list[str] = []
        # Back to the first key: an app that lives across tests (one cache of the key set
        # per process) never meets a key another test rotated in.
        for ring in list(self.key_rings.values()):
            ring.reset()

    def key_ring(self, provider: str) -> KeyRing:
        """The signing keys of `provider` (its own: issuers never share keys)."""
        with self.lock:
            return self.key_rings.setdefault(provider, KeyRing(provider))

    def default_switches(self, provider: str) -> dict[str, Any]:
        return {**COMMON_SWITCHES, **self.providers[provider].SWITCHES}

    def update_switches(self, provider: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `values` into a provider's switches; a typo is an error, not a silent no-op."""
        module = self.providers[provider]
        defaults = self.default_switches(provider)
        choices: dict[str, tuple[Any, ...]] = {"user": tuple(module.PERSONAS), **module.CHOICES}
        for name, value in values.items():
            if name not in defaults:
                raise ValueError(
                    f"unknown switch {name!r} for {provider}; known: {', '.join(sorted(defaults))}"
                )
            allowed = choices.get(name)
            if allowed is not None and value not in allowed:
                raise ValueError(f"switch {provider}.{name} must be one of {list(allowed)!r}")
        with self.lock:
            self.switches[provider].update(values)
            return dict(self.switches[provider])

    def switch(self, provider: str, name: str) -> Any:
        with self.lock:
            return self.switches[provider][name]

    def interactive(self, provider: str) -> bool:
        value = self.switch(provider, "interactive")
        return self.settings.interactive if value is None else bool(value)

    def mint(self, value: str) -> str:
        """Record a secret handed out, so tests can check it never leaks from the app."""
        with self.lock:
            self.minted.append(value)
        return value

    def count(self, provider: str, endpoint: str) -> None:
        with self.lock:
            self.counts[provider][endpoint] += 1

    def store(self, provider: str) -> Store:
        return self.stores[provider]


def state() -> MockState:
    return current_app.extensions["mock_providers"]


def base_url() -> str:
    """The mock's public base URL (what the app was told), else the URL it was reached at."""
    return state().settings.public_url.rstrip("/") or request.host_url.rstrip("/")


def pause(provider: str) -> None:
    """The `delay` switch: sleep before answering, so the app's timeouts can be tested."""
    delay = float(state().switch(provider, "delay") or 0)
    if delay > 0:
        time.sleep(delay)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    response = jsonify(data)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def no_store(response: R) -> R:
    """Token responses are never cacheable (RFC 6749 §5.1); every provider says so."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def params() -> dict[str, str]:
    """Query and form parameters together (form wins); providers accept both."""
    merged = dict(request.args.items())
    merged.update(request.form.items())
    return merged


def basic_credentials() -> tuple[str, str] | None:
    """Client id and secret from HTTP Basic auth, form-decoded as RFC 6749 §2.3.1 says."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None:
        return None
    return unquote(auth.username.replace("+", " ")), unquote(
        (auth.password or "").replace("+", " ")
    )


def bearer_token(schemes: tuple[str, ...] = ("bearer",)) -> str | None:
    """The token from an `Authorization: <scheme> <token>` header, for the given schemes."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in schemes and token.strip():
        return token.strip()
    return None


def append_query(url: str, query: str, fragment: str | None = None) -> str:
    """Add an already-encoded query to `url`, keeping any query it has."""
    parts = urlsplit(url)
    merged = f"{parts.query}&{query}" if parts.query and query else parts.query or query
    return urlunsplit(parts._replace(query=merged, fragment=fragment or parts.fragment))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def same_origin_path_under(url: str, registered: str) -> bool:
    """A looser redirect rule: same scheme, host and port, a path at or below the callback's."""
    try:
        given, expected = urlsplit(url), urlsplit(registered)
        given_port, expected_port = given.port, expected.port
    except ValueError:
        return False
    if (given.scheme, given.hostname, given_port) != (
        expected.scheme,
        expected.hostname,
        expected_port,
    ):
        return False
    base = expected.path.rstrip("/")
    return given.path == expected.path or given.path.startswith(base + "/")
