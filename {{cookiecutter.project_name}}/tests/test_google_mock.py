"""The mock Google behaves like Google, and its switches do what mock_providers/README.md
says: real HTTP against the mock alone (the `fake` fixture), the app is not involved.

What every mock shares is tested in test_mock_providers.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from test_mock_providers import APP, SETTINGS, authorize_at, code_exchange, pkce_pair, query_of

from mock_providers import RunningMock

CLIENT_ID, CLIENT_SECRET = SETTINGS.credentials("google")


def google_authorize(fake: RunningMock, method: str = "GET", **params: str) -> requests.Response:
    request = {"response_type": "code", "scope": "openid email profile", "nonce": "n0nce"}
    url = f"{fake.url}/google/o/oauth2/v2/auth"
    return authorize_at(url, "google", method, **{**request, **params})


def google_code(fake: RunningMock, **params: str) -> str:
    return query_of(google_authorize(fake, **params))["code"]


def google_token(fake: RunningMock, code: str, **fields: str | None) -> requests.Response:
    data = code_exchange("google", code, **{"grant_type": "authorization_code", **fields})
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
        assert claims["aud"] == claims["azp"] == CLIENT_ID
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
        new = fake.control.rotate_keys("google")
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
            auth=(CLIENT_ID, CLIENT_SECRET),
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
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
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

    def test_app_env_points_at_the_mock(self, fake: RunningMock) -> None:
        env = fake.app_env()
        assert env["GOOGLE_SERVER_METADATA_URL"] == (
            f"{fake.url}/google/.well-known/openid-configuration"
        )
        assert (env["GOOGLE_CLIENT_ID"], env["GOOGLE_CLIENT_SECRET"]) == (CLIENT_ID, CLIENT_SECRET)

    def test_minted_lists_its_codes_and_tokens(self, fake: RunningMock) -> None:
        code = google_code(fake, access_type="offline")
        token = google_token(fake, code).json()
        handed_out = [code, token["access_token"], token["refresh_token"], token["id_token"]]
        minted = fake.control.minted()
        assert all(secret in minted for secret in handed_out)
