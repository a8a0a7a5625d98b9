"""The OpenID Connect base on its own: a provider declared in a few lines, against a real
issuer served over HTTP, through the real Authlib client.

What no mock provider shows on its own: how the client authenticates (as the discovery
document advertises, Basic first; revocation the same way, RFC 7009 2.1), which answers of
a revocation endpoint count as done, and what the doctor reads in the signing keys.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
from authlib.integrations.flask_client import OAuth
from conftest import RunningApp, free_port
from flask import Flask, jsonify, request

from {{ cookiecutter.package_name }}.providers import ProviderConfig
from {{ cookiecutter.package_name }}.providers.errors import (
    LoginRefused,
    ProviderBusy,
    ProviderError,
    ProviderUnavailable,
    RevocationIncomplete,
)
from {{ cookiecutter.package_name }}.providers.oidc import OIDCProvider
from {{ cookiecutter.package_name }}.tokens import StoredToken

CLIENT_ID = "example-client"
CLIENT_SECRET = "s3cret/with+odd:chars"  # Basic auth form-encodes both (RFC 6749 2.3.1)
BASIC, POST = "client_secret_basic", "client_secret_post"
RSA_KEY = {"kty": "RSA", "kid": "k1", "use": "sig", "n": "sXch", "e": "AQAB"}


class ExampleProvider(OIDCProvider):
    """A whole OpenID provider adapter: declarations only."""

    name = "example"
    title = "Example"
    env_prefix = "EXAMPLE"
    console_name = "Example console"
    console_url = "https://example.test/console"
    user_apps_url = "https://example.test/apps"
    discovery_setting = "EXAMPLE_DISCOVERY_URL"
    url_settings = {discovery_setting: "https://example.test/.well-known/openid-configuration"}


@dataclass
class Call:
    path: str
    basic: tuple[str, str] | None
    form: dict[str, str]


@dataclass
class Issuer:
    """A real HTTP issuer whose discovery document and answers each test sets."""

    url: str = ""
    named: str | None = None  # the issuer its document names, when not its own URL
    auth_methods: list[str] | None = None  # None: the document does not say
    revocation: bool = True
    revoke_answer: tuple[int, dict[str, Any]] = (200, {})
    jwks: tuple[int, dict[str, Any]] = (200, {"keys": [RSA_KEY]})
    scopes: list[str] | None = None  # scopes_supported, when the document lists them
    calls: list[Call] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask(__name__)

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            document = {
                "issuer": self.named or self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
            }
            if self.revocation:
                document["revocation_endpoint"] = f"{self.url}/revoke"
            if self.auth_methods is not None:
                document["token_endpoint_auth_methods_supported"] = self.auth_methods
            if self.scopes is not None:
                document["scopes_supported"] = self.scopes
            return jsonify(document)

        @app.post("/token")
        def token() -> Any:
            self.record()
            return jsonify(access_token="fresh", token_type="Bearer", expires_in=3600)

        @app.post("/revoke")
        def revoke() -> Any:
            self.record()
            status, body = self.revoke_answer
            return jsonify(body), status

        @app.get("/jwks")
        def jwks() -> Any:
            status, body = self.jwks
            return jsonify(body), status

        return app

    def record(self) -> None:
        header = request.headers.get("Authorization", "")
        basic = None
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            basic = (unquote_plus(user), unquote_plus(password))
        self.calls.append(Call(request.path, basic, dict(request.form)))

    def config(self, cls: type[OIDCProvider] = ExampleProvider) -> ProviderConfig:
        extra = {**cls.option_settings, cls.discovery_setting: self.discovery_url}
        return ProviderConfig(cls.name, CLIENT_ID, CLIENT_SECRET, extra)

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"


@contextmanager
def served_issuer() -> Iterator[Issuer]:
    """An `Issuer` serving real HTTP on a free port until the block ends."""
    running = Issuer()
    port = free_port()
    running.url = f"http://127.0.0.1:{port}"
    server = RunningApp(running.url, port, running.app()).start()
    try:
        yield running
    finally:
        server.stop()


@pytest.fixture()
def issuer() -> Iterator[Issuer]:
    with served_issuer() as running:
        yield running


def adapter_and_client(issuer: Issuer, cls: type[OIDCProvider] = ExampleProvider):
    """The adapter and its Authlib client, registered as the app registers every provider."""
    provider = cls(issuer.config(cls), 5, None)
    oauth = OAuth(Flask(__name__))
    oauth.register(provider.name, **provider.registration())
    return provider, oauth.create_client(provider.name)


def stored() -> StoredToken:
    return StoredToken(access_token="at-1", refresh_token="rt-1", expires_at=None)


@pytest.mark.parametrize(
    ("advertised", "method"),
    [(None, BASIC), ([POST, BASIC], BASIC), ([POST], POST), (["private_key_jwt", POST], POST)],
)
def test_token_and_revocation_requests_authenticate_as_advertised(
    issuer, advertised, method
) -> None:
    issuer.auth_methods = advertised
    provider, client = adapter_and_client(issuer)
    assert provider.refresh(client, stored())["access_token"] == "fresh"
    provider.revoke(client, stored(), "subject")
    assert [c.path for c in issuer.calls] == ["/token", "/revoke"]
    for call in issuer.calls:
        if method == BASIC:
            assert call.basic == (CLIENT_ID, CLIENT_SECRET), call
            assert "client_secret" not in call.form
        else:
            assert call.basic is None, call
            assert (call.form["client_id"], call.form["client_secret"]) == (
                CLIENT_ID,
                CLIENT_SECRET,
            )
    revoked = issuer.calls[1].form
    assert (revoked["token"], revoked["token_type_hint"]) == ("rt-1", "refresh_token")


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {}, None),
        # Only a provider that documents 400 invalid_token as "already revoked" says so
        # (`already_revoked`: test_<provider>_*.py).
        (400, {"error": "invalid_token"}, RevocationIncomplete),
        (401, {"error": "invalid_client"}, RevocationIncomplete),
        (404, {}, RevocationIncomplete),
        (429, {}, ProviderBusy),
        (503, {}, ProviderUnavailable),
    ],
)
def test_only_a_200_counts_as_revoked(issuer, status, body, outcome) -> None:
    issuer.revoke_answer = (status, body)
    provider, client = adapter_and_client(issuer)
    if outcome is None:
        provider.revoke(client, stored(), "subject")
    else:
        with pytest.raises(outcome):
            provider.revoke(client, stored(), "subject")
    assert [c.path for c in issuer.calls] == ["/revoke"]


def test_no_revocation_endpoint_is_no_revocation(issuer) -> None:
    issuer.revocation = False
    provider, client = adapter_and_client(issuer)
    with pytest.raises(RevocationIncomplete) as raised:
        provider.revoke(client, stored(), "subject")
    assert raised.value.reason == "no_revocation_endpoint"
    assert issuer.calls == []


def doctor_checks(issuer: Issuer) -> list[tuple[str, str]]:
    response = requests.get(issuer.discovery_url, timeout=5)
    checks = ExampleProvider.probe_checks(
        issuer.config(), response, lambda url: requests.get(url, timeout=5)
    )
    return [(c.status, c.message) for c in checks]


@pytest.mark.parametrize(
    ("jwks", "status", "says"),
    [
        ((200, {"keys": [RSA_KEY, {"kty": "EC"}]}), "ok", "1 signing key(s) at http://"),
        ((200, {"keys": [{"kty": "EC", "crv": "P-256"}]}), "fail", "holds no RSA key"),
        ((200, {"keys": "none"}), "fail", "did not load (ValueError)"),
        ((500, {}), "fail", "did not load (HTTPError)"),
    ],
)
def test_the_doctor_reads_the_signing_keys(issuer, jwks, status, says) -> None:
    issuer.jwks = jwks
    loaded, keys, *_ = doctor_checks(issuer)  # then what the document says (metadata_checks)
    assert loaded == ("ok", f"discovery document loaded; issuer {issuer.url}")
    assert keys[0] == status and says in keys[1], keys


def test_the_doctor_refuses_another_issuer(issuer) -> None:
    issuer.named = "https://elsewhere.example"
    ((status, message),) = doctor_checks(issuer)
    assert status == "fail" and "'https://elsewhere.example' does not match" in message


# --- what the discovery document decides -----------------------------------------------

LISTED = ["openid", "offline_access"]
OFFLINE = "openid email profile offline_access"


@pytest.mark.parametrize(
    ("listed", "has_refresh_token", "expected"),
    [
        # OIDC Core 11: offline_access brings a refresh token, from a consent screen only.
        (LISTED, None, {"scope": OFFLINE, "prompt": "consent"}),
        (LISTED, False, {"scope": OFFLINE, "prompt": "consent"}),
        (LISTED, True, {"scope": OFFLINE}),  # one is stored: the person is not asked again
        (["openid", "email", "profile"], None, {}),
        (None, None, {}),
    ],
)
def test_offline_access_is_asked_with_consent_where_the_document_lists_it(
    issuer, listed, has_refresh_token, expected
) -> None:
    issuer.scopes = listed
    provider, client = adapter_and_client(issuer)
    assert provider.authorize_params(client, has_refresh_token) == expected


def test_a_provider_that_needs_no_prompt_for_offline_access_gets_none(issuer) -> None:
    class Quiet(ExampleProvider):
        scope = "openid email profile offline_access"
        offline_prompt = ""

    issuer.scopes = ["openid", "offline_access"]
    provider, client = adapter_and_client(issuer, Quiet)
    assert provider.authorize_params(client, None) == {"scope": Quiet.scope}


@pytest.mark.parametrize("named", ["https://evil.example", "{url}/", "http://localhost:{port}"])
def test_a_discovery_document_naming_another_issuer_is_never_used(issuer, named) -> None:
    issuer.named = named.format(url=issuer.url, port=issuer.url.rsplit(":", 1)[1])
    provider, client = adapter_and_client(issuer)
    for use in (
        lambda: provider.authorize_params(client, None),
        lambda: provider.refresh(client, stored()),
        lambda: provider.revoke(client, stored(), "subject"),
    ):
        with pytest.raises(ProviderError) as refused:
            use()
        assert refused.value.code == "discovery_issuer_mismatch"
        assert refused.value.status == 502
    assert issuer.calls == []  # no secret or token went to its endpoints


@pytest.mark.parametrize(
    ("advertised", "iss", "accepted"),
    [
        (False, None, True),  # a provider without RFC 9207
        (True, None, False),  # it says it sends iss: one without is not its answer
        (False, "https://evil.example", False),  # present: it must be the issuer
        (True, "https://evil.example", False),
        (True, "{url}/", False),  # exactly
        (True, "{url}", True),
        (False, "{url}", True),
    ],
)
def test_the_callbacks_iss_must_be_the_issuers(issuer, advertised, iss, accepted) -> None:
    provider, client = adapter_and_client(issuer)
    metadata = {**client.load_server_metadata()}
    metadata["authorization_response_iss_parameter_supported"] = advertised
    value = iss.format(url=issuer.url) if iss else None
    if accepted:
        provider.check_response_issuer(metadata, value)
    else:
        with pytest.raises(LoginRefused) as refused:
            provider.check_response_issuer(metadata, value)
        assert refused.value.code == "issuer_mismatch"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"id_token_signing_alg_values_supported": ["RS256", "ES256"], "userinfo_endpoint": "u"},
            [
                ("ok", "ID tokens signed with RS256"),
                ("ok", "client authentication: client_secret_basic"),
            ],
        ),
        (
            {"id_token_signing_alg_values_supported": ["ES256"], "userinfo_endpoint": "u"},
            [
                ("fail", "ID tokens signed with ['ES256'], not RS256"),
                ("ok", "client authentication: client_secret_basic"),
            ],
        ),
        (
            {"token_endpoint_auth_methods_supported": ["private_key_jwt"]},
            [
                ("warn", "no id_token_signing_alg_values_supported"),
                ("warn", "no userinfo_endpoint: the profile is only what the ID token holds"),
                ("fail", "client authentication: only ['private_key_jwt']"),
            ],
        ),
    ],
)
def test_the_doctor_reads_what_sign_in_needs_in_the_document(document, expected) -> None:
    checks = ExampleProvider.metadata_checks(document)
    assert [(check.status, check.message) for check in checks] == expected
