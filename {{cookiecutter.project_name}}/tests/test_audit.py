"""The audit trail: security events as JSON log lines and rows in the database (audit_events),
kept AUDIT_RETENTION_DAYS.

The app runs in this process (the `app` fixture), so caplog sees its log records.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
import sqlalchemy as sa
from conftest import FACTS, Browser, everything_in_database
from test_api_tokens import (
    PACKAGE,
    PROVIDER,
    call,
    cli,
    new_token,
    sign_in,
)
from test_guards import VERIFIED, VERIFIED_EMAIL, needs_verified

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.audit import PRUNE_BATCH
from {{ cookiecutter.package_name }}.extensions import audit_log
from {{ cookiecutter.package_name }}.models import AuditEvent, db
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

AUDIT_LOGGER = f"{PACKAGE}.audit"
PROVIDERS = list(PROVIDER_CLASSES)
DAY = 24 * 3600
EVENTS = AuditEvent.__table__


@pytest.fixture()
def audit_lines(caplog: pytest.LogCaptureFixture):
    """The audit log lines emitted so far, parsed."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)

    def lines() -> list[dict]:
        return [
            json.loads(record.getMessage())
            for record in caplog.records
            if record.name == AUDIT_LOGGER
        ]

    return lines


def stored_events(engine: sa.Engine, user_id: str) -> list[dict]:
    """The user's events as kept in the database, newest first, in the shape of a log line."""
    query = sa.select(EVENTS).where(EVENTS.c.user_id == user_id).order_by(EVENTS.c.id.desc())
    with engine.connect() as connection:
        found = connection.execute(query).all()
    return [{"event": r.event, "at": r.at, "user_id": r.user_id, **r.data} for r in found]


def insert_events(engine: sa.Engine, user_id: str | None, event: str, ats: list[int]) -> None:
    """Write events behind the app's back, e.g. some from long ago."""
    with engine.begin() as connection:
        connection.execute(
            EVENTS.insert(),
            [
                {"user_id": user_id, "event": event, "at": at, "data": {"n": n}}
                for n, at in enumerate(ats)
            ],
        )


def event_count(engine: sa.Engine, event: str) -> int:
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(EVENTS).where(EVENTS.c.event == event)
        return connection.execute(query).scalar_one()


def named(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def disconnect(browser: Browser, provider: str):
    return browser.http.post(
        f"{browser.app_url}/account/connections/{provider}/disconnect",
        data={"csrf_token": browser.csrf_token()},
        allow_redirects=False,
        timeout=10,
    )


# --- what is recorded -----------------------------------------------------------------


def test_sign_in_is_logged_and_kept(app, mock, database, audit_lines) -> None:
    before = int(time.time())
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    (stored,) = named(stored_events(database, user_id), "login_succeeded")
    assert stored["user_id"] == user_id and stored["provider"] == PROVIDER
    assert before <= stored["at"] <= time.time()
    (logged,) = named(audit_lines(), "login_succeeded")
    assert logged == stored


def test_failed_sign_in_of_a_signed_in_user_is_recorded(app, mock, database, audit_lines) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    mock.control.switch(PROVIDER, deny=True)
    assert browser.login(PROVIDER).status_code == 403
    (failed,) = named(stored_events(database, user_id), "login_failed")
    assert failed["provider"] == PROVIDER and failed["error"] == "access_denied"
    assert named(audit_lines(), "login_failed")[0]["user_id"] == user_id


@pytest.mark.skipif(len(PROVIDERS) < 2, reason="baked with a single provider")
def test_link_and_unlink_are_recorded(app, mock, database, audit_lines) -> None:
    first, second = PROVIDERS[:2]
    browser = sign_in(app.url, mock, provider=first)
    user_id = browser.me().json()["id"]
    mock.control.switch(second, user="ada")
    assert browser.login(second).status_code == 200
    assert len(browser.me().json()["identities"]) == 2
    assert disconnect(browser, second).status_code == 303
    events = stored_events(database, user_id)
    (linked,) = named(events, "provider_linked")
    (unlinked,) = named(events, "provider_unlinked")
    assert linked["provider"] == unlinked["provider"] == second
    assert events.index(unlinked) < events.index(linked)  # newest first
    logged = [e["event"] for e in audit_lines()]
    assert logged.index("provider_linked") < logged.index("provider_unlinked")


def test_token_lifecycle_is_recorded_and_use_is_throttled(app, mock, database, audit_lines) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    token = new_token(browser, name="ci-bot", scopes=["profile:read"])
    started = int(time.time())
    for _ in range(10):
        assert call(app.url, token["token"]).status_code == 200
    listed = browser.get("/api/tokens").json()[0]
    assert started <= listed["last_used_at"] <= time.time()
    assert 1 <= listed["uses_today"] <= 10
    revoked = browser.http.delete(
        f"{app.url}/api/tokens/{token['id']}", headers={"X-CSRF-Token": browser.csrf_token()}
    )
    assert revoked.status_code == 204
    events = stored_events(database, user_id)
    (created,) = named(events, "api_token_created")
    assert created["token_id"] == token["id"] and created["token_name"] == "ci-bot"
    assert created["scopes"] == ["profile:read"]
    (used,) = named(events, "api_token_used")  # one event for ten uses within a minute
    assert used["token_id"] == token["id"]
    (gone,) = named(events, "api_token_revoked")
    assert gone["token_id"] == token["id"]
    logged = [e["event"] for e in audit_lines()]
    assert logged.count("api_token_used") == 1
    assert logged.index("api_token_created") < logged.index("api_token_revoked")


def test_role_changes_by_cli_are_recorded(app, mock, database, app_env, audit_lines) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    assert cli(app_env, "roles", "revoke", user_id, "admin").exit_code == 0
    revoked, granted = named(stored_events(database, user_id), "roles_changed")
    assert "admin" not in granted["before"] and "admin" in granted["after"]
    assert "admin" in revoked["before"] and "admin" not in revoked["after"]
    assert len(named(audit_lines(), "roles_changed")) == 2


@needs_verified
def test_role_change_at_login_is_recorded(variant, mock, database) -> None:
    app = variant(ADMIN_EMAILS=VERIFIED_EMAIL)
    user_id = sign_in(app.url, mock, provider=VERIFIED).me().json()["id"]
    app = variant(ADMIN_EMAILS=None)
    sign_in(app.url, mock, provider=VERIFIED)
    (change,) = named(stored_events(database, user_id), "roles_changed")
    assert "admin" in change["before"] and change["after"] == ["user"]


def test_events_older_than_the_retention_period_are_pruned_by_the_cli(
    app, mock, database, app_env
) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    now = int(time.time())
    old = 2 * PRUNE_BATCH + 500  # more than one batch
    insert_events(database, user_id, "old_event", [now - 400 * DAY - n for n in range(old)])
    insert_events(database, None, "old_event", [now - 366 * DAY])  # events about no user too
    recent = [now - 364 * DAY, now - 30 * DAY, now - 60]  # within the default 365 days
    insert_events(database, user_id, "recent_event", recent)

    result = cli(app_env, "audit", "prune")
    assert result.exit_code == 0, result.output
    assert f"deleted {old + 1} event(s)" in result.output
    assert event_count(database, "old_event") == 0
    kept = stored_events(database, user_id)
    assert [e["at"] for e in named(kept, "recent_event")] == recent[::-1]
    assert named(kept, "login_succeeded")  # the events of today too

    again = cli(app_env, "audit", "prune")
    assert again.exit_code == 0 and "deleted 0 event(s)" in again.output
    # AUDIT_RETENTION_DAYS sets the period.
    shorter = cli({**app_env, "AUDIT_RETENTION_DAYS": "7"}, "audit", "prune")
    assert shorter.exit_code == 0 and "deleted 2 event(s)" in shorter.output
    kept = stored_events(database, user_id)
    assert [e["at"] for e in named(kept, "recent_event")] == [now - 60]
    assert named(kept, "login_succeeded")


def test_the_app_prunes_old_events_itself_at_most_once_an_hour(database, app_env) -> None:
    now = int(time.time())
    insert_events(database, "someone", "old_event", [now - 400 * DAY, now - 366 * DAY])
    insert_events(database, "someone", "recent_event", [now - 300 * DAY])
    fresh = create_app(app_env)  # as a new worker process: its first event prunes
    with fresh.app_context():
        audit_log().record("test_event", "someone", n=1)
        db.session.commit()
    assert event_count(database, "old_event") == 0
    assert event_count(database, "recent_event") == 1
    assert event_count(database, "test_event") == 1
    insert_events(database, "someone", "old_event", [now - 400 * DAY])
    with fresh.app_context():
        audit_log().record("test_event", "someone", n=2)
        db.session.commit()
    assert event_count(database, "old_event") == 1  # not again within the hour
    assert event_count(database, "test_event") == 2


# --- where they are shown ---------------------------------------------------------------


def test_account_page_shows_recent_events(app, mock) -> None:
    browser = sign_in(app.url, mock)
    new_token(browser, name="ci-bot")
    page = browser.get("/account").text
    events = page.split('<ul class="events">')[-1].split("</ul>")[0]
    assert "login succeeded" in events
    assert "api token created" in events and "ci-bot" in events
    assert "Nothing yet" not in events


def test_admin_sees_a_users_events_others_get_403(app, mock, app_env) -> None:
    user = sign_in(app.url, mock)
    user_id = user.me().json()["id"]
    new_token(user, name="ci-bot")
    admin = sign_in(app.url, mock, persona=FACTS[PROVIDER].other_persona)
    admin_id = admin.me().json()["id"]
    assert admin_id != user_id
    assert admin.get(f"/api/admin/users/{user_id}/events").status_code == 403
    assert cli(app_env, "roles", "grant", admin_id, "admin").exit_code == 0
    response = admin.get(f"/api/admin/users/{user_id}/events")
    assert response.status_code == 200
    events = response.json()
    assert [e["event"] for e in events][:2] == ["api_token_created", "login_succeeded"]
    assert all(e["user_id"] == user_id for e in events)
    refused = user.get(f"/api/admin/users/{admin_id}/events")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert admin.get("/api/admin/users/nobody/events").status_code == 404
    anonymous = Browser(app.url).get(f"/api/admin/users/{user_id}/events")
    assert anonymous.status_code == 401


# --- never a secret -----------------------------------------------------------------


def test_no_secret_appears_in_any_event(app, mock, database, app_env, caplog) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    if len(PROVIDERS) > 1:
        assert browser.login(PROVIDERS[1]).status_code == 200  # link
        assert disconnect(browser, PROVIDERS[1]).status_code == 303  # unlink
    mock.control.switch(PROVIDER, deny=True)
    browser.login(PROVIDER)  # a failed sign-in
    mock.control.switch(PROVIDER, deny=False)
    cli(app_env, "roles", "grant", user_id, "admin")
    tokens = [new_token(browser, name=f"t{i}", scopes=["profile:read", "admin"]) for i in range(2)]
    for token in tokens:
        assert call(app.url, token["token"]).status_code == 200
        assert call(app.url, token["token"], f"/api/admin/users/{user_id}/events").ok
    browser.http.delete(
        f"{app.url}/api/tokens/{tokens[0]['id']}", headers={"X-CSRF-Token": browser.csrf_token()}
    )
    secrets_ = [*mock.control.minted(), *(t["token"] for t in tokens)]
    secrets_ += [browser.cookie(), browser.csrf_token()]
    assert len(secrets_) > 4
    with database.connect() as connection:
        found = connection.execute(sa.select(EVENTS)).all()
    assert {r.user_id for r in found} >= {user_id}
    stored = "\n".join(json.dumps([*r], default=str) for r in found)
    everything = everything_in_database(database)  # and no secret anywhere in the database
    logged = "\n".join(
        record.getMessage() + json.dumps(getattr(record, "fields", None), default=str)
        for record in caplog.records
        if record.name == AUDIT_LOGGER
    )
    for event in ("login_succeeded", "login_failed", "api_token_created", "api_token_used"):
        assert event in stored and event in logged
    for secret in secrets_:
        assert secret and secret not in stored and secret not in logged
        assert secret[-16:] not in stored and secret[-16:] not in logged
        assert secret.encode() not in everything and secret[-16:].encode() not in everything
