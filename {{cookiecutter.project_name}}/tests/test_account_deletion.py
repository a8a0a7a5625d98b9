"""Deleting an account, by its owner (POST /account/delete) or an operator (`flask users delete`).

Every grant is revoked at the provider (the mock counts the calls), and afterwards nothing in
the real Redis names the user (no key holds their id or a provider subject, no value their
email), and the database holds no record of theirs and no value naming them: only the event
recording the deletion keeps their (random, internal) id. That audit line holds no personal
data either.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from urllib.parse import urljoin

import pytest
import redis
import requests
import sqlalchemy as sa
from conftest import (
    FACTS,
    PROVIDERS,
    UNREVOCABLE,
    Browser,
    database_dump,
    query,
    redis_keys_and_values,
    revocations,
    rows,
    unrevoked,
)

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.models import AuditEvent

PACKAGE = create_app.__module__
AUDIT_LOGGER = f"{PACKAGE}.audit"
PROVIDER = PROVIDERS[0]
# Every table with records of a user, and the column naming them.
USER_COLUMNS = {
    "users": "id",
    "identities": "user_id",
    "role_grants": "user_id",
    "provider_tokens": "user_id",
    "api_tokens": "user_id",
    "audit_events": "user_id",
}


# --- helpers ------------------------------------------------------------------------


def sign_in(app_url: str, mock, provider: str = PROVIDER) -> Browser:
    browser = Browser(app_url)
    final = browser.login(provider)
    assert final.status_code == 200, final.text
    assert browser.me().status_code == 200
    return browser


def connect_all(browser: Browser) -> dict:
    """Connect every other provider to the signed-in user; return /api/me."""
    for name in PROVIDERS[1:]:
        assert browser.login(name).status_code == 200
    me = browser.me().json()
    assert sorted(i["provider"] for i in me["identities"]) == sorted(PROVIDERS)
    return me


def new_api_token(browser: Browser) -> str:
    response = browser.http.post(
        f"{browser.app_url}/api/tokens",
        json={"name": "script", "scopes": ["profile:read"]},
        headers={"X-CSRF-Token": browser.csrf_token()},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def with_token(app_url: str, token: str) -> requests.Response:
    return requests.get(
        f"{app_url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def delete_account(browser: Browser, csrf: str | None = "page", **kwargs) -> requests.Response:
    data = {"csrf_token": browser.csrf_token() if csrf == "page" else csrf} if csrf else {}
    return browser.http.post(
        f"{browser.app_url}/account/delete",
        data=data,
        allow_redirects=False,
        timeout=10,
        **kwargs,
    )


def revoke_counts(mock) -> dict[str, int]:
    return {name: revocations(mock, name) for name in PROVIDERS}


def assert_deleted(response: requests.Response, connected: list[str]) -> None:
    """Deleted: home says so, naming the connected providers the app could not revoke at."""
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith("/?") and query(location)["deleted"] == "1"
    assert unrevoked(location) == set(UNREVOCABLE) & set(connected)


def assert_nothing_left(db: redis.Redis, database: sa.Engine, me: dict) -> None:
    """Redis: no key names the user or their provider subjects; no value holds their email.

    The database: no record of theirs; their id only in the event recording the deletion;
    no subject, email or name of theirs anywhere.
    """
    keys, values = redis_keys_and_values(db)
    subjects = [i["subject"] for i in me["identities"]]
    left = [k for k in keys if any(n.encode() in k for n in [me["id"], *subjects])]
    assert not left, f"keys left behind: {left}"
    emails = {me["email"], *(i.get("email") for i in me["identities"])} - {None}
    for email in emails:
        assert email.encode() not in values, f"{email} is still stored"
    assert me["id"].encode() not in values

    for table, column in USER_COLUMNS.items():
        query = f"SELECT * FROM {table} WHERE {column} = :id"  # noqa: S608 - our own names
        assert not rows(database, query, id=me["id"]), f"{table} rows left behind"
    for identity in me["identities"]:
        query = "SELECT id FROM identities WHERE provider = :provider AND subject = :subject"
        assert not rows(database, query, provider=identity["provider"], subject=identity["subject"])
    stored = database_dump(database)
    for value in filter(None, [*subjects, *emails, me["name"]]):
        assert value.encode() not in stored, f"{value} is still in the database"
    events = AuditEvent.__table__
    with database.connect() as connection:
        deletions = connection.execute(
            sa.select(events.c.data).where(events.c.event == "account_deleted")
        ).scalars()
        recorded = [d for d in deletions if d.get("deleted_user_id") == me["id"]]
    assert len(recorded) == 1
    assert stored.count(me["id"].encode()) == 1, "the id is kept beyond the deletion event"


@pytest.fixture()
def audit_lines(caplog: pytest.LogCaptureFixture):
    """The raw audit log lines emitted so far (the app runs in this process)."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    return lambda: [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]


def assert_one_anonymous_deletion(lines: list[str], me: dict, by: str) -> None:
    deleted = [json.loads(line) for line in lines if json.loads(line)["event"] == "account_deleted"]
    assert len(deleted) == 1, lines
    (event,) = deleted
    assert event["by"] == by
    raw = next(line for line in lines if '"account_deleted"' in line)
    # The random user id is kept; "ada" could be in its hex digits by chance.
    rest = raw.replace(event["deleted_user_id"], "<id>")
    personal = [me["email"], me["name"]]
    for identity in me["identities"]:
        personal += [identity[k] for k in ("subject", "email", "name", "username")]
    for value in filter(None, personal):
        assert value not in rest, f"{value!r} in the audit line"


# --- the page and its guards ------------------------------------------------------------


def test_the_account_page_offers_deletion_behind_csrf(app, mock) -> None:
    browser = sign_in(app.url, mock)
    page = browser.get("/account").text
    assert 'action="/account/delete"' in page and "Delete my account" in page
    for csrf in (None, "not-the-token"):
        response = delete_account(browser, csrf=csrf)
        assert response.status_code == 403
        assert 'data-error="csrf_failed"' in response.text
    assert browser.me().status_code == 200
    signed_out = delete_account(Browser(app.url), csrf="anything")
    assert signed_out.status_code == 302  # to /login
    assert signed_out.headers["Location"].startswith("/login?")


def test_deletion_needs_a_recent_sign_in(variant, mock, redis_db, database) -> None:
    running = variant(REAUTH_WINDOW="1")
    browser = sign_in(running.url, mock)
    me = browser.me().json()
    time.sleep(1.5)
    assert 'action="/account/delete"' not in browser.get("/account").text

    refused = delete_account(browser)
    assert refused.status_code == 403
    assert 'data-error="reauthentication_required"' in refused.text
    retry = html.unescape(re.search(r'id="retry" href="([^"]+)"', refused.text).group(1))
    assert retry.startswith(f"/login/{PROVIDER}?")
    as_json = delete_account(browser, headers={"Accept": "application/json"})
    assert as_json.status_code == 403
    assert as_json.json()["error"] == "reauthentication_required"
    assert browser.me().status_code == 200

    # "Try again": sign in again while signed in (started early in a second, so the
    # one-second window is not eaten by rounding), then delete at once.
    while time.time() % 1 > 0.3:
        time.sleep(0.02)
    to_provider = browser.get(retry)
    assert to_provider.status_code == 302
    at_provider = browser.http.get(
        to_provider.headers["Location"], allow_redirects=False, timeout=10
    )
    callback = urljoin(at_provider.url, at_provider.headers["Location"])
    page = browser.finish_login(callback)
    assert page.url.endswith("/account")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    deleted = delete_account(browser, csrf=csrf)
    assert_deleted(deleted, [PROVIDER])
    assert browser.me().status_code == 401
    assert_nothing_left(redis_db, database, me)


# --- what deletion removes --------------------------------------------------------------


def test_deleting_an_account_revokes_and_removes_everything(
    app, mock, redis_db, database, audit_lines
) -> None:
    browser = sign_in(app.url, mock)
    me = connect_all(browser)
    other_device = sign_in(app.url, mock)
    token = new_api_token(browser)
    assert with_token(app.url, token).status_code == 200
    before = revoke_counts(mock)

    response = delete_account(browser)
    assert_deleted(response, PROVIDERS)

    after = revoke_counts(mock)
    revoked = {name: int(name not in UNREVOCABLE) for name in PROVIDERS}
    assert {name: after[name] - before[name] for name in PROVIDERS} == revoked
    assert browser.me().status_code == 401
    assert other_device.me().status_code == 401
    assert with_token(app.url, token).status_code == 401
    assert_nothing_left(redis_db, database, me)
    assert_one_anonymous_deletion(audit_lines(), me, by="user")

    # Signing in again makes a brand-new account.
    again = sign_in(app.url, mock)
    assert again.me().json()["id"] != me["id"]


def test_a_provider_that_is_down_does_not_block_deletion(variant, mock, redis_db, database) -> None:
    running = variant()
    browser = sign_in(running.url, mock)
    me = connect_all(browser)
    other_device = sign_in(running.url, mock)
    # Every provider API now points at a closed port: revoking fails, deleting goes on.
    closed = "http://127.0.0.1:1"
    running = variant(**{FACTS[p].api_variable: closed + FACTS[p].api_path for p in PROVIDERS})
    before = revoke_counts(mock)
    response = delete_account(browser)
    assert response.status_code == 303, response.text
    assert revoke_counts(mock) == before
    assert browser.me().status_code == 401
    assert other_device.me().status_code == 401
    assert_nothing_left(redis_db, database, me)


# --- the operator's command -------------------------------------------------------------


def test_operator_deletes_a_user_from_the_command_line(
    app, mock, redis_db, database, app_env, audit_lines
) -> None:
    browser = sign_in(app.url, mock)
    me = connect_all(browser)
    other_device = sign_in(app.url, mock)
    token = new_api_token(browser)
    runner = create_app(app_env).test_cli_runner()
    # The CLI takes a provider-verified email (some providers verify none) or the user id.
    who = me["email"] if me["email_verified"] else me["id"]

    kept = runner.invoke(args=["users", "delete", who], input="n\n")
    assert kept.exit_code != 0
    assert browser.me().status_code == 200

    unknown = runner.invoke(args=["users", "delete", "nobody@example.org", "--yes"])
    assert unknown.exit_code != 0
    assert "nobody@example.org" in unknown.output
    assert browser.me().status_code == 200

    before = revoke_counts(mock)
    result = runner.invoke(args=["users", "delete", who, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"deleted {me['id']}" in result.output
    after = revoke_counts(mock)
    revoked = {name: int(name not in UNREVOCABLE) for name in PROVIDERS}
    assert {name: after[name] - before[name] for name in PROVIDERS} == revoked
    assert browser.me().status_code == 401
    assert other_device.me().status_code == 401
    assert with_token(app.url, token).status_code == 401
    assert_nothing_left(redis_db, database, me)
    assert_one_anonymous_deletion(audit_lines(), me, by="cli")


def test_operator_deletes_by_user_id(app, mock, redis_db, database, app_env) -> None:
    browser = sign_in(app.url, mock)
    me = browser.me().json()
    runner = create_app(app_env).test_cli_runner()
    result = runner.invoke(args=["users", "delete", me["id"], "--yes"])
    assert result.exit_code == 0, result.output
    assert browser.me().status_code == 401
    assert_nothing_left(redis_db, database, me)
