"""An ended session stays ended: no request in flight when it ends may write it back.

A request loads its session at the start and saves it at the end. If the session is ended in
between (by "end this session", "sign out everywhere else", the loss of a security role, the
deletion of the account, or a logout), that save must not bring the record back. The unit
tests hold one request open at the exact moment of each ending; the race test sends real
concurrent requests to a real gunicorn, as the attack did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
from conftest import Browser, RunningApp, gunicorn_command, rows, run_server
from flask import session
from test_sessions import (
    PROVIDER,
    cli,
    current_id,
    end_via_api,
    list_sessions,
    post_form,
    sign_in,
    sign_in_with_key,
)

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.session_index import SessionIndex

# Not what these tests are about; rate limits would otherwise refuse the attack's requests.
NO_LIMITS = {"RATELIMIT_ENABLED": "false"}


def cookie_header(browser) -> str:
    """The browser's session cookie, to send from other threads (without a cookie jar)."""
    (cookie,) = [c for c in browser.http.cookies if c.name.endswith("session")]
    return f"{cookie.name}={cookie.value}"


def assert_dead(db: redis.Redis, key: bytes, stolen) -> None:
    """The session's record is gone from Redis and its cookie signs nobody in."""
    assert not db.exists(key), "the ended session was written back to Redis"
    assert stolen.me().status_code == 401, "the ended session still works"


# --- one request held open while the session ends ----------------------------------------


@dataclass
class HeldRequest:
    """GET /test/hold changes the session (as GET /login/<provider> does) and waits."""

    entered: threading.Event
    release: threading.Event
    url: str

    def send(self, cookie: str) -> threading.Thread:
        """Start the request; return once it has loaded and changed the session."""
        self.entered.clear()
        self.release.clear()
        self.result: list[requests.Response] = []

        def go() -> None:
            self.result.append(requests.get(self.url, headers={"Cookie": cookie}, timeout=20))

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        assert self.entered.wait(10), "the held request never started"
        return thread

    def finish(self, thread: threading.Thread) -> requests.Response:
        self.release.set()
        thread.join(20)
        (response,) = self.result
        return response


@pytest.fixture()
def held(released_port, app_url, app_env, redis_db, database, mock) -> Iterator[HeldRequest]:
    """The app on the registered-callback port, plus one route that can be held open."""
    flask_app = create_app({**app_env, **NO_LIMITS})
    entered, release = threading.Event(), threading.Event()

    @flask_app.get("/test/hold")
    def hold() -> str:
        session["held_at"] = time.time()  # a change: the session is saved at the end
        entered.set()
        release.wait(15)
        return "held"

    running = RunningApp(app_url, released_port, flask_app).start()
    try:
        yield HeldRequest(entered, release, f"{app_url}/test/hold")
    finally:
        release.set()
        running.stop()


def end_one_on_the_account_page(victim, stolen, app_env) -> None:
    response = post_form(victim, f"/account/sessions/{current_id(stolen)}/end", victim.csrf_token())
    assert response.status_code == 303


def end_one_through_the_api(victim, stolen, app_env) -> None:
    assert end_via_api(victim, current_id(stolen)).status_code == 204


def sign_out_everywhere_else(victim, stolen, app_env) -> None:
    response = post_form(victim, "/account/sessions/sign-out-others", victim.csrf_token())
    assert response.status_code == 303


def remove_a_security_role(victim, stolen, app_env) -> None:
    revoked = cli(app_env, "roles", "revoke", victim.me().json()["id"], "admin")
    assert revoked.exit_code == 0, revoked.output
    assert "signed out" in revoked.output


def delete_the_account(victim, stolen, app_env) -> None:
    response = post_form(victim, "/account/delete", victim.csrf_token())
    assert response.status_code == 303, response.text


def log_out(victim, stolen, app_env) -> None:
    """The stolen session's own logout (another tab of the same browser)."""
    response = post_form(stolen, "/logout", stolen.csrf_token())
    assert response.status_code == 303


ENDINGS = [
    end_one_on_the_account_page,
    end_one_through_the_api,
    sign_out_everywhere_else,
    remove_a_security_role,
    delete_the_account,
    log_out,
]


@pytest.mark.parametrize("ending", ENDINGS, ids=[e.__name__ for e in ENDINGS])
def test_a_request_in_flight_does_not_bring_back_an_ended_session(
    held, ending, app_url, app_env, mock, redis_db
) -> None:
    victim = sign_in(app_url, mock)
    stolen, key = sign_in_with_key(redis_db, app_url, mock)
    if ending is remove_a_security_role:
        user_id = victim.me().json()["id"]
        granted = cli(app_env, "roles", "grant", user_id, "admin")
        assert granted.exit_code == 0, granted.output

    request = held.send(cookie_header(stolen))
    ending(victim, stolen, app_env)
    assert not redis_db.exists(key)
    assert held.finish(request).text == "held"  # it ran to the end and saved its session

    assert_dead(redis_db, key, stolen)
    if ending not in (delete_the_account, remove_a_security_role, log_out):
        assert [s["id"] for s in list_sessions(victim)] == [current_id(victim)]


def test_a_request_in_flight_still_saves_a_live_session(held, app_url, mock, redis_db) -> None:
    """The other side: with nothing ended, the held request's change is kept, with a fresh TTL."""
    browser, key = sign_in_with_key(redis_db, app_url, mock)
    before = redis_db.get(key)
    redis_db.expire(key, 1000)
    request = held.send(cookie_header(browser))
    assert held.finish(request).text == "held"
    assert redis_db.get(key) != before  # written again...
    assert redis_db.ttl(key) > 1000  # ...with the full lifetime
    assert browser.me().status_code == 200


def keep_touching(index: SessionIndex, stop: threading.Event) -> None:
    while not stop.is_set():
        index.touch("someone", "0123456789abcdef")


def test_a_last_seen_update_does_not_list_an_ended_session_again(redis_db) -> None:
    """Ending every session races with a last-seen update of one of them (real threads)."""
    index = SessionIndex(redis_db, "race:", 3600)
    came_back = 0
    for _ in range(200):
        index.add("someone", "0123456789abcdef", "race:session:gone")
        stop = threading.Event()
        toucher = threading.Thread(target=keep_touching, args=(index, stop), daemon=True)
        toucher.start()
        time.sleep(0.001)
        index.end_all("someone")
        stop.set()
        toucher.join(10)
        came_back += redis_db.exists("race:user_sessions:someone")
        redis_db.delete("race:user_sessions:someone")
    assert came_back == 0, f"the ended session was listed again in {came_back} of 200 trials"


# --- the race, as the attack ran it --------------------------------------------------------

ATTACKERS = 8  # threads sending the stolen cookie
TRIALS = 6
AFTER = 0.3  # seconds the attack goes on after the victim's sign-out answered


def attack(url: str, cookie: str, stop: threading.Event, ready: threading.Barrier, log) -> None:
    """GET /login/<provider> with the stolen cookie (each writes the session) until told."""
    http = requests.Session()
    first = True
    while not stop.is_set():
        began = time.monotonic()
        http.get(url, headers={"Cookie": cookie}, allow_redirects=False, timeout=10)
        log.append((began, time.monotonic()))
        http.cookies.clear()  # keep sending the stolen cookie, not the replacement
        if first:
            first = False
            ready.wait(10)


def test_sign_out_everywhere_else_wins_against_concurrent_writes(
    released_port, project_env, app_env, app_url, mock, redis_db, tmp_path
) -> None:
    command = gunicorn_command(released_port, "--workers", "2", "--threads", "4")
    env = {**project_env, **app_env, **NO_LIMITS}
    survived, in_flight = [], []
    with run_server(command, env, tmp_path, app_url):
        victim = sign_in(app_url, mock)
        for _ in range(TRIALS):
            stolen, key = sign_in_with_key(redis_db, app_url, mock)
            stop, ready, log = threading.Event(), threading.Barrier(ATTACKERS + 1), []
            threads = [
                threading.Thread(
                    target=attack,
                    args=(f"{app_url}/login/{PROVIDER}", cookie_header(stolen), stop, ready, log),
                    daemon=True,
                )
                for _ in range(ATTACKERS)
            ]
            for thread in threads:
                thread.start()
            ready.wait(10)  # every attacker has been served once: the attack is running
            began = time.monotonic()
            sign_out_everywhere_else(victim, stolen, app_env)
            ended = time.monotonic()
            time.sleep(AFTER)
            stop.set()
            for thread in threads:
                thread.join(10)
            # Requests that loaded the session before it ended and saved after it began.
            in_flight.append(sum(1 for start, end in log if start < ended and end > began))
            survived.append(bool(redis_db.exists(key)) or stolen.me().status_code == 200)
            assert [s["id"] for s in list_sessions(victim)] == [current_id(victim)]
    assert all(in_flight), f"requests in flight at the sign-out, per trial: {in_flight}"
    assert not any(survived), f"{sum(survived)} of {TRIALS} ended sessions came back"


# --- a link that finishes after its session ended ------------------------------------------


def test_a_link_finishing_after_its_session_ended_links_nothing(app, mock, database) -> None:
    """The thief starts connecting their own account with a copied cookie; the owner signs
    out everywhere else while the thief is at the provider: the link must not land."""
    others = [p for p in PROVIDER_CLASSES if p != PROVIDER]
    if not others:
        pytest.skip("needs two providers")
    victim = sign_in(app.url, mock)
    elsewhere = sign_in(app.url, mock)  # the owner's other device
    thief = Browser(app.url)
    thief.http.cookies.update(victim.http.cookies)
    callback = thief.start_login(others[0])  # a fresh sign-in: allowed to start
    ended = post_form(elsewhere, "/account/sessions/sign-out-others", elsewhere.csrf_token())
    assert ended.status_code == 303
    refused = thief.finish_login(callback)
    # The attempt's state died with the session (400); a callback already in flight when
    # the session ended is refused before its commit (401 session_ended).
    assert refused.status_code in (400, 401), refused.text
    assert rows(database, "SELECT provider FROM identities") == [(PROVIDER,)]
    assert victim.me().status_code == 401 and elsewhere.me().status_code == 200
