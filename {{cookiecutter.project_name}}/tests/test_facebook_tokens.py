"""Facebook's tokens: long-lived, no refresh token; a short-lived one is exchanged at sign-in
(moved here from test_tokens.py, which holds what every provider shares)."""

from __future__ import annotations

import time

from test_tokens import (
    assert_reauth_required,
    assert_reconnect_shown,
    counts,
    load,
    profile,
    user_id,
)

FACEBOOK_LONG_LIVED = 5183944  # what Facebook (and the mock) give a long-lived token

# --- long-lived tokens, no refresh ------------------------------------------------------


def test_facebook_short_lived_login_token_is_exchanged(browser, app, mock) -> None:
    mock.control.switch("facebook", short_lived=True)
    browser.login("facebook")
    assert counts(mock, "facebook")["token"] == 2  # code exchange + fb_exchange_token
    token = load(app, user_id(browser), "facebook")
    issued = [s for s in mock.control.minted() if s.startswith("EAAR")]
    assert len(issued) == 2 and token.access_token == issued[-1]  # the long-lived one
    assert abs(token.expires_at - (time.time() + FACEBOOK_LONG_LIVED)) < 60
    assert profile(browser, "facebook").status_code == 200


def test_facebook_long_lived_login_token_is_not_exchanged(browser, app, mock) -> None:
    browser.login("facebook")
    assert counts(mock, "facebook")["token"] == 1
    token = load(app, user_id(browser), "facebook")
    assert abs(token.expires_at - (time.time() + FACEBOOK_LONG_LIVED)) < 60


def test_facebook_expired_token_needs_reauth_without_calling_facebook(browser, app, mock) -> None:
    mock.control.switch("facebook", expires_in=1)
    browser.login("facebook")
    token = load(app, user_id(browser), "facebook")
    time.sleep(max(0.0, token.expires_at - time.time()) + 0.05)
    before = counts(mock, "facebook")["me"]
    assert_reauth_required(profile(browser, "facebook"), "facebook")
    assert counts(mock, "facebook")["me"] == before  # known expired: no Graph call
    assert_reconnect_shown(browser, "facebook")


def test_facebook_session_expired_at_facebook_needs_reauth(browser, mock) -> None:
    browser.login("facebook")
    mock.control.switch("facebook", me="expired")
    assert_reauth_required(profile(browser, "facebook"), "facebook")
    assert_reconnect_shown(browser, "facebook")
