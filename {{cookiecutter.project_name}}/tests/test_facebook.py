"""Facebook Login against the mock: versioned Graph URLs, appsecret_proof, nested errors.

Failures must end on a clean page: the right status and code, no session, no user.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from conftest import Browser, query
from test_login import assert_failed_cleanly, assert_stored_login

from {{ cookiecutter.package_name }}.extensions import oauth_client
from {{ cookiecutter.package_name }}.providers.facebook import DEFAULT_GRAPH_VERSION

ADA_ID = "10229384756102938"
PHONE_ID = "10161234567890123"


def counts(mock) -> dict[str, int]:
    return mock.control.requests()["facebook"]


def failed_login(browser, mock, redis_db, database, status: int, code: str, **switches):
    if switches:
        mock.control.switch("facebook", **switches)
    response = browser.login("facebook")
    assert_failed_cleanly(response, browser, redis_db, database, status, code)
    return response


# --- the happy path -----------------------------------------------------------------


def test_full_login_identity(browser, mock, database) -> None:
    callback = browser.start_login("facebook")
    assert callback.endswith("#_=_")  # Facebook's fragment on every redirect back
    final = browser.finish_login(callback)
    assert final.status_code == 200 and 'id="welcome"' in final.text
    identity = browser.identity()
    avatar = identity.pop("avatar_url")
    assert identity == {
        "provider": "facebook",
        "subject": ADA_ID,
        "username": None,
        "email": "ada@example.com",
        "email_verified": False,  # Facebook never says an address is verified
        "name": "Ada Lovelace",
    }
    assert avatar.startswith(f"{mock.url}/facebook/pic/profilepic/?")  # picture.data.url
    assert query(avatar)["asid"] == ADA_ID
    used = counts(mock)
    assert (used["dialog"], used["token"], used["me"]) == (1, 1, 1)
    assert_stored_login(database, "facebook", ADA_ID)


def test_an_unverified_facebook_email_grants_no_role(variant, mock) -> None:
    app = variant(ADMIN_EMAILS="ada@example.com")
    browser = Browser(app.url)
    assert browser.login("facebook").status_code == 200
    me = browser.me().json()
    assert me["email"] == "ada@example.com" and me["email_verified"] is False
    assert me["roles"] == ["user"]


def test_phone_account_has_no_email(browser, mock) -> None:
    mock.control.switch("facebook", user="phone")
    assert browser.login("facebook").status_code == 200
    identity = browser.identity()
    assert identity["subject"] == PHONE_ID
    assert identity["email"] is None and identity["email_verified"] is False
    assert browser.me().json()["email"] is None


def test_authorization_request(browser, mock, app) -> None:
    location = browser.get("/login/facebook").headers["Location"]
    assert urlsplit(location).path == f"/facebook/www/{DEFAULT_GRAPH_VERSION}/dialog/oauth"
    assert location.startswith(mock.url)
    params = query(location)
    assert params["scope"] == "email,public_profile"  # comma-separated
    assert params["client_id"] == mock.settings.client_id("facebook")
    assert params["redirect_uri"] == f"{app.url}/auth/facebook/callback"
    assert params["response_type"] == "code"
    # No PKCE: Facebook drops a challenge sent without `openid` and then refuses the
    # code_verifier (the mock does too, so every Facebook login here proves none is sent).
    assert "code_challenge" not in params and "code_challenge_method" not in params


def test_graph_version_is_in_every_url(variant, mock) -> None:
    app = variant(FACEBOOK_GRAPH_VERSION="v23.0")
    browser = Browser(app.url)
    location = browser.get("/login/facebook").headers["Location"]
    assert urlsplit(location).path == "/facebook/www/v23.0/dialog/oauth"
    with app.app.app_context():
        client = oauth_client("facebook")
        assert client.access_token_url == f"{mock.url}/facebook/graph/v23.0/oauth/access_token"
        assert client.api_base_url == f"{mock.url}/facebook/graph/v23.0/"
    assert browser.login("facebook").status_code == 200
    assert browser.identity()["subject"] == ADA_ID


def test_appsecret_proof_is_sent(browser, mock) -> None:
    """The mock requires appsecret_proof by default, so the login proves we send it."""
    assert mock.control.switches()["facebook"]["require_appsecret_proof"] is True
    assert browser.login("facebook").status_code == 200
    (token,) = [t for t in mock.control.minted() if t.startswith("EAA")]
    without_proof = requests.get(
        f"{mock.url}/facebook/graph/{DEFAULT_GRAPH_VERSION}/me",
        params={"access_token": token},
        timeout=10,
    )
    assert without_proof.status_code == 400
    assert "appsecret_proof" in without_proof.json()["error"]["message"]


def test_legacy_form_encoded_token_response(browser, mock) -> None:
    mock.control.switch("facebook", legacy_token_format=True)
    assert browser.login("facebook").status_code == 200
    assert browser.identity()["subject"] == ADA_ID


def test_high_but_not_exhausted_usage_still_signs_in(browser, mock) -> None:
    mock.control.switch("facebook", usage_percent=90)
    assert browser.login("facebook").status_code == 200


# --- the user says no ---------------------------------------------------------------


def test_denied_consent(browser, mock, redis_db, database) -> None:
    mock.control.switch("facebook", deny=True)
    callback = browser.start_login("facebook")
    params = query(callback)
    assert params["error_reason"] == "user_denied" and params["error_code"] == "200"
    response = browser.finish_login(callback)
    assert_failed_cleanly(response, browser, redis_db, database, 403, "access_denied")
    assert counts(mock)["token"] == 0


def test_denial_with_only_error_reason_is_access_denied(browser, mock, redis_db, database) -> None:
    """Older dialogs sent error_reason=user_denied without `error`."""
    mock.control.switch("facebook", deny=True)
    params = query(browser.start_login("facebook"))
    callback = "/auth/facebook/callback?" + urlencode(
        {"error_reason": "user_denied", "error_code": "200", "state": params["state"]}
    )
    response = browser.finish_login(f"{browser.app_url}{callback}")
    assert_failed_cleanly(response, browser, redis_db, database, 403, "access_denied")


# --- token endpoint errors ----------------------------------------------------------


def test_reused_code_is_a_token_error(app, mock, redis_db) -> None:
    victim = Browser(app.url)
    callback = victim.start_login("facebook")
    assert victim.finish_login(callback).status_code == 200
    attacker = Browser(app.url)
    state = query(attacker.start_login("facebook"))["state"]
    response = attacker.get(
        "/auth/facebook/callback", params={"code": query(callback)["code"], "state": state}
    )
    assert response.status_code == 400
    assert "token_error" in response.text and "already used" in response.text
    assert attacker.me().status_code == 401
    assert victim.me().status_code == 200


def test_wrong_client_secret_names_the_variable(variant, mock, redis_db, database) -> None:
    app = variant(FACEBOOK_CLIENT_SECRET="wrong")
    response = failed_login(Browser(app.url), mock, redis_db, database, 400, "token_error")
    assert "(invalid_client)" in response.text and "client secret" in response.text
    assert "FACEBOOK_CLIENT_SECRET" in response.text
    assert counts(mock)["me"] == 0


# --- Graph API errors at /me --------------------------------------------------------


def test_me_answering_false_is_a_502(browser, mock, redis_db, database) -> None:
    failed_login(browser, mock, redis_db, database, 502, "provider_unavailable", me="false")


@pytest.mark.parametrize(
    ("failure", "subcode"),
    [("expired", "463"), ("password_changed", "460"), ("data_access_expired", "493")],
)
def test_dead_token_at_me_is_a_profile_error(
    browser, mock, redis_db, database, failure, subcode
) -> None:
    response = failed_login(browser, mock, redis_db, database, 400, "profile_error", me=failure)
    assert f"<code>{subcode}</code>" in response.text  # development pages show the subcode


def test_exhausted_app_usage_is_a_503(browser, mock, redis_db, database) -> None:
    response = failed_login(
        browser, mock, redis_db, database, 503, "provider_rate_limited", usage_percent=100
    )
    assert int(response.headers["Retry-After"]) > 0
    assert counts(mock)["me"] == 1


# --- odd /me answers --------------------------------------------------------------------


def test_picture_data_as_a_string_still_signs_in_without_an_avatar(browser, mock) -> None:
    """`picture.data` a bare string (once a 500): the profile is fine, the avatar unknown."""
    mock.control.switch("facebook", picture="string")
    final = browser.login("facebook")
    assert final.status_code == 200, final.text
    identity = browser.identity()
    assert identity["subject"] == ADA_ID
    assert identity["avatar_url"] is None
    assert identity["name"] == "Ada Lovelace"


def test_null_id_at_me_is_a_502(browser, mock, redis_db, database) -> None:
    """The check on the subject is shared by every provider: Facebook's null id too."""
    response = failed_login(browser, mock, redis_db, database, 502, "invalid_profile", me="null_id")
    assert "Facebook sent a profile this app cannot use" in response.text


# --- the mock Graph as a test sees it (shared by the test_facebook_*.py files) ------------


def submit(browser: Browser, path: str) -> str:
    """POST a CSRF-protected form (sign-out, account deletion); returns where it redirects.

    After a sign-out or deletion, `?unrevoked=facebook` there means Facebook may still list
    the app in the person's settings.
    """
    response = browser.http.post(
        f"{browser.app_url}{path}",
        data={"csrf_token": browser.csrf_token()},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def graph(mock) -> str:
    env = mock.app_env()
    return f"{env['FACEBOOK_GRAPH_URL']}/{env['FACEBOOK_GRAPH_VERSION']}"


def app_token(mock) -> str:
    """Facebook's app access token: `{app-id}|{app-secret}`."""
    return f"{mock.settings.client_id('facebook')}|{mock.settings.client_secret('facebook')}"


def proof(mock, token: str) -> str:
    secret = mock.settings.client_secret("facebook").encode()
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def permissions_at_facebook(mock, subject: str = ADA_ID) -> dict[str, str]:
    """What the person's Facebook settings list for this app: {permission: status}."""
    response = requests.get(
        f"{graph(mock)}/{subject}/permissions",
        params={"access_token": app_token(mock)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {p["permission"]: p["status"] for p in response.json()["data"]}


def dialog(mock, **params: str) -> dict[str, str]:
    """The mock's login dialog, approved: the callback's query."""
    env = mock.app_env()
    query_params = {
        "client_id": env["FACEBOOK_CLIENT_ID"],
        "redirect_uri": mock.settings.callback("facebook"),
        "scope": "email,public_profile",
        "state": "st4te",
        **params,
    }
    response = requests.get(
        f"{env['FACEBOOK_URL']}/{env['FACEBOOK_GRAPH_VERSION']}/dialog/oauth",
        params=query_params,
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    return query(response.headers["Location"])


def user_token(mock, **params: str) -> str:
    """Sign in at the mock directly (dialog, then code exchange): a user token."""
    env = mock.app_env()
    response = requests.post(
        f"{graph(mock)}/oauth/access_token",
        data={
            "client_id": env["FACEBOOK_CLIENT_ID"],
            "client_secret": env["FACEBOOK_CLIENT_SECRET"],
            "redirect_uri": mock.settings.callback("facebook"),
            "code": dialog(mock, **params)["code"],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def graph_get(mock, path: str, token: str, method: str = "GET") -> requests.Response:
    """A Graph call with a user token and its appsecret_proof, as the app makes it."""
    params = {"access_token": token, "appsecret_proof": proof(mock, token)}
    return requests.request(method, f"{graph(mock)}/{path}", params=params, timeout=10)
