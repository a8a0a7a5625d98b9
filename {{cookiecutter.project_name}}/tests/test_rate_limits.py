"""Rate limits: sign-in starts and callbacks per client IP, API-token creation per user;
429 with Retry-After and a hint; counters in the app's Redis under its key prefix; Redis
failing during a check lets the request through, with a warning. (A provider's own
callbacks are tested with the provider, in test_<provider>_*.py.)

The app is behind one trusted proxy here (TRUSTED_PROXY_COUNT=1), so each request says
which client IP it comes from in X-Forwarded-For, as a proxy would.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest
import redis
import requests
from conftest import FACTS, PROVIDERS, Browser, free_port, start_redis_server, wait_for
from test_api_tokens import cli, create_token, sign_in

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

PROVIDER = PROVIDERS[0]  # the one `sign_in` uses
PREFIX = "rl-test:"
LIMIT_ENV = {"TRUSTED_PROXY_COUNT": "1", "REDIS_KEY_PREFIX": PREFIX}


def get(url: str, ip: str, **kwargs) -> requests.Response:
    """A GET from a fresh client (no cookie) at `ip`."""
    headers = {"X-Forwarded-For": ip, **kwargs.pop("headers", {})}
    return requests.get(url, headers=headers, allow_redirects=False, timeout=10, **kwargs)


def limiter_keys(db: redis.Redis) -> list[str]:
    return sorted(k.decode() for k in db.scan_iter(match="*ratelimit*"))


def session_keys(db: redis.Redis) -> list[bytes]:
    return list(db.scan_iter(match="*session:*"))


def assert_rate_limited_page(response: requests.Response, window: int = 60) -> None:
    assert response.status_code == 429, response.text[:300]
    assert 1 <= int(response.headers["Retry-After"]) <= window
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Too many sign-in attempts" in response.text
    assert f"Wait {response.headers['Retry-After']} seconds" in response.text
    assert 'data-error="rate_limited"' in response.text
    assert "Set-Cookie" not in response.headers  # no session for a refused request


def assert_rate_limited_json(response: requests.Response, window: int = 60) -> dict:
    assert response.status_code == 429, response.text[:300]
    assert 1 <= int(response.headers["Retry-After"]) <= window
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["message"] and response.headers["Retry-After"] in body["hint"]
    return body


# --- sign-in starts and callbacks: per client IP ---------------------------------------


def test_sign_in_starts_are_limited_per_client_ip(variant, mock, redis_db) -> None:
    app = variant(LOGIN_RATE_LIMIT="3 per minute", **LIMIT_ENV)
    start = f"{app.url}/login/{PROVIDER}"
    for _ in range(3):
        assert get(start, "198.51.100.7").status_code == 302
    sessions = session_keys(redis_db)
    assert len(sessions) == 3  # each start keeps its pending state: what the limit protects

    refused = get(start, "198.51.100.7")
    assert_rate_limited_page(refused)
    assert session_keys(redis_db) == sessions  # the refused start stored nothing
    # Another provider shares the IP's counter; another IP has its own.
    others = [p for p in PROVIDERS if p != PROVIDER]
    for other in others:
        assert get(f"{app.url}/login/{other}", "198.51.100.7").status_code == 429
    assert get(start, "198.51.100.8").status_code == 302
    # JSON for a client that asks for it, with the same Retry-After and a hint.
    as_json = get(start, "198.51.100.7", headers={"Accept": "application/json"})
    assert_rate_limited_json(as_json)
    # The counters: in the app's Redis, under its prefix, one per client IP, with a TTL.
    keys = limiter_keys(redis_db)
    assert keys == [
        f"{PREFIX}ratelimit:LIMITER/ip:198.51.100.7/auth.login/3/1/minute",
        f"{PREFIX}ratelimit:LIMITER/ip:198.51.100.8/auth.login/3/1/minute",
    ]
    assert all(0 < redis_db.ttl(key) <= 60 for key in keys)
    assert all(k.startswith(PREFIX.encode()) for k in redis_db.scan_iter())


def test_an_ipv6_client_counts_by_its_64(variant, mock, redis_db) -> None:
    app = variant(LOGIN_RATE_LIMIT="2 per minute", **LIMIT_ENV)
    start = f"{app.url}/login/{PROVIDER}"
    assert get(start, "2001:db8:1:2::1").status_code == 302
    assert get(start, "2001:db8:1:2:ffff:ffff:ffff:fffe").status_code == 302  # same /64
    assert get(start, "2001:db8:1:2::99").status_code == 429
    assert get(start, "2001:db8:1:3::1").status_code == 302  # the next /64
    # An IPv4 client written as IPv6 (::ffff:a.b.c.d) is that IPv4 client.
    assert get(start, "192.0.2.9").status_code == 302
    assert get(start, "::ffff:192.0.2.9").status_code == 302
    assert get(start, "192.0.2.9").status_code == 429
    assert limiter_keys(redis_db) == [
        f"{PREFIX}ratelimit:LIMITER/ip:192.0.2.9/auth.login/2/1/minute",
        f"{PREFIX}ratelimit:LIMITER/ip:2001:db8:1:2::/64/auth.login/2/1/minute",
        f"{PREFIX}ratelimit:LIMITER/ip:2001:db8:1:3::/64/auth.login/2/1/minute",
    ]


def test_callbacks_are_limited_per_client_ip_and_keep_the_pending_sign_in(
    variant, mock, redis_db
) -> None:
    app = variant(LOGIN_RATE_LIMIT="3 per minute", **LIMIT_ENV)
    callback = f"{app.url}/auth/{PROVIDER}/callback"
    # Forged or stale callbacks from one address: refused as ever, then refused for rate.
    for _ in range(3):
        forged = get(callback, "198.51.100.20", params={"code": "x", "state": "forged"})
        assert forged.status_code == 400, forged.text[:300]
    assert_rate_limited_page(get(callback, "198.51.100.20", params={"code": "x", "state": "y"}))

    # A real sign-in whose callback arrives from the exhausted address is refused, and its
    # pending state survives: the same callback from a fresh address then signs in.
    browser = Browser(app.url)
    browser.http.headers["X-Forwarded-For"] = "198.51.100.21"  # the start: its own counter
    callback_url = browser.start_login(PROVIDER)
    browser.http.headers["X-Forwarded-For"] = "198.51.100.20"
    assert_rate_limited_page(browser.get(callback_url))
    browser.http.headers["X-Forwarded-For"] = "198.51.100.22"
    assert browser.finish_login(callback_url).status_code == 200
    assert browser.me().status_code == 200
    # The start and the callback count separately.
    assert f"{PREFIX}ratelimit:LIMITER/ip:198.51.100.21/auth.login/3/1/minute" in limiter_keys(
        redis_db
    )
    assert redis_db.get(f"{PREFIX}ratelimit:LIMITER/ip:198.51.100.20/auth.callback/3/1/minute")


# --- personal API tokens: per user -----------------------------------------------------


def test_api_token_creation_is_limited_per_user(variant, mock, redis_db, database) -> None:
    app = variant(API_TOKEN_RATE_LIMIT="2 per minute", **LIMIT_ENV)
    ada = sign_in(app.url, mock)
    ada.http.headers["X-Forwarded-For"] = "198.51.100.30"
    for _ in range(2):
        assert create_token(ada).status_code == 201
    refused = create_token(ada)
    body = assert_rate_limited_json(refused)
    assert body["message"] == "Too many API tokens created in a short time."
    assert "Set-Cookie" not in refused.headers
    assert len(ada.get("/api/tokens").json()) == 2  # the refused one was not created
    # Per user, not per address: from another address ada is still refused...
    ada.http.headers["X-Forwarded-For"] = "198.51.100.31"
    assert create_token(ada).status_code == 429
    # ...and someone else from ada's address is not.
    other = sign_in(app.url, mock, persona=FACTS[PROVIDER].other_persona)
    other.http.headers["X-Forwarded-For"] = "198.51.100.30"
    assert create_token(other).status_code == 201
    ada_id, other_id = ada.me().json()["id"], other.me().json()["id"]
    keys = [k for k in limiter_keys(redis_db) if "api.create_token" in k]
    assert sorted(keys) == sorted(
        f"{PREFIX}ratelimit:LIMITER/user:{user_id}/api.create_token/2/1/minute"
        for user_id in (ada_id, other_id)
    )


def test_deleting_an_account_clears_its_counters(variant, app_env, mock, redis_db) -> None:
    limits = {"API_TOKEN_RATE_LIMIT": "5 per minute; 50 per hour", **LIMIT_ENV}
    app = variant(**limits)
    ada = sign_in(app.url, mock)
    assert create_token(ada).status_code == 201
    user_id = ada.me().json()["id"]
    assert len([k for k in limiter_keys(redis_db) if user_id in k]) == 2  # one per limit
    assert cli({**app_env, **limits}, "users", "delete", user_id, "--yes").exit_code == 0
    assert not [k for k in limiter_keys(redis_db) if user_id in k]


def test_the_defaults_are_the_documented_ones(app_env) -> None:
    defaults = {
        k: v
        for k, v in app_env.items()
        if not k.endswith("RATE_LIMIT")  # conftest raises them for the rest of the suite
    }
    settings = load_settings(defaults)
    assert settings.ratelimit_enabled is True
    assert settings.login_rate_limit == "30 per minute"
    assert settings.api_token_rate_limit == "10 per minute"


# --- switched off, misconfigured ---------------------------------------------------


def test_ratelimit_enabled_false_turns_every_limit_off(variant, mock, redis_db) -> None:
    app = variant(
        RATELIMIT_ENABLED="false",
        LOGIN_RATE_LIMIT="1 per minute",
        API_TOKEN_RATE_LIMIT="1 per minute",
        **LIMIT_ENV,
    )
    for _ in range(3):
        assert get(f"{app.url}/login/{PROVIDER}", "198.51.100.50").status_code == 302
    browser = sign_in(app.url, mock)
    for _ in range(3):
        assert create_token(browser).status_code == 201
    assert limiter_keys(redis_db) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOGIN_RATE_LIMIT", "lots"),
        ("LOGIN_RATE_LIMIT", "30 per fortnight"),
        ("API_TOKEN_RATE_LIMIT", "0 per minute"),
        ("RATELIMIT_ENABLED", "maybe"),
    ],
)
def test_a_bad_setting_names_its_variable(app_env, variable, value) -> None:
    with pytest.raises(SettingsError) as raised:
        create_app({**app_env, variable: value})
    (problem,) = raised.value.problems
    assert problem.startswith(variable) and repr(value) in problem


# --- Redis: every form the app supports; down ------------------------------------------


@pytest.mark.parametrize("form", ["emulation", "unix"])
def test_the_limit_works_on_the_apps_own_redis_client(variant, mock, tmp_path, form) -> None:
    """No REDIS_URL (the development emulation) and a unix socket; Sentinel and Cluster in
    test_redis_topologies.py. The limiter uses the app's client, so every form works alike."""
    overrides: dict[str, str | None] = {"LOGIN_RATE_LIMIT": "2 per minute", **LIMIT_ENV}
    server = None
    if form == "emulation":
        overrides["REDIS_URL"] = None
    else:
        socket_path = tmp_path / "redis.sock"
        server = start_redis_server(
            free_port(), tmp_path, "--unixsocket", str(socket_path), "--unixsocketperm", "700"
        )
        overrides["REDIS_URL"] = f"unix://{socket_path}"
    try:
        app = variant(**overrides)
        start = f"{app.url}/login/{PROVIDER}"
        assert [get(start, "198.51.100.60").status_code for _ in range(3)] == [302, 302, 429]
        client = app.app.extensions["redis"]
        assert limiter_keys(client) == [
            f"{PREFIX}ratelimit:LIMITER/ip:198.51.100.60/auth.login/2/1/minute"
        ]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


def test_a_failing_limit_check_fails_open_with_a_warning(variant, mock, tmp_path, caplog) -> None:
    """Redis refusing the limiter's commands while sessions work (here an ACL without
    scripting): sign-in still works, with a warning, and the limit holds in memory."""
    port = free_port()
    server = start_redis_server(port, tmp_path)
    try:
        redis.Redis(port=port).execute_command("ACL", "SETUSER", "default", "-@scripting")
        app = variant(
            REDIS_URL=f"redis://127.0.0.1:{port}/0", LOGIN_RATE_LIMIT="3 per minute", **LIMIT_ENV
        )
        caplog.set_level(logging.WARNING)
        browser = Browser(app.url)
        browser.http.headers["X-Forwarded-For"] = "198.51.100.90"
        assert browser.login(PROVIDER).status_code == 200
        assert browser.me().status_code == 200
        warnings = [r for r in caplog.records if r.name == "flask-limiter"]
        assert warnings and {r.levelno for r in warnings} == {logging.WARNING}
        assert "falling back to in-memory storage" in warnings[0].getMessage()
        assert limiter_keys(redis.Redis(port=port)) == []
        # Meanwhile counted in this process: one start so far, two more, then 429.
        start = f"{app.url}/login/{PROVIDER}"
        assert [get(start, "198.51.100.90").status_code for _ in range(3)] == [302, 302, 429]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_redis_down_fails_open_with_a_warning_then_counts_in_redis_again(
    variant, mock, tmp_path: Path, caplog
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis_server(port, tmp_path)
    try:
        app = variant(REDIS_URL=url, LOGIN_RATE_LIMIT="3 per minute", **LIMIT_ENV)
        start = f"{app.url}/login/{PROVIDER}"
        assert get(start, "198.51.100.70").status_code == 302
        assert limiter_keys(redis.Redis.from_url(url))
        server.terminate()
        server.wait(timeout=10)

        caplog.set_level(logging.WARNING)
        # The sign-in start fails as it always did without Redis (its state has nowhere to
        # go): a 503 from the session store, not a 500 and not a 429 from the limiter.
        down = get(start, "198.51.100.71")
        assert down.status_code == 503 and "not answering" in down.text, down.text[:300]
        warnings = [r for r in caplog.records if r.name == "flask-limiter"]
        assert [r.levelno for r in warnings] == [logging.WARNING], warnings
        assert "falling back to in-memory storage" in warnings[0].getMessage()
        # Meanwhile the limit still holds, counted in this process.
        assert get(start, "198.51.100.71").status_code == 503
        assert get(start, "198.51.100.71").status_code == 503
        assert_rate_limited_page(get(start, "198.51.100.71"))

        server = start_redis_server(port, tmp_path)  # back, empty, on the same port
        addresses = (f"203.0.113.{n}" for n in itertools.count(1))
        wait_for(
            lambda: (
                get(start, next(addresses)).status_code == 302
                and bool(limiter_keys(redis.Redis.from_url(url)))
            ),
            timeout=20,
            what="the limiter back on Redis",
        )
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
