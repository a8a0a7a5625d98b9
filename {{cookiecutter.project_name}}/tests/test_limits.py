"""What one person holds stays bounded, and what acts on all of it costs a fixed number of
Redis round trips: sessions (MAX_SESSIONS_PER_USER), API tokens (MAX_API_TOKENS_PER_USER),
signing out everywhere else, a role change, deleting the account.

Real redis-server, real HTTP, real SQL. Round trips are counted where redis-py writes to
its socket and then waits for the answer (a pipeline is one). Hundreds of sessions are
written straight into Redis, as a sign-in writes them, in one pipeline: signing in
hundreds of times would only make the tests slow.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import redis
from conftest import RunningApp, rows
from redis.connection import AbstractConnection
from test_api_tokens import call, create_token, execute, new_token
from test_sessions import (
    CHROME_WINDOWS,
    PROVIDER,
    current_id,
    index_key,
    list_sessions,
    post_form,
    sign_in,
    sign_in_with_key,
)

from {{ cookiecutter.package_name }} import create_app

MANY = 300  # sessions of one person, far past the default cap (the seeds bypass it)


# --- helpers ------------------------------------------------------------------------


# What redis-py sends on its own: a new connection's handshake, health checks.
HOUSEKEEPING = {b"HELLO", b"CLIENT", b"AUTH", b"SELECT", b"PING", b"READONLY"}
FIRST_COMMAND = re.compile(rb"^\*\d+\r\n\$\d+\r\n([A-Za-z]+)")


class RoundTrips:
    """Requests redis-py sends in this process (the app is served by a thread of it).

    A new connection's handshake and health-check PINGs are left out: they depend on the
    connection pool's state, not on the operation measured.
    """

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        original = AbstractConnection.send_packed_command

        def send(connection, command, check_health=True):  # noqa: ANN001, ANN202
            packed = command if isinstance(command, bytes | str) else b"".join(command)
            name = FIRST_COMMAND.match(packed if isinstance(packed, bytes) else packed.encode())
            if not (name and name.group(1).upper() in HOUSEKEEPING):
                self.count += 1
            return original(connection, command, check_health)

        with patch.object(AbstractConnection, "send_packed_command", send):
            yield self


def round_trips() -> RoundTrips:
    return RoundTrips()


def seed_sessions(
    app: RunningApp, db: redis.Redis, user_id: str, count: int, seen: int | None = None
) -> list[str]:
    """`count` more live sessions of the user, as a sign-in writes them (record and index
    entry), in one pipeline. `seen`: their last-seen time, the first one's, each next one
    a minute earlier. Returns their Redis keys."""
    interface = app.app.session_interface
    index = index_key(db, user_id)
    seen = int(time.time()) - 3600 if seen is None else seen
    keys = []
    pipe = db.pipeline(transaction=False)
    for n in range(count):
        store_key = interface._get_store_id(secrets.token_urlsafe(32))  # as for a cookie's id
        public_id = secrets.token_hex(8)
        data = {"user_id": user_id, "sid_public": public_id, "user": {"id": user_id}}
        pipe.set(store_key, interface._seal(store_key, data), ex=3600)
        entry = {
            "store_key": store_key,
            "created_at": seen - 60 * n,
            "last_seen_at": seen - 60 * n,
            "ip": "192.0.2.1",
            "user_agent": "Seeded",
            "provider": PROVIDER,
        }
        pipe.hset(index, public_id, json.dumps(entry))
        keys.append(store_key)
    pipe.execute()
    return keys


def user_id_of(browser) -> str:
    return browser.me().json()["id"]


def events(database, event: str) -> list[dict]:
    found = rows(database, "SELECT data FROM audit_events WHERE event = :e ORDER BY id", e=event)
    return [r.data if isinstance(r.data, dict) else json.loads(r.data) for r in found]


def set_last_seen(db: redis.Redis, user_id: str, public_id: str, when: float) -> None:
    index = index_key(db, user_id)
    entry = json.loads(db.hget(index, public_id))
    entry["last_seen_at"] = int(when)
    db.hset(index, public_id, json.dumps(entry))


# --- sessions per user ----------------------------------------------------------------


def test_a_sign_in_beyond_the_cap_ends_the_least_recently_seen_session(
    variant, mock, redis_db, database
) -> None:
    app = variant(MAX_SESSIONS_PER_USER="3")
    first, idle, third = (sign_in(app.url, mock) for _ in range(3))
    user_id, idle_id = user_id_of(first), current_id(idle)
    set_last_seen(redis_db, user_id, idle_id, time.time() - 86400)  # unused for a day
    assert not events(database, "session_limit_reached")

    fourth = sign_in(app.url, mock, user_agent=CHROME_WINDOWS)
    assert idle.me().status_code == 401
    assert [b.me().status_code for b in (first, third, fourth)] == [200, 200, 200]
    assert idle_id not in {s["id"] for s in list_sessions(fourth)}
    assert len(list_sessions(fourth)) == 3
    # The security events say which session went, and why.
    (event,) = events(database, "session_limit_reached")
    assert event["limit"] == 3 and event["count"] == 1
    assert [e["id"] for e in event["ended"]] == [idle_id]
    assert "session limit reached" in fourth.get("/account").text


def test_a_user_far_over_the_cap_keeps_only_the_most_recently_seen(
    variant, mock, redis_db, database
) -> None:
    """Sessions from before the cap (or a lowered one) go at the next sign-in, all at once."""
    app = variant(MAX_SESSIONS_PER_USER="3")
    first = sign_in(app.url, mock)
    user_id = user_id_of(first)
    set_last_seen(redis_db, user_id, current_id(first), time.time() - 7 * 86400)
    seeded = seed_sessions(app, redis_db, user_id, 10)  # seen 1 h ago, then a minute apart
    newest = sign_in(app.url, mock)
    assert first.me().status_code == 401
    assert [bool(redis_db.exists(k)) for k in seeded] == [True, True] + [False] * 8
    assert redis_db.hlen(index_key(redis_db, user_id)) == 3
    assert newest.me().status_code == 200
    (event,) = events(database, "session_limit_reached")
    assert event["count"] == 9 and len(event["ended"]) == 9


def test_dead_entries_go_at_the_next_sign_in(variant, mock, redis_db, database) -> None:
    """Not only when the list is read: a sign-in (the write) drops them, and a dead entry
    makes room without ending anyone's live session."""
    app = variant(MAX_SESSIONS_PER_USER="2")
    keeper = sign_in(app.url, mock)
    _gone, gone_key = sign_in_with_key(redis_db, app.url, mock)
    user_id = user_id_of(keeper)
    redis_db.delete(gone_key)  # expired, or deleted by an operator
    index = index_key(redis_db, user_id)
    assert redis_db.hlen(index) == 2
    newcomer = sign_in(app.url, mock)
    assert redis_db.hlen(index) == 2
    assert keeper.me().status_code == 200 and newcomer.me().status_code == 200
    assert not events(database, "session_limit_reached")


def test_the_caps_must_be_whole_numbers_of_at_least_one(app_env) -> None:
    for name in ("MAX_SESSIONS_PER_USER", "MAX_API_TOKENS_PER_USER"):
        for value in ("0", "-3", "many"):
            try:
                create_app({**app_env, name: value})
            except Exception as error:  # noqa: BLE001 - the message is what is checked
                assert name in str(error), error
            else:
                raise AssertionError(f"{name}={value} was accepted")


# --- ending or refreshing every session: a fixed number of round trips -----------------


def test_signing_out_everywhere_else_costs_the_same_for_any_number_of_sessions(
    app, mock, redis_db
) -> None:
    me = sign_in(app.url, mock)
    user_id = user_id_of(me)
    cost = {}
    for others in (1, MANY):
        keys = seed_sessions(app, redis_db, user_id, others)
        csrf = me.csrf_token()
        with round_trips().counting() as trips:
            response = post_form(me, "/account/sessions/sign-out-others", csrf)
        assert response.status_code == 303
        assert redis_db.exists(*keys) == 0
        assert [s["id"] for s in list_sessions(me)] == [current_id(me)]
        cost[others] = trips.count
    assert cost[MANY] == cost[1] <= 4, cost  # the session, the index, one pipeline of ends


def test_a_role_change_refreshes_every_session_in_a_fixed_number_of_round_trips(
    app, mock, redis_db, app_env
) -> None:
    """Granting a role rewrites the copy in each session; removing a security-relevant one
    ends them all. Both cost the same for one session as for hundreds."""
    me = sign_in(app.url, mock)
    user_id = user_id_of(me)
    interface = app.app.session_interface
    cost: dict[tuple[str, int], int] = {}
    for others in (1, MANY):
        keys = seed_sessions(app, redis_db, user_id, others)
        for command in ("grant", "revoke"):
            runner = create_app(app_env).test_cli_runner()
            with round_trips().counting() as trips:
                result = runner.invoke(args=["roles", command, user_id, "admin"])
            assert result.exit_code == 0, result.output
            cost[command, others] = trips.count
            if command == "grant":  # every copy has the new role, its lifetime kept
                copies = [interface._retrieve_session_data(k) for k in keys]
                assert all(c["user"]["roles"] == ["user", "admin"] for c in copies)
                assert all(0 < redis_db.ttl(k) <= 3600 for k in keys)
        assert redis_db.exists(*keys) == 0  # admin is security-relevant: all signed out
        me = sign_in(app.url, mock)
    assert cost["grant", MANY] == cost["grant", 1] <= 3, cost  # index, reads, writes
    assert cost["revoke", MANY] == cost["revoke", 1] <= 5, cost  # and index, ends


def test_deleting_an_account_ends_its_sessions_in_a_fixed_number_of_round_trips(
    app, mock, redis_db, database
) -> None:
    cost = {}
    for others in (1, MANY):
        me = sign_in(app.url, mock)
        keys = seed_sessions(app, redis_db, user_id_of(me), others)
        csrf = me.csrf_token()
        with round_trips().counting() as trips:
            response = post_form(me, "/account/delete", csrf)
        assert response.status_code == 303, response.text
        assert redis_db.exists(*keys) == 0
        assert not rows(database, "SELECT id FROM users")
        cost[others] = trips.count
    assert cost[MANY] == cost[1] <= 6, cost


# --- API tokens per user --------------------------------------------------------------


def test_api_tokens_per_user_are_capped_with_a_clear_409(variant, mock, database) -> None:
    app = variant(MAX_API_TOKENS_PER_USER="3")
    browser = sign_in(app.url, mock)
    made = [new_token(browser, name=f"t{n}") for n in range(3)]
    refused = create_token(browser, name="one too many")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "too_many_tokens" and "3" in body["message"]
    assert "Revoke" in body["hint"]
    # Revoking one makes room; an expired one does not count (and is deleted then).
    csrf = {"X-CSRF-Token": browser.csrf_token()}
    revoked = browser.http.delete(f"{app.url}/api/tokens/{made[0]['id']}", headers=csrf)
    assert revoked.status_code == 204
    fourth = new_token(browser, name="t3")
    assert call(app.url, fourth["token"]).status_code == 200
    expire = "UPDATE api_tokens SET expires_at = 1 WHERE id = :id"
    assert execute(database, expire, id=made[1]["id"]) == 1
    new_token(browser, name="t4")
    assert create_token(browser, name="t5").status_code == 409
    assert len(rows(database, "SELECT id FROM api_tokens")) == 3  # the expired row went


def test_listing_api_tokens_costs_the_same_for_one_or_the_most(variant, mock, redis_db) -> None:
    app = variant(MAX_API_TOKENS_PER_USER="40")
    browser = sign_in(app.url, mock)
    cost = []
    for wanted in (1, 40):
        while len(browser.get("/api/tokens").json()) < wanted:
            new_token(browser, name="t")
        with round_trips().counting() as trips:
            listed = browser.get("/api/tokens")
        assert listed.status_code == 200 and len(listed.json()) == wanted
        cost.append(trips.count)
    assert cost[0] == cost[1] <= 2, cost  # the session, then one pipeline of usage counts
    assert create_token(browser).status_code == 409
