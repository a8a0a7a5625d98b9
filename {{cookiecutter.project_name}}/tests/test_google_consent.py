"""Google's refresh token: a dead one never comes back, and sign-in asks for a new one.

Google sends a refresh token only on a consent screen (the first one, or `prompt=consent`),
never on an ordinary sign-in; one it refused with invalid_grant stays refused; and revoking
withdraws the consent, so the next sign-in shows the consent screen again
(/work/shared/provider-quirks.md 1.2 and "Additions"). The mock does all three.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from conftest import Browser, query
from test_tokens import (
    assert_reauth_required,
    assert_reconnect_shown,
    load,
    logout,
    profile,
    user_id,
)


def sign_in(browser: Browser, next_path: str | None = None) -> requests.Response:
    """Browser.login, with every hop recorded: Google's authorization requests too."""
    params = {"next": next_path} if next_path else None
    return browser.follow(browser.get("/login/google", params=params))


def google_authorizations(browser: Browser) -> list[dict[str, str]]:
    """The query of every recorded authorization request the browser took to Google."""
    return [query(hop) for hop in browser.hops if urlsplit(hop).path.endswith("/o/oauth2/v2/auth")]


def sign_in_then_refresh_token_dies(app, mock) -> tuple[str, str]:
    """Ada signs in (first consent: a refresh token); Google later refuses it for good."""
    mock.control.switch("google", expires_in=60)  # within the refresh leeway at once
    browser = Browser(app.url)
    assert browser.login("google").status_code == 200
    uid = user_id(browser)
    dead = load(app, uid, "google").refresh_token
    assert dead
    mock.control.switch("google", refresh="invalid_grant")
    assert_reauth_required(profile(browser, "google"), "google")
    mock.control.switch("google", refresh="ok")  # new refresh tokens work; that one never will
    return uid, dead


def test_sign_in_after_a_dead_refresh_token_asks_google_for_a_new_one(app, mock) -> None:
    uid, dead = sign_in_then_refresh_token_dies(app, mock)
    # Signed out meanwhile: /login/google cannot know whose token is dead, and Google,
    # which remembers the consent, sends no refresh token with this sign-in.
    browser = Browser(app.url)
    final = sign_in(browser, next_path="/account")
    assert final.status_code == 200 and urlsplit(browser.hops[-1]).path == "/account"
    assert user_id(browser) == uid
    # Signed in, the app went straight back to Google for consent, once.
    first, second = google_authorizations(browser)
    assert first.get("prompt") is None
    assert second["prompt"] == "consent" and second["access_type"] == "offline"
    token = load(app, uid, "google")
    assert token.refresh_token not in (None, dead) and not token.reauth_required
    before = mock.control.requests()["google"]["token"]
    assert profile(browser, "google").status_code == 200  # refreshed with the new one
    assert mock.control.requests()["google"]["token"] == before + 1
    assert_reconnect_shown(browser, "google", shown=False)


def test_refusing_the_consent_keeps_the_sign_in_and_the_link_marked(app, mock) -> None:
    uid, dead = sign_in_then_refresh_token_dies(app, mock)
    browser = Browser(app.url)
    callback = browser.start_login("google")  # signed out: an ordinary sign-in
    mock.control.switch("google", deny=True)  # the person refuses the consent screen
    final = browser.finish_login(callback)
    assert final.status_code == 403 and "access_denied" in final.text
    (consent,) = google_authorizations(browser)  # the round trip for consent, once: no loop
    assert consent["prompt"] == "consent"
    assert user_id(browser) == uid  # the sign-in itself stands
    token = load(app, uid, "google")
    assert token.refresh_token == dead and token.reauth_required  # still dead, still said
    assert_reauth_required(profile(browser, "google"), "google")
    assert_reconnect_shown(browser, "google")


def test_revoking_withdraws_the_consent_so_the_next_sign_in_brings_a_refresh_token(
    variant, mock
) -> None:
    app = variant(REVOKE_ON_LOGOUT="true")
    browser = Browser(app.url)
    assert browser.login("google").status_code == 200
    uid = user_id(browser)
    revoked = load(app, uid, "google").refresh_token
    logout(browser)  # revokes the grant at Google
    assert mock.control.requests()["google"]["revoke"] == 1
    again = Browser(app.url)
    assert sign_in(again).status_code == 200
    # Google shows the consent screen by itself: one authorization, no prompt from us.
    (authorization,) = google_authorizations(again)
    assert authorization.get("prompt") is None
    callback = next(hop for hop in again.hops if "/auth/google/callback" in hop)
    assert query(callback)["prompt"] == "consent"
    token = load(app, uid, "google")
    assert token.refresh_token not in (None, revoked) and not token.reauth_required
