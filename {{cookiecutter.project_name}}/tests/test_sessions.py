"""Each user's live sessions: listed, kept consistent with Redis, ended one by one or all at once.

Real redis-server, real HTTP to the app and the mock providers; the multi-worker case runs a
real gunicorn with two workers, the multi-instance case two app instances on one Redis.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from conftest import (
    FACTS,
    Browser,
    RunningApp,
    cases_or_skip,
    everything_in_database,
    free_port,
    gunicorn_command,
    run_server,
)
from test_guards import VERIFIED, VERIFIED_EMAIL, needs_verified

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.session_index import device_summary

PACKAGE = create_app.__module__
PROVIDERS = list(PROVIDER_CLASSES)
PROVIDER = PROVIDERS[0]

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
SESSION_FIELDS = {"id", "current", "created_at", "last_seen_at", "ip", "user_agent", "provider"}


# --- helpers ------------------------------------------------------------------------


def session_keys(db: redis.Redis) -> set[bytes]:
    """The session records (`<prefix>session:<hash>`), not the per-user index."""
    return set(db.scan_iter(match="*session:*"))


def sign_in(
    app_url: str,
    mock,
    provider: str = PROVIDER,
    persona: str = "ada",
    user_agent: str | None = None,
) -> Browser:
    mock.control.switch(provider, user=persona)
    browser = Browser(app_url)
    if user_agent:
        browser.http.headers["User-Agent"] = user_agent
    final = browser.login(provider)
    assert final.status_code == 200, final.text
    assert browser.me().status_code == 200
    return browser


def sign_in_with_key(db: redis.Redis, app_url: str, mock, **kwargs) -> tuple[Browser, bytes]:
    """Sign in; also return the Redis key of the new session record."""
    before = session_keys(db)
    browser = sign_in(app_url, mock, **kwargs)
    (key,) = session_keys(db) - before
    return browser, key


def list_sessions(browser: Browser) -> list[dict]:
    response = browser.get("/api/sessions")
    assert response.status_code == 200, response.text
    return response.json()


def current_id(browser: Browser) -> str:
    (current,) = [s["id"] for s in list_sessions(browser) if s["current"]]
    return current


def end_via_api(browser: Browser, session_id: str, csrf: str | None = "page") -> requests.Response:
    headers = {"X-CSRF-Token": browser.csrf_token() if csrf == "page" else csrf} if csrf else {}
    return browser.http.delete(
        f"{browser.app_url}/api/sessions/{session_id}", headers=headers, timeout=10
    )


def post_form(browser: Browser, path: str, csrf: str | None) -> requests.Response:
    data = {"csrf_token": csrf} if csrf is not None else {}
    return browser.http.post(
        f"{browser.app_url}{path}", data=data, allow_redirects=False, timeout=10
    )


def cli(env: dict[str, str], *args: str):
    return create_app(env).test_cli_runner().invoke(args=list(args))


def index_key(db: redis.Redis, user_id: str) -> bytes:
    (key,) = list(db.scan_iter(match=f"*user_sessions:{user_id}"))
    return key


# --- the list -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "summary"),
    [
        (FIREFOX_LINUX, "Firefox on Linux"),
        (CHROME_WINDOWS, "Chrome on Windows"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like "
            "Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            "Samsung Internet on Android",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
            "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mobile Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox on macOS",
        ),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        ("x" * 100_000, "Unknown browser"),  # looked at only in part
    ],
)
def test_devices_are_named_as_people_know_them(user_agent: str, summary: str) -> None:
    assert device_summary(user_agent) == summary


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sessions_are_listed_with_device_ip_times_and_provider(app, mock, provider) -> None:
    started = int(time.time())
    first = sign_in(app.url, mock, provider=provider, user_agent=FIREFOX_LINUX)
    second = sign_in(app.url, mock, provider=provider, user_agent=CHROME_WINDOWS)
    listed = list_sessions(first)
    assert len(listed) == 2
    for entry in listed:
        assert set(entry) == SESSION_FIELDS
        assert entry["ip"] == "127.0.0.1"
        assert entry["provider"] == provider
        assert started <= entry["created_at"] <= entry["last_seen_at"] <= time.time()
    by_device = {s["user_agent"]: s for s in listed}
    assert set(by_device) == {"Firefox on Linux", "Chrome on Windows"}
    assert by_device["Firefox on Linux"]["current"] is True
    assert by_device["Chrome on Windows"]["current"] is False
    # The other browser sees the same two, with its own marked current.
    mirrored = {s["id"]: s["current"] for s in list_sessions(second)}
    assert mirrored == {s["id"]: not s["current"] for s in listed}

    page = first.get("/account")
    assert page.status_code == 200
    for entry in listed:
        assert f'data-session="{entry["id"]}"' in page.text
    assert "Firefox on Linux" in page.text and "Chrome on Windows" in page.text
    assert page.text.count("this session") == 1
    assert f"via {PROVIDER_CLASSES[provider].title}" in page.text
    assert 'id="sign-out-others"' in page.text


def test_the_public_id_is_not_the_cookie_and_the_cookie_is_stored_nowhere(
    app, mock, redis_db, database
) -> None:
    first = sign_in(app.url, mock)
    second = sign_in(app.url, mock)
    cookies = {first.cookie(), second.cookie()}
    assert None not in cookies
    responses = [first.get("/api/sessions").text, first.get("/account").text]
    ids = {s["id"] for s in list_sessions(first)}
    assert len(ids) == 2
    for cookie in cookies:
        assert cookie not in ids
        assert not any(cookie in text for text in responses)
    stored = b""
    for key in redis_db.scan_iter():
        stored += key + (redis_db.dump(key) or b"")
        kind = redis_db.type(key)
        if kind == b"string":
            stored += redis_db.get(key) or b""
        elif kind == b"hash":
            stored += b"".join(k + v for k, v in redis_db.hgetall(key).items())
        elif kind == b"list":
            stored += b"".join(redis_db.lrange(key, 0, -1))
    stored_in_database = everything_in_database(database)
    for cookie in cookies:
        assert cookie.encode() not in stored
        assert cookie.encode() not in stored_in_database
        assert cookie[-16:].encode() not in stored_in_database
    # Nor does the list reveal the Redis key of a session.
    for key in session_keys(redis_db):
        assert not any(key.decode() in text for text in responses)


def test_expired_or_deleted_session_records_drop_out_of_the_list(app, mock, redis_db) -> None:
    keeper = sign_in(app.url, mock)
    deleted, deleted_key = sign_in_with_key(redis_db, app.url, mock)
    expiring, expiring_key = sign_in_with_key(redis_db, app.url, mock)
    user_id = keeper.me().json()["id"]
    assert len(list_sessions(keeper)) == 3

    redis_db.delete(deleted_key)  # e.g. evicted, or ended by an operator
    redis_db.expire(expiring_key, 1)  # its lifetime runs out
    time.sleep(1.2)
    (only,) = list_sessions(keeper)
    assert only["current"] is True
    assert redis_db.hlen(index_key(redis_db, user_id)) == 1  # the index was tidied too
    assert deleted.me().status_code == 401
    assert expiring.me().status_code == 401


def test_logout_removes_the_session_from_the_list(app, mock, redis_db) -> None:
    staying = sign_in(app.url, mock)
    leaving = sign_in(app.url, mock)
    user_id = staying.me().json()["id"]
    leaving_id = current_id(leaving)
    response = post_form(leaving, "/logout", leaving.csrf_token())
    assert response.status_code == 303
    # Removed at logout, not just skipped when the list is next read.
    index = index_key(redis_db, user_id)
    assert leaving_id.encode() not in redis_db.hkeys(index)
    assert redis_db.hlen(index) == 1
    assert [s["id"] for s in list_sessions(staying)] == [current_id(staying)]
    assert leaving.me().status_code == 401


def test_session_lists_are_per_user(app, mock) -> None:
    ada = sign_in(app.url, mock)
    other = sign_in(app.url, mock, persona=FACTS[PROVIDER].other_persona)
    assert ada.me().json()["id"] != other.me().json()["id"]
    assert [s["id"] for s in list_sessions(ada)] == [current_id(ada)]
    assert [s["id"] for s in list_sessions(other)] == [current_id(other)]


# --- ending sessions from the account page ---------------------------------------------


def test_ending_one_session_from_the_account_page(app, mock, redis_db) -> None:
    me = sign_in(app.url, mock, user_agent=FIREFOX_LINUX)
    lost, lost_key = sign_in_with_key(redis_db, app.url, mock, user_agent=CHROME_WINDOWS)
    lost_id = current_id(lost)
    page = me.get("/account").text
    actions = re.findall(r'action="(/account/sessions/[^"/]+/end)"', page)
    assert actions == [f"/account/sessions/{lost_id}/end"]  # none for the current session

    assert post_form(me, actions[0], csrf=None).status_code == 403
    assert post_form(me, actions[0], csrf="not-the-token").status_code == 403
    assert lost.me().status_code == 200

    response = post_form(me, actions[0], me.csrf_token())
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/account")
    assert not redis_db.exists(lost_key)
    assert lost.me().status_code == 401
    assert me.me().status_code == 200
    assert [s["id"] for s in list_sessions(me)] == [current_id(me)]
    assert post_form(me, actions[0], me.csrf_token()).status_code == 404  # already ended


def test_ending_the_current_session_signs_out(app, mock) -> None:
    me = sign_in(app.url, mock)
    other = sign_in(app.url, mock)
    response = post_form(me, f"/account/sessions/{current_id(me)}/end", me.csrf_token())
    assert response.status_code == 303
    assert me.me().status_code == 401
    assert len(list_sessions(other)) == 1


def test_sign_out_everywhere_else(app, mock) -> None:
    me = sign_in(app.url, mock)
    others = [sign_in(app.url, mock) for _ in range(2)]
    assert post_form(me, "/account/sessions/sign-out-others", csrf=None).status_code == 403
    assert all(o.me().status_code == 200 for o in others)

    response = post_form(me, "/account/sessions/sign-out-others", me.csrf_token())
    assert response.status_code == 303
    assert [o.me().status_code for o in others] == [401, 401]
    assert me.me().status_code == 200
    assert [s["id"] for s in list_sessions(me)] == [current_id(me)]
    assert 'id="sign-out-others"' not in me.get("/account").text  # nothing else to end


# --- the API ------------------------------------------------------------------------


def test_api_delete_ends_a_session(app, mock, redis_db) -> None:
    me = sign_in(app.url, mock)
    lost = sign_in(app.url, mock)
    lost_id = current_id(lost)
    assert end_via_api(me, lost_id, csrf=None).status_code == 403
    assert end_via_api(me, lost_id, csrf="wrong").status_code == 403
    assert lost.me().status_code == 200

    response = end_via_api(me, lost_id)
    assert response.status_code == 204 and response.text == ""
    assert lost.me().status_code == 401
    assert me.me().status_code == 200
    assert end_via_api(me, lost_id).status_code == 404  # already ended
    assert end_via_api(me, "0123456789abcdef").status_code == 404  # never existed


def test_another_users_session_cannot_be_ended(app, mock) -> None:
    me = sign_in(app.url, mock)
    stranger = sign_in(app.url, mock, persona=FACTS[PROVIDER].other_persona)
    stranger_id = current_id(stranger)
    response = end_via_api(me, stranger_id)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert post_form(me, f"/account/sessions/{stranger_id}/end", me.csrf_token()).status_code == 404
    assert stranger.me().status_code == 200
    assert stranger_id in [s["id"] for s in list_sessions(stranger)]


def test_session_endpoints_need_a_signed_in_session(app) -> None:
    anonymous = Browser(app.url)
    assert anonymous.get("/api/sessions").status_code == 401
    assert end_via_api(anonymous, "0123456789abcdef", csrf=None).status_code == 401


# --- ended sessions die on every worker and every instance ------------------------------


def workers_answering(log_path: Path, status: int) -> set[str]:
    """The pids of the gunicorn workers that answered GET /api/me with `status`."""
    return set(re.findall(rf"<(\d+)> GET /api/me {status}\b", log_path.read_text()))


def hammer(browser: Browser, log_path: Path, status: int) -> list[int]:
    """GET /api/me ten at a time (so both sync workers take some) until both have answered
    `status`, or 400 requests; returns every status seen. (A fast worker can take dozens in
    a row while the other waits for a CPU: on a busy machine 60 were not always enough.)"""
    cookies = {c.name: c.value for c in browser.http.cookies}

    def one(_: int) -> int:
        return requests.get(f"{browser.app_url}/api/me", cookies=cookies, timeout=10).status_code

    statuses: list[int] = []
    with ThreadPoolExecutor(10) as pool:
        while len(statuses) < 400 and (
            len(statuses) < 10 or len(workers_answering(log_path, status)) < 2
        ):
            statuses += pool.map(one, range(10))
    return statuses


def test_an_ended_session_is_dead_on_every_gunicorn_worker(
    released_port, project_env, app_env, app_url, mock, tmp_path: Path
) -> None:
    command = gunicorn_command(
        released_port,
        "--workers",
        "2",
        "--access-logfile",
        "-",
        "--access-logformat",
        "%(p)s %(m)s %(U)s %(s)s",
    )
    with run_server(command, {**project_env, **app_env}, tmp_path, app_url) as log_path:
        me = sign_in(app_url, mock)
        lost = sign_in(app_url, mock)
        # Both workers know the session...
        assert set(hammer(lost, log_path, 200)) == {200}
        assert len(workers_answering(log_path, 200)) == 2
        assert end_via_api(me, current_id(lost)).status_code == 204
        # ...and both refuse it on its very next requests.
        statuses = hammer(lost, log_path, 401)
        assert statuses == [401] * len(statuses)
        assert me.me().status_code == 200
    assert len(workers_answering(log_path, 401)) == 2, "both workers should refuse the session"


def test_an_ended_session_is_dead_on_every_instance(app, mock, app_env) -> None:
    port = free_port()
    second = RunningApp(f"http://127.0.0.1:{port}", port, create_app(app_env)).start()
    try:
        me = sign_in(app.url, mock)
        lost = sign_in(app.url, mock)
        # The same cookies against the second instance (cookies ignore the port).
        me_there = Browser(second.url, http=me.http)
        lost_there = Browser(second.url, http=lost.http)
        assert lost_there.me().status_code == 200
        assert {s["id"] for s in list_sessions(me_there)} == {s["id"] for s in list_sessions(me)}

        assert end_via_api(me_there, current_id(lost)).status_code == 204
        assert lost.me().status_code == 401
        assert lost_there.me().status_code == 401

        # And the other way round: signed out everywhere else on the first instance.
        third = sign_in(app.url, mock)
        third_there = Browser(second.url, http=third.http)
        assert third_there.me().status_code == 200
        signed_out = post_form(me, "/account/sessions/sign-out-others", me.csrf_token())
        assert signed_out.status_code == 303
        assert third_there.me().status_code == 401
        assert third.me().status_code == 401
        assert me_there.me().status_code == 200
    finally:
        second.stop()


# --- signed out everywhere when a security-relevant role goes ---------------------------


def test_revoking_a_security_role_signs_out_every_session(app, mock, app_env) -> None:
    browsers = [sign_in(app.url, mock) for _ in range(2)]
    me = browsers[0].me().json()
    # A provider-verified email (some providers verify none: then the user id).
    who = me["email"] if me["email_verified"] else me["id"]
    assert who
    granted = cli(app_env, "roles", "grant", who, "admin")
    assert granted.exit_code == 0, granted.output
    assert [b.me().status_code for b in browsers] == [200, 200]  # granting ends nothing

    revoked = cli(app_env, "roles", "revoke", who, "admin")
    assert revoked.exit_code == 0, revoked.output
    assert "signed out 2 session(s)" in revoked.output
    assert [b.me().status_code for b in browsers] == [401, 401]
    assert sign_in(app.url, mock).me().json()["roles"] == ["user"]


def test_revoking_a_role_that_is_not_security_relevant_ends_nothing(app, mock, app_env) -> None:
    browsers = [sign_in(app.url, mock) for _ in range(2)]
    user_id = browsers[0].me().json()["id"]
    env = {**app_env, "APP_ROLES": "editor"}  # the app's own role, not a security role
    assert cli(env, "roles", "grant", user_id, "editor").exit_code == 0
    revoked = cli(env, "roles", "revoke", user_id, "editor")
    assert revoked.exit_code == 0, revoked.output
    assert "signed out" not in revoked.output
    assert [b.me().status_code for b in browsers] == [200, 200]


def test_with_no_security_roles_sessions_survive_a_revoke(variant, mock, app_env) -> None:
    running = variant(SECURITY_ROLES="")
    browsers = [sign_in(running.url, mock) for _ in range(2)]
    user_id = browsers[0].me().json()["id"]
    env = {**app_env, "SECURITY_ROLES": ""}
    assert cli(env, "roles", "grant", user_id, "admin").exit_code == 0
    revoked = cli(env, "roles", "revoke", user_id, "admin")
    assert revoked.exit_code == 0, revoked.output
    assert "signed out" not in revoked.output
    assert [b.me().status_code for b in browsers] == [200, 200]


@needs_verified
def test_losing_admin_at_login_signs_out_the_other_sessions(variant, mock) -> None:
    running = variant(ADMIN_EMAILS=VERIFIED_EMAIL)
    first = sign_in(running.url, mock, provider=VERIFIED)
    second = sign_in(running.url, mock, provider=VERIFIED)
    assert "admin" in second.me().json()["roles"]
    assert first.me().status_code == 200  # a login that keeps the role ends nothing

    running = variant(ADMIN_EMAILS=None)  # the address left ADMIN_EMAILS
    newest = sign_in(running.url, mock, provider=VERIFIED)
    assert newest.me().json()["roles"] == ["user"]
    assert [first.me().status_code, second.me().status_code] == [401, 401]
    assert [s["id"] for s in list_sessions(newest)] == [current_id(newest)]


# Where the profile changes at every sign-in (a picture URL that is a signed CDN address, new
# each time), the other sessions rightly get the new one.
STABLE_PROFILES = [p for p in PROVIDERS if not FACTS[p].profile_changes_each_sign_in]


@pytest.mark.parametrize(
    "provider", cases_or_skip(STABLE_PROFILES, "every provider here changes the profile each time")
)
def test_signing_in_again_unchanged_leaves_the_other_sessions_alone(app, mock, redis_db, provider):
    """A re-sign-in that changes nothing of the user writes no other session: a rewrite
    reads and writes each one (test_session_rewrite.py: never undoing what that session's own
    request writes meanwhile), work for nothing when nothing changed."""
    first, _ = sign_in_with_key(redis_db, app.url, mock, provider=provider)
    _, other = sign_in_with_key(redis_db, app.url, mock, provider=provider)
    before = redis_db.get(other)
    assert first.login(provider).status_code == 200  # the same person, the same profile
    assert redis_db.get(other) == before  # not even re-encrypted
