"""The app against a real, certified OpenID Provider: npm's `oidc-provider` (conformance/).

Two settings of it (conformance/provider.mjs): the library's `defaults` (profile claims only
from userinfo, a refresh token only with `offline_access` and consent) and a `social` one,
like the big social sign-in providers (claims in the ID token too, a refresh token without
`offline_access`). Sign-in, claims,
refresh, the profile API, sign-out with revocation (checked in the provider's own state),
RFC 9207's `iss`, a wrong discovery issuer and an ES256-only client.

Needs Node.js 20+ and npm: without them these tests skip, saying so (they fail instead where
REQUIRE_NODE=1, as in CI). `npm install` runs once per run in conformance/.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests
from conftest import Browser, free_port, query
from playwright.sync_api import expect

from conformance import oidc_provider
from conformance.oidc_provider import Form, RunningProvider

NAME = "sso"  # the provider's route name (OIDC_NAME's default)
TITLE = "Conformance OP"  # its button's (OIDC_TITLE)
CLIENT_ID = "conformance-app"
CLIENT_SECRET = secrets.token_urlsafe(24)
SETTINGS = ("defaults", "social")


def app_settings(issuer: str, client_id: str = CLIENT_ID, **extra: str) -> dict[str, str]:
    """The app's environment for the provider at `issuer` (the mock's OIDC_* overridden)."""
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": client_id,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_NAME": NAME,
        "OIDC_TITLE": TITLE,
        "OIDC_SCOPES": "openid email profile",
        "OIDC_END_SESSION_ON_LOGOUT": "false",
        **extra,
    }


# --- the providers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def providers(app_url: str) -> Iterator[dict[str, RunningProvider]]:
    """One provider.mjs per setting, for the whole module (started side by side)."""
    oidc_provider.node_or_skip()
    oidc_provider.install()
    registered = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": f"{app_url}/auth/{NAME}/callback",
        "post_logout_redirect_uri": f"{app_url}/",
    }
    with (
        oidc_provider.start("defaults", free_port(), **registered) as defaults,
        oidc_provider.start("social", free_port(), **registered) as social,
    ):
        yield {"defaults": defaults, "social": social}


@pytest.fixture(params=SETTINGS)
def op(request: pytest.FixtureRequest, providers) -> RunningProvider:
    """Each setting's provider in turn, emptied for the test."""
    running = providers[request.param]
    running.reset()
    return running


@pytest.fixture()
def defaults(providers) -> RunningProvider:
    providers["defaults"].reset()
    return providers["defaults"]


@pytest.fixture()
def social(providers) -> RunningProvider:
    providers["social"].reset()
    return providers["social"]


@pytest.fixture()
def served(variant):
    """The app for one provider: `served(op, REVOKE_ON_LOGOUT="true")` -> a Browser of it;
    `issuer` and `client_id` configure another issuer spelling or client."""

    def serve(
        running: RunningProvider, issuer: str = "", client_id: str = CLIENT_ID, **extra: str
    ) -> Browser:
        settings = app_settings(issuer or running.issuer, client_id, **extra)
        return Browser(variant(**settings).url)

    return serve


# --- walking through the provider ---------------------------------------------------


def through_the_provider(browser: Browser, login: str = "ada") -> str:
    """From /login/<name> through the provider's own login and consent forms (driven with
    requests, as a browser would post them); return the callback URL it redirects to."""
    response = browser.get(f"/login/{NAME}")
    assert response.status_code == 302, response.text
    callback = f"{browser.app_url}/auth/{NAME}/callback"
    for _ in range(12):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            browser.hops.append(location)
            if location.startswith(callback):
                return location
            response = browser.http.get(location, allow_redirects=False, timeout=10)
            continue
        assert response.status_code == 200, response.text
        form = Form(response.text)
        assert form.action is not None, f"no form at {response.url}:\n{response.text}"
        fields = dict(form.fields)
        if fields.get("prompt") == "login":
            fields.update(login=login, password="any")
        response = browser.http.post(
            urljoin(response.url, form.action), data=fields, allow_redirects=False, timeout=10
        )
    raise AssertionError(f"no callback after {browser.hops}")


def sign_in(browser: Browser, login: str = "ada") -> dict:
    """A whole sign-in; returns /api/me."""
    final = browser.finish_login(through_the_provider(browser, login))
    assert final.status_code == 200, final.text
    me = browser.me()
    assert me.status_code == 200, me.text
    return me.json()


def authorization_request(browser: Browser) -> dict[str, str]:
    """The query of the app's authorization request (the first hop of the last sign-in)."""
    return query(next(hop for hop in browser.hops if urlsplit(hop).path == "/auth"))


def refused(browser: Browser, callback_url: str) -> requests.Response:
    """The callback's answer, asserted to be a clear refusal: no 500, no session."""
    response = browser.finish_login(callback_url)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "Traceback" not in response.text
    assert browser.me().status_code == 401
    return response


def log_out(browser: Browser) -> requests.Response:
    response = browser.post_form("/logout")
    assert response.status_code == 303, response.text
    return response


def tokens_of(running: RunningProvider, account: str) -> list[dict]:
    return [
        e
        for e in running.entries()
        if e["model"] in ("AccessToken", "RefreshToken") and e["account_id"] == account
    ]


# --- sign-in and claims -------------------------------------------------------------


def test_sign_in_with_the_librarys_defaults_reads_the_claims_from_userinfo(
    served, defaults
) -> None:
    """With conformIdTokenClaims (the default) the ID token holds `sub` alone: the email
    and name only come from userinfo."""
    me = sign_in(served(defaults))
    (identity,) = me["identities"]
    assert identity["provider"] == NAME and identity["subject"] == "ada"
    assert (me["email"], me["email_verified"], me["name"]) == (
        "ada@example.com",
        True,
        "Ada Lovelace",
    )
    assert defaults.calls(urlsplit(defaults.discovery()["userinfo_endpoint"]).path) == 1


def test_sign_in_with_the_social_setting(served, social) -> None:
    """Claims in the ID token too, `offline_access` not offered."""
    me = sign_in(served(social))
    assert (me["email"], me["email_verified"], me["name"]) == (
        "ada@example.com",
        True,
        "Ada Lovelace",
    )


def test_an_unverified_email_stays_unverified(served, op) -> None:
    me = sign_in(served(op), login="bob")
    assert (me["email"], me["email_verified"]) == ("bob@example.com", False)
    assert "admin" not in me["roles"]


def test_sign_in_with_chromium(chromium, served, defaults) -> None:
    """A real browser through the provider's own pages: the button, login, consent."""
    browser = served(defaults)
    page = chromium.new_page()
    local = ("http://127.0.0.1:", "data:", "about:")
    # The provider's pages import a web font: nothing leaves this machine.
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(local) else route.abort(),
    )
    try:
        page.goto(f"{browser.app_url}/login")
        page.get_by_role("link", name=f"Sign in with {TITLE}").click()
        page.fill("input[name=login]", "ada")
        page.fill("input[name=password]", "any")
        page.get_by_role("button", name="Sign-in").click()
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{browser.app_url}/")
        expect(page.locator("#welcome")).to_contain_text("Signed in as")
        me = page.evaluate("fetch('/api/me').then((r) => r.json())")
        assert me["email"] == "ada@example.com" and me["identities"][0]["subject"] == "ada"
    finally:
        page.close()


# --- refresh and the profile API ----------------------------------------------------


def test_offline_access_is_asked_with_consent_only_where_the_provider_lists_it(served, op) -> None:
    """OIDC Core 11: `offline_access` needs prompt=consent (else it is ignored). The
    library lists it by default; the social setting does not (nor do the big social providers)."""
    browser = served(op)
    sign_in(browser)
    asked = authorization_request(browser)
    listed = "offline_access" in op.discovery()["scopes_supported"]
    assert listed == (op.settings == "defaults")
    assert ("offline_access" in asked["scope"].split()) == listed
    if listed:
        assert "consent" in asked.get("prompt", "").split()


def test_the_app_gets_a_refresh_token_in_both_settings(served, op) -> None:
    sign_in(served(op))
    (refresh_token,) = [e for e in tokens_of(op, "ada") if e["model"] == "RefreshToken"]
    assert refresh_token["client_id"] == CLIENT_ID


def test_the_profile_api_refreshes_the_token_and_reads_userinfo(served, op) -> None:
    """The provider's access tokens live 90 s, inside the app's refresh margin: each call of
    /api/providers/<name>/profile refreshes first, then calls userinfo with the new token."""
    browser = served(op)
    sign_in(browser)
    assert op.refreshes() == 0
    userinfo = urlsplit(op.discovery()["userinfo_endpoint"]).path
    before = op.calls(userinfo)
    for calls in (1, 2):
        response = browser.get(f"/api/providers/{NAME}/profile")
        assert response.status_code == 200, response.text
        profile = response.json()["profile"]
        assert (profile["subject"], profile["email"], profile["name"]) == (
            "ada",
            "ada@example.com",
            "Ada Lovelace",
        )
        assert (op.refreshes(), op.calls(userinfo)) == (calls, before + calls)


# --- sign-out -----------------------------------------------------------------------


def test_sign_out_revokes_the_grant_at_the_provider(served, op) -> None:
    """REVOKE_ON_LOGOUT: RFC 7009 revocation of the refresh token takes the whole grant
    along; the provider's own introspection (RFC 7662) and store show it gone."""
    browser = served(op, REVOKE_ON_LOGOUT="true")
    sign_in(browser)
    issued = tokens_of(op, "ada")
    assert {e["model"] for e in issued} == {"AccessToken", "RefreshToken"}
    assert all(op.introspect(e["id"])["active"] for e in issued)
    location = log_out(browser).headers["Location"]
    assert "unrevoked" not in location, location
    assert [e["event"] for e in op.events("grant.revoked")] == ["grant.revoked"]
    assert not any(op.introspect(e["id"])["active"] for e in issued)
    assert not tokens_of(op, "ada")
    assert not op.entries("Grant")
    assert browser.me().status_code == 401


def test_rp_initiated_logout_reaches_the_providers_end_session_page(served, defaults) -> None:
    """OIDC_END_SESSION_ON_LOGOUT: after our sign-out, the provider's end_session_endpoint
    with id_token_hint (RP-Initiated Logout 1.0); its confirmation ends its session and
    returns to the app."""
    browser = served(defaults, OIDC_END_SESSION_ON_LOGOUT="true")
    sign_in(browser)
    assert defaults.entries("Session")
    location = log_out(browser).headers["Location"]
    end_session = defaults.discovery()["end_session_endpoint"]
    assert location.startswith(end_session + "?"), location
    asked = query(location)
    assert asked["id_token_hint"].count(".") == 2
    assert asked["post_logout_redirect_uri"] == f"{browser.app_url}/"
    page = browser.http.get(location, allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "op.logoutForm" in page.text, page.text
    form = Form(page.text)
    confirm = browser.http.post(
        urljoin(page.url, form.action or ""),
        data={**form.fields, "logout": "yes"},
        allow_redirects=False,
        timeout=10,
    )
    assert confirm.status_code == 303, confirm.text
    assert confirm.headers["Location"].startswith(f"{browser.app_url}/")
    assert defaults.events("end_session.success")
    assert not defaults.entries("Session")


# --- what the app refuses -----------------------------------------------------------


@pytest.mark.parametrize("iss", ["http://127.0.0.1:1", "https://attacker.example", None], ids=str)
def test_a_callback_with_a_wrong_or_missing_iss_is_refused(served, defaults, iss) -> None:
    """RFC 9207: the provider says it sends `iss` (authorization_response_iss_parameter_
    supported), so a response with another issuer, or none, is a mix-up: refused."""
    assert defaults.discovery()["authorization_response_iss_parameter_supported"] is True
    browser = served(defaults)
    callback = through_the_provider(browser)
    params = query(callback)
    assert params["iss"] == defaults.issuer
    del params["iss"]
    if iss is not None:
        params["iss"] = iss
    forged = callback.split("?")[0] + "?" + urlencode(params)
    refused(browser, forged)
    assert not defaults.events("grant.success")  # the code was never even tried


def test_a_discovery_document_of_another_issuer_is_refused(served, defaults) -> None:
    """The issuer configured as localhost, the document saying 127.0.0.1: OIDC Discovery 4.3
    wants them equal, so sign-in is refused with a page naming the document's issuer."""
    other_spelling = defaults.issuer.replace("127.0.0.1", "localhost")
    browser = served(defaults, issuer=other_spelling)
    response = browser.get(f"/login/{NAME}")  # nobody is sent to a provider it doubts
    assert 400 <= response.status_code < 600 and response.status_code != 500, response.text
    assert defaults.issuer in response.text and "Traceback" not in response.text
    assert not defaults.calls("/auth")


def test_a_client_that_gets_es256_id_tokens_is_refused_naming_the_algorithm(
    served, defaults
) -> None:
    browser = served(defaults, client_id=f"{CLIENT_ID}-es256")
    response = refused(browser, through_the_provider(browser))
    assert "ES256" in response.text
