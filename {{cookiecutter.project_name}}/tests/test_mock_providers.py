"""What every mock provider does alike, and the toolkit they are made of.

Real HTTP against `mock_providers.start()` (the `fake` fixture: the mock alone, the app is
not involved), for every enabled provider, read from its declarations and its FACTS; the
consent page and the `delay` switch are checked with the app's own requests. What only
one mock does is tested in test_<provider>_mock.py. The helpers below serve those too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from conftest import FACTS
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

import mock_providers
from mock_providers import PROVIDERS, MockSettings, RunningMock, app_env, start
from mock_providers.keys import KeyRing
from mock_providers.openid_provider import OPENID_CHOICES, OpenIDProvider, openid_switches

SETTINGS = MockSettings()
APP = SETTINGS.app_url  # where the `fake` mock sends people back to (no app listens there)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def query_of(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return query_of_url(response.headers["Location"])


def query_of_url(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def authorize_at(url: str, provider: str, method: str = "GET", **params: str) -> requests.Response:
    """The app's authorization request to `provider` (state `st4te`), with `params` added or
    replaced, sent to `url`; the answer, not followed."""
    app = dict(client_id=SETTINGS.client_id(provider), redirect_uri=SETTINGS.callback(provider))
    query = {**app, "state": "st4te", **params}
    return requests.request(method, url, params=query, allow_redirects=False, timeout=5)


def code_exchange(provider: str, code: str, **fields: str | None) -> dict[str, str | None]:
    """The app's token request for `code` at `provider` (credentials in the body), with
    `fields` added or replaced (None: left out)."""
    client_id, client_secret = SETTINGS.credentials(provider)
    app = dict(client_id=client_id, client_secret=client_secret)
    return {"code": code, "redirect_uri": SETTINGS.callback(provider), **app, **fields}


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- the server as a whole ------------------------------------------------------------------


def test_app_env_points_at_the_mock(fake: RunningMock) -> None:
    """Each enabled provider's variables and no others (test_<provider>_mock.py: its URLs)."""
    env = fake.app_env()
    assert env == app_env(fake.url, fake.settings)
    prefixes = tuple(f"{PROVIDER_CLASSES[name].env_prefix}_" for name in PROVIDERS)
    assert [key for key in env if not key.startswith(prefixes)] == []
    for name in PROVIDERS:
        prefix = PROVIDER_CLASSES[name].env_prefix
        credentials = (env[f"{prefix}_CLIENT_ID"], env[f"{prefix}_CLIENT_SECRET"])
        assert credentials == SETTINGS.credentials(name)
        assert FACTS[name].api_variable in env


def test_reset_restores_defaults_and_forgets_everything(browser, mock: RunningMock) -> None:
    defaults = mock.control.switches()
    provider = PROVIDERS[0]
    browser.start_login(provider)  # the mock hands out a code
    assert mock.control.minted()
    mock.control.switch(provider, deny=True, delay=0.01)
    assert mock.control.switches()[provider]["deny"] is True
    mock.control.reset()
    assert mock.control.switches() == defaults
    assert mock.control.minted() == []
    assert all(n == 0 for counts in mock.control.requests().values() for n in counts.values())


def test_unknown_switch_or_value_is_refused(fake: RunningMock) -> None:
    provider = PROVIDERS[0]
    with pytest.raises(ValueError, match="unknown switch"):
        fake.control.switch(provider, no_such_switch=True)
    with pytest.raises(ValueError, match="must be one of"):
        fake.control.switch(provider, user="nobody")
    response = requests.post(f"{fake.url}/_mock/switches/myspace", json=dict(deny=True), timeout=5)
    assert response.status_code == 404


@pytest.mark.parametrize("provider", PROVIDERS)
def test_delay_slows_the_provider_down(browser, mock: RunningMock, provider: str) -> None:
    """The token and profile endpoints sleep first: the app's sign-in waits it out (past
    its timeout, a 504: test_login.py)."""
    callback = browser.start_login(provider)
    mock.control.switch(provider, delay=0.4)
    started = time.monotonic()
    assert browser.finish_login(callback).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_mock_cli_logs_paths_without_query_strings_and_stops_on_sigint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_providers", "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"{url}/_mock/switches", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "python -m mock_providers did not start"
                time.sleep(0.1)
        requests.get(f"{url}/_mock/requests?access_token=SECRET-IN-QUERY", timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert f"Mock providers listening on {url}" in out
    assert "Stopped" in out
    assert "GET /_mock/requests " in err
    assert "SECRET-IN-QUERY" not in out + err
    assert "Traceback" not in err


def test_demo_refuses_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mock_providers.demo", "--port", str(port), "--mock-port", "0"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"Port {port}" in result.stderr and "busy" in result.stderr
    assert "Traceback" not in result.stderr


# --- the toolkit: a provider this package does not have ----------------------------------


def sample_provider() -> ModuleType:
    """An OpenID provider declared as the README says, with no edit anywhere else."""
    module = ModuleType("mock_providers.sample")
    module.NAME, module.TITLE = "sample", "Sample ID"
    module.PERSONAS = dict(
        ada=dict(sub="s-ada", email="ada@sample.example", name="Ada Lovelace"),
        bob=dict(sub="s-bob", email="bob@sample.example", preferred_username="bob"),
    )
    module.PERSONA_LABELS = dict(ada="Ada", bob="Bob, no name")
    module.SWITCHES, module.CHOICES = openid_switches(), dict(OPENID_CHOICES)
    provider = OpenIDProvider(
        "sample",
        personas=module.PERSONAS,
        rotate_refresh=True,
        reuse_detection=True,
        callback_iss=True,
    )
    module.register = provider.register
    module.app_env = lambda base, settings: {"SAMPLE_ISSUER": f"{base}/sample"}
    return module


@pytest.fixture(scope="module")
def sample_mock() -> Iterator[RunningMock]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "mock_providers.sample", sample_provider())
        patch.setattr(mock_providers, "PROVIDERS", [*PROVIDERS, "sample"])
        with start(MockSettings(app_url=APP)) as running:
            yield running


@pytest.fixture
def sample(sample_mock: RunningMock) -> RunningMock:
    sample_mock.control.reset()
    return sample_mock


SAMPLE_CLIENT = ("mock-sample-client-id", "mock-sample-client-secret")


def sample_authorize(mock: RunningMock, **params: str) -> dict[str, str]:
    scope = "openid email profile offline_access"
    request = dict(response_type="code", scope=scope, nonce="n0nce", **params)
    return query_of(authorize_at(f"{mock.url}/sample/authorize", "sample", **request))


def sample_token(mock: RunningMock, auth: Any = SAMPLE_CLIENT, **data: str) -> requests.Response:
    if "code" in data:
        data = dict(
            grant_type="authorization_code", redirect_uri=f"{APP}/auth/sample/callback", **data
        )
    return requests.post(f"{mock.url}/sample/token", data=data, auth=auth, timeout=5)


def sample_claims(mock: RunningMock, id_token: str) -> dict:
    keys = requests.get(f"{mock.url}/sample/jwks", timeout=5).json()
    return jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"]).claims


class TestToolkit:
    def test_default_credentials_for_any_provider(self, sample: RunningMock) -> None:
        settings = MockSettings(clients=dict(other=("id-1", "secret-1")))
        assert (settings.client_id("sample"), settings.client_secret("sample")) == SAMPLE_CLIENT
        assert (
            settings.client_id("other") == "id-1" and settings.client_secret("other") == "secret-1"
        )
        for name, module in mock_providers.load_providers().items():  # kept beside `clients`
            default = (f"mock-{name}-client-id", f"mock-{name}-client-secret")
            assert settings.credentials(name) == getattr(module, "CLIENT", default)
        assert sample.app_env()["SAMPLE_ISSUER"] == f"{sample.url}/sample"

    def test_discovery_follows_the_declarations(self, sample: RunningMock) -> None:
        base = f"{sample.url}/sample"
        doc = requests.get(f"{base}/.well-known/openid-configuration", timeout=5).json()
        assert doc["issuer"] == base and doc["jwks_uri"] == f"{base}/jwks"
        assert doc["revocation_endpoint"] == f"{base}/revoke"
        assert doc["revocation_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "client_secret_post",
        ]
        assert doc["authorization_response_iss_parameter_supported"] is True
        assert "offline_access" in doc["scopes_supported"]

    def test_code_flow_pkce_and_an_id_token_signed_with_its_own_keys(
        self, sample: RunningMock
    ) -> None:
        verifier, challenge = pkce_pair()
        pkce = dict(code_challenge=challenge, code_challenge_method="S256")
        callback = sample_authorize(sample, **pkce)
        assert callback["iss"] == f"{sample.url}/sample" and callback["state"] == "st4te"
        wrong = sample_token(sample, code=callback["code"], code_verifier="x" * 43)
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        spent = sample_token(sample, code=callback["code"], code_verifier=verifier)
        assert spent.status_code == 400  # a refused redemption spends the code
        token = sample_token(
            sample, code=sample_authorize(sample, **pkce)["code"], code_verifier=verifier
        )
        assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store"
        claims = sample_claims(sample, token.json()["id_token"])
        assert claims["iss"] == f"{sample.url}/sample" and claims["aud"] == SAMPLE_CLIENT[0]
        assert claims["sub"] == "s-ada" and claims["nonce"] == "n0nce"
        assert claims["email_verified"] is True and claims["name"] == "Ada Lovelace"
        rings = sample.app.extensions["mock_providers"].key_rings
        for name in set(rings) - {"sample"}:  # issuers never share keys
            other_keys = KeySet.import_key_set(rings[name].jwks())
            with pytest.raises(JoseError):
                jwt.decode(token.json()["id_token"], other_keys, algorithms=["RS256"])
        auth = dict(Authorization=f"Bearer {token.json()['access_token']}")
        info = requests.get(f"{sample.url}/sample/userinfo", headers=auth, timeout=5).json()
        assert info["sub"] == "s-ada" and info["email"] == "ada@sample.example"

    def test_offline_access_needs_a_consent_screen(self, sample: RunningMock) -> None:
        assert "refresh_token" in sample_token(sample, code=sample_authorize(sample)["code"]).json()
        again = sample_token(sample, code=sample_authorize(sample)["code"]).json()
        assert "refresh_token" not in again
        consent = sample_authorize(sample, prompt="consent")["code"]
        assert "refresh_token" in sample_token(sample, code=consent).json()

    def test_client_authentication(self, sample: RunningMock) -> None:
        code = sample_authorize(sample)["code"]
        anonymous = sample_token(sample, auth=None, code=code)
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
        wrong = sample_token(sample, auth=(SAMPLE_CLIENT[0], "wrong"), code=code)
        assert wrong.status_code == 401
        in_body = dict(client_id=SAMPLE_CLIENT[0], client_secret=SAMPLE_CLIENT[1])
        assert sample_token(sample, auth=None, code=code, **in_body).status_code == 200

    def test_refresh_rotates_and_a_reused_token_ends_the_family(self, sample: RunningMock) -> None:
        first = sample_token(sample, code=sample_authorize(sample)["code"]).json()
        second = sample_token(
            sample, grant_type="refresh_token", refresh_token=first["refresh_token"]
        )
        assert second.status_code == 200 and "id_token" in second.json()
        rotated = second.json()["refresh_token"]
        assert rotated != first["refresh_token"]
        old = dict(Authorization=f"Bearer {first['access_token']}")
        assert (
            requests.get(f"{sample.url}/sample/userinfo", headers=old, timeout=5).status_code == 401
        )
        reused = sample_token(
            sample, grant_type="refresh_token", refresh_token=first["refresh_token"]
        )
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        ended = sample_token(sample, grant_type="refresh_token", refresh_token=rotated)
        assert ended.status_code == 400  # the whole family, the live token included

    def test_revocation_authenticates_the_client(self, sample: RunningMock) -> None:
        token = sample_token(sample, code=sample_authorize(sample)["code"]).json()
        url = f"{sample.url}/sample/revoke"
        body = dict(token=token["refresh_token"])
        assert requests.post(url, data=body, timeout=5).status_code == 401
        assert requests.post(url, data=body, auth=SAMPLE_CLIENT, timeout=5).status_code == 200
        auth = dict(Authorization=f"Bearer {token['access_token']}")
        refused = requests.get(f"{sample.url}/sample/userinfo", headers=auth, timeout=5)
        assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
        assert requests.post(url, data=body, auth=SAMPLE_CLIENT, timeout=5).status_code == 200
        revoked = sample_token(sample, grant_type="refresh_token", refresh_token=body["token"])
        assert revoked.status_code == 400

    def test_rotate_keys_only_where_there_is_a_jwks(self, sample: RunningMock) -> None:
        certs = f"{sample.url}/sample/jwks"
        before = requests.get(certs, timeout=5).json()["keys"][0]["kid"]
        kid = sample.control.rotate_keys("sample")
        assert [k["kid"] for k in requests.get(certs, timeout=5).json()["keys"]] == [kid]
        assert kid != before
        without_id_tokens = [name for name in PROVIDERS if FACTS[name].issuer is None]
        for provider in [*without_id_tokens, "nosuch"]:
            with pytest.raises(ValueError, match="404"):
                sample.control.rotate_keys(provider)

    def test_key_rings_are_per_issuer(self) -> None:
        first, second = KeyRing("issuer-one"), KeyRing("issuer-two")
        assert first.current.kid != second.current.kid
        assert KeyRing("issuer-one").current is first.current  # made once per process


# --- the consent page ----------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_consent_page(browser, mock: RunningMock, provider: str) -> None:
    """The interactive consent page, for the very request the app sends."""
    url = browser.get(f"/login/{provider}").headers["Location"]
    persona = FACTS[provider].other_persona
    mock.control.switch(provider, interactive=True)
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    title = mock_providers.load_providers()[provider].TITLE
    assert f"Sign in with {title} (mock)" in html
    assert query_of_url(url)["client_id"] in html and "mock" in html.lower()
    assert '<button id="approve" name="decision" value="approve">Approve</button>' in html
    assert '<button id="deny" name="decision" value="deny">Deny</button>' in html
    assert f'value="{persona}"' in html and 'type="radio"' in html
    approved = requests.post(
        url, data=dict(decision="approve", user=persona), allow_redirects=False, timeout=5
    )
    query = query_of(approved)
    assert query["state"] == query_of_url(url)["state"]
    assert query["code"] in mock.control.minted()
    denied = requests.post(url, data=dict(decision="deny"), allow_redirects=False, timeout=5)
    assert query_of(denied)["error"] == "access_denied"
