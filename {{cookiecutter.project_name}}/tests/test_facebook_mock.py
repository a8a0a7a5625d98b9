"""The mock Facebook behaves like Facebook, and its switches do what mock_providers/README.md
says: real HTTP against the mock alone (the `fake` fixture), the app is not involved.

What every mock shares is tested in test_mock_providers.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl

import pytest
import requests
from test_mock_providers import APP, SETTINGS, authorize_at, code_exchange, pkce_pair, query_of

from mock_providers import RunningMock

CLIENT_ID, CLIENT_SECRET = SETTINGS.credentials("facebook")


def facebook_dialog(fake: RunningMock, **params: str) -> requests.Response:
    request = {"scope": "email,public_profile", "response_type": "code", **params}
    return authorize_at(f"{fake.url}/facebook/www/v24.0/dialog/oauth", "facebook", **request)


def facebook_code(fake: RunningMock, **params: str) -> str:
    return query_of(facebook_dialog(fake, **params))["code"]


def facebook_token(
    fake: RunningMock, code: str, method: str = "POST", **fields: str | None
) -> requests.Response:
    data = code_exchange("facebook", code, **fields)
    url = f"{fake.url}/facebook/graph/v24.0/oauth/access_token"
    if method == "GET":
        return requests.get(url, params=data, timeout=5)
    return requests.post(url, data=data, timeout=5)


def facebook_login(fake: RunningMock) -> str:
    response = facebook_token(fake, facebook_code(fake))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def proof(token: str) -> str:
    secret = CLIENT_SECRET.encode()
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def facebook_me(fake: RunningMock, token: str, version: str = "v24.0", **params):
    query = dict(access_token=token, appsecret_proof=proof(token))
    query.update(params)
    path = f"/{version}/me" if version else "/me"
    return requests.get(f"{fake.url}/facebook/graph{path}", params=query, timeout=5)


def graph_error(response: requests.Response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["error"]


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
            auth=(CLIENT_ID, CLIENT_SECRET),
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
        app_token = f"{CLIENT_ID}|{CLIENT_SECRET}"
        debug = dict(input_token=token, access_token=app_token)
        info = requests.get(f"{graph}/debug_token", params=debug, timeout=5).json()["data"]
        assert info["is_valid"] is True and info["app_id"] == CLIENT_ID
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

    def test_app_env_points_at_the_mock(self, fake: RunningMock) -> None:
        env = fake.app_env()
        assert env["FACEBOOK_GRAPH_URL"] == f"{fake.url}/facebook/graph"
        assert env["FACEBOOK_URL"] == f"{fake.url}/facebook/www"
        assert env["FACEBOOK_GRAPH_VERSION"] == "v26.0"
        assert (env["FACEBOOK_CLIENT_ID"], env["FACEBOOK_CLIENT_SECRET"]) == (
            CLIENT_ID,
            CLIENT_SECRET,
        )

    def test_minted_lists_its_codes_and_tokens(self, fake: RunningMock) -> None:
        code = facebook_code(fake)
        handed_out = [code, facebook_token(fake, code).json()["access_token"]]
        minted = fake.control.minted()
        assert all(secret in minted for secret in handed_out)
