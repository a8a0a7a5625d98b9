"""Several providers on one account: linking, refusing to merge, and disconnecting.

Real Redis, a real database, real HTTP to the mock providers; the mock's counters show
which revoke calls the app made, the vault (the app's own `TokenVault`, read in an
application context) shows what it still keeps, and SQL on the `identities` and
`provider_tokens` tables shows whose links are stored.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from conftest import (
    FACTS,
    PROVIDERS,
    UNREVOCABLE,
    Browser,
    RunningApp,
    cases_or_skip,
    revocations,
    rows,
    unrevoked,
)
from test_tokens import grant_of

from {{ cookiecutter.package_name }}.tokens import StoredToken, TokenVault

needs_two = pytest.mark.skipif(len(PROVIDERS) < 2, reason="baked with a single provider")
# Two providers whose (default) person shows the same email (two mocks' ada, say).
SAME_EMAIL = [
    (first, second)
    for first, second in itertools.combinations(PROVIDERS, 2)
    if FACTS[first].email and FACTS[first].email == FACTS[second].email
]


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def other_than(provider: str) -> str:
    return next(p for p in PROVIDERS if p != provider)


# --- helpers ------------------------------------------------------------------------


def vault_of(running: RunningApp) -> TokenVault:
    return running.app.extensions["tokens"].vault


def load(running: RunningApp, uid: str, provider: str) -> StoredToken | None:
    """The stored token as the app's vault reads it now (it works through db.session)."""
    with running.app.app_context():
        return vault_of(running).load(uid, provider)


def me(browser: Browser) -> dict:
    response = browser.me()
    assert response.status_code == 200, response.text
    return response.json()


def providers_of(browser: Browser) -> list[str]:
    return sorted(i["provider"] for i in me(browser)["identities"])


def counts(mock, provider: str) -> dict[str, int]:
    return mock.control.requests()[provider]


def revokes(mock, provider: str) -> int:
    """Revocations of the grant the provider received from the app."""
    return revocations(mock, provider)


def connection(page: str, provider: str) -> str:
    """The account page's list item for one provider."""
    return page.split(f'data-provider="{provider}"', 1)[1].split("</li>", 1)[0]


def disconnect_form(browser: Browser, provider: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the provider's Disconnect form on the account page."""
    item = connection(browser.get("/account").text, provider)
    action = item.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    csrf = item.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return action, {"csrf_token": csrf}


def post(browser: Browser, path: str, data: dict[str, str], **headers: str):
    return browser.http.post(
        f"{browser.app_url}{path}",
        data=data,
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )


def identity_owner(engine: sa.Engine, provider: str, subject: str) -> str | None:
    """The user the identity (provider, subject) is linked to, from the database."""
    found = rows(
        engine,
        "SELECT user_id FROM identities WHERE provider = :provider AND subject = :subject",
        provider=provider,
        subject=subject,
    )
    return found[0][0] if found else None


def token_stored(engine: sa.Engine, uid: str, provider: str) -> bool:
    found = rows(
        engine,
        "SELECT 1 FROM provider_tokens WHERE user_id = :uid AND provider = :provider",
        uid=uid,
        provider=provider,
    )
    return bool(found)


# --- linking ------------------------------------------------------------------------


@needs_two
def test_second_provider_links_to_the_signed_in_user(app, browser, provider, database) -> None:
    first = other_than(provider)
    browser.login(first)
    uid = me(browser)["id"]
    assert browser.login(provider).status_code == 200
    body = me(browser)
    assert body["id"] == uid
    assert sorted(i["provider"] for i in body["identities"]) == sorted([first, provider])
    for name in (first, provider):
        assert load(app, uid, name) is not None
        subject = next(i["subject"] for i in body["identities"] if i["provider"] == name)
        assert identity_owner(database, name, subject) == uid
    # The link signs in: a new browser using only the second provider is the same user.
    later = Browser(app.url)
    later.login(provider)
    assert me(later)["id"] == uid


@needs_two
def test_identity_of_another_user_is_refused_not_merged(app, provider, database) -> None:
    owner, intruder = Browser(app.url), Browser(app.url)
    owner.login(provider)
    owner_body = me(owner)
    (identity,) = owner_body["identities"]
    intruder.login(other_than(provider))
    intruder_body = me(intruder)
    assert intruder_body["id"] != owner_body["id"]

    response = intruder.login(provider)
    assert response.status_code == 409
    assert "identity_in_use" in response.text
    assert "Traceback" not in response.text
    assert me(intruder) == intruder_body  # still signed in, nothing linked
    assert me(owner) == owner_body
    assert identity_owner(database, provider, identity["subject"]) == owner_body["id"]
    assert load(app, intruder_body["id"], provider) is None
    assert not token_stored(database, intruder_body["id"], provider)


@pytest.mark.parametrize(
    "pair", cases_or_skip(SAME_EMAIL, "no two providers here show the same email")
)
def test_same_email_at_two_providers_stays_two_users(app, pair) -> None:
    first, second = Browser(app.url), Browser(app.url)
    first.login(pair[0])
    second.login(pair[1])
    a, b = me(first), me(second)
    assert a["identities"][0]["email"] == b["identities"][0]["email"] == FACTS[pair[0]].email
    assert a["id"] != b["id"]
    assert len(a["identities"]) == len(b["identities"]) == 1


def test_second_account_of_a_connected_provider_is_refused(browser, app, mock, provider) -> None:
    browser.login(provider)
    before = me(browser)
    token = load(app, before["id"], provider)
    mock.control.switch(provider, user=FACTS[provider].other_persona)
    response = browser.login(provider)
    assert response.status_code == 409
    assert "provider_already_connected" in response.text
    assert me(browser) == before
    # The first account's token is kept, the second account's is not stored.
    assert load(app, before["id"], provider).access_token == token.access_token


# --- disconnecting ------------------------------------------------------------------


@needs_two
def test_disconnect_revokes_and_forgets_the_link(app, browser, mock, provider, database) -> None:
    browser.login(other_than(provider))
    browser.login(provider)
    body = me(browser)
    uid = body["id"]
    subject = next(i["subject"] for i in body["identities"] if i["provider"] == provider)
    assert identity_owner(database, provider, subject) == uid
    assert token_stored(database, uid, provider)
    action, data = disconnect_form(browser, provider)
    assert action == f"/account/connections/{provider}/disconnect"

    response = post(browser, action, data)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.split("?")[0].endswith("/account")
    # Where no app can revoke (no revocation endpoint), the person is told to remove it there.
    assert unrevoked(location) == ({provider} if provider in UNREVOCABLE else set())
    assert revokes(mock, provider) == (0 if provider in UNREVOCABLE else 1)
    assert load(app, uid, provider) is None
    assert not token_stored(database, uid, provider)
    assert providers_of(browser) == [other_than(provider)]
    assert identity_owner(database, provider, subject) is None
    assert token_stored(database, uid, other_than(provider))  # the other link is untouched
    page = browser.get("/account").text
    assert "not connected" in connection(page, provider)


@needs_two
@pytest.mark.parametrize(
    ("with_token", "headers"),
    [(False, {}), (True, {"Origin": "https://evil.example"}), (False, {"Origin": "x"})],
)
def test_disconnect_without_csrf_is_refused(browser, app, mock, with_token, headers) -> None:
    name = PROVIDERS[1]
    browser.login(PROVIDERS[0])
    browser.login(name)
    action, data = disconnect_form(browser, name)
    response = post(browser, action, data if with_token else {}, **headers)
    assert response.status_code == 403
    assert "csrf_failed" in response.text
    assert revokes(mock, name) == 0
    assert name in providers_of(browser)
    assert load(app, me(browser)["id"], name) is not None


@needs_two
def test_already_revoked_grant_still_disconnects(app, browser, mock, provider) -> None:
    browser.login(other_than(provider))
    browser.login(provider)
    uid = me(browser)["id"]
    # The person removed the app at the provider before disconnecting here.
    FACTS[provider].remove_app(mock.control, mock.app_env(), grant_of(app, uid, provider))
    action, data = disconnect_form(browser, provider)
    response = post(browser, action, data)
    assert response.status_code == 303, response.text
    assert provider not in providers_of(browser)
    assert load(app, uid, provider) is None


def test_last_identity_cannot_be_disconnected(browser, app, mock, provider) -> None:
    browser.login(provider)
    uid = me(browser)["id"]
    page = browser.get("/account").text
    assert "Disconnect" not in connection(page, provider)  # no button to press...
    csrf = browser.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]
    response = post(browser, f"/account/connections/{provider}/disconnect", {"csrf_token": csrf})
    assert response.status_code == 409  # ...and a forged request is refused
    assert "last_identity" in response.text
    assert revokes(mock, provider) == 0
    assert providers_of(browser) == [provider]
    assert load(app, uid, provider) is not None


@pytest.fixture()
def black_hole() -> Iterator[str]:
    """A host that accepts connections and never answers: a provider that hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@needs_two
def test_provider_down_during_revoke_keeps_the_link(variant, mock, provider, black_hole) -> None:
    running = variant()
    browser = Browser(running.url)
    browser.login(other_than(provider))
    browser.login(provider)
    uid = me(browser)["id"]
    action, data = disconnect_form(browser, provider)
    # Restarted while the provider hangs: its revoke call cannot finish in time.
    hung = {FACTS[provider].api_variable: black_hole + FACTS[provider].api_path}
    running = variant(OAUTH_HTTP_TIMEOUT="0.5", **hung)
    response = post(browser, action, data)
    assert response.status_code == 504, response.text
    assert "provider_timeout" in response.text
    assert "Traceback" not in response.text
    assert sorted(providers_of(browser)) == sorted([other_than(provider), provider])
    assert load(running, uid, provider) is not None
