"""GitHub as production sends it: rate limits, grant deletion with an expired token, and a
public email that GitHub no longer calls verified.

The mock's switches reproduce GitHub's documented behaviour; each test here failed on the
adapter before it learnt that behaviour.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import requests
from conftest import Browser, query, rows
from test_account_deletion import delete_account
from test_github_tokens import github_refresh_at_mock, github_user_status
from test_login import assert_failed_cleanly
from test_tokens import (
    assert_reauth_required,
    assert_reconnect_shown,
    load,
    profile,
    save,
    user_id,
)

from {{ cookiecutter.package_name }}.providers.base import ProviderConfig
from {{ cookiecutter.package_name }}.providers.github import GitHubProvider

PAT = "pat@example.com"  # the `private` persona's verified primary, hidden from /user


def counts(mock) -> dict[str, int]:
    return mock.control.requests()["github"]


def role_grants(database) -> list[tuple[str, str, str]]:
    found = rows(database, "SELECT user_id, role, source FROM role_grants ORDER BY role, source")
    return [tuple(r) for r in found]


def roles_of(browser: Browser) -> list[str]:
    return browser.me().json()["roles"]


def expire_stored_token(running, uid: str) -> None:
    """GitHub App user tokens live 8 hours: make the stored one 8 hours old."""
    token = load(running, uid, "github")
    assert token.refresh_token, "app-mode tokens come with a refresh token"
    save(running, uid, "github", replace(token, expires_at=int(time.time()) - 60))


def limit(mock, kind: str = "secondary", status: int = 403, retry_after: bool = False, **more):
    mock.control.switch(
        "github",
        rate_limit=kind,
        rate_limit_status=status,
        rate_limit_retry_after=retry_after,
        **more,
    )


def no_limit(mock) -> None:
    mock.control.switch("github", rate_limit=None)


# --- 1. rate limits: 403 or 429, retry-after only "if present" -------------------------


@pytest.mark.parametrize(
    ("persona", "status", "retry_after"),
    [
        ("private", 403, False),  # a bare 403: only the message says "rate limit"
        ("private", 429, False),  # no retry-after: one minute, not the hourly window's reset
        ("private", 403, True),
        ("ada", 403, False),  # a public email is confirmed there too
    ],
)
def test_rate_limited_email_list_fails_the_sign_in_cleanly(
    browser, mock, redis_db, database, persona, status, retry_after
) -> None:
    """Once a private email was silently dropped (the 403 taken for "no permission")."""
    mock.control.switch("github", user=persona)
    limit(mock, status=status, retry_after=retry_after, rate_limit_on="emails")
    response = browser.login("github")
    assert_failed_cleanly(response, browser, redis_db, database, 503, "provider_rate_limited")
    assert response.headers["Retry-After"] == "60"
    assert "GitHub is busy: try again in 60 s." in response.text
    assert counts(mock)["emails"] == 1
    no_limit(mock)
    assert browser.login("github").status_code == 200
    assert browser.identity()["email_verified"] is True


def test_rate_limited_sign_in_keeps_the_admin_role_and_their_sessions(
    variant, mock, database
) -> None:
    """A private-email admin signing in while /user/emails is rate-limited: once signed in
    without an email, which took `admin` away and so signed them out everywhere."""
    running = variant(ADMIN_EMAILS=PAT)
    mock.control.switch("github", user="private")
    first = Browser(running.url)
    assert first.login("github").status_code == 200
    assert "admin" in roles_of(first)
    grants = role_grants(database)

    limit(mock, rate_limit_on="emails")
    second = Browser(running.url)
    response = second.login("github")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "60"
    assert second.me().status_code == 401
    assert role_grants(database) == grants
    assert first.get("/admin").status_code == 200  # still signed in, still admin
    assert first.me().json()["email"] == PAT

    no_limit(mock)
    assert second.login("github").status_code == 200
    assert "admin" in roles_of(second)


@pytest.mark.parametrize(
    ("switches", "retry_range"),
    [
        ({"kind": "secondary", "status": 403, "rate_limit_on": "user"}, (60, 60)),
        ({"kind": "secondary", "status": 403, "rate_limit_on": "emails"}, (60, 60)),
        ({"kind": "secondary", "status": 429, "rate_limit_on": "user"}, (60, 60)),
        ({"kind": "secondary", "status": 403, "retry_after": True}, (60, 60)),
        ({"kind": "primary", "status": 429}, (3500, 3600)),  # until x-ratelimit-reset
    ],
)
def test_rate_limited_profile_call_is_a_503_and_never_a_reconnect(
    browser, app, mock, switches, retry_range
) -> None:
    mock.control.switch("github", user="private")
    browser.login("github")
    limit(mock, **switches)
    response = profile(browser, "github")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "provider_rate_limited"
    low, high = retry_range
    assert low <= int(response.headers["Retry-After"]) <= high
    assert not load(app, user_id(browser), "github").reauth_required
    assert_reconnect_shown(browser, "github", shown=False)
    no_limit(mock)
    assert profile(browser, "github").status_code == 200


@pytest.mark.parametrize(("status", "retry_after"), [(403, False), (429, False), (429, True)])
def test_rate_limited_token_endpoint_fails_the_sign_in_cleanly(
    browser, mock, redis_db, database, status, retry_after
) -> None:
    """OAuth access token requests have a secondary limit of their own."""
    limit(mock, status=status, retry_after=retry_after, rate_limit_on="token")
    response = browser.login("github")
    assert_failed_cleanly(response, browser, redis_db, database, 503, "provider_rate_limited")
    assert response.headers["Retry-After"] == "60"
    assert counts(mock)["token"] == 1 and counts(mock)["user"] == 0


def test_rate_limited_refresh_keeps_the_link_and_the_refresh_token(browser, app, mock) -> None:
    mock.control.switch("github", app_mode=True)
    browser.login("github")
    uid = user_id(browser)
    expire_stored_token(app, uid)
    before = load(app, uid, "github")
    limit(mock, status=429, rate_limit_on="token")
    response = profile(browser, "github")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "provider_rate_limited"
    assert response.headers["Retry-After"] == "60"
    after = load(app, uid, "github")
    assert after.refresh_token == before.refresh_token and not after.reauth_required
    no_limit(mock)
    assert profile(browser, "github").status_code == 200
    assert load(app, uid, "github").refresh_token != before.refresh_token  # rotated


# --- 4. the grant needs a live token: refresh first, or say where to remove the app ----


def test_mock_refuses_to_delete_a_grant_with_an_expired_token(mock) -> None:
    """GitHub wants "a valid OAuth access_token"; an expired one is 404 and the grant stays."""
    env = mock.app_env()
    mock.control.switch("github", app_mode=True, expires_in=0)
    callback = f"{mock.settings.app_url}/auth/github/callback"
    authorize = requests.get(
        f"{env['GITHUB_URL']}/login/oauth/authorize",
        params={"client_id": env["GITHUB_CLIENT_ID"], "redirect_uri": callback, "state": "s"},
        allow_redirects=False,
        timeout=10,
    )
    token = requests.post(
        f"{env['GITHUB_URL']}/login/oauth/access_token",
        data={
            "client_id": env["GITHUB_CLIENT_ID"],
            "client_secret": env["GITHUB_CLIENT_SECRET"],
            "code": query(authorize.headers["Location"])["code"],
        },
        headers={"Accept": "application/json"},
        timeout=10,
    ).json()
    time.sleep(0.01)
    response = requests.delete(
        f"{env['GITHUB_API_URL']}/applications/{env['GITHUB_CLIENT_ID']}/grant",
        auth=(env["GITHUB_CLIENT_ID"], env["GITHUB_CLIENT_SECRET"]),
        json={"access_token": token["access_token"]},
        timeout=10,
    )
    assert response.status_code == 404
    assert "access_token" in github_refresh_at_mock(mock, token["refresh_token"])  # kept


def test_expired_app_token_is_refreshed_then_the_grant_deleted(app, browser, mock) -> None:
    mock.control.switch("github", app_mode=True)
    browser.login("github")
    uid = user_id(browser)
    expire_stored_token(app, uid)
    old = load(app, uid, "github")
    response = delete_account(browser)
    assert response.status_code == 303, response.text
    assert "unrevoked" not in query(response.headers["Location"])
    assert counts(mock)["token"] == 2  # the sign-in, then the refresh before the deletion
    assert counts(mock)["revoke_grant"] == 1
    # The grant is gone: the refresh token it rotated into died with it.
    assert github_refresh_at_mock(mock, old.refresh_token)["error"] == "bad_refresh_token"
    (fresh,) = [t for t in mock.control.minted() if t.startswith("ghu_")][1:]
    assert github_user_status(mock, fresh) == 401


def assert_told_where_to_remove_the_app(browser: Browser, location: str, mock) -> str:
    """The page after `location` names GitHub's authorized-apps page; returns its URL."""
    assert query(location)["unrevoked"] == "github"
    page = browser.get(location)
    assert page.status_code == 200
    notice = page.text.split('class="notice warn unrevoked" data-provider="github"', 1)[1]
    url = f"{mock.url}/github/settings/applications"
    assert f'href="{url}"' in notice.split("</p>", 1)[0]
    return url


def test_unrefreshable_token_on_deletion_says_where_to_remove_the_app(app, browser, mock) -> None:
    """The refresh token died too (six months unused): nothing can delete the grant."""
    mock.control.switch("github", app_mode=True, refresh_token_expires_in=0)
    browser.login("github")
    expire_stored_token(app, user_id(browser))
    response = delete_account(browser)
    assert response.status_code == 303, response.text
    url = assert_told_where_to_remove_the_app(browser, response.headers["Location"], mock)
    assert counts(mock)["token"] == 2  # the refresh was tried...
    assert counts(mock)["revoke_grant"] == 0  # ...and a dead token proves nothing
    # The grant is still listed there, and the person can remove it.
    listed = requests.get(url, timeout=10)
    assert listed.status_code == 200 and 'data-user="ada"' in listed.text
    revoked = requests.post(url, data={"user": "ada"}, timeout=10)
    assert revoked.status_code == 200 and 'id="no-grants"' in revoked.text


def test_unrefreshable_token_on_sign_out_says_where_to_remove_the_app(variant, mock) -> None:
    running = variant(REVOKE_ON_LOGOUT="true")
    mock.control.switch("github", app_mode=True, refresh_token_expires_in=0)
    browser = Browser(running.url)
    browser.login("github")
    expire_stored_token(running, user_id(browser))
    response = browser.http.post(
        f"{running.url}/logout",
        data={"csrf_token": browser.csrf_token()},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303
    assert browser.me().status_code == 401
    assert_told_where_to_remove_the_app(browser, response.headers["Location"], mock)


def test_dead_link_is_shown_as_needing_reconnection(app, browser, mock) -> None:
    """Found dead by a call (here the profile API): marked, and the account page says so."""
    mock.control.switch("github", app_mode=True, refresh_token_expires_in=0)
    browser.login("github")
    uid = user_id(browser)
    expire_stored_token(app, uid)
    assert_reconnect_shown(browser, "github", shown=False)  # not known yet: no call made
    assert_reauth_required(profile(browser, "github"), "github")
    assert load(app, uid, "github").reauth_required
    assert_reconnect_shown(browser, "github")


@pytest.mark.parametrize(
    ("client_id", "web", "page"),
    [
        ("Ov23liAbCdEfGhIjKlMn", "https://github.com", "https://github.com/settings/applications"),
        ("0123456789abcdef0123", "https://github.com", "https://github.com/settings/applications"),
        (
            "Iv23liAbCdEfGhIjKlMn",
            "https://github.com",
            "https://github.com/settings/apps/authorizations",
        ),
        (
            "Iv1.0123456789abcdef",
            "https://ghe.example",
            "https://ghe.example/settings/apps/authorizations",
        ),
    ],
)
def test_where_a_person_removes_the_app(client_id: str, web: str, page: str) -> None:
    """A GitHub App's authorizations are listed apart from OAuth Apps', on the app's host."""
    extra = {"GITHUB_URL": web, "GITHUB_API_URL": f"{web}/api/v3"}
    config = ProviderConfig("github", client_id, "0" * 40, extra)
    assert GitHubProvider(config, 5, None).user_apps_url == page


# --- 8. a public email is trusted only when /user/emails says it is verified -----------


def test_public_email_is_confirmed_by_the_email_list(browser, mock) -> None:
    assert browser.login("github").status_code == 200
    identity = browser.identity()
    assert identity["email"] == "ada@example.com" and identity["email_verified"] is True
    assert counts(mock)["emails"] == 1  # the one call more than /user alone


def test_bounced_public_email_is_not_trusted(variant, mock, database) -> None:
    """An address that bounced is unverified, yet may still be the public profile email."""
    running = variant(ADMIN_EMAILS="ada@example.com")
    mock.control.switch("github", public_email="bounced")
    browser = Browser(running.url)
    assert browser.login("github").status_code == 200
    identity = browser.identity()
    # The verified (private) primary instead; the bounced public one grants nothing.
    assert identity["email"] == "ada@mail.example" and identity["email_verified"] is True
    assert roles_of(browser) == ["user"]
    assert role_grants(database) == []


@pytest.mark.parametrize("emails", ["404", "403"])
def test_public_email_github_cannot_confirm_is_kept_unverified(
    variant, mock, database, emails
) -> None:
    """No user:email scope (404) or no email permission (403): nothing confirms it."""
    running = variant(ADMIN_EMAILS="ada@example.com")
    mock.control.switch("github", emails=emails)
    browser = Browser(running.url)
    assert browser.login("github").status_code == 200
    identity = browser.identity()
    assert identity["email"] == "ada@example.com" and identity["email_verified"] is False
    assert roles_of(browser) == ["user"]
    assert "unverified" in browser.get("/account").text


def test_an_unverified_secondary_address_makes_no_admin(variant, mock) -> None:
    """`private` has an unverified secondary address; only verified ones count (moved here
    from test_guards.py)."""
    running = variant(ADMIN_EMAILS="pat-old@example.org")
    mock.control.switch("github", user="private")
    browser = Browser(running.url)
    assert browser.login("github").status_code == 200
    assert roles_of(browser) == ["user"]
