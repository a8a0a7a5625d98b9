"""Microsoft against its mock: the tenant in every URL, an issuer per tenant checked against
each token's `tid`, an email never verified, refresh tokens replaced at every use, AADSTS
codes, and no way for the app to revoke a grant.
"""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from conftest import FACTS, Browser, query
from test_login import assert_failed_cleanly, assert_stored_login
from test_tokens import counts, grant_of, load, profile, user_id

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES, ProviderConfig
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

from mock_providers.facts import oidc_metadata, refresh_at
from mock_providers.microsoft import CONSUMERS, CONTOSO, PERSONAS
from mock_providers.openid_provider import pairwise_subject

LOGIN = "https://login.microsoftonline.com"
FABRIKAM = "0c9a1f52-7d3e-4b6a-8e21-5f4d3c2b1a09"  # a tenant the mock has no one in
ADAPTER = PROVIDER_CLASSES["microsoft"]


def discovery(mock, tenant: str = "common") -> requests.Response:
    url = f"{mock.url}/microsoft/{tenant}/v2.0/.well-known/openid-configuration"
    return requests.get(url, timeout=10)


def sub_of(mock, persona: str) -> str:
    return pairwise_subject(mock.app_env()["MICROSOFT_CLIENT_ID"], PERSONAS[persona]["oid"])


def bearer_get(url: str, token: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def token_works(mock, token: str) -> bool:
    return FACTS["microsoft"].token_works(mock.app_env(), token)


def failed_login(browser, mock, redis_db, database, status: int, code: str, **switches):
    mock.control.switch("microsoft", **switches)
    response = browser.login("microsoft")
    assert_failed_cleanly(response, browser, redis_db, database, status, code)
    return response


# --- the identity -------------------------------------------------------------------------


def test_the_identity_is_the_pairwise_sub_and_the_email_is_never_verified(
    browser, app, mock, database
) -> None:
    assert browser.login("microsoft").status_code == 200
    ada = sub_of(mock, "ada")
    assert browser.identity() == {
        "provider": "microsoft",
        "subject": ada,  # not the oid, which every app of the tenant sees
        "username": None,
        "email": "ada@example.com",
        "email_verified": False,
        "name": "Ada Lovelace",
        "avatar_url": None,
    }
    assert_stored_login(database, "microsoft", ada)
    # userinfo sends the same, plus a Graph photo URL that needs a token: no avatar.
    token = load(app, user_id(browser), "microsoft").access_token
    userinfo = bearer_get(oidc_metadata(discovery(mock).url)["userinfo_endpoint"], token).json()
    assert userinfo["sub"] == ada and userinfo["picture"].startswith("https://graph.microsoft")
    assert profile(browser, "microsoft").json()["profile"] == browser.identity()


@pytest.mark.parametrize("claimed", [True, "true"])
def test_an_email_verified_claim_is_not_believed(variant, mock, claimed) -> None:
    """Microsoft sends none; an `email_verified` in its token would not make it so."""
    running = variant(ADMIN_EMAILS="ada@example.com")
    browser = Browser(running.url)
    mock.control.switch("microsoft", email_verified=claimed)
    assert browser.login("microsoft").status_code == 200
    me = browser.me().json()
    assert me["email"] == "ada@example.com" and me["email_verified"] is False
    assert me["roles"] == ["user"]  # an unverified email makes no admin


def test_the_authorization_request(browser, mock, app) -> None:
    location = browser.get("/login/microsoft").headers["Location"]
    assert location.startswith(f"{mock.url}/microsoft/common/oauth2/v2.0/authorize?")
    params = query(location)
    assert params["scope"] == "openid profile email offline_access"
    assert params["redirect_uri"] == f"{app.url}/auth/microsoft/callback"
    assert params["code_challenge_method"] == "S256" and len(params["nonce"]) >= 16
    assert "prompt" not in params  # offline_access alone brings refresh tokens


# --- the issuer: the discovery document's, filled with the token's own tid ---------------


@pytest.mark.parametrize("persona", ["ada", "grace"])
def test_common_takes_work_and_personal_accounts(browser, mock, persona) -> None:
    mock.control.switch("microsoft", user=persona)
    assert browser.login("microsoft").status_code == 200
    assert browser.identity()["subject"] == sub_of(mock, persona)


@pytest.mark.parametrize(
    "switches",
    [
        pytest.param({"iss": f"{LOGIN}/{FABRIKAM}/v2.0"}, id="another-tenants-iss"),
        pytest.param({"iss": LOGIN + "/{tenantid}/v2.0"}, id="the-template-itself"),
        pytest.param({"iss": f"https://login.evil.example/{CONTOSO}/v2.0"}, id="other-host"),
        pytest.param({"tid": "contoso"}, id="tid-not-an-id"),
    ],
)
def test_an_issuer_that_is_not_the_tokens_tenants_is_refused(
    browser, mock, redis_db, database, switches
) -> None:
    response = failed_login(browser, mock, redis_db, database, 400, "invalid_id_token", **switches)
    assert "<code>invalid_claim</code>" in response.text and "iss" in response.text


def test_organizations_refuses_personal_accounts(variant, mock, redis_db, database) -> None:
    running = variant(MICROSOFT_TENANT="organizations")
    assert Browser(running.url).login("microsoft").status_code == 200  # ada, at work
    # Microsoft itself stops a personal account on its page...
    mock.control.switch("microsoft", user="grace")
    at_microsoft = Browser(running.url).get("/login/microsoft").headers["Location"]
    page = requests.get(at_microsoft, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "AADSTS50020" in page.text
    # ...and the app refuses a token from the personal accounts' tenant all the same.
    mock.control.switch("microsoft", user="ada", tid=CONSUMERS)
    response = Browser(running.url).login("microsoft")
    assert response.status_code == 403 and "personal_account" in response.text
    assert "work or school" in response.text


def test_consumers_takes_only_personal_accounts(variant, mock, redis_db, database) -> None:
    running = variant(MICROSOFT_TENANT="consumers")
    mock.control.switch("microsoft", user="grace")
    assert Browser(running.url).login("microsoft").status_code == 200
    for iss in ("issuer", f"{LOGIN}/{CONSUMERS}/v2.0"):  # the tid's, or consumers' own
        mock.control.switch("microsoft", tid=CONTOSO, iss=iss)  # a work tenant's token
        response = Browser(running.url).login("microsoft")
        assert response.status_code == 400 and "invalid_id_token" in response.text


@pytest.mark.parametrize("tenant", [CONTOSO, "contoso.onmicrosoft.com"])
def test_one_tenant_takes_only_its_own_tokens(variant, mock, tenant) -> None:
    running = variant(MICROSOFT_TENANT=tenant)
    browser = Browser(running.url)
    location = browser.get("/login/microsoft").headers["Location"]
    assert location.startswith(f"{mock.url}/microsoft/{tenant}/oauth2/v2.0/authorize?")
    assert browser.login("microsoft").status_code == 200
    mock.control.switch("microsoft", tid=FABRIKAM)
    response = Browser(running.url).login("microsoft")
    assert response.status_code == 400 and "invalid_id_token" in response.text


def test_a_tenant_that_is_no_tenant_is_a_configuration_error(app_env) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**app_env, "APP_ENV": "production", "MICROSOFT_TENANT": "common/../x"})
    assert "MICROSOFT_TENANT" in str(caught.value)


# --- tokens -------------------------------------------------------------------------------


def test_every_refresh_brings_a_new_refresh_token_and_the_old_one_still_works(
    browser, app, mock
) -> None:
    mock.control.switch("microsoft", expires_in=60)  # due for refresh at once
    assert browser.login("microsoft").status_code == 200
    uid = user_id(browser)
    first = load(app, uid, "microsoft")
    assert first.refresh_token  # offline_access: no consent screen needed
    assert profile(browser, "microsoft").status_code == 200
    second = load(app, uid, "microsoft")
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert counts(mock, "microsoft")["token"] == 2
    # Microsoft does not revoke the token used: the app keeps only the newest anyway.
    env = mock.app_env()
    token_url = oidc_metadata(discovery(mock).url)["token_endpoint"]
    assert refresh_at(token_url, env, "MICROSOFT", first.refresh_token).status_code == 200


def test_a_refresh_token_revoked_by_signing_out_everywhere_asks_to_reconnect(
    browser, app, mock
) -> None:
    mock.control.switch("microsoft", expires_in=60)
    assert browser.login("microsoft").status_code == 200
    uid = user_id(browser)
    grant = grant_of(app, uid, "microsoft")
    url = f"{mock.app_env()['MICROSOFT_LOGIN_URL']}/graph/v1.0/me/revokeSignInSessions"
    killed = requests.post(
        url, headers={"Authorization": f"Bearer {grant.access_token}"}, timeout=10
    )
    assert killed.status_code == 200
    response = profile(browser, "microsoft")
    assert response.status_code == 401 and response.json()["error"] == "reauth_required"
    assert load(app, uid, "microsoft").reauth_required
    # The consent stays: signing in again brings a new refresh token, no consent screen.
    mock.control.switch("microsoft", expires_in=3600)
    assert browser.login("microsoft").status_code == 200
    assert not load(app, uid, "microsoft").reauth_required
    assert profile(browser, "microsoft").status_code == 200


def test_the_app_cannot_revoke_and_sends_the_person_to_remove_the_app(variant, mock) -> None:
    running = variant(REVOKE_ON_LOGOUT="true")
    browser = Browser(running.url)
    assert browser.login("microsoft").status_code == 200
    token = load(running, user_id(browser), "microsoft").access_token
    page = browser.get("/")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    out = browser.http.post(f"{running.url}/logout", data={"csrf_token": csrf}, timeout=10)
    assert out.status_code == 200 and "unrevoked=microsoft" in out.url
    assert 'href="https://myapps.microsoft.com"' in out.text
    assert token_works(mock, token)  # nothing was revoked: nothing could be
    assert counts(mock, "microsoft")["apps"] == 0


@pytest.mark.parametrize(
    ("tenant", "page"),
    [
        ("common", "https://myapps.microsoft.com"),
        ("organizations", "https://myapps.microsoft.com"),
        (CONTOSO, "https://myapps.microsoft.com"),
        ("consumers", "https://account.live.com/consent/Manage"),
        (CONSUMERS, "https://account.live.com/consent/Manage"),
    ],
)
def test_where_a_person_removes_the_app_depends_on_the_tenant(tenant, page) -> None:
    config = ProviderConfig("microsoft", "id", "secret", {"MICROSOFT_TENANT": tenant})
    assert ADAPTER(config, 5, None).user_apps_url == page


# --- errors ---------------------------------------------------------------------------------


def test_a_wrong_secret_names_the_variable(variant, mock, redis_db, database) -> None:
    browser = Browser(variant(MICROSOFT_CLIENT_SECRET="wrong").url)
    response = failed_login(browser, mock, redis_db, database, 400, "token_error")
    assert "invalid_client" in response.text and "AADSTS7000215" in response.text
    assert "MICROSOFT_CLIENT_SECRET" in response.text


@pytest.mark.parametrize("code", ["AADSTS50011", "AADSTS500112"])
def test_aadsts_redirect_uri_errors_get_the_redirect_hint(code) -> None:
    config = ProviderConfig("microsoft", "id", "secret", {"MICROSOFT_TENANT": "common"})
    adapter = ADAPTER(config, 5, None)
    error = adapter.token_refused(OAuthError("invalid_grant", f"{code}: The reply address ..."))
    assert error.hint == adapter.redirect_hint()
    assert error.details["provider_error"] == "redirect_uri_mismatch"
    other = adapter.token_refused(OAuthError("invalid_grant", "AADSTS54005: already redeemed"))
    assert other.hint != adapter.redirect_hint()


def test_a_redirect_uri_mismatch_is_a_page_at_microsoft(browser, mock) -> None:
    location = browser.get("/login/microsoft").headers["Location"]
    params = query(location)
    params["redirect_uri"] = "http://127.0.0.1:1/auth/microsoft/callback"
    page = requests.get(location.split("?")[0], params=params, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "Location" not in page.headers
    assert "AADSTS50011" in page.text


# --- `flask auth doctor` ----------------------------------------------------------------------


def test_the_doctor_knows_each_tenants_issuer(doctor) -> None:
    tenants = ["organizations", "consumers", CONTOSO, "contoso.onmicrosoft.com", "nowhere.example"]
    reports = doctor.many(*({"MICROSOFT_TENANT": tenant} for tenant in tenants))
    for tenant, report in zip(tenants[:-1], reports, strict=False):
        assert report.returncode == 0, (tenant, report.checks("Microsoft"))
        assert "issuer https://login.microsoftonline.com/" in report.messages("Microsoft", "ok")
    unknown = reports[-1]
    assert unknown.returncode == 1
    assert "did not load (HTTP 400)" in unknown.messages("Microsoft", "fail")


@pytest.mark.parametrize(
    ("tenant", "issuer", "expected"),
    [
        ("common", LOGIN + "/{tenantid}/v2.0", True),
        ("organizations", LOGIN + "/{tenantid}/v2.0", True),
        ("common", f"{LOGIN}/{CONTOSO}/v2.0", False),
        ("consumers", f"{LOGIN}/{CONSUMERS}/v2.0", True),
        ("consumers", LOGIN + "/{tenantid}/v2.0", False),
        (CONTOSO, f"{LOGIN}/{CONTOSO}/v2.0", True),
        (CONTOSO, f"{LOGIN}/{FABRIKAM}/v2.0", False),
        ("contoso.onmicrosoft.com", f"{LOGIN}/{CONTOSO}/v2.0", True),
        ("contoso.onmicrosoft.com", LOGIN + "/{tenantid}/v2.0", False),
        ("common", "https://accounts.evil.example", False),
        ("common", None, False),
    ],
)
def test_which_discovery_issuers_the_doctor_accepts(tenant, issuer, expected) -> None:
    config = ProviderConfig("microsoft", "id", "secret", {"MICROSOFT_TENANT": tenant})
    assert ADAPTER.issuer_expected(config, issuer) is expected


# --- the mock itself ------------------------------------------------------------------------


def test_the_mock_serves_a_discovery_document_per_tenant(mock) -> None:
    common = discovery(mock).json()
    assert common["issuer"] == LOGIN + "/{tenantid}/v2.0"
    assert common["token_endpoint"] == f"{mock.url}/microsoft/common/oauth2/v2.0/token"
    assert "revocation_endpoint" not in common  # nothing revokes a grant
    assert "offline_access" in common["scopes_supported"]
    assert common["subject_types_supported"] == ["pairwise"]
    assert discovery(mock, "consumers").json()["issuer"] == f"{LOGIN}/{CONSUMERS}/v2.0"
    assert discovery(mock, CONTOSO).json()["issuer"] == f"{LOGIN}/{CONTOSO}/v2.0"
    unknown = discovery(mock, "nowhere.example")
    assert unknown.status_code == 400 and "AADSTS90002" in unknown.json()["error_description"]


def test_the_mock_throttles_userinfo_as_graph_does(browser, app, mock) -> None:
    assert browser.login("microsoft").status_code == 200
    mock.control.switch("microsoft", userinfo="quota")
    url = oidc_metadata(discovery(mock).url)["userinfo_endpoint"]
    answer = bearer_get(url, load(app, user_id(browser), "microsoft").access_token)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "5"
    assert answer.json()["error"]["code"] == "TooManyRequests"


def test_the_mock_consent_page_and_its_errors(mock) -> None:
    mock.control.switch("microsoft", interactive=True)
    app_url = mock.settings.app_url
    params = dict(
        client_id=mock.app_env()["MICROSOFT_CLIENT_ID"],
        redirect_uri=f"{app_url}/auth/microsoft/callback",
        response_type="code",
        scope="openid profile email",  # no offline_access: no refresh token
        state="st4te",
    )
    url = f"{mock.url}/microsoft/common/oauth2/v2.0/authorize"
    page = requests.get(url, params=params, timeout=10)
    assert page.status_code == 200 and 'value="grace"' in page.text
    approved = requests.post(
        url,
        params=params,
        data=dict(decision="approve", user="grace"),
        allow_redirects=False,
        timeout=10,
    )
    code = query(approved.headers["Location"])["code"]
    form = dict(params, grant_type="authorization_code", code=code)
    form["client_secret"] = mock.app_env()["MICROSOFT_CLIENT_SECRET"]
    token_url = f"{mock.url}/microsoft/common/oauth2/v2.0/token"
    tokens = requests.post(token_url, data=form, timeout=10).json()
    assert "refresh_token" not in tokens and tokens["id_token"]
    reused = requests.post(token_url, data=form, timeout=10)
    assert reused.status_code == 400 and "AADSTS54005" in reused.json()["error_description"]


def test_removing_the_app_on_the_persons_page_ends_the_grant(browser, app, mock) -> None:
    assert browser.login("microsoft").status_code == 200
    grant = grant_of(app, user_id(browser), "microsoft")
    assert token_works(mock, grant.access_token)
    removed = requests.post(
        f"{mock.app_env()['MICROSOFT_LOGIN_URL']}/consent/Manage",
        data={"sub": grant.subject},
        timeout=10,
    )
    assert removed.status_code == 204 and counts(mock, "microsoft")["apps"] == 1
    assert not token_works(mock, grant.access_token)
    response = profile(browser, "microsoft")
    assert response.status_code == 401 and response.json()["error"] == "reauth_required"


def test_the_mock_token_endpoint_can_be_slow(mock) -> None:
    mock.control.switch("microsoft", delay=0.6)
    with pytest.raises(requests.Timeout):
        url = f"{mock.url}/microsoft/common/oauth2/v2.0/token"
        requests.post(url, data={"code": "x"}, timeout=0.2)
