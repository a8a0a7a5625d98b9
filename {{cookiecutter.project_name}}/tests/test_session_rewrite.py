"""Rewriting a user's other sessions never undoes what their own requests write meanwhile.

A role change or a profile update puts the new copy of the user into each live session:
read every record, change it, write it back. A request of that session saving at the same
moment (a sign-in in another tab storing its state and PKCE verifier) must win: the rewrite
writes only over the exact record it read, and reads again otherwise.
"""

from __future__ import annotations

import threading

import redis

from {{ cookiecutter.package_name }}.sessions import SecureRedisSessionInterface

RECORDS = 300
ROUNDS = 5


def records(interface: SecureRedisSessionInterface, db: redis.Redis) -> list[str]:
    keys = [f"{interface.key_prefix}rewrite-test-{n}" for n in range(RECORDS)]
    for key in keys:
        db.set(key, interface._seal(key, {"own": 0, "user": "old"}), ex=600)
    return keys


def test_a_rewrite_never_undoes_a_write_that_lands_while_it_runs(app, redis_db, redis_url) -> None:
    interface: SecureRedisSessionInterface = app.app.session_interface
    keys = records(interface, redis_db)
    last_own: dict[str, int] = {}
    stop = threading.Event()

    def own_requests() -> None:
        """Each session's own request saving it, over and over (a plain SET, as a save is)."""
        client = redis.Redis.from_url(redis_url)
        n = 0
        while not stop.is_set():
            n += 1
            for key in keys:
                data = interface._open(key, client.get(key)) or {}
                data["own"] = n
                client.set(key, interface._seal(key, data), keepttl=True)
                last_own[key] = n

    writer = threading.Thread(target=own_requests)
    writer.start()
    try:
        written = [interface.rewrite(keys, {"user": f"new-{n}"}) for n in range(ROUNDS)]
    finally:
        stop.set()
        writer.join()
    stored = {key: interface._open(key, redis_db.get(key)) for key in keys}
    undone = [key for key in keys if stored[key]["own"] != last_own[key]]
    assert not undone, f"{len(undone)} of {RECORDS} records lost their own request's write"
    # The rewrite did land, despite the traffic (a record read again is written then).
    assert all(count > RECORDS // 2 for count in written), written


def test_a_rewrite_skips_ended_sessions_and_counts_what_it_wrote(app, redis_db) -> None:
    interface: SecureRedisSessionInterface = app.app.session_interface
    keys = records(interface, redis_db)[:3]
    redis_db.delete(keys[1])
    ttl = redis_db.ttl(keys[0])
    assert interface.rewrite([*keys, "never-existed"], {"user": "new"}) == 2
    assert not redis_db.exists(keys[1])  # an ended session stays ended
    assert interface._open(keys[0], redis_db.get(keys[0])) == {"own": 0, "user": "new"}
    assert 0 < redis_db.ttl(keys[0]) <= ttl  # the lifetime is kept, not renewed
