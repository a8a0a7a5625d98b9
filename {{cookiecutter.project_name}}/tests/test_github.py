"""GitHub (plain OAuth 2.0) against the mock: HTTP-200 token errors, private emails, GHES.

Failures must end on a clean page: the right status and code, no session, no user.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from conftest import Browser, query, rows
from test_login import assert_failed_cleanly, assert_stored_login

from {{ cookiecutter.package_name }}.providers.oauth2 import json_token_fix

ADA_ID = 583231
PRIVATE_ID = 1123581


def counts(mock) -> dict[str, int]:
    return mock.control.requests()["github"]


def with_param(url: str, **changes: str) -> str:
    """`url` with some query parameters replaced."""
    params = {**query(url), **changes}
    return f"{url.split('?')[0]}?{urlencode(params)}"


# --- the happy path -----------------------------------------------------------------


def test_full_login_identity(browser, mock, database) -> None:
    final = browser.login("github")
    assert final.status_code == 200 and 'id="welcome"' in final.text
    assert browser.identity() == {
        "provider": "github",
        "subject": str(ADA_ID),  # GitHub's id is an integer: stored as a string
        "username": "ada",
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "avatar_url": f"{mock.url}/github/avatars/u/{ADA_ID}?v=4",
    }
    assert_stored_login(database, "github", str(ADA_ID))


def test_authorization_request(browser, mock, app) -> None:
    location = browser.get("/login/github").headers["Location"]
    assert location.startswith(f"{mock.url}/github/login/oauth/authorize?")
    params = query(location)
    assert params["client_id"] == mock.settings.client_id("github")
    assert params["redirect_uri"] == f"{app.url}/auth/github/callback"
    assert set(params["scope"].split()) == {"read:user", "user:email"}
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43


def test_private_email_comes_from_the_emails_endpoint(browser, mock) -> None:
    mock.control.switch("github", user="private")
    assert browser.login("github").status_code == 200
    identity = browser.identity()
    assert identity["subject"] == str(PRIVATE_ID) and identity["username"] == "private-pat"
    # the verified primary, not the unverified secondary address
    assert identity["email"] == "pat@example.com" and identity["email_verified"] is True


@pytest.mark.parametrize(
    ("emails", "email", "verified"),
    [
        ("404", None, False),  # token without user:email
        ("403", None, False),  # GitHub App without the email permission
        ("no_primary", "pat@example.com", True),  # falls back to a verified address
        ("empty", None, False),
    ],
)
def test_emails_endpoint_trouble_still_signs_in(browser, mock, emails, email, verified) -> None:
    mock.control.switch("github", user="private", emails=emails)
    assert browser.login("github").status_code == 200
    identity = browser.identity()
    assert identity["subject"] == str(PRIVATE_ID)
    assert identity["email"] == email and identity["email_verified"] is verified
    assert browser.me().json()["email"] == email
    assert counts(mock)["emails"] == 1


def test_missing_name_falls_back_to_the_login(browser, mock) -> None:
    mock.control.switch("github", user="noname")
    assert browser.login("github").status_code == 200
    assert browser.identity()["name"] == "noname"
    assert browser.me().json()["name"] == "noname"


@pytest.mark.parametrize("user", ["ada", "private", "noname"])
def test_calls_per_login(browser, mock, user) -> None:
    """/user/emails every time: the only place for a private email, and the only proof that
    a public one is verified (test_github_fidelity.py)."""
    mock.control.switch("github", user=user)
    assert browser.login("github").status_code == 200
    used = counts(mock)
    assert used["authorize"] == 1
    assert used["token"] == 1
    assert used["user"] == 1
    assert used["emails"] == 1


def test_app_mode_user_tokens_sign_in(browser, mock) -> None:
    mock.control.switch("github", app_mode=True)
    assert browser.login("github").status_code == 200
    assert browser.identity()["subject"] == str(ADA_ID)
    minted = mock.control.minted()
    assert any(t.startswith("ghu_") for t in minted)
    assert any(t.startswith("ghr_") for t in minted)


def test_user_agent_is_sent(browser, mock) -> None:
    """The mock's API refuses requests without a User-Agent, so the login proves we send one."""
    assert browser.login("github").status_code == 200
    (token,) = [t for t in mock.control.minted() if t.startswith("gho_")]
    mock_address = urlsplit(mock.url)
    connection = http.client.HTTPConnection(mock_address.hostname, mock_address.port, timeout=10)
    try:  # http.client, unlike requests/urllib3, adds no User-Agent of its own
        connection.request("GET", "/github/api/user", headers={"Authorization": f"Bearer {token}"})
        assert connection.getresponse().status == 403
    finally:
        connection.close()
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{mock.url}/github/api/user", headers=auth, timeout=10).ok


def test_enterprise_server_layout(variant, mock) -> None:
    app = variant(GITHUB_URL=f"{mock.url}/ghes", GITHUB_API_URL=f"{mock.url}/ghes/api/v3")
    browser = Browser(app.url)
    location = browser.get("/login/github").headers["Location"]
    assert location.startswith(f"{mock.url}/ghes/login/oauth/authorize?")
    mock.control.switch("github", user="private")  # /user and /user/emails, both on GHES
    assert browser.login("github").status_code == 200
    identity = browser.identity()
    assert identity["email"] == "pat@example.com"
    # the mock builds avatar URLs from the layout the /user request came in on
    assert identity["avatar_url"] == f"{mock.url}/ghes/avatars/u/{PRIVATE_ID}?v=4"
    assert counts(mock)["emails"] == 1


def test_form_encoded_token_responses_are_understood(mock, app_url) -> None:
    """Without `Accept: application/json` GitHub answers form-encoded, errors included."""
    settings = mock.settings
    callback = f"{app_url}/auth/github/callback"
    authorize = requests.get(
        f"{mock.url}/github/login/oauth/authorize",
        params={"client_id": settings.client_id("github"), "redirect_uri": callback, "state": "s"},
        allow_redirects=False,
        timeout=10,
    )
    form = {
        "client_id": settings.client_id("github"),
        "client_secret": settings.client_secret("github"),
        "code": query(authorize.headers["Location"])["code"],
        "redirect_uri": callback,
    }
    url = f"{mock.url}/github/login/oauth/access_token"
    response = requests.post(url, data=form, headers={"Accept": "*/*"}, timeout=10)
    assert response.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    token = json_token_fix(response).json()
    assert token["access_token"].startswith("gho_") and token["token_type"] == "bearer"

    mock.control.switch("github", token_error="bad_verification_code")
    response = requests.post(url, data=form, headers={"Accept": "*/*"}, timeout=10)
    assert response.status_code == 200
    assert json_token_fix(response).json()["error"] == "bad_verification_code"


# --- token endpoint errors (all HTTP 200 at GitHub) ---------------------------------


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("incorrect_client_credentials", "GITHUB_CLIENT_SECRET"),
        ("bad_verification_code", "expired or was already used"),
        ("redirect_uri_mismatch", "/auth/github/callback"),
        ("unverified_user_email", "Verify your email address"),
    ],
)
def test_token_errors_sent_with_http_200(browser, mock, redis_db, database, error, hint) -> None:
    mock.control.switch("github", token_error=error)
    response = browser.login("github")
    assert_failed_cleanly(response, browser, redis_db, database, 400, "token_error")
    assert f"({error})" in response.text
    assert hint in response.text
    assert counts(mock)["user"] == 0


def test_wrong_client_secret_names_the_variable(variant, mock, redis_db, database) -> None:
    app = variant(GITHUB_CLIENT_SECRET="wrong")
    browser = Browser(app.url)
    response = browser.login("github")
    assert_failed_cleanly(response, browser, redis_db, database, 400, "token_error")
    assert "incorrect_client_credentials" in response.text
    assert "GITHUB_CLIENT_SECRET" in response.text
    assert counts(mock)["user"] == 0


# --- errors in the authorization redirect -------------------------------------------


def test_suspended_application(browser, mock, redis_db, database) -> None:
    mock.control.switch("github", suspended=True)
    callback = browser.start_login("github")
    assert query(callback)["error"] == "application_suspended"
    response = browser.finish_login(callback)
    assert_failed_cleanly(response, browser, redis_db, database, 400, "provider_error")
    assert "application_suspended" in response.text
    assert counts(mock)["token"] == 0


@pytest.mark.parametrize(
    "bad",
    [
        "http://127.0.0.1:1/auth/github/callback",  # another port
        "http://evil.example/auth/github/callback",  # another host
        "{app}/auth/other/callback",  # outside the callback path
    ],
)
def test_redirect_uri_mismatch_goes_to_the_registered_callback(
    browser, mock, redis_db, database, app, bad
) -> None:
    location = browser.get("/login/github").headers["Location"]
    state = query(location)["state"]
    at_github = requests.get(
        with_param(location, redirect_uri=bad.format(app=app.url)),
        allow_redirects=False,
        timeout=10,
    )
    assert at_github.status_code == 302
    back = at_github.headers["Location"]
    assert back.startswith(f"{app.url}/auth/github/callback?")
    params = query(back)
    assert params["error"] == "redirect_uri_mismatch" and params["state"] == state
    assert "code" not in params
    response = browser.finish_login(back)
    assert_failed_cleanly(response, browser, redis_db, database, 400, "provider_error")
    assert "redirect_uri_mismatch" in response.text
    assert counts(mock)["token"] == 0


def test_install_callback_without_state_restarts_the_login(browser, mock, redis_db) -> None:
    mock.control.switch("github", install_callback=True)
    callback = browser.start_login("github")
    params = query(callback)
    assert params["setup_action"] == "install" and "state" not in params
    response = browser.get(callback)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login/github"
    assert counts(mock)["token"] == 0  # a code without our state is never redeemed
    assert browser.me().status_code == 401
    mock.control.switch("github", install_callback=False)
    assert browser.follow(response).status_code == 200
    assert browser.identity()["subject"] == str(ADA_ID)


# --- API errors ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["primary", "secondary"])
def test_rate_limited_user_endpoint_is_a_503_with_retry_after(
    browser, mock, redis_db, database, kind
) -> None:
    mock.control.switch("github", rate_limit=kind)
    response = browser.login("github")
    assert_failed_cleanly(response, browser, redis_db, database, 503, "provider_rate_limited")
    retry_after = int(response.headers["Retry-After"])
    if kind == "secondary":
        assert retry_after == 60  # GitHub's retry-after header
    else:
        assert 3500 <= retry_after <= 3600  # until x-ratelimit-reset
    assert counts(mock)["user"] == 1
    mock.control.switch("github", rate_limit=None)
    assert browser.login("github").status_code == 200


# --- odd /user answers ----------------------------------------------------------------


@pytest.mark.parametrize("shape", ["no_id", "null_id", "empty_id", "list"])
def test_user_without_a_usable_id_is_a_502(browser, mock, redis_db, database, shape) -> None:
    """No id, "id": null or "" (once signed in as the shared subject "None"), or /user as
    a JSON list (once a 500): a clean 502, and nobody is signed in or stored."""
    mock.control.switch("github", user_object=shape)
    response = browser.login("github")
    assert_failed_cleanly(response, browser, redis_db, database, 502, "invalid_profile")
    assert "GitHub sent a profile this app cannot use" in response.text
    assert counts(mock)["user"] == 1
    mock.control.switch("github", user_object="ok")
    assert browser.login("github").status_code == 200
    assert browser.identity()["subject"] == str(ADA_ID)


def test_odd_fields_are_dropped_or_trimmed_not_a_500(browser, mock, database) -> None:
    """A good id with fields of the wrong type or size: sign in, keep only what fits."""
    mock.control.switch("github", user_object="odd_fields")
    final = browser.login("github")
    assert final.status_code == 200, final.text
    identity = browser.identity()
    assert identity["subject"] == str(ADA_ID)
    assert identity["username"] is None  # a list is not a login
    assert identity["avatar_url"] is None  # only http(s) URLs reach an <img src>
    assert identity["name"] == ("Ada " + "L" * 300)[:255]  # one line, cut to the column size
    # An object is not an address: the verified primary comes from /user/emails instead.
    assert counts(mock)["emails"] == 1
    assert identity["email"] == "ada@example.com" and identity["email_verified"] is True
    (stored,) = rows(database, "SELECT name, email FROM identities")
    assert stored == (identity["name"], "ada@example.com")


def test_null_id_never_becomes_a_shared_account(app, mock, redis_db, database) -> None:
    """Two different people whose /user has "id": null must not meet in one account."""
    mock.control.switch("github", user_object="null_id")
    for persona in ("ada", "private"):
        mock.control.switch("github", user=persona)
        browser = Browser(app.url)
        assert browser.login("github").status_code == 502
        assert browser.me().status_code == 401
    assert not rows(database, "SELECT subject FROM identities")


def test_odd_user_from_the_profile_api_is_a_502_json(browser, mock) -> None:
    assert browser.login("github").status_code == 200
    mock.control.switch("github", user_object="list")
    response = browser.get("/api/providers/github/profile")
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "invalid_profile"
    assert browser.me().status_code == 200  # still signed in: the provider misbehaved, not us


def test_a_token_step_redirect_uri_mismatch_shows_the_redirect_uri(browser, mock, app) -> None:
    """(Moved here from test_errors_and_logs.py.)"""
    mock.control.switch("github", token_error="redirect_uri_mismatch")
    callback = browser.start_login("github")
    response = browser.get(callback, headers={"Accept": "application/json"})
    body = response.json()
    assert response.status_code == 400 and body["error"] == "token_error"
    assert body["details"]["provider_error"] == "redirect_uri_mismatch"
    assert body["details"]["redirect_uri"] == f"{app.url}/auth/github/callback"
    assert "github.com/settings" in body["hint"]  # where to register it
