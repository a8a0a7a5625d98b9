"""Personal API tokens: creation, listing, revocation, storage and bearer authentication.

Everything runs over real HTTP against the app, the mock providers, a real Redis and the
real database.
"""

from __future__ import annotations

import hashlib
import re
import time

import pytest
import requests
import sqlalchemy as sa
from conftest import (
    FACTS,
    Browser,
    command_calls,
    everything_in_database,
    everything_in_redis,
    rows,
)
from flask.testing import FlaskCliRunner

import {{ cookiecutter.package_name }} as app_package
from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

PACKAGE = app_package.__name__
PROVIDER = next(iter(PROVIDER_CLASSES))
TOKEN_RE = re.compile("^" + re.escape(PACKAGE) + r"_pat_[A-Za-z0-9_-]{43,}$")
READ_COMMANDS = {"get", "mget", "hget", "hmget", "hgetall", "exists", "ttl", "pttl"}


# --- helpers shared with test_guards.py and test_audit.py ----------------------------


def sign_in(app_url: str, mock, persona: str = "ada", provider: str = PROVIDER) -> Browser:
    mock.control.switch(provider, user=persona)
    browser = Browser(app_url)
    final = browser.login(provider)
    assert final.status_code == 200, final.text
    assert browser.me().status_code == 200
    return browser


def create_token(
    browser: Browser,
    name: str = "script",
    scopes: list[str] | None = None,
    expires_in: int | None = None,
    csrf: str | None = "page",
    body: object = None,
) -> requests.Response:
    if body is None:
        body = {"name": name, "scopes": scopes or ["profile:read"]}
        if expires_in is not None:
            body["expires_in"] = expires_in
    headers = {"X-CSRF-Token": browser.csrf_token() if csrf == "page" else csrf} if csrf else {}
    return browser.http.post(
        f"{browser.app_url}/api/tokens", json=body, headers=headers, timeout=10
    )


def new_token(browser: Browser, **kwargs) -> dict:
    response = create_token(browser, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def call(app_url: str, token: str, path: str = "/api/me", method: str = "GET", **kwargs):
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.request(
        method, app_url + path, headers=headers, allow_redirects=False, timeout=10, **kwargs
    )


def challenge(response: requests.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v", ...` header."""
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def cli(env: dict[str, str], *args: str):
    runner: FlaskCliRunner = create_app(env).test_cli_runner()
    return runner.invoke(args=list(args))


def execute(engine: sa.Engine, sql: str, **params: object) -> int:
    """Run one writing SQL statement on the app's database, committed; returns the rowcount.

    On SQLite the connection enforces foreign keys, as the app's own connections do.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # pysqlite: no BEGIN before it
            connection.commit()
        rowcount = connection.execute(sa.text(sql), params).rowcount
        connection.commit()
        return rowcount


def token_record(engine: sa.Engine, token_id: str) -> sa.Row:
    """A token's api_tokens row (found by its id, not by its secret)."""
    (record,) = rows(engine, "SELECT * FROM api_tokens WHERE id = :id", id=token_id)
    return record


# --- creating tokens ----------------------------------------------------------------


def test_create_returns_the_token_once_with_its_metadata(app, mock) -> None:
    browser = sign_in(app.url, mock)
    before = int(time.time())
    response = create_token(browser, name="  deploy bot ", expires_in=7 * 86400)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"id", "token", "name", "scopes", "expires_at"}
    assert body["name"] == "deploy bot"
    assert body["scopes"] == ["profile:read"]
    assert before + 7 * 86400 <= body["expires_at"] <= int(time.time()) + 7 * 86400
    assert TOKEN_RE.match(body["token"]), body["token"]
    assert body["id"] and body["id"] not in body["token"]


def test_tokens_are_random_and_long(app, mock) -> None:
    browser = sign_in(app.url, mock)
    secrets_ = [new_token(browser, name=f"t{i}")["token"] for i in range(5)]
    assert len(set(secrets_)) == 5
    for secret in secrets_:
        random_part = secret.removeprefix(f"{PACKAGE}_pat_")
        assert len(random_part) >= 43  # >= 256 bits of url-safe base64
    # No shared structure beyond the prefix (not a counter, not a timestamp).
    tails = [s.removeprefix(f"{PACKAGE}_pat_") for s in secrets_]
    assert len({t[:8] for t in tails}) == 5


@pytest.mark.parametrize(
    "csrf",
    [None, "wrong-token-0000000000000000000000000000000"],
    ids=["missing", "wrong"],
)
def test_create_without_the_csrf_token_is_refused(app, mock, redis_db, csrf) -> None:
    browser = sign_in(app.url, mock)
    response = create_token(browser, csrf=csrf)
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    assert browser.get("/api/tokens").json() == []


def test_create_from_another_origin_is_refused(app, mock) -> None:
    browser = sign_in(app.url, mock)
    response = browser.http.post(
        f"{app.url}/api/tokens",
        json={"name": "x", "scopes": ["profile:read"]},
        headers={"X-CSRF-Token": browser.csrf_token(), "Origin": "https://evil.example"},
        timeout=10,
    )
    assert response.status_code == 403
    assert browser.get("/api/tokens").json() == []


def test_create_needs_a_session(app) -> None:
    response = requests.post(
        f"{app.url}/api/tokens", json={"name": "x", "scopes": ["profile:read"]}, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["profile:read"]},
        {"name": "", "scopes": ["profile:read"]},
        {"name": "   ", "scopes": ["profile:read"]},
        {"name": 42, "scopes": ["profile:read"]},
        {"name": "x" * 101, "scopes": ["profile:read"]},
        {"name": "x"},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["everything"]},
        {"name": "x", "scopes": ["profile:read", "repo"]},
        {"name": "x", "scopes": "profile:read"},
        # Not strings: unhashable items once made the scope lookup itself fail with a 500.
        {"name": "x", "scopes": [["admin"]]},
        {"name": "x", "scopes": [{"a": 1}]},
        {"name": "x", "scopes": ["profile:read", ["profile:read"]]},
        {"name": "x", "scopes": [None]},
        {"name": "x", "scopes": [1]},
        {"name": "x", "scopes": {"profile:read": True}},
        {"name": "x", "scopes": ["profile:read"], "expires_in": 59},
        {"name": "x", "scopes": ["profile:read"], "expires_in": 0},
        {"name": "x", "scopes": ["profile:read"], "expires_in": -3600},
        {"name": "x", "scopes": ["profile:read"], "expires_in": 10 * 365 * 86400},
        {"name": "x", "scopes": ["profile:read"], "expires_in": "3600"},
        {"name": "x", "scopes": ["profile:read"], "expires_in": 3600.5},
        {"name": "x", "scopes": ["profile:read"], "expires_in": True},
        {"name": "x", "scopes": ["profile:read"], "expires_in": None},
        ["not", "an", "object"],
        "just a string",
    ],
)
def test_bad_bodies_are_400_with_a_message(app, mock, body) -> None:
    browser = sign_in(app.url, mock)
    response = create_token(browser, body=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] in ("invalid_request", "invalid_scope")
    assert answer["message"]
    assert browser.get("/api/tokens").json() == []


def test_lifetime_is_capped_by_api_token_max_lifetime(variant, mock, database) -> None:
    app = variant(API_TOKEN_MAX_LIFETIME="3600")
    browser = sign_in(app.url, mock)
    refused = create_token(browser, expires_in=3601)
    assert refused.status_code == 400 and "3600" in refused.json()["message"]
    exact = new_token(browser, expires_in=3600)
    assert exact["expires_at"] <= time.time() + 3600
    default = new_token(browser, name="default")  # no expires_in: a default under the max
    assert time.time() < default["expires_at"] <= time.time() + 3600
    for token in (exact, default):
        record = token_record(database, token["id"])  # the stored record expires with it
        assert record.expires_at == token["expires_at"]
        assert 0 < record.expires_at - record.created_at <= 3600


# --- listing and revoking -----------------------------------------------------------


def test_list_shows_tokens_without_their_secrets(app, mock) -> None:
    browser = sign_in(app.url, mock)
    first = new_token(browser, name="first")
    second = new_token(browser, name="second", scopes=["profile:read", "admin"])
    response = browser.get("/api/tokens")
    assert response.status_code == 200
    listed = response.json()
    assert {t["id"] for t in listed} == {first["id"], second["id"]}
    by_id = {t["id"]: t for t in listed}
    assert by_id[second["id"]]["name"] == "second"
    assert sorted(by_id[second["id"]]["scopes"]) == ["admin", "profile:read"]
    assert by_id[first["id"]]["expires_at"] == first["expires_at"]
    for token in listed:
        assert "token" not in token
    for secret in (first["token"], second["token"]):
        assert secret not in response.text
        assert secret[len(PACKAGE) + 5 :][:16] not in response.text
        assert secret not in browser.get("/account").text


def test_account_page_renders_the_token_form_once(app, mock) -> None:
    browser = sign_in(app.url, mock)
    page = browser.get("/account").text
    assert page.count('id="new-token"') == 1
    title = page.split("<title>")[1].split("</title>")[0]
    assert title.strip() == "Your account"


def test_revoked_token_is_refused_on_the_very_next_request(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)
    assert call(app.url, token["token"]).status_code == 200
    response = browser.http.delete(
        f"{app.url}/api/tokens/{token['id']}",
        headers={"X-CSRF-Token": browser.csrf_token()},
        timeout=10,
    )
    assert response.status_code == 204
    refused = call(app.url, token["token"])
    assert refused.status_code == 401
    assert challenge(refused)["error"] == "invalid_token"
    assert browser.get("/api/tokens").json() == []
    again = browser.http.delete(
        f"{app.url}/api/tokens/{token['id']}",
        headers={"X-CSRF-Token": browser.csrf_token()},
        timeout=10,
    )
    assert again.status_code == 404


def test_revoke_needs_csrf(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)
    response = browser.http.delete(f"{app.url}/api/tokens/{token['id']}", timeout=10)
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"
    assert call(app.url, token["token"]).status_code == 200


def test_revoking_unknown_or_foreign_tokens_is_404(app, mock) -> None:
    owner = sign_in(app.url, mock)
    token = new_token(owner)
    intruder = sign_in(app.url, mock, persona=FACTS[PROVIDER].other_persona)
    assert intruder.me().json()["id"] != owner.me().json()["id"]
    headers = {"X-CSRF-Token": intruder.csrf_token()}
    for token_id in (token["id"], "0123456789abcdef", "nope"):
        response = intruder.http.delete(
            f"{app.url}/api/tokens/{token_id}", headers=headers, timeout=10
        )
        assert response.status_code == 404, token_id
        assert response.json()["error"] == "not_found"
    assert call(app.url, token["token"]).status_code == 200  # still alive
    assert [t["id"] for t in owner.get("/api/tokens").json()] == [token["id"]]
    assert intruder.get("/api/tokens").json() == []


# --- storage ------------------------------------------------------------------------


def test_only_a_hash_of_the_token_is_stored(app, mock, redis_db, database) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser, scopes=["profile:read", "admin"])
    assert call(app.url, token["token"]).status_code == 200  # records usage too
    browser.get("/api/tokens")
    random_part = token["token"].removeprefix(f"{PACKAGE}_pat_")
    for where, dump in (
        ("Redis", everything_in_redis(redis_db)),
        ("the database", everything_in_database(database)),
    ):
        assert token["token"].encode() not in dump, where
        assert random_part.encode() not in dump, where
        assert random_part[:20].encode() not in dump, where
    record = token_record(database, token["id"])
    assert record.token_hash == hashlib.sha256(token["token"].encode()).hexdigest()
    assert token["token"].startswith(record.prefix) and len(record.prefix) < len(token["token"])
    assert sorted(record.scopes.split()) == ["admin", "profile:read"]
    assert record.expires_at == token["expires_at"]
    assert record.user_id == browser.me().json()["id"]


# --- bearer authentication ----------------------------------------------------------


def test_bearer_token_reads_api_me(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)
    response = call(app.url, token["token"])
    assert response.status_code == 200
    assert response.json() == browser.me().json()


def test_bearer_scheme_is_case_insensitive(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)
    response = requests.get(
        f"{app.url}/api/me", headers={"Authorization": f"bearer {token['token']}"}, timeout=10
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "garbage",
    [
        "nonsense",
        f"{PACKAGE}_pat_",
        f"{PACKAGE}_pat_" + "A" * 43,
        f"{PACKAGE}_pat_" + "A" * 300,
        "ghp_" + "a" * 36,
    ],
    ids=["nonsense", "bare-prefix", "unknown", "too-long", "foreign"],
)
def test_garbage_token_is_401_invalid_token(app, garbage) -> None:
    response = call(app.url, garbage)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    params = challenge(response)
    assert params["realm"] == "api" and params["error"] == "invalid_token"


def test_expired_token_is_401_invalid_token(app, mock, database) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)
    assert call(app.url, token["token"]).status_code == 200
    expired = int(time.time()) - 5
    assert (
        execute(
            database,
            "UPDATE api_tokens SET expires_at = :at WHERE id = :id",
            at=expired,
            id=token["id"],
        )
        == 1
    )
    response = call(app.url, token["token"])
    assert response.status_code == 401
    params = challenge(response)
    assert params["realm"] == "api" and params["error"] == "invalid_token"


def test_missing_scope_is_403_insufficient_scope(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser, scopes=["admin"])
    response = call(app.url, token["token"])
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    params = challenge(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "profile:read"


def test_bearer_post_needs_no_csrf_but_cannot_mint_tokens(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser, scopes=["profile:read", "admin"])
    response = call(
        app.url,
        token["token"],
        "/api/tokens",
        method="POST",
        json={"name": "child", "scopes": ["profile:read"]},
    )
    assert response.status_code == 403
    assert response.json()["error"] != "csrf_failed"
    assert response.json()["error"] == "insufficient_scope"
    assert [t["id"] for t in browser.get("/api/tokens").json()] == [token["id"]]


def test_bearer_outside_api_is_refused(app, mock) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser, scopes=["profile:read", "admin"])
    for path in ("/account", "/admin"):
        response = call(app.url, token["token"], path)
        assert 400 <= response.status_code < 500, path
        assert response.status_code != 404
        assert "Connected providers" not in response.text


def test_admin_api_needs_the_admin_scope_and_the_admin_role(app, mock, app_env) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    both = new_token(browser, name="both", scopes=["profile:read", "admin"])
    read_only = new_token(browser, name="read", scopes=["profile:read"])
    # The admin scope without the admin role does nothing.
    response = call(app.url, both["token"], "/api/admin/users")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    response = call(app.url, both["token"], "/api/admin/users")
    assert response.status_code == 200
    assert user_id in [u["id"] for u in response.json()["users"]]
    # The admin role without the admin scope does nothing either.
    response = call(app.url, read_only["token"], "/api/admin/users")
    assert response.status_code == 403
    params = challenge(response)
    assert params["error"] == "insufficient_scope" and params["scope"] == "admin"


def test_losing_the_role_takes_effect_on_the_next_request(app, mock, app_env) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    token = new_token(browser, scopes=["admin"])
    assert call(app.url, token["token"], "/api/admin/users").status_code == 200
    assert cli(app_env, "roles", "revoke", user_id, "admin").exit_code == 0
    response = call(app.url, token["token"], "/api/admin/users")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_deleted_user_tokens_die_with_them(app, mock, database) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    token = new_token(browser)
    assert call(app.url, token["token"]).status_code == 200
    assert execute(database, "DELETE FROM users WHERE id = :id", id=user_id) == 1
    # The token's record went with its user (ON DELETE CASCADE).
    assert not rows(database, "SELECT id FROM api_tokens WHERE user_id = :id", id=user_id)
    response = call(app.url, token["token"])
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


def test_repeated_bearer_request_costs_two_reads_and_no_write(app, mock, redis_db) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)
    assert call(app.url, token["token"]).status_code == 200  # first use: records usage
    redis_db.config_resetstat()
    response = call(app.url, token["token"])
    assert response.status_code == 200
    calls = command_calls(redis_db)
    assert sum(calls.values()) <= 2, calls
    assert set(calls) <= READ_COMMANDS, calls
