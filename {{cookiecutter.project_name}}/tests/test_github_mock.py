"""The mock GitHub behaves like GitHub, and its switches do what mock_providers/README.md
says: real HTTP against the mock alone (the `fake` fixture), the app is not involved.

What every mock shares is tested in test_mock_providers.py.
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from test_mock_providers import APP, SETTINGS, authorize_at, code_exchange, pkce_pair, query_of

from mock_providers import RunningMock

CLIENT_ID, CLIENT_SECRET = SETTINGS.credentials("github")


def github_authorize(
    fake: RunningMock, prefix: str = "/github", **params: str
) -> requests.Response:
    url = f"{fake.url}{prefix}/login/oauth/authorize"
    return authorize_at(url, "github", **{"scope": "read:user user:email", **params})


def github_code(fake: RunningMock, **params: str) -> str:
    return query_of(github_authorize(fake, **params))["code"]


def github_token(
    fake: RunningMock, code: str, json_reply: bool = True, prefix: str = "/github", **fields
) -> dict[str, str]:
    data = code_exchange("github", code, **fields)
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
        client = CLIENT_ID
        token = github_login(fake)["access_token"]
        base = f"{fake.url}/github/api/applications/{client}"
        credentials = (client, CLIENT_SECRET)
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

    def test_app_env_points_at_the_mock(self, fake: RunningMock) -> None:
        env = fake.app_env()
        assert env["GITHUB_URL"] == f"{fake.url}/github"
        assert env["GITHUB_API_URL"] == f"{fake.url}/github/api"
        assert (env["GITHUB_CLIENT_ID"], env["GITHUB_CLIENT_SECRET"]) == (CLIENT_ID, CLIENT_SECRET)

    def test_consent_persona_choice_reaches_the_token(self, fake: RunningMock) -> None:
        fake.control.switch("github", interactive=True)
        page = github_authorize(fake)
        assert page.status_code == 200 and 'value="noname"' in page.text
        approved = requests.post(
            page.url, data=dict(decision="approve", user="noname"), allow_redirects=False, timeout=5
        )
        token = github_token(fake, query_of(approved)["code"])["access_token"]
        assert github_api(fake, "/user", token).json()["login"] == "noname"

    def test_minted_lists_its_codes_and_tokens(self, fake: RunningMock) -> None:
        code = github_code(fake)
        handed_out = [code, github_token(fake, code)["access_token"]]
        minted = fake.control.minted()
        assert all(secret in minted for secret in handed_out)
