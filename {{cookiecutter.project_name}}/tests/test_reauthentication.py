"""Sensitive changes need a recent sign-in, with an identity that was already linked.

The sensitive changes: connecting a provider, disconnecting one, deleting the account and
creating an API token with the `admin` scope. A stolen session cookie that is older than
REAUTH_WINDOW can do none of them, and connecting a provider never renews the clock. The
person is sent to sign in again with a provider they already use, and comes back.

Real HTTP against the app, the mock providers, a real Redis and the real database. The
windows are a second or two: each test waits past them for real.
"""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import sqlalchemy as sa
from conftest import FACTS, PROVIDERS, Browser, query, revocations, rows
from test_api_tokens import create_token, sign_in

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

needs_two = pytest.mark.skipif(len(PROVIDERS) < 2, reason="baked with a single provider")


# --- helpers ------------------------------------------------------------------------


def early_in_a_second() -> None:
    """Start a timed step early in a second, so whole-second windows are not eaten by rounding."""
    while time.time() % 1 > 0.2:
        time.sleep(0.02)


def thief_of(browser: Browser) -> Browser:
    """Another client holding a copy of the browser's session cookie."""
    thief = Browser(browser.app_url)
    thief.http.cookies.update(browser.http.cookies)
    assert thief.me().json()["id"] == browser.me().json()["id"]
    return thief


def post(browser: Browser, path: str, csrf: str, **kwargs) -> requests.Response:
    return browser.http.post(
        f"{browser.app_url}{path}",
        data={"csrf_token": csrf},
        allow_redirects=False,
        timeout=10,
        **kwargs,
    )


def retry_url(page: requests.Response) -> str:
    """The "Try again" link of an error page."""
    return html.unescape(re.search(r'id="retry" href="([^"]+)"', page.text).group(1))


def sign_in_then(url: str, provider: str) -> str:
    """Where a "sign in again" URL leads back to; it must sign in at `provider`."""
    assert urlsplit(url).path == f"/login/{provider}", url
    return query(url)["next"]


def providers_of(browser: Browser) -> list[str]:
    return sorted(i["provider"] for i in browser.me().json()["identities"])


def refused(response: requests.Response) -> None:
    assert response.status_code == 403, response.text[:500]
    if response.headers["Content-Type"].startswith("application/json"):
        assert response.json()["error"] == "reauthentication_required"
    else:
        assert 'data-error="reauthentication_required"' in response.text


def tokens_of(database: sa.Engine, user_id: str) -> list[str]:
    found = rows(database, "SELECT scopes FROM api_tokens WHERE user_id = :u", u=user_id)
    return [r[0] for r in found]


def provider_tokens(database: sa.Engine, user_id: str) -> list[str]:
    found = rows(database, "SELECT provider FROM provider_tokens WHERE user_id = :u", u=user_id)
    return sorted(r[0] for r in found)


# --- a stolen cookie --------------------------------------------------------------------


@needs_two
def test_a_stale_stolen_cookie_cannot_connect_the_thiefs_account(variant, mock) -> None:
    home, other = PROVIDERS[:2]
    running = variant(REAUTH_WINDOW="1")
    early_in_a_second()
    victim = sign_in(running.url, mock, provider=home)
    me = victim.me().json()
    thief = thief_of(victim)
    time.sleep(1.5)
    authorize = FACTS[other].authorize_endpoint
    authorize_before = mock.control.requests()[other][authorize]
    mock.control.switch(other, user=FACTS[other].other_persona)

    start = thief.get(f"/login/{other}", params={"next": "/account"})
    refused(start)  # before anyone is sent to the provider
    assert "Sign in again" in start.text
    assert sign_in_then(retry_url(start), home) == f"/login/{other}?next=%2Faccount"
    as_json = thief.get(f"/login/{other}", headers={"Accept": "application/json"})
    refused(as_json)
    assert sign_in_then(as_json.json()["retry_url"], home) == f"/login/{other}"
    assert mock.control.requests()[other][authorize] == authorize_before
    assert thief.me().json() == me


@needs_two
def test_a_stale_stolen_cookie_cannot_disconnect_delete_or_mint_admin(
    variant, mock, database
) -> None:
    home, other = PROVIDERS[:2]
    running = variant(REAUTH_WINDOW="1")
    early_in_a_second()
    victim = sign_in(running.url, mock, provider=home)
    assert victim.login(other).status_code == 200  # linked at once: a fresh sign-in
    me = victim.me().json()
    thief = thief_of(victim)
    csrf = thief.csrf_token()
    time.sleep(1.5)

    # Disconnect the owner's provider (to lock them out): refused, nothing revoked.
    def revokes(provider: str) -> int:
        return revocations(mock, provider)

    before = {p: revokes(p) for p in (home, other)}
    for provider in (home, other):
        refused(post(thief, f"/account/connections/{provider}/disconnect", csrf))
        assert revokes(provider) == before[provider]

    # Delete the account, or mint a lasting admin token: refused.
    refused(post(thief, "/account/delete", csrf))
    refused(post(thief, "/account/delete", csrf, headers={"Accept": "application/json"}))
    admin = create_token(thief, scopes=["profile:read", "admin"], csrf=csrf)
    refused(admin)
    assert sign_in_then(admin.json()["retry_url"], home) == "/account"
    assert "Sign in again" in admin.json()["hint"]
    assert tokens_of(database, me["id"]) == []
    # A token without the admin scope is no sensitive change.
    assert create_token(thief, scopes=["profile:read"], csrf=csrf).status_code == 201

    assert thief.me().json()["identities"] == me["identities"]
    assert provider_tokens(database, me["id"]) == sorted([home, other])
    # The account page says why, and offers to sign in again.
    page = thief.get("/account").text
    assert 'id="reauth-note"' in page
    assert f'href="/login/{home}?next=/account"' in page


@needs_two
def test_signing_in_at_a_linked_provider_as_someone_else_renews_nothing(variant, mock) -> None:
    home = PROVIDERS[0]
    running = variant(REAUTH_WINDOW="1")
    early_in_a_second()
    victim = sign_in(running.url, mock, provider=home)
    me = victim.me().json()
    thief = thief_of(victim)
    time.sleep(1.5)
    # The thief "signs in again" at the owner's provider, with their own account there.
    mock.control.switch(home, user=FACTS[home].other_persona)
    answer = thief.login(home, next_path="/account#delete")
    assert answer.status_code == 409
    assert "provider_already_connected" in answer.text
    refused(post(thief, "/account/delete", thief.csrf_token()))
    assert thief.me().json() == me


# --- linking never renews the clock -----------------------------------------------------


@needs_two
def test_connecting_a_provider_does_not_renew_the_recent_sign_in(variant, mock, database) -> None:
    home, other = PROVIDERS[:2]
    window = 3
    running = variant(REAUTH_WINDOW=str(window))
    browser = sign_in(running.url, mock, provider=home)
    signed_in_by = time.time()  # the session's login_at is no later
    user_id = browser.me().json()["id"]
    time.sleep(1.0)
    # Allowed: within the window (the link has about 2 s to arrive, a busy machine included).
    assert browser.login(other).status_code == 200
    assert providers_of(browser) == sorted([home, other])
    # Past the sign-in's window, but within the link's had it renewed the clock: that would
    # have been at least 1 s after the sign-in, and the refusals below take well under that.
    time.sleep(max(0.0, signed_in_by + window + 0.1 - time.time()))
    csrf = browser.csrf_token()
    refused(post(browser, "/account/delete", csrf))
    refused(post(browser, f"/account/connections/{other}/disconnect", csrf))
    refused(create_token(browser, scopes=["admin"], csrf=csrf))
    assert providers_of(browser) == sorted([home, other])
    assert rows(database, "SELECT id FROM users WHERE id = :u", u=user_id)


@needs_two
def test_the_link_callback_checks_again_and_try_again_finishes_the_link(
    variant, mock, database
) -> None:
    home, other = PROVIDERS[:2]
    running = variant(REAUTH_WINDOW="1")
    early_in_a_second()
    browser = sign_in(running.url, mock, provider=home)
    old_cookie = thief_of(browser)
    user_id = browser.me().json()["id"]
    callback = browser.start_login(other, next_path="/account")  # recent: sent to the provider
    time.sleep(1.5)  # the person lingers at the provider

    page = browser.finish_login(callback)
    refused(page)
    assert providers_of(browser) == [home]
    assert provider_tokens(database, user_id) == [home]  # the new provider's token is not kept
    retry = retry_url(page)
    assert retry.startswith(f"/login/{home}?next=")  # sign in again with the linked one...

    # ...which comes back to connecting the new provider, then to the account page.
    final = browser.finish_login(urljoin(running.url, retry))
    assert final.status_code == 200, final.text[:500]
    assert final.url.endswith("/account")
    assert providers_of(browser) == sorted([home, other])
    query = "SELECT event FROM audit_events WHERE user_id = :u"
    events = [r[0] for r in rows(database, query, u=user_id)]
    assert events.count("reauthenticated") == 1 and events.count("provider_linked") == 1
    # Signing in again started a new session: the old cookie (a thief's copy) is dead.
    assert old_cookie.me().status_code == 401


@needs_two
def test_after_signing_in_again_the_person_can_disconnect(variant, mock) -> None:
    home, other = PROVIDERS[:2]
    running = variant(REAUTH_WINDOW="1")
    early_in_a_second()
    browser = sign_in(running.url, mock, provider=home)
    assert browser.login(other).status_code == 200
    time.sleep(1.5)
    page = post(browser, f"/account/connections/{other}/disconnect", browser.csrf_token())
    refused(page)
    early_in_a_second()
    back = browser.finish_login(urljoin(running.url, browser.start_login(home, "/account")))
    assert back.url.endswith("/account")
    csrf = back.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = post(browser, f"/account/connections/{other}/disconnect", csrf)
    assert done.status_code == 303, done.text[:500]
    assert providers_of(browser) == [home]
    # A token with the admin scope, too, within the renewed window.
    assert create_token(browser, scopes=["admin"], csrf=csrf).status_code == 201


def test_a_fresh_sign_in_may_mint_an_admin_token(app, mock) -> None:
    browser = sign_in(app.url, mock)
    assert create_token(browser, scopes=["profile:read", "admin"]).status_code == 201


# --- the account page's security events ---------------------------------------------------


@needs_two
def test_links_and_unlinks_show_in_the_account_pages_events(app, mock) -> None:
    home, other = PROVIDERS[:2]
    browser = sign_in(app.url, mock, provider=home)
    assert browser.login(other).status_code == 200
    assert browser.login(home).status_code == 200  # signing in again: no link
    done = post(browser, f"/account/connections/{other}/disconnect", browser.csrf_token())
    assert done.status_code == 303
    page = browser.get("/account").text
    events = page.split('<ul class="events">', 1)[1].split("</ul>", 1)[0]
    items = [" ".join(i.split()) for i in re.findall(r"<li>(.*?)</li>", events, re.S)]
    title = PROVIDER_CLASSES[other].title
    assert any(f"provider unlinked ({title})" in i for i in items), items
    assert any(f"provider linked ({title})" in i for i in items), items
    home_title = PROVIDER_CLASSES[home].title
    assert not any(f"provider linked ({home_title})" in i for i in items), items
    assert any(f"reauthenticated ({home_title})" in i for i in items), items
