"""Single sign-on (the generic OpenID Connect provider) against the mock: the ID token names
the account and userinfo describes it; OIDC_NAME and OIDC_TITLE rename it end to end;
OIDC_ISSUER is compared exactly; OIDC_SCOPES; RP-initiated logout; the doctor's checks.

The cross-provider tests (FACTS in mock_providers/sso.py) sign in, link, refresh, revoke and
delete with it like with any other provider; here is what is its own.
"""

from __future__ import annotations

import pytest
import requests
from conftest import Browser, everything_in_redis, query, rows
from joserfc import jwt
from joserfc.jwk import KeySet
from test_sessions import post_form
from test_tokens import counts, load, profile, user_id

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES, ProviderConfig
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

import mock_providers
from mock_providers import MockSettings
from mock_providers.facts import refresh_at

ADA = "5c1f0d6e-ada"
SSO = PROVIDER_CLASSES["sso"]


def issuer(mock) -> str:
    return mock.app_env()["OIDC_ISSUER"]


def metadata(mock) -> dict:
    return requests.get(f"{issuer(mock)}/.well-known/openid-configuration", timeout=10).json()


# --- signing in ----------------------------------------------------------------------------


def test_the_id_token_names_the_account_and_userinfo_describes_it(browser, mock) -> None:
    final = browser.login("sso")
    assert final.status_code == 200 and 'id="welcome"' in final.text
    assert browser.identity() == {
        "provider": "sso",
        "subject": ADA,
        "username": "ada",
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "avatar_url": f"{issuer(mock)}/avatar/{ADA}",
    }
    used = counts(mock, "sso")
    assert (used["token"], used["userinfo"]) == (1, 1)


def test_authorization_request_asks_for_refresh_tokens_with_consent(browser, mock, app) -> None:
    location = browser.get("/login/sso").headers["Location"]
    assert location.startswith(f"{issuer(mock)}/auth?")  # from discovery
    params = query(location)
    assert params["scope"] == "openid email profile offline_access"  # listed by the provider
    assert params["prompt"] == "consent"  # OIDC Core 11: offline_access needs it
    assert params["client_id"] == mock.settings.client_id("sso")
    assert params["redirect_uri"] == f"{app.url}/auth/sso/callback"
    assert params["code_challenge_method"] == "S256" and len(params["nonce"]) >= 16


def test_a_refresh_rotates_the_refresh_token(browser, app, mock) -> None:
    mock.control.switch("sso", expires_in=60)  # due for refresh at once
    browser.login("sso")
    uid = user_id(browser)
    old = load(app, uid, "sso")
    assert old.refresh_token
    assert profile(browser, "sso").status_code == 200  # refreshed first
    new = load(app, uid, "sso")
    assert counts(mock, "sso")["token"] == 2 and new.refresh_token != old.refresh_token
    token_url = metadata(mock)["token_endpoint"]
    reused = refresh_at(token_url, mock.app_env(), "OIDC", old.refresh_token)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_oidc_scopes_are_asked_for_with_openid_always(variant, mock) -> None:
    running = variant(OIDC_SCOPES="email groups")
    location = Browser(running.url).get("/login/sso").headers["Location"]
    assert query(location)["scope"] == "openid email groups offline_access"


def test_a_trailing_slash_of_the_issuer_is_kept_and_compared(variant, mock) -> None:
    """Discovery 4.1 drops it to find the document; 4.3 compares the issuer exactly."""
    running = variant(OIDC_ISSUER=issuer(mock) + "/")
    refused = Browser(running.url).get("/login/sso")
    assert refused.status_code == 502 and "discovery_issuer_mismatch" in refused.text
    extra = {**SSO.option_settings, "OIDC_ISSUER": "https://idp.example.com/"}
    config = ProviderConfig("sso", "id", "secret", extra)
    assert SSO.discovery_url(config) == "https://idp.example.com/.well-known/openid-configuration"
    assert SSO.issuer_expected(config, "https://idp.example.com/")
    assert not SSO.issuer_expected(config, "https://idp.example.com")


# --- OIDC_NAME and OIDC_TITLE --------------------------------------------------------------


@pytest.fixture()
def keycloak_mock(app_url):
    """The mock, knowing the app routes its single sign-on as `keycloak`."""
    with mock_providers.start(MockSettings(app_url=app_url, routes={"sso": "keycloak"})) as running:
        yield running


def test_oidc_name_and_title_rename_it_end_to_end(variant, keycloak_mock, database) -> None:
    running = variant(OIDC_NAME="keycloak", OIDC_TITLE="Keycloak", **keycloak_mock.app_env())
    browser = Browser(running.url)
    page = browser.get("/login").text
    assert 'href="/login/keycloak"' in page and "Sign in with Keycloak" in page
    assert "/static/sso.svg" in page and "/login/sso" not in page
    assert browser.get("/login/sso").status_code == 404
    location = browser.get("/login/keycloak").headers["Location"]
    assert query(location)["redirect_uri"] == f"{running.url}/auth/keycloak/callback"
    final = browser.login("keycloak")
    assert final.status_code == 200 and 'id="welcome"' in final.text
    assert browser.identity()["provider"] == "keycloak"
    stored = rows(database, "SELECT provider, subject FROM identities")
    assert [tuple(row) for row in stored] == [("keycloak", ADA)]
    assert rows(database, "SELECT provider FROM provider_tokens")[0][0] == "keycloak"
    fresh = profile(browser, "keycloak")
    assert fresh.status_code == 200 and fresh.json()["provider"] == "keycloak"
    account = browser.get("/account").text
    assert "Keycloak" in account and 'data-provider="keycloak"' in account


@pytest.mark.parametrize("name", ["Key Cloak", "keycloak_", "-sso", "a" * 33])
def test_oidc_name_must_be_a_short_lowercase_name(app_env, name) -> None:
    with pytest.raises(SettingsError, match=f"OIDC_NAME must be .*got {name!r}"):
        load_settings({**app_env, "OIDC_NAME": name})


def test_oidc_name_may_not_be_another_enabled_providers(app_env) -> None:
    others = [name for name in PROVIDER_CLASSES if name != "sso"]
    if not others:
        pytest.skip("baked with single sign-on alone")
    taken = PROVIDER_CLASSES[others[0]]
    with pytest.raises(SettingsError, match=f"OIDC_NAME={taken.name} is {taken.title}'s name"):
        load_settings({**app_env, "OIDC_NAME": taken.name})
    # A provider that is off gives way.
    off = {f"{taken.env_prefix}_CLIENT_ID": "", f"{taken.env_prefix}_CLIENT_SECRET": ""}
    settings = load_settings({**app_env, **off, "OIDC_NAME": taken.name})
    assert settings.provider_classes[taken.name].env_prefix == "OIDC"
    assert settings.providers[taken.name].extra["OIDC_ISSUER"] == app_env["OIDC_ISSUER"]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("OIDC_ISSUER", "", "OIDC_ISSUER is required to enable Single sign-on"),
        ("OIDC_ISSUER", "idp.example.com", "OIDC_ISSUER must be an absolute http"),
        ("OIDC_SCOPES", 'openid "email"', "OIDC_SCOPES must be scopes separated by spaces"),
        ("OIDC_END_SESSION_ON_LOGOUT", "maybe", "OIDC_END_SESSION_ON_LOGOUT must be true or"),
        ("OIDC_TITLE", "x" * 41, "OIDC_TITLE must be one line of at most 40 characters"),
    ],
)
def test_a_wrong_setting_is_named(app_env, variable, value, problem) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings({**app_env, variable: value})


# --- RP-initiated logout -------------------------------------------------------------------


def id_token_claims(mock, id_token: str) -> dict:
    keys = requests.get(metadata(mock)["jwks_uri"], timeout=10).json()
    return jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"]).claims


def test_logout_ends_the_session_at_the_provider_too(variant, mock, redis_db) -> None:
    running = variant(OIDC_END_SESSION_ON_LOGOUT="true", REVOKE_ON_LOGOUT="true")
    browser = Browser(running.url)
    assert browser.login("sso").status_code == 200
    (id_token,) = [t for t in mock.control.minted() if t.count(".") == 2]
    assert id_token.encode() not in everything_in_redis(redis_db)  # the record is encrypted
    response = post_form(browser, "/logout", browser.csrf_token())
    assert response.status_code == 303
    ending = response.headers["Location"]
    assert ending.startswith(metadata(mock)["end_session_endpoint"] + "?")
    sent = query(ending)
    assert sent["id_token_hint"] == id_token and id_token_claims(mock, id_token)["sub"] == ADA
    assert sent["client_id"] == mock.settings.client_id("sso")
    assert sent["post_logout_redirect_uri"] == f"{running.url}/"
    assert counts(mock, "sso")["revoke"] == 1  # revoked first
    back = browser.http.get(ending, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"] == f"{running.url}/"
    assert counts(mock, "sso")["end_session"] == 1
    assert browser.me().status_code == 401


@pytest.mark.parametrize("unadvertised", [False, True], ids=["off", "no-endpoint"])
def test_logout_stays_here_when_off_or_without_an_end_session_endpoint(
    variant, mock, unadvertised
) -> None:
    if unadvertised:  # before the app loads the discovery document: it keeps it
        mock.control.switch("sso", end_session="unadvertised")
    running = variant(OIDC_END_SESSION_ON_LOGOUT=str(unadvertised).lower())
    browser = Browser(running.url)
    assert browser.login("sso").status_code == 200
    response = post_form(browser, "/logout", browser.csrf_token())
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert browser.me().status_code == 401 and counts(mock, "sso")["end_session"] == 0


def test_only_a_session_signed_in_here_ends_at_the_provider(variant, mock) -> None:
    others = [name for name in PROVIDER_CLASSES if name != "sso"]
    if not others:
        pytest.skip("baked with single sign-on alone")
    running = variant(OIDC_END_SESSION_ON_LOGOUT="true")
    browser = Browser(running.url)
    assert browser.login(others[0]).status_code == 200
    response = post_form(browser, "/logout", browser.csrf_token())
    assert response.status_code == 303 and response.headers["Location"] == "/"


# --- flask auth doctor ---------------------------------------------------------------------


def test_the_doctor_checks_what_sign_in_needs_and_names_the_urls_to_register(doctor, app_url):
    report = doctor(OIDC_END_SESSION_ON_LOGOUT="true")
    assert report.returncode == 0, report.stdout
    section = "Single sign-on"
    assert report.status_of(section, "^discovery document loaded; issuer ") == "ok"
    assert report.status_of(section, "signing key") == "ok"
    assert report.status_of(section, "^ID tokens signed with RS256$") == "ok"
    assert report.status_of(section, "^client authentication: client_secret_basic$") == "ok"
    info = report.body["providers"]["sso"]
    assert info["callback_url"] == f"{app_url}/auth/sso/callback"
    assert info["other_urls"] == {"post-logout redirect URI": f"{app_url}/"}
    assert doctor().body["providers"]["sso"]["other_urls"] == {}


def test_the_doctor_warns_of_a_logout_it_cannot_end_there(doctor, mock) -> None:
    mock.control.switch("sso", end_session="unadvertised")
    report = doctor(OIDC_END_SESSION_ON_LOGOUT="true")
    assert report.status_of("Single sign-on", "no end_session_endpoint") == "warn"


def test_the_doctor_follows_oidc_name(doctor, app_url) -> None:
    report = doctor(OIDC_NAME="corp", OIDC_TITLE="Corp ID", as_json=False)
    assert f"{app_url}/auth/corp/callback" in report.stdout and "\nCorp ID\n" in report.stdout
