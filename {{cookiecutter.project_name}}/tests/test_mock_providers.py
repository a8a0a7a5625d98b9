"""The mock providers behave like the real ones, and every switch does what README.md says.

Real HTTP against `mock_providers.start()`; the app is not involved. Tests of a provider
that is disabled in this project are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
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

import mock_providers
from mock_providers import PROVIDERS, MockSettings, RunningMock, app_env, start
from mock_providers.keys import KeyRing
from mock_providers.openid_provider import OPENID_CHOICES, OpenIDProvider, openid_switches

APP = "http://127.0.0.1:5000"
SETTINGS = MockSettings()
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def needs(provider: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(provider not in PROVIDERS, reason=f"{provider} is not enabled")


@pytest.fixture(scope="module")
def fake() -> Iterator[RunningMock]:
    with start(MockSettings(app_url=APP)) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(fake: RunningMock) -> None:
    fake.control.reset()


def query_of(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return query_of_url(response.headers["Location"])


def query_of_url(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- the server as a whole ------------------------------------------------------------------


def test_app_env_points_at_the_mock(fake: RunningMock) -> None:
    env = fake.app_env()
    assert env == app_env(fake.url, fake.settings)
    if "google" in PROVIDERS:
        assert env["GOOGLE_SERVER_METADATA_URL"] == (
            f"{fake.url}/google/.well-known/openid-configuration"
        )
        assert env["GOOGLE_CLIENT_ID"] == SETTINGS.google_client_id
    if "github" in PROVIDERS:
        assert env["GITHUB_URL"] == f"{fake.url}/github"
        assert env["GITHUB_API_URL"] == f"{fake.url}/github/api"
    if "facebook" in PROVIDERS:
        assert env["FACEBOOK_GRAPH_URL"] == f"{fake.url}/facebook/graph"
        assert env["FACEBOOK_URL"] == f"{fake.url}/facebook/www"
        assert env["FACEBOOK_GRAPH_VERSION"] == "v26.0"
    for provider in {"google", "github", "facebook"} - set(PROVIDERS):
        assert not any(key.startswith(provider.upper()) for key in env)


def test_reset_restores_defaults_and_forgets_everything(fake: RunningMock) -> None:
    defaults = fake.control.switches()
    provider = PROVIDERS[0]
    if "github" in PROVIDERS:
        github_code(fake)
        assert fake.control.minted()
    fake.control.switch(provider, deny=True, delay=0.01)
    assert fake.control.switches()[provider]["deny"] is True
    fake.control.reset()
    assert fake.control.switches() == defaults
    assert fake.control.minted() == []
    assert all(n == 0 for counts in fake.control.requests().values() for n in counts.values())


def test_unknown_switch_or_value_is_refused(fake: RunningMock) -> None:
    provider = PROVIDERS[0]
    with pytest.raises(ValueError, match="unknown switch"):
        fake.control.switch(provider, no_such_switch=True)
    with pytest.raises(ValueError, match="must be one of"):
        fake.control.switch(provider, user="nobody")
    response = requests.post(f"{fake.url}/_mock/switches/myspace", json=dict(deny=True), timeout=5)
    assert response.status_code == 404


def test_delay_makes_the_token_endpoint_slow(fake: RunningMock) -> None:
    provider = PROVIDERS[0]
    fake.control.switch(provider, delay=0.6)
    endpoint = f"{provider}.{FACTS[provider].token_endpoint}"
    path = min(rule.rule for rule in fake.app.url_map.iter_rules(endpoint))  # unversioned
    with pytest.raises(requests.Timeout):
        requests.post(fake.url + path, data=dict(code="x"), timeout=0.2)


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


# --- Google -----------------------------------------------------------------------------------


def google_authorize(fake: RunningMock, method: str = "GET", **params: str) -> requests.Response:
    query = dict(
        client_id=SETTINGS.google_client_id,
        redirect_uri=f"{APP}/auth/google/callback",
        response_type="code",
        scope="openid email profile",
        state="st4te",
        nonce="n0nce",
    )
    query.update(params)
    return requests.request(
        method,
        f"{fake.url}/google/o/oauth2/v2/auth",
        params=query,
        allow_redirects=False,
        timeout=5,
    )


def google_code(fake: RunningMock, **params: str) -> str:
    return query_of(google_authorize(fake, **params))["code"]


def google_token(fake: RunningMock, code: str, **fields: str | None) -> requests.Response:
    data = dict(
        grant_type="authorization_code",
        code=code,
        redirect_uri=f"{APP}/auth/google/callback",
        client_id=SETTINGS.google_client_id,
        client_secret=SETTINGS.google_client_secret,
    )
    data.update(fields)
    return requests.post(f"{fake.url}/google/token", data=data, timeout=5)


def google_claims(fake: RunningMock, id_token: str) -> dict:
    keys = KeySet.import_key_set(
        requests.get(f"{fake.url}/google/oauth2/v3/certs", timeout=5).json()
    )
    return jwt.decode(id_token, keys, algorithms=["RS256"]).claims


def google_login(fake: RunningMock, **params: str) -> dict:
    response = google_token(fake, google_code(fake, **params))
    assert response.status_code == 200, response.text
    return response.json()


@needs("google")
class TestGoogle:
    def test_discovery_document(self, fake: RunningMock) -> None:
        doc = requests.get(f"{fake.url}/google/.well-known/openid-configuration", timeout=5).json()
        base = f"{fake.url}/google"
        assert doc["issuer"] == "https://accounts.google.com"
        assert doc["authorization_endpoint"] == f"{base}/o/oauth2/v2/auth"
        assert doc["token_endpoint"] == f"{base}/token"
        assert doc["userinfo_endpoint"] == f"{base}/v1/userinfo"
        assert doc["revocation_endpoint"] == f"{base}/revoke"
        assert doc["jwks_uri"] == f"{base}/oauth2/v3/certs"
        assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
        assert set(doc["token_endpoint_auth_methods_supported"]) == {
            "client_secret_post",
            "client_secret_basic",
        }
        assert doc["code_challenge_methods_supported"] == ["plain", "S256"]

    def test_callback_query_is_exactly_like_google(self, fake: RunningMock) -> None:
        location = google_authorize(fake).headers["Location"]
        assert location.startswith(f"{APP}/auth/google/callback?state=st4te&code=4%2F0A")
        assert location.endswith(
            "&scope=email+profile+https://www.googleapis.com/auth/userinfo.profile"
            "+https://www.googleapis.com/auth/userinfo.email+openid&authuser=0&prompt=consent"
        )

    def test_login_gives_a_verifiable_id_token(self, fake: RunningMock) -> None:
        token = google_login(fake, access_type="offline")
        assert token["access_token"].startswith("ya29.")
        assert token["refresh_token"].startswith("1//0g")
        assert token["expires_in"] == 3599
        assert token["token_type"] == "Bearer"
        assert "openid" in token["scope"].split()
        response = requests.get(f"{fake.url}/google/oauth2/v3/certs", timeout=5)
        assert response.headers["Cache-Control"].startswith("public, max-age=")
        claims = google_claims(fake, token["id_token"])
        assert claims["iss"] == "https://accounts.google.com"
        assert claims["aud"] == claims["azp"] == SETTINGS.google_client_id
        assert len(claims["sub"]) == 21 and claims["sub"].isdigit()
        assert claims["email"] == "ada.lovelace@gmail.com" and claims["email_verified"] is True
        assert claims["nonce"] == "n0nce"
        assert claims["exp"] == claims["iat"] + 3600
        assert abs(claims["iat"] - time.time()) < 10
        assert "hd" not in claims
        assert claims["name"] == "Ada Lovelace" and claims["picture"].startswith(fake.url)
        digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
        assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def test_workspace_persona_has_hd(self, fake: RunningMock) -> None:
        fake.control.switch("google", user="grace")
        response = google_authorize(fake)
        assert query_of(response)["hd"] == "example.com"
        token = google_token(fake, query_of(response)["code"]).json()
        claims = google_claims(fake, token["id_token"])
        assert claims["hd"] == "example.com" and claims["email"] == "grace@example.com"

    def test_refresh_token_only_on_first_consent_or_prompt_consent(self, fake: RunningMock) -> None:
        assert "refresh_token" in google_login(fake, access_type="offline")
        second = google_authorize(fake, access_type="offline")
        assert query_of(second)["prompt"] == "none"
        assert "refresh_token" not in google_token(fake, query_of(second)["code"]).json()
        assert "refresh_token" in google_login(fake, access_type="offline", prompt="consent")
        fake.control.reset()
        assert "refresh_token" not in google_login(fake)  # online access: never

    @pytest.mark.parametrize(
        ("switches", "check"),
        [
            (dict(iss="bare"), lambda c: c["iss"] == "accounts.google.com"),
            (dict(iss="http://evil.example"), lambda c: c["iss"] == "http://evil.example"),
            (dict(email_verified="true"), lambda c: c["email_verified"] == "true"),
            (dict(email_verified=False), lambda c: c["email_verified"] is False),
            (dict(iat_skew=600), lambda c: c["iat"] > time.time() + 500),
            (dict(exp_offset=-10), lambda c: c["exp"] < time.time()),
            (dict(aud="someone-else"), lambda c: c["aud"] == "someone-else"),
            (dict(azp=None), lambda c: "azp" not in c),
            (dict(azp="other"), lambda c: c["azp"] == "other"),
            (dict(hd="evil.example"), lambda c: c["hd"] == "evil.example"),
            (dict(user="grace", hd=""), lambda c: "hd" not in c),
            (dict(nonce="wrong"), lambda c: c["nonce"] not in (None, "n0nce")),
            (dict(nonce="omit"), lambda c: "nonce" not in c),
        ],
    )
    def test_id_token_claim_switches(self, fake: RunningMock, switches: dict, check) -> None:
        fake.control.switch("google", **switches)
        claims = google_claims(fake, google_login(fake)["id_token"])
        assert check(claims), claims

    def test_unpublished_kid_fails_verification(self, fake: RunningMock) -> None:
        fake.control.switch("google", kid="unpublished")
        id_token = google_login(fake)["id_token"]
        with pytest.raises(JoseError):
            google_claims(fake, id_token)

    @pytest.mark.parametrize("alg", ["none", "HS256"])
    def test_forged_algorithms(self, fake: RunningMock, alg: str) -> None:
        fake.control.switch("google", alg=alg)
        id_token = google_login(fake)["id_token"]
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
        assert header["alg"] == alg
        with pytest.raises(JoseError):
            google_claims(fake, id_token)

    def test_no_id_token_switch(self, fake: RunningMock) -> None:
        fake.control.switch("google", id_token=False)
        assert "id_token" not in google_login(fake)

    def test_key_rotation_publishes_a_new_kid(self, fake: RunningMock) -> None:
        certs = f"{fake.url}/google/oauth2/v3/certs"
        old = [k["kid"] for k in requests.get(certs, timeout=5).json()["keys"]]
        new = fake.control.rotate_google_keys()
        published = [k["kid"] for k in requests.get(certs, timeout=5).json()["keys"]]
        assert published == [new] and new not in old
        google_claims(fake, google_login(fake)["id_token"])  # signed with the new key

    def test_code_is_single_use(self, fake: RunningMock) -> None:
        code = google_code(fake)
        assert google_token(fake, code).status_code == 200
        again = google_token(fake, code)
        assert again.status_code == 400
        assert again.json() == dict(error="invalid_grant", error_description="Bad Request")

    def test_client_authentication(self, fake: RunningMock) -> None:
        bad = google_token(fake, google_code(fake), client_secret="wrong")
        assert bad.status_code == 401
        assert bad.json() == dict(error="invalid_client", error_description="Unauthorized")
        basic = requests.post(
            f"{fake.url}/google/token",
            data=dict(
                grant_type="authorization_code",
                code=google_code(fake),
                redirect_uri=f"{APP}/auth/google/callback",
            ),
            auth=(SETTINGS.google_client_id, SETTINGS.google_client_secret),
            timeout=5,
        )
        assert basic.status_code == 200, basic.text

    def test_pkce(self, fake: RunningMock) -> None:
        verifier, challenge = pkce_pair()
        params = dict(code_challenge=challenge, code_challenge_method="S256")
        wrong = google_token(fake, google_code(fake, **params), code_verifier="not-it")
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        missing = google_token(fake, google_code(fake, **params))
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
        right = google_token(fake, google_code(fake, **params), code_verifier=verifier)
        assert right.status_code == 200

    @pytest.mark.parametrize(
        "params",
        [dict(redirect_uri="http://127.0.0.1:5000/elsewhere"), dict(client_id="unknown")],
    )
    def test_bad_client_or_redirect_shows_an_error_page(self, fake: RunningMock, params) -> None:
        response = google_authorize(fake, **params)
        assert response.status_code in (400, 401)
        assert "Location" not in response.headers
        assert response.headers["Content-Type"].startswith("text/html")
        if "redirect_uri" in params:
            assert response.status_code == 400
            assert "Error 400: redirect_uri_mismatch" in response.text

    def test_deny(self, fake: RunningMock) -> None:
        fake.control.switch("google", deny=True)
        assert query_of(google_authorize(fake)) == dict(error="access_denied", state="st4te")

    def test_refresh(self, fake: RunningMock) -> None:
        token = google_login(fake, access_type="offline")
        data = dict(
            grant_type="refresh_token",
            refresh_token=token["refresh_token"],
            client_id=SETTINGS.google_client_id,
            client_secret=SETTINGS.google_client_secret,
        )
        fresh = requests.post(f"{fake.url}/google/token", data=data, timeout=5)
        assert fresh.status_code == 200
        assert "refresh_token" not in fresh.json()
        assert fresh.json()["access_token"] != token["access_token"]
        fake.control.switch("google", refresh="invalid_grant")
        dead = requests.post(f"{fake.url}/google/token", data=data, timeout=5)
        assert dead.status_code == 400
        assert dead.json() == dict(
            error="invalid_grant", error_description="Token has been expired or revoked."
        )

    def test_revoke(self, fake: RunningMock) -> None:
        token = google_login(fake, access_type="offline")
        revoke = f"{fake.url}/google/revoke"
        assert (
            requests.get(revoke, params=dict(token=token["access_token"]), timeout=5).status_code
            == 404
        )
        ok = requests.post(revoke, data=dict(token=token["access_token"]), timeout=5)
        assert ok.status_code == 200 and ok.json() == {}
        again = requests.post(revoke, data=dict(token=token["access_token"]), timeout=5)
        assert again.status_code == 400
        assert again.json() == dict(
            error="invalid_token", error_description="Token expired or revoked"
        )
        # ...and its refresh token died with it
        dead = requests.post(revoke, data=dict(token=token["refresh_token"]), timeout=5)
        assert dead.status_code == 400

    def test_userinfo(self, fake: RunningMock) -> None:
        access = google_login(fake)["access_token"]
        url = f"{fake.url}/google/v1/userinfo"
        auth = dict(Authorization=f"Bearer {access}")
        info = requests.get(url, headers=auth, timeout=5)
        assert info.status_code == 200
        assert info.json()["email"] == "ada.lovelace@gmail.com"
        assert info.json()["sub"] == google_claims(fake, google_login(fake)["id_token"])["sub"]
        assert requests.get(url, timeout=5).status_code == 401
        fake.control.switch("google", userinfo="quota")
        quota = requests.get(url, headers=auth, timeout=5)
        assert quota.status_code == 429
        assert quota.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        fake.control.switch("google", userinfo="unauthorized")
        assert requests.get(url, headers=auth, timeout=5).status_code == 401

    def test_expired_access_token_is_refused(self, fake: RunningMock) -> None:
        fake.control.switch("google", expires_in=0)
        access = google_login(fake)["access_token"]
        time.sleep(0.01)
        auth = dict(Authorization=f"Bearer {access}")
        assert (
            requests.get(f"{fake.url}/google/v1/userinfo", headers=auth, timeout=5).status_code
            == 401
        )

    def test_token_http_status(self, fake: RunningMock) -> None:
        fake.control.switch("google", token_http_status=503)
        assert google_token(fake, "anything").status_code == 503

    def test_counts_requests_per_endpoint(self, fake: RunningMock) -> None:
        google_login(fake)
        counts = fake.control.requests()["google"]
        assert counts["authorize"] == 1 and counts["token"] == 1 and counts["userinfo"] == 0


# --- GitHub -----------------------------------------------------------------------------------


def github_authorize(
    fake: RunningMock, prefix: str = "/github", **params: str
) -> requests.Response:
    query = dict(
        client_id=SETTINGS.github_client_id,
        redirect_uri=f"{APP}/auth/github/callback",
        scope="read:user user:email",
        state="st4te",
    )
    query.update(params)
    url = f"{fake.url}{prefix}/login/oauth/authorize"
    return requests.get(url, params=query, allow_redirects=False, timeout=5)


def github_code(fake: RunningMock, **params: str) -> str:
    return query_of(github_authorize(fake, **params))["code"]


def github_token(
    fake: RunningMock, code: str, json_reply: bool = True, prefix: str = "/github", **fields
) -> dict[str, str]:
    data = dict(
        code=code,
        redirect_uri=f"{APP}/auth/github/callback",
        client_id=SETTINGS.github_client_id,
        client_secret=SETTINGS.github_client_secret,
    )
    data.update(fields)
    headers = dict(Accept="application/json") if json_reply else {}
    url = f"{fake.url}{prefix}/login/oauth/access_token"
    response = requests.post(url, data=data, headers=headers, timeout=5)
    assert response.status_code == 200  # always, errors included
    if json_reply:
        return response.json()
    assert response.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    return dict(parse_qsl(response.text, keep_blank_values=True))


def github_api(fake: RunningMock, path: str, token: str, api: str = "/github/api", **headers):
    headers = {"Authorization": f"Bearer {token}", **headers}
    return requests.get(f"{fake.url}{api}{path}", headers=headers, timeout=5)


def github_login(fake: RunningMock, **params: str) -> dict[str, str]:
    return github_token(fake, github_code(fake, **params))


@needs("github")
class TestGitHub:
    def test_success_redirect(self, fake: RunningMock) -> None:
        location = github_authorize(fake).headers["Location"]
        query = query_of(github_authorize(fake))
        assert location.startswith(f"{APP}/auth/github/callback?code=")
        assert len(query["code"]) == 20 and int(query["code"], 16) >= 0
        assert query["state"] == "st4te"

    def test_token_is_form_encoded_unless_json_is_asked_for(self, fake: RunningMock) -> None:
        form = github_token(fake, github_code(fake), json_reply=False)
        assert form["access_token"].startswith("gho_")
        assert form["scope"] == "read:user,user:email" and form["token_type"] == "bearer"
        as_json = github_token(fake, github_code(fake))
        assert as_json["access_token"].startswith("gho_") and "expires_in" not in as_json

    @pytest.mark.parametrize("shape", ["no_id", "null_id", "empty_id", "list"])
    def test_user_object_switch(self, fake: RunningMock, shape: str) -> None:
        fake.control.switch("github", user_object=shape)
        response = github_api(fake, "/user", github_login(fake)["access_token"])
        assert response.status_code == 200
        body = response.json()
        if shape == "list":
            assert isinstance(body, list) and body[0]["login"] == "ada"
        else:
            expected = {"no_id": "missing", "null_id": None, "empty_id": ""}[shape]
            assert body["login"] == "ada" and body.get("id", "missing") == expected

    def test_errors_are_http_200_in_both_encodings(self, fake: RunningMock) -> None:
        code = github_code(fake)
        bad = github_token(fake, code, json_reply=False, client_secret="wrong")
        assert bad["error"] == "incorrect_client_credentials"
        assert github_token(fake, code)["access_token"]
        reused = github_token(fake, code)
        assert reused["error"] == "bad_verification_code"
        assert reused["error_description"] == "The code passed is incorrect or expired."
        other = github_token(fake, github_code(fake), redirect_uri=f"{APP}/auth/github/callback/x")
        assert other["error"] == "redirect_uri_mismatch"

    def test_redirect_mismatch_goes_to_the_registered_callback(self, fake: RunningMock) -> None:
        response = github_authorize(fake, redirect_uri="http://evil.example/auth/github/callback")
        assert response.headers["Location"].startswith(f"{APP}/auth/github/callback?")
        query = query_of(response)
        assert query["error"] == "redirect_uri_mismatch" and query["state"] == "st4te"
        assert query["error_uri"].startswith("https://docs.github.com/")
        below = github_authorize(fake, redirect_uri=f"{APP}/auth/github/callback/deeper")
        assert "code" in query_of(below)

    def test_deny(self, fake: RunningMock) -> None:
        fake.control.switch("github", deny=True)
        location = github_authorize(fake).headers["Location"]
        assert (
            "error=access_denied&error_description=The+user+has+denied+your+application+access."
            in location
        )
        assert location.endswith("&state=st4te")

    def test_suspended(self, fake: RunningMock) -> None:
        fake.control.switch("github", suspended=True)
        assert query_of(github_authorize(fake))["error"] == "application_suspended"

    def test_install_callback_has_no_state(self, fake: RunningMock) -> None:
        fake.control.switch("github", install_callback=True)
        query = query_of(github_authorize(fake))
        assert query["installation_id"] == "123" and query["setup_action"] == "install"
        assert "state" not in query and "code" in query

    @pytest.mark.parametrize(
        "error",
        [
            "incorrect_client_credentials",
            "bad_verification_code",
            "redirect_uri_mismatch",
            "unverified_user_email",
        ],
    )
    def test_token_error_switch(self, fake: RunningMock, error: str) -> None:
        fake.control.switch("github", token_error=error)
        assert github_token(fake, github_code(fake), json_reply=False)["error"] == error

    def test_token_http_status(self, fake: RunningMock) -> None:
        fake.control.switch("github", token_http_status=502)
        url = f"{fake.url}/github/login/oauth/access_token"
        assert requests.post(url, data=dict(code="x"), timeout=5).status_code == 502

    def test_user(self, fake: RunningMock) -> None:
        token = github_login(fake)["access_token"]
        response = github_api(fake, "/user", token)
        assert response.status_code == 200
        user = response.json()
        assert user["id"] == 583231 and user["login"] == "ada"
        assert user["name"] == "Ada Lovelace" and user["email"] == "ada@example.com"
        assert user["avatar_url"] and user["html_url"]
        headers = response.headers
        assert headers["x-ratelimit-limit"] == "5000" and headers["x-ratelimit-resource"] == "core"
        assert int(headers["x-ratelimit-remaining"]) == 5000 - int(headers["x-ratelimit-used"])
        assert int(headers["x-ratelimit-reset"]) > time.time()
        assert headers["X-OAuth-Scopes"] == "read:user, user:email"
        assert github_api(fake, "/user", token, **dict(Authorization=f"token {token}")).ok

    def test_user_api_refusals(self, fake: RunningMock) -> None:
        token = github_login(fake)["access_token"]
        parts = urlsplit(fake.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        connection.request("GET", "/github/api/user", headers=dict(Authorization=f"token {token}"))
        assert connection.getresponse().status == 403  # http.client sends no User-Agent
        connection.close()
        bad = github_api(fake, "/user", "gho_garbage")
        assert bad.status_code == 401
        assert bad.json() == dict(
            message="Bad credentials", documentation_url="https://docs.github.com/rest"
        )
        anonymous = requests.get(f"{fake.url}/github/api/user", timeout=5)
        assert anonymous.status_code == 401

    def test_private_and_nameless_personas(self, fake: RunningMock) -> None:
        fake.control.switch("github", user="private")
        token = github_login(fake)["access_token"]
        assert github_api(fake, "/user", token).json()["email"] is None
        emails = github_api(fake, "/user/emails", token).json()
        primary = [e for e in emails if e["primary"]]
        assert (
            len(primary) == 1 and primary[0]["verified"] and primary[0]["visibility"] == "private"
        )
        assert any(not e["primary"] and not e["verified"] for e in emails)
        fake.control.switch("github", user="noname")
        user = github_api(fake, "/user", github_login(fake)["access_token"]).json()
        assert user["name"] is None and user["login"]

    @pytest.mark.parametrize(
        ("mode", "status", "check"),
        [
            ("ok", 200, lambda body: body[0]["primary"] is True),
            ("404", 404, lambda body: body["message"] == "Not Found"),
            ("403", 403, lambda body: "not accessible" in body["message"]),
            ("no_primary", 200, lambda body: body and not any(e["primary"] for e in body)),
            ("empty", 200, lambda body: body == []),
        ],
    )
    def test_emails_switch(self, fake: RunningMock, mode: str, status: int, check) -> None:
        fake.control.switch("github", emails=mode)
        response = github_api(fake, "/user/emails", github_login(fake)["access_token"])
        assert response.status_code == status and check(response.json())

    def test_emails_need_the_scope(self, fake: RunningMock) -> None:
        token = github_login(fake, scope="read:user")["access_token"]
        assert github_api(fake, "/user/emails", token).status_code == 404

    def test_rate_limits(self, fake: RunningMock) -> None:
        token = github_login(fake)["access_token"]
        fake.control.switch("github", rate_limit="primary")
        primary = github_api(fake, "/user", token)
        assert primary.status_code == 403
        assert primary.headers["x-ratelimit-remaining"] == "0"
        assert int(primary.headers["x-ratelimit-reset"]) > time.time()
        fake.control.switch("github", rate_limit="secondary")
        secondary = github_api(fake, "/user", token)
        assert secondary.status_code == 403 and secondary.headers["retry-after"] == "60"

    def test_app_mode_tokens_and_rotation(self, fake: RunningMock) -> None:
        fake.control.switch("github", app_mode=True)
        token = github_login(fake)
        assert token["access_token"].startswith("ghu_") and token["refresh_token"].startswith(
            "ghr_"
        )
        assert token["expires_in"] == 28800 and token["refresh_token_expires_in"] == 15811200
        assert token["scope"] == ""
        refresh = dict(grant_type="refresh_token", refresh_token=token["refresh_token"])
        fresh = github_token(fake, "", **refresh)
        assert fresh["refresh_token"] != token["refresh_token"]
        assert github_api(fake, "/user", fresh["access_token"]).status_code == 200
        assert github_api(fake, "/user", token["access_token"]).status_code == 401
        assert github_token(fake, "", **refresh)["error"] == "bad_refresh_token"

    def test_pkce(self, fake: RunningMock) -> None:
        verifier, challenge = pkce_pair()
        params = dict(code_challenge=challenge, code_challenge_method="S256")
        wrong = github_token(fake, github_code(fake, **params), code_verifier="nope")
        assert wrong["error"] == "bad_verification_code"
        right = github_token(fake, github_code(fake, **params), code_verifier=verifier)
        assert right["access_token"]
        fake.control.switch("github", require_pkce=True)
        assert github_login(fake)["error"] == "bad_verification_code"

    def test_revoke_grant_and_token(self, fake: RunningMock) -> None:
        client = SETTINGS.github_client_id
        token = github_login(fake)["access_token"]
        base = f"{fake.url}/github/api/applications/{client}"
        credentials = (client, SETTINGS.github_client_secret)
        body = dict(access_token=token)
        wrong = requests.delete(f"{base}/grant", json=body, auth=(client, "x"), timeout=5)
        assert wrong.status_code == 401
        ok = requests.delete(f"{base}/grant", json=body, auth=credentials, timeout=5)
        assert ok.status_code == 204
        assert github_api(fake, "/user", token).status_code == 401
        gone = requests.delete(f"{base}/token", json=body, auth=credentials, timeout=5)
        assert gone.status_code == 404
        other = github_login(fake)["access_token"]
        single = requests.delete(
            f"{base}/token", json=dict(access_token=other), auth=credentials, timeout=5
        )
        assert single.status_code == 204

    def test_enterprise_server_layout(self, fake: RunningMock) -> None:
        code = query_of(github_authorize(fake, prefix="/ghes"))["code"]
        token = github_token(fake, code, prefix="/ghes")["access_token"]
        user = github_api(fake, "/user", token, api="/ghes/api/v3")
        assert user.status_code == 200
        assert user.json()["avatar_url"].startswith(f"{fake.url}/ghes/")


# --- Facebook ---------------------------------------------------------------------------------


def facebook_dialog(fake: RunningMock, **params: str) -> requests.Response:
    query = dict(
        client_id=SETTINGS.facebook_client_id,
        redirect_uri=f"{APP}/auth/facebook/callback",
        scope="email,public_profile",
        state="st4te",
        response_type="code",
    )
    query.update(params)
    url = f"{fake.url}/facebook/www/v24.0/dialog/oauth"
    return requests.get(url, params=query, allow_redirects=False, timeout=5)


def facebook_code(fake: RunningMock, **params: str) -> str:
    return query_of(facebook_dialog(fake, **params))["code"]


def facebook_token(
    fake: RunningMock, code: str, method: str = "POST", **fields: str | None
) -> requests.Response:
    data = dict(
        code=code,
        redirect_uri=f"{APP}/auth/facebook/callback",
        client_id=SETTINGS.facebook_client_id,
        client_secret=SETTINGS.facebook_client_secret,
    )
    data.update(fields)
    url = f"{fake.url}/facebook/graph/v24.0/oauth/access_token"
    if method == "GET":
        return requests.get(url, params=data, timeout=5)
    return requests.post(url, data=data, timeout=5)


def facebook_login(fake: RunningMock) -> str:
    response = facebook_token(fake, facebook_code(fake))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def proof(token: str) -> str:
    secret = SETTINGS.facebook_client_secret.encode()
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def facebook_me(fake: RunningMock, token: str, version: str = "v24.0", **params):
    query = dict(access_token=token, appsecret_proof=proof(token))
    query.update(params)
    path = f"/{version}/me" if version else "/me"
    return requests.get(f"{fake.url}/facebook/graph{path}", params=query, timeout=5)


def graph_error(response: requests.Response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["error"]


@needs("facebook")
class TestFacebook:
    def test_success_redirect_keeps_the_fragment(self, fake: RunningMock) -> None:
        location = facebook_dialog(fake).headers["Location"]
        assert location.startswith(f"{APP}/auth/facebook/callback?code=AQ")
        assert location.endswith("&state=st4te#_=_")
        scoped = query_of(facebook_dialog(fake, return_scopes="true"))
        assert scoped["granted_scopes"] == "email,public_profile" and scoped["denied_scopes"] == ""

    def test_deny(self, fake: RunningMock) -> None:
        fake.control.switch("facebook", deny=True)
        location = facebook_dialog(fake).headers["Location"]
        assert location == (
            f"{APP}/auth/facebook/callback?error=access_denied&error_code=200"
            "&error_description=Permissions+error&error_reason=user_denied&state=st4te#_=_"
        )

    @pytest.mark.parametrize("method", ["GET", "POST"])
    def test_token_exchange(self, fake: RunningMock, method: str) -> None:
        response = facebook_token(fake, facebook_code(fake), method=method)
        body = response.json()
        assert body["access_token"].startswith("EAA")
        assert body["token_type"] == "bearer" and body["expires_in"] == 5183944

    def test_token_errors(self, fake: RunningMock) -> None:
        code = facebook_code(fake)
        basic_only = requests.post(
            f"{fake.url}/facebook/graph/v24.0/oauth/access_token",
            data=dict(code=code, redirect_uri=f"{APP}/auth/facebook/callback"),
            auth=(SETTINGS.facebook_client_id, SETTINGS.facebook_client_secret),
            timeout=5,
        )
        assert graph_error(basic_only)["code"] == 101
        mismatch = facebook_token(fake, code, redirect_uri=f"{APP}/auth/facebook/callback/")
        assert graph_error(mismatch)["code"] == 100
        assert "redirect_uri is identical" in graph_error(mismatch)["message"]
        assert mismatch.headers["WWW-Authenticate"].startswith('OAuth "Facebook Platform"')
        wrong_secret = facebook_token(fake, code, client_secret="0" * 32)
        assert graph_error(wrong_secret)["code"] == 1
        assert facebook_token(fake, code).status_code == 200
        reused = graph_error(facebook_token(fake, code))
        assert reused["code"] == 100 and "has been used" in reused["message"]

    def test_me(self, fake: RunningMock) -> None:
        token = facebook_login(fake)
        plain = facebook_me(fake, token).json()
        assert set(plain) == {"name", "id"} and plain["id"].isdigit()
        full = facebook_me(fake, token, fields="id,name,email,picture").json()
        assert full["email"] == "ada@example.com"
        picture = full["picture"]["data"]
        assert picture["height"] == 50 and picture["is_silhouette"] is False
        assert picture["url"].startswith(f"{fake.url}/facebook/pic/")
        assert all(part in picture["url"] for part in ("asid=", "ext=", "hash="))
        unversioned = facebook_me(fake, token, version="")
        assert unversioned.json() == plain
        header = requests.get(
            f"{fake.url}/facebook/graph/v19.0/me",
            params=dict(appsecret_proof=proof(token)),
            headers=dict(Authorization=f"OAuth {token}"),
            timeout=5,
        )
        assert header.json() == plain

    def test_phone_persona_has_no_email(self, fake: RunningMock) -> None:
        fake.control.switch("facebook", user="phone")
        body = facebook_me(fake, facebook_login(fake), fields="id,name,email").json()
        assert set(body) == {"id", "name"}

    def test_appsecret_proof(self, fake: RunningMock) -> None:
        token = facebook_login(fake)
        url = f"{fake.url}/facebook/graph/v24.0/me"
        missing = graph_error(requests.get(url, params=dict(access_token=token), timeout=5))
        assert missing["type"] == "GraphMethodException" and missing["code"] == 100
        assert "require an appsecret_proof" in missing["message"]
        wrong = facebook_me(fake, token, appsecret_proof="0" * 64)
        assert "Invalid appsecret_proof" in graph_error(wrong)["message"]
        fake.control.switch("facebook", require_appsecret_proof=False)
        assert requests.get(url, params=dict(access_token=token), timeout=5).status_code == 200

    @pytest.mark.parametrize(
        ("mode", "subcode"),
        [("expired", 463), ("password_changed", 460), ("data_access_expired", 493)],
    )
    def test_me_token_failures(self, fake: RunningMock, mode: str, subcode: int) -> None:
        token = facebook_login(fake)
        fake.control.switch("facebook", me=mode)
        error = graph_error(facebook_me(fake, token))
        assert error["code"] == 190 and error["error_subcode"] == subcode

    def test_me_false(self, fake: RunningMock) -> None:
        token = facebook_login(fake)
        fake.control.switch("facebook", me="false")
        response = facebook_me(fake, token)
        assert response.status_code == 200 and response.text.strip() == "false"

    def test_odd_me_answers(self, fake: RunningMock) -> None:
        token = facebook_login(fake)
        fake.control.switch("facebook", picture="string")
        body = facebook_me(fake, token, fields="id,name,picture").json()
        assert isinstance(body["picture"]["data"], str)
        assert body["picture"]["data"].startswith(f"{fake.url}/facebook/pic/")
        fake.control.switch("facebook", picture="ok", me="null_id")
        body = facebook_me(fake, token, fields="id,name").json()
        assert body == {"id": None, "name": "Ada Lovelace"}

    def test_a_classic_login_drops_the_pkce_challenge(self, fake: RunningMock) -> None:
        """Without `openid`, Facebook ignores code_challenge, and a code_verifier sent to the
        token endpoint is an error (what broke better-auth and Nango)."""
        verifier, challenge = pkce_pair()
        code = facebook_code(fake, code_challenge=challenge, code_challenge_method="S256")
        refused = graph_error(facebook_token(fake, code, code_verifier=verifier))
        assert refused["code"] == 1 and refused["type"] == "OAuthException"
        assert refused["message"] == (
            "code_verifier param is provided without a code_challenge in authorization request."
        )
        assert facebook_token(fake, code).status_code == 200  # the code was not spent

    def test_the_oidc_flow_binds_the_code_to_the_challenge(self, fake: RunningMock) -> None:
        """With `openid`, as Meta documents: no verifier, or a wrong one, gets no token."""
        verifier, challenge = pkce_pair()
        code = facebook_code(
            fake, scope="openid,email", code_challenge=challenge, code_challenge_method="S256"
        )
        missing = graph_error(facebook_token(fake, code))
        assert missing["code"] == 100 and "Invalid code verifier" in missing["message"]
        other_verifier, _ = pkce_pair()
        assert graph_error(facebook_token(fake, code, code_verifier=other_verifier))
        assert graph_error(facebook_token(fake, code, code_verifier=challenge))  # not plain
        assert facebook_token(fake, code, code_verifier=verifier).status_code == 200
        plain = facebook_code(fake, scope="openid", code_challenge="x" * 43)  # no method: plain
        assert graph_error(facebook_token(fake, plain, code_verifier="y" * 43))
        assert facebook_token(fake, plain, code_verifier="x" * 43).status_code == 200

    def test_real_expiry_is_enforced(self, fake: RunningMock) -> None:
        fake.control.switch("facebook", expires_in=0)
        token = facebook_login(fake)
        time.sleep(0.01)
        error = graph_error(facebook_me(fake, token))
        assert error["code"] == 190 and error["error_subcode"] == 463
        exchange = facebook_token(
            fake, "", method="GET", grant_type="fb_exchange_token", fb_exchange_token=token
        )
        assert graph_error(exchange)["code"] == 190

    def test_legacy_format(self, fake: RunningMock) -> None:
        fake.control.switch("facebook", legacy_token_format=True)
        response = facebook_token(fake, facebook_code(fake))
        assert response.headers["Content-Type"].startswith("text/plain")
        body = dict(parse_qsl(response.text))
        assert body["access_token"].startswith("EAA") and body["expires"] == "5183944"

    def test_short_lived_and_exchange(self, fake: RunningMock) -> None:
        fake.control.switch("facebook", short_lived=True)
        short = facebook_token(fake, facebook_code(fake)).json()
        assert short["expires_in"] == 5400
        long = facebook_token(
            fake,
            "",
            method="GET",
            grant_type="fb_exchange_token",
            fb_exchange_token=short["access_token"],
        ).json()
        assert long["expires_in"] == 5183944 and long["access_token"] != short["access_token"]

    def test_usage_percent(self, fake: RunningMock) -> None:
        token = facebook_login(fake)
        fake.control.switch("facebook", usage_percent=80)
        usage = json.loads(facebook_me(fake, token).headers["X-App-Usage"])
        assert usage == dict(call_count=80, total_cputime=80, total_time=80)
        fake.control.switch("facebook", usage_percent=100)
        error = graph_error(facebook_me(fake, token))
        assert error["code"] == 4 and "request limit reached" in error["message"]

    def test_permissions_and_debug_token(self, fake: RunningMock) -> None:
        token = facebook_login(fake)
        graph = f"{fake.url}/facebook/graph/v24.0"
        signed = dict(access_token=token, appsecret_proof=proof(token))
        listed = requests.get(f"{graph}/me/permissions", params=signed, timeout=5).json()
        assert dict(permission="email", status="granted") in listed["data"]
        app_token = f"{SETTINGS.facebook_client_id}|{SETTINGS.facebook_client_secret}"
        debug = dict(input_token=token, access_token=app_token)
        info = requests.get(f"{graph}/debug_token", params=debug, timeout=5).json()["data"]
        assert info["is_valid"] is True and info["app_id"] == SETTINGS.facebook_client_id
        assert info["type"] == "USER" and "email" in info["scopes"]
        user_id = facebook_me(fake, token).json()["id"]
        assert info["user_id"] == user_id
        revoked = requests.delete(f"{graph}/{user_id}/permissions", params=signed, timeout=5)
        assert revoked.json() == dict(success=True)
        assert graph_error(facebook_me(fake, token))["code"] == 190
        info = requests.get(f"{graph}/debug_token", params=debug, timeout=5).json()["data"]
        assert info["is_valid"] is False

    def test_token_http_status(self, fake: RunningMock) -> None:
        fake.control.switch("facebook", token_http_status=500)
        assert facebook_token(fake, "x").status_code == 500


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
    query = dict(
        client_id=SAMPLE_CLIENT[0],
        redirect_uri=f"{APP}/auth/sample/callback",
        response_type="code",
        scope="openid email profile offline_access",
        state="st4te",
        nonce="n0nce",
    )
    query.update(params)
    url = f"{mock.url}/sample/authorize"
    return query_of(requests.get(url, params=query, allow_redirects=False, timeout=5))


def sample_token(mock: RunningMock, auth: Any = SAMPLE_CLIENT, **data: str) -> requests.Response:
    if "code" in data:
        data = dict(
            grant_type="authorization_code", redirect_uri=f"{APP}/auth/sample/callback", **data
        )
    return requests.post(f"{mock.url}/sample/token", data=data, auth=auth, timeout=5)


def sample_claims(mock: RunningMock, id_token: str, provider: str = "sample") -> dict:
    certs = dict(sample="/sample/jwks", google="/google/oauth2/v3/certs")[provider]
    keys = KeySet.import_key_set(requests.get(mock.url + certs, timeout=5).json())
    return jwt.decode(id_token, keys, algorithms=["RS256"]).claims


class TestToolkit:
    def test_default_credentials_for_any_provider(self, sample: RunningMock) -> None:
        settings = MockSettings(clients=dict(other=("id-1", "secret-1")))
        assert (settings.client_id("sample"), settings.client_secret("sample")) == SAMPLE_CLIENT
        assert (
            settings.client_id("other") == "id-1" and settings.client_secret("other") == "secret-1"
        )
        assert settings.client_id("google") == SETTINGS.google_client_id
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
        if "google" in PROVIDERS:  # issuers never share keys
            with pytest.raises(JoseError):
                sample_claims(sample, token.json()["id_token"], provider="google")
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
        for provider in ("github", "facebook", "nosuch"):
            if provider in PROVIDERS or provider == "nosuch":
                with pytest.raises(ValueError, match="404"):
                    sample.control.rotate_keys(provider)

    def test_key_rings_are_per_issuer(self) -> None:
        first, second = KeyRing("issuer-one"), KeyRing("issuer-two")
        assert first.current.kid != second.current.kid
        assert KeyRing("issuer-one").current is first.current  # made once per process


# --- consent page and minted secrets ----------------------------------------------------------


GITHUB_AUTHORIZE = (
    "/github/login/oauth/authorize",
    dict(
        client_id=SETTINGS.github_client_id,
        redirect_uri=f"{APP}/auth/github/callback",
        scope="read:user user:email",
        state="st4te",
    ),
)


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


@needs("github")
def test_consent_persona_choice_reaches_the_token(fake: RunningMock) -> None:
    path, params = GITHUB_AUTHORIZE
    fake.control.switch("github", interactive=True)
    approved = requests.post(
        fake.url + path,
        params=params,
        data=dict(decision="approve", user="noname"),
        allow_redirects=False,
        timeout=5,
    )
    token = github_token(fake, query_of(approved)["code"])["access_token"]
    assert github_api(fake, "/user", token).json()["login"] == "noname"


def test_minted_lists_every_code_and_token(fake: RunningMock) -> None:
    handed_out: list[str] = []
    if "google" in PROVIDERS:
        code = google_code(fake, access_type="offline")
        token = google_token(fake, code).json()
        handed_out += [code, token["access_token"], token["refresh_token"], token["id_token"]]
    if "github" in PROVIDERS:
        code = github_code(fake)
        handed_out += [code, github_token(fake, code)["access_token"]]
    if "facebook" in PROVIDERS:
        code = facebook_code(fake)
        handed_out += [code, facebook_token(fake, code).json()["access_token"]]
    minted = fake.control.minted()
    assert all(secret in minted for secret in handed_out)
