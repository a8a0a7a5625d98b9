"""GitHub's tokens: OAuth App tokens that never expire, and GitHub App user tokens that do,
with refresh tokens that rotate (moved here from test_tokens.py, which holds what every
provider shares)."""

from __future__ import annotations

import time
from typing import Any

import requests
from test_tokens import counts, execute, load, profile, save, user_id

from mock_providers.facts import refresh_at

# --- refresh-token rotation and token lifetimes -----------------------------------------


def github_refresh_at_mock(mock, refresh_token: str) -> dict[str, Any]:
    env = mock.app_env()
    url = f"{env['GITHUB_URL']}/login/oauth/access_token"
    return refresh_at(url, env, "GITHUB", refresh_token).json()


def github_user_status(mock, access_token: str) -> int:
    env = mock.app_env()
    return requests.get(
        f"{env['GITHUB_API_URL']}/user",
        headers={"Authorization": f"Bearer {access_token}", "User-Agent": "tests"},
        timeout=10,
    ).status_code


def test_github_app_refresh_rotates_and_the_vault_keeps_the_new_token(browser, app, mock) -> None:
    mock.control.switch("github", app_mode=True, expires_in=60)  # due for refresh at once
    browser.login("github")
    uid = user_id(browser)
    seen = {load(app, uid, "github").refresh_token}
    for round_ in range(1, 4):
        old = load(app, uid, "github")
        assert profile(browser, "github").status_code == 200
        assert counts(mock, "github")["token"] == 1 + round_
        new = load(app, uid, "github")
        assert new.refresh_token.startswith("ghr_") and new.refresh_token not in seen
        assert new.access_token.startswith("ghu_") and new.access_token != old.access_token
        seen.add(new.refresh_token)
        # The old pair is dead at GitHub; the stored one works.
        assert github_user_status(mock, old.access_token) == 401
        assert github_user_status(mock, new.access_token) == 200
    assert github_refresh_at_mock(mock, old.refresh_token)["error"] == "bad_refresh_token"


def test_github_oauth_app_token_never_expires(browser, app, mock, database) -> None:
    browser.login("github")
    uid = user_id(browser)
    token = load(app, uid, "github")
    assert token.access_token.startswith("gho_")
    assert token.expires_at is None and token.refresh_token is None
    # A year old: age alone must not matter (the vault stamps updated_at on every save).
    aged = execute(
        database,
        "UPDATE provider_tokens SET updated_at = updated_at - :year"
        " WHERE user_id = :uid AND provider = 'github'",
        year=365 * 86400,
        uid=uid,
    )
    assert aged == 1
    assert load(app, uid, "github").updated_at < time.time() - 364 * 86400
    for _ in range(3):
        assert profile(browser, "github").status_code == 200
    assert counts(mock, "github")["token"] == 1
    assert load(app, uid, "github").access_token == token.access_token


def test_github_app_user_token_works_then_refreshes_when_expired(browser, app, mock) -> None:
    mock.control.switch("github", app_mode=True)  # 8-hour tokens
    browser.login("github")
    uid = user_id(browser)
    token = load(app, uid, "github")
    assert token.access_token.startswith("ghu_") and token.refresh_token.startswith("ghr_")
    assert abs(token.expires_at - (time.time() + 28800)) < 30
    assert profile(browser, "github").status_code == 200
    assert counts(mock, "github")["token"] == 1
    token.expires_at = int(time.time()) - 10  # eight hours later
    save(app, uid, "github", token)
    assert profile(browser, "github").status_code == 200
    assert counts(mock, "github")["token"] == 2
    assert load(app, uid, "github").expires_at > time.time() + 28000
