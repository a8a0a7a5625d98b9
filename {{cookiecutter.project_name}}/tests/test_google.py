"""Google (OpenID Connect) against the mock: the ID token is the identity, so every claim counts.

Each failure must end on a clean page: the right status and code, no session, no user, and
the access token never used (the mock's userinfo endpoint is never called).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from conftest import Browser, query
from test_login import assert_failed_cleanly, assert_stored_login

ADA_SUB = "104612381937451032001"
GRACE_SUB = "117293840192837465002"


def counts(mock) -> dict[str, int]:
    return mock.control.requests()["google"]


def failed_login(browser, mock, redis_db, database, status: int, code: str, **switches):
    """Sign in with the given mock switches; assert a clean failure; return the page."""
    if switches:
        mock.control.switch("google", **switches)
    response = browser.login("google")
    assert_failed_cleanly(response, browser, redis_db, database, status, code)
    assert counts(mock)["userinfo"] == 0  # the access token of a bad login is never used
    return response


# --- the happy path -----------------------------------------------------------------


def test_full_login_identity_comes_from_the_id_token(browser, mock, database) -> None:
    final = browser.login("google")
    assert final.status_code == 200 and 'id="welcome"' in final.text
    assert browser.identity() == {
        "provider": "google",
        "subject": ADA_SUB,
        "username": None,
        "email": "ada.lovelace@gmail.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "avatar_url": f"{mock.url}/google/a/{ADA_SUB}=s96-c",
    }
    me = browser.me().json()
    assert me["email"] == "ada.lovelace@gmail.com" and me["email_verified"] is True
    used = counts(mock)
    assert used["token"] == 1 and used["userinfo"] == 0  # no extra call: the ID token suffices
    assert_stored_login(database, "google", ADA_SUB)


def test_authorization_request(browser, mock, app) -> None:
    location = browser.get("/login/google").headers["Location"]
    assert location.startswith(f"{mock.url}/google/o/oauth2/v2/auth?")
    params = query(location)
    assert params["scope"] == "openid email profile"
    assert params["response_type"] == "code"
    assert params["client_id"] == mock.settings.client_id("google")
    assert params["redirect_uri"] == f"{app.url}/auth/google/callback"
    assert len(params["nonce"]) >= 16
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 20
    assert "hd" not in params  # only with GOOGLE_HOSTED_DOMAIN


@pytest.mark.parametrize(
    ("sent", "verified"), [(True, True), ("true", True), (False, False)], ids=repr
)
def test_email_verified_is_coerced_to_a_bool(browser, mock, sent, verified) -> None:
    mock.control.switch("google", email_verified=sent)
    assert browser.login("google").status_code == 200
    assert browser.identity()["email_verified"] is verified
    me = browser.me().json()
    assert me["email"] == "ada.lovelace@gmail.com"
    assert me["email_verified"] is verified


def test_an_unverified_email_grants_no_role(variant, mock) -> None:
    app = variant(ADMIN_EMAILS="ada.lovelace@gmail.com")
    browser = Browser(app.url)
    mock.control.switch("google", email_verified=False)
    assert browser.login("google").status_code == 200
    assert browser.me().json()["roles"] == ["user"]


def test_bare_issuer_is_accepted(browser, mock) -> None:
    mock.control.switch("google", iss="bare")
    assert browser.login("google").status_code == 200
    assert browser.identity()["subject"] == ADA_SUB


def test_iat_slightly_in_the_future_is_tolerated(browser, mock) -> None:
    mock.control.switch("google", iat_skew=30)
    assert browser.login("google").status_code == 200
    assert browser.me().status_code == 200


# --- ID-token validation failures ---------------------------------------------------


@pytest.mark.parametrize(
    ("switches", "reason", "detail"),
    [
        pytest.param({"iss": "https://evil.example"}, "invalid_claim", "iss", id="other-iss"),
        pytest.param({"iss": "https://accounts.google.com/"}, "invalid_claim", "iss", id="iss/"),
        pytest.param({"iss": "http://accounts.google.com"}, "invalid_claim", "iss", id="iss-http"),
        pytest.param({"aud": "other.apps.googleusercontent.com"}, "invalid_claim", "aud", id="aud"),
        pytest.param({"azp": "other.apps.googleusercontent.com"}, "invalid_claim", "azp", id="azp"),
        pytest.param({"iat_skew": 600}, "invalid_claim", "issued in the future", id="iat+10min"),
        pytest.param({"exp_offset": -300}, "expired_token", "expired", id="expired"),
        pytest.param({"kid": "unpublished"}, "invalid_key_id", "No key for kid", id="kid"),
        pytest.param({"alg": "none"}, "unsupported_algorithm", "none", id="alg-none"),
        pytest.param({"alg": "HS256"}, "unsupported_algorithm", "HS256", id="alg-hs256"),
        pytest.param({"nonce": "wrong"}, "invalid_claim", "nonce", id="wrong-nonce"),
        pytest.param({"nonce": "omit"}, "missing_claim", "nonce", id="no-nonce"),
    ],
)
def test_bad_id_token_is_rejected(
    browser, mock, redis_db, database, switches, reason, detail
) -> None:
    response = failed_login(browser, mock, redis_db, database, 400, "invalid_id_token", **switches)
    assert "identity token" in response.text
    assert f"<code>{reason}</code>" in response.text  # development pages show the reason
    assert detail in response.text
    assert counts(mock)["token"] == 1


def test_token_response_without_id_token_is_rejected(browser, mock, redis_db, database) -> None:
    response = failed_login(
        browser, mock, redis_db, database, 400, "invalid_id_token", id_token=False
    )
    assert "sent no identity token" in response.text


def test_unpublished_kid_refetches_the_jwks_once_then_fails(
    variant, mock, redis_db, database
) -> None:
    app = variant()  # fresh JWKS cache
    browser = Browser(app.url)
    mock.control.switch("google", kid="unpublished")
    failed_login(browser, mock, redis_db, database, 400, "invalid_id_token")
    assert counts(mock)["certs"] == 2  # the cached set, then one forced re-fetch


# --- hosted domain (Google Workspace) -----------------------------------------------


def test_hosted_domain_is_requested_and_enforced_on_the_claim(variant, mock, database) -> None:
    app = variant(GOOGLE_HOSTED_DOMAIN="example.com")
    browser = Browser(app.url)
    assert query(browser.get("/login/google").headers["Location"])["hd"] == "example.com"

    mock.control.switch("google", user="grace")
    assert browser.login("google").status_code == 200
    assert browser.identity()["subject"] == GRACE_SUB

    outsider = Browser(app.url)
    mock.control.switch("google", user="ada")
    response = outsider.login("google")
    assert response.status_code == 403 and "hosted_domain_mismatch" in response.text
    assert "example.com" in response.text
    assert outsider.me().status_code == 401
    assert_stored_login(database, "google", GRACE_SUB)  # the outsider left nothing


def test_hosted_domain_mismatches_fail_cleanly(variant, mock, redis_db, database) -> None:
    app = variant(GOOGLE_HOSTED_DOMAIN="example.com")
    for user, hd in [("ada", None), ("grace", "other.example"), ("grace", "")]:
        # a personal account, another Workspace domain, and no hd claim at all
        mock.control.switch("google", user=user, hd=hd)
        failed_login(Browser(app.url), mock, redis_db, database, 403, "hosted_domain_mismatch")


def test_hd_in_the_callback_query_is_not_trusted(variant, mock, redis_db, database) -> None:
    """Only the signed claim counts: an `hd` added to the callback URL changes nothing."""
    app = variant(GOOGLE_HOSTED_DOMAIN="example.com")
    browser = Browser(app.url)
    callback = browser.start_login("google")
    assert "hd" not in query(callback)
    response = browser.finish_login(callback + "&hd=example.com")
    assert_failed_cleanly(response, browser, redis_db, database, 403, "hosted_domain_mismatch")


# --- discovery and key rotation -----------------------------------------------------


def test_discovery_and_jwks_are_fetched_once_across_logins(variant, mock) -> None:
    app = variant()  # a fresh app: nothing cached yet
    for _ in range(3):
        browser = Browser(app.url)
        assert browser.login("google").status_code == 200
        assert browser.me().status_code == 200
    used = counts(mock)
    assert used["token"] == 3
    assert used["discovery"] == 1
    assert used["certs"] == 1


def test_key_rotation_refetches_the_jwks(variant, mock) -> None:
    app = variant()
    assert Browser(app.url).login("google").status_code == 200
    assert counts(mock)["certs"] == 1
    mock.control.rotate_keys("google")
    for expected_certs in (2, 2):  # one re-fetch for the new kid, then cached again
        browser = Browser(app.url)
        assert browser.login("google").status_code == 200
        assert browser.me().status_code == 200
        assert counts(mock)["certs"] == expected_certs
    assert counts(mock)["discovery"] == 1


# --- errors Google shows itself, and token endpoint errors --------------------------


def test_redirect_uri_mismatch_is_a_page_at_google_never_a_redirect(browser, mock) -> None:
    location = browser.get("/login/google").headers["Location"]
    params = query(location)
    params["redirect_uri"] = "http://127.0.0.1:1/auth/google/callback"
    wrong = f"{location.split('?')[0]}?{urlencode(params)}"
    response = requests.get(wrong, allow_redirects=False, timeout=10)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri_mismatch" in response.text
    assert counts(mock)["token"] == 0
    assert browser.me().status_code == 401


def test_wrong_client_secret_names_the_variable(variant, mock, redis_db, database) -> None:
    app = variant(GOOGLE_CLIENT_SECRET="wrong")
    browser = Browser(app.url)
    response = failed_login(browser, mock, redis_db, database, 400, "token_error")
    assert "invalid_client" in response.text
    assert "GOOGLE_CLIENT_SECRET" in response.text
