"""GitLab (OpenID Connect) against the mock: the ID token names the account and /api/v4/user
describes it; refresh tokens rotate; a rate limit may say when only in RateLimit-Reset.

The mock's own GitLab behaviour (what its ID token holds, the user API's scope, Rack::Attack's
429) is checked over HTTP as any client of GitLab would see it, without the app.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from conftest import query
from joserfc import jwt
from joserfc.jwk import KeySet
from test_login import assert_failed_cleanly, assert_stored_login
from test_tokens import counts, load, profile, user_id

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES, ProviderConfig

from mock_providers.facts import refresh_at

ADA, GRACE = "9182736", "4451623"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def gitlab_url(mock) -> str:
    return mock.app_env()["GITLAB_URL"]


def user_api(mock, access_token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    return requests.get(f"{gitlab_url(mock)}/api/v4/user", headers=headers, timeout=10)


# --- the app's GitLab adapter --------------------------------------------------------------


def test_the_id_token_names_the_account_and_the_user_api_the_rest(browser, mock, database) -> None:
    final = browser.login("gitlab")
    assert final.status_code == 200 and 'id="welcome"' in final.text
    assert browser.identity() == {
        "provider": "gitlab",
        "subject": ADA,  # the ID token's sub; /api/v4/user says 9182736, an integer
        "username": "ada",
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "avatar_url": f"{gitlab_url(mock)}/uploads/-/system/user/avatar/{ADA}/",
    }
    used = counts(mock, "gitlab")
    assert (used["token"], used["user"], used["userinfo"]) == (1, 1, 0)
    assert_stored_login(database, "gitlab", ADA)


def test_authorization_request(browser, mock, app) -> None:
    location = browser.get("/login/gitlab").headers["Location"]
    assert location.startswith(f"{gitlab_url(mock)}/oauth/authorize?")  # from discovery
    params = query(location)
    assert params["scope"] == "openid profile email read_user"
    assert params["client_id"] == mock.settings.client_id("gitlab")
    assert params["redirect_uri"] == f"{app.url}/auth/gitlab/callback"
    assert params["code_challenge_method"] == "S256" and len(params["nonce"]) >= 16


@pytest.mark.parametrize("answered", [int(GRACE), "", [int(ADA)]], ids=["other", "empty", "list"])
def test_a_user_api_answer_of_another_account_is_refused(
    browser, mock, redis_db, database, answered
) -> None:
    """OIDC Core 5.3.2: the profile must be the ID token's account, or none is used."""
    mock.control.switch("gitlab", user_id=answered)
    response = browser.login("gitlab")
    assert_failed_cleanly(response, browser, redis_db, database, 502, "invalid_profile")


def test_an_unconfirmed_email_is_unverified_at_sign_in_and_in_the_profile(browser, mock) -> None:
    mock.control.switch("gitlab", email_verified=False)
    assert browser.login("gitlab").status_code == 200
    assert browser.identity()["email_verified"] is False
    fresh = profile(browser, "gitlab")
    assert fresh.status_code == 200 and fresh.json()["profile"]["email_verified"] is False
    assert browser.me().json()["email_verified"] is False


def test_tokens_live_two_hours_and_are_not_refreshed_before(browser, app, mock) -> None:
    browser.login("gitlab")
    token = load(app, user_id(browser), "gitlab")
    assert HEX64.match(token.access_token) and HEX64.match(token.refresh_token)
    assert abs(token.expires_at - (time.time() + 7200)) < 30
    assert profile(browser, "gitlab").status_code == 200
    assert counts(mock, "gitlab")["token"] == 1


def test_a_refresh_retires_the_refresh_token_and_its_access_token(browser, app, mock) -> None:
    mock.control.switch("gitlab", expires_in=60)  # due for refresh at once
    browser.login("gitlab")
    uid = user_id(browser)
    old = load(app, uid, "gitlab")
    assert profile(browser, "gitlab").status_code == 200  # refreshed first
    new = load(app, uid, "gitlab")
    assert counts(mock, "gitlab")["token"] == 2
    assert new.refresh_token != old.refresh_token and new.access_token != old.access_token
    live = [user_api(mock, token).status_code for token in (old.access_token, new.access_token)]
    assert live == [401, 200]
    token_url = f"{gitlab_url(mock)}/oauth/token"
    reused = refresh_at(token_url, mock.app_env(), "GITLAB", old.refresh_token)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_a_rate_limit_without_retry_after_waits_for_ratelimit_reset(browser, mock) -> None:
    browser.login("gitlab")
    mock.control.switch("gitlab", userinfo="quota", retry_after=False)
    response = profile(browser, "gitlab")
    assert response.status_code == 503 and response.json()["error"] == "provider_rate_limited"
    assert 28 <= int(response.headers["Retry-After"]) <= 30  # not the one-minute default


def test_a_self_managed_instance_is_its_own_issuer_and_applications_page() -> None:
    cls = PROVIDER_CLASSES["gitlab"]
    config = ProviderConfig("gitlab", "id", "secret", {"GITLAB_URL": "https://git.example.com/gl"})
    adapter = cls(config, 5, None)
    discovery = "https://git.example.com/gl/.well-known/openid-configuration"
    assert adapter.registration()["server_metadata_url"] == cls.probe_url(config) == discovery
    assert adapter.user_apps_url == "https://git.example.com/gl/-/user_settings/applications"


def test_a_secret_in_the_client_id_is_a_doctor_failure() -> None:
    cls = PROVIDER_CLASSES["gitlab"]
    pasted = ProviderConfig("gitlab", "glpre-gloas-" + "0" * 64, "secret", {})
    (finding,) = cls.credential_checks(pasted)
    assert finding.status == "fail" and "GITLAB_CLIENT_ID" in finding.message
    assert cls.credential_checks(ProviderConfig("gitlab", "0" * 64, "gloas-" + "1" * 64)) == []


# --- the mock, as a client of GitLab sees it ---------------------------------------------


def authorize(mock, scope: str, user: str = "ada") -> dict:
    """A code flow straight against the mock (no app): the token endpoint's answer."""
    mock.control.switch("gitlab", user=user)
    env, redirect = mock.app_env(), mock.settings.callback("gitlab")
    client = (env["GITLAB_CLIENT_ID"], env["GITLAB_CLIENT_SECRET"])
    params = dict(client_id=client[0], redirect_uri=redirect, response_type="code", scope=scope)
    url = f"{gitlab_url(mock)}/oauth/authorize"
    approved = requests.get(url, params=params, allow_redirects=False, timeout=10)
    code = query(approved.headers["Location"])["code"]
    form = dict(grant_type="authorization_code", code=code, redirect_uri=redirect)
    answer = requests.post(f"{gitlab_url(mock)}/oauth/token", data=form, auth=client, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def id_token_claims(mock, id_token: str) -> dict:
    keys = requests.get(f"{gitlab_url(mock)}/oauth/discovery/keys", timeout=10).json()
    return jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"]).claims


def test_mock_discovery_is_the_instances(mock) -> None:
    base = gitlab_url(mock)
    doc = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == base
    assert doc["token_endpoint"] == f"{base}/oauth/token"
    assert doc["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert doc["jwks_uri"] == f"{base}/oauth/discovery/keys"
    assert doc["token_endpoint_auth_methods_supported"][0] == "client_secret_basic"
    assert "offline_access" not in doc["scopes_supported"]  # refresh tokens come anyway


def test_mock_id_token_holds_only_what_gitlab_puts_there(mock) -> None:
    answer = authorize(mock, "openid email profile read_user")
    assert answer["expires_in"] == 7200 and HEX64.match(answer["refresh_token"])
    claims = id_token_claims(mock, answer["id_token"])
    person = set(claims) - {"iss", "aud", "exp", "iat", "at_hash"}
    assert person == {"sub", "sub_legacy", "email", "email_verified", "groups_direct"}
    assert (claims["sub"], claims["email"]) == (ADA, "ada@example.com")
    assert claims["exp"] - claims["iat"] == 120 and "azp" not in claims


@pytest.mark.parametrize(("user", "email"), [("ada", None), ("grace", "grace@example.org")])
def test_mock_without_the_email_scope_the_id_token_has_the_public_email(mock, user, email):
    claims = id_token_claims(mock, authorize(mock, "openid read_user", user)["id_token"])
    assert claims.get("email") == email


def test_mock_user_api_needs_read_user_and_userinfo_has_the_profile(mock) -> None:
    bare = authorize(mock, "openid")["access_token"]
    refused = user_api(mock, bare)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    token = authorize(mock, "openid profile email read_user", "grace")["access_token"]
    user = user_api(mock, token).json()
    assert user["id"] == int(GRACE) and user["username"] == "grace" and user["confirmed_at"]
    headers = {"Authorization": f"Bearer {token}"}
    info = requests.get(f"{gitlab_url(mock)}/oauth/userinfo", headers=headers, timeout=10)
    assert info.json()["nickname"] == "grace" and info.json()["groups"] == ["navy/cobol"]
    assert "groups_direct" not in info.json()  # the ID token's only


@pytest.mark.parametrize("retry_after", [True, False])
def test_mock_rate_limit_is_rack_attacks_429(mock, retry_after) -> None:
    token = authorize(mock, "openid read_user")["access_token"]
    mock.control.switch("gitlab", userinfo="quota", retry_after=retry_after)
    limited = user_api(mock, token)
    assert limited.status_code == 429 and limited.text == "Retry later\n"
    assert limited.headers["Content-Type"].startswith("text/plain")
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert abs(int(limited.headers["RateLimit-Reset"]) - (time.time() + 30)) < 3
    assert limited.headers.get("Retry-After") == ("30" if retry_after else None)
