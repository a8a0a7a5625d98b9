"""Provider tokens after login: the encrypted vault, refresh, rotation and the provider API.

Real Redis, a real database, real HTTP to the mock providers; the vault is inspected with
the app's own `TokenVault` and the test key (in an application context: it works through
`db.session`) or with SQL on the `provider_tokens` table, and the mock's counters tell how
often the app called it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa
from conftest import (
    TEST_TOKEN_KEY,
    Browser,
    RunningApp,
    database_dump,
    everything_in_redis,
    gunicorn_command,
    query,
    rows,
    run_server,
)
from cryptography.fernet import Fernet, InvalidToken

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.models import db
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.tokens import StoredToken, TokenVault

PACKAGE = create_app.__module__
PROVIDERS = list(PROVIDER_CLASSES)
# A second account at each provider (the mock's `user` switch).
OTHER_PERSONA = {"google": "grace", "github": "private", "facebook": "phone"}
# Providers whose tokens expire and come with a refresh token (GitHub in app mode).
REFRESHABLE = [p for p in ("google", "github") if p in PROVIDER_CLASSES]
# The mock endpoint each provider's revoke lands on.
REVOKE_ENDPOINT = {"google": "revoke", "github": "revoke_grant", "facebook": "permissions"}
# The mock endpoint the provider API call (`/api/providers/<p>/profile`) lands on.
PROFILE_ENDPOINT = {"google": "userinfo", "github": "user", "facebook": "me"}
FACEBOOK_LONG_LIVED = 5183944  # what Facebook (and the mock) give a long-lived token

needs_google = pytest.mark.skipif("google" not in PROVIDER_CLASSES, reason="baked without Google")
needs_github = pytest.mark.skipif("github" not in PROVIDER_CLASSES, reason="baked without GitHub")
needs_facebook = pytest.mark.skipif(
    "facebook" not in PROVIDER_CLASSES, reason="baked without Facebook"
)


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


@pytest.fixture(params=REFRESHABLE)
def refreshable(request) -> str:
    return request.param


# --- helpers ------------------------------------------------------------------------


def vault_of(running: RunningApp) -> TokenVault:
    return running.app.extensions["tokens"].vault


def load(
    running: RunningApp, uid: str, provider: str, vault: TokenVault | None = None
) -> StoredToken | None:
    """The record as the app's vault (or `vault`, e.g. one with other keys) reads it now."""
    with running.app.app_context():
        return (vault if vault is not None else vault_of(running)).load(uid, provider)


def save(running: RunningApp, uid: str, provider: str, token: StoredToken) -> None:
    with running.app.app_context():
        vault_of(running).save(uid, provider, token)
        db.session.commit()


def delete(running: RunningApp, uid: str, provider: str) -> None:
    with running.app.app_context():
        vault_of(running).delete(uid, provider)
        db.session.commit()


def execute(engine: sa.Engine, sql: str, **params: object) -> int:
    """Run one writing SQL statement on the app's database, committed; returns the rowcount."""
    with engine.begin() as connection:
        return connection.execute(sa.text(sql), params).rowcount


def token_rows(engine: sa.Engine) -> dict[tuple[str, str], tuple[bytes, bytes | None]]:
    """Every provider_tokens record: (user, provider) -> (access, refresh) ciphertexts."""
    found = rows(
        engine,
        "SELECT user_id, provider, access_token_encrypted, refresh_token_encrypted"
        " FROM provider_tokens",
    )
    return {
        (uid, provider): (bytes(access), bytes(refresh) if refresh is not None else None)
        for uid, provider, access, refresh in found
    }


def write_ciphertexts(
    engine: sa.Engine, uid: str, provider: str, access: bytes, refresh: bytes | None
) -> None:
    """Overwrite a record's encrypted columns (and its health) behind the app's back."""
    changed = execute(
        engine,
        "UPDATE provider_tokens SET access_token_encrypted = :access,"
        " refresh_token_encrypted = :refresh, reauth_required = :reauth"
        " WHERE user_id = :uid AND provider = :provider",
        access=access,
        refresh=refresh,
        reauth=False,
        uid=uid,
        provider=provider,
    )
    assert changed == 1


def decrypts(key: str, ciphertext: bytes) -> bool:
    try:
        Fernet(key).decrypt(ciphertext)
    except InvalidToken:
        return False
    return True


def user_id(browser: Browser) -> str:
    response = browser.me()
    assert response.status_code == 200, response.text
    return response.json()["id"]


def login_all(browser: Browser) -> str:
    """Sign in with the first provider and connect every other one; return the user id."""
    for name in PROVIDERS:
        final = browser.login(name)
        assert final.status_code == 200, final.text
    body = browser.me().json()
    assert sorted(i["provider"] for i in body["identities"]) == sorted(PROVIDERS)
    return body["id"]


def profile(browser: Browser, provider: str) -> requests.Response:
    return browser.get(f"/api/providers/{provider}/profile")


def counts(mock, provider: str) -> dict[str, int]:
    return mock.control.requests()[provider]


def expiring(mock, provider: str) -> None:
    """The next login gets an access token that expires within the refresh leeway."""
    if provider == "github":
        mock.control.switch("github", app_mode=True, expires_in=60)
    else:
        mock.control.switch(provider, expires_in=60)


def long_lived(mock, provider: str) -> None:
    """Tokens issued from now on have hours of life left."""
    mock.control.switch(provider, expires_in=28800 if provider == "github" else 3599)


def connection(page: str, provider: str) -> str:
    """The account page's list item for one provider."""
    return page.split(f'data-provider="{provider}"', 1)[1].split("</li>", 1)[0]


def assert_reauth_required(response: requests.Response, provider: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "reauth_required"
    assert body["provider"] == provider
    assert body["login_url"].startswith(f"/login/{provider}?next=")
    assert query(body["login_url"])["next"] == "/account"


def assert_reconnect_shown(browser: Browser, provider: str, shown: bool = True) -> None:
    page = browser.get("/account")
    assert page.status_code == 200
    assert ("Reconnect" in connection(page.text, provider)) is shown


def token_keys(client: redis.Redis) -> list[bytes]:
    """Provider token records in Redis (where they lived before the database): none now."""
    return list(client.scan_iter(match="*token:*"))


# --- the vault: encrypted at rest, key rotation, unreadable records --------------------


def test_no_minted_secret_is_stored_in_clear(browser, app, mock, redis_db, database) -> None:
    for name in REFRESHABLE:
        expiring(mock, name)  # every API call below refreshes (and GitHub rotates)
    if "facebook" in PROVIDERS:
        mock.control.switch("facebook", short_lived=True)  # exchanged at login
    uid = login_all(browser)
    for _ in range(3):
        for name in PROVIDERS:
            assert profile(browser, name).status_code == 200
    for name in REFRESHABLE:
        assert counts(mock, name)["token"] == 4  # the login and three refreshes
    minted = mock.control.minted()
    for name in PROVIDERS:
        assert load(app, uid, name).access_token in minted  # tokens are kept...
    assert sorted(token_rows(database)) == sorted((uid, name) for name in PROVIDERS)
    assert not token_keys(redis_db)  # ...in the database only...
    for where, contents in (
        ("Redis", everything_in_redis(redis_db)),
        ("the database", database_dump(database)),
    ):
        leaked = [secret for secret in minted if secret.encode() in contents]
        assert not leaked, f"{len(leaked)} provider secrets stored in clear in {where}"


def test_key_rotation_and_reencrypt(variant, app_env, mock, database) -> None:
    key_a, key_b = TEST_TOKEN_KEY, Fernet.generate_key().decode()
    running = variant(TOKEN_ENCRYPTION_KEY=key_a)
    browser = Browser(running.url)
    uid = login_all(browser)
    only_a, only_b = TokenVault((key_a,)), TokenVault((key_b,))
    assert all(load(running, uid, name, only_a) for name in PROVIDERS)

    # A new key first, the old one after it: nobody has to reconnect.
    rotated_env = {**app_env, "TOKEN_ENCRYPTION_KEY": f"{key_b},{key_a}"}
    running = variant(TOKEN_ENCRYPTION_KEY=rotated_env["TOKEN_ENCRYPTION_KEY"])
    for name in PROVIDERS:
        assert profile(browser, name).status_code == 200
    assert not any(load(running, uid, name, only_b) for name in PROVIDERS)  # still under key A
    plaintexts = {name: load(running, uid, name) for name in PROVIDERS}

    # Run twice: an interrupted run is simply run again, and a second run is harmless.
    for _run in range(2):
        before = token_rows(database)
        result = create_app(rotated_env).test_cli_runner().invoke(args=["tokens", "reencrypt"])
        assert result.exit_code == 0, result.output
        assert f"re-encrypted {len(PROVIDERS)} token(s)" in result.output
        after = token_rows(database)
        assert sorted(after) == sorted(before)
        for record, (access, _refresh) in after.items():
            assert access != before[record][0]  # written again
        for name in PROVIDERS:
            assert load(running, uid, name, only_b) == plaintexts[name]
            assert load(running, uid, name, only_a) is None

    # The old key can now be dropped.
    variant(TOKEN_ENCRYPTION_KEY=key_b)
    for name in PROVIDERS:
        assert profile(browser, name).status_code == 200
        assert_reconnect_shown(browser, name, shown=False)


def test_reencrypt_all_works_in_batches_and_can_run_again(app, mock, database) -> None:
    """Batches of one and of two over two users' records, one of them unreadable."""
    first = login_all(Browser(app.url))
    for name in PROVIDERS:
        mock.control.switch(name, user=OTHER_PERSONA[name])
    second = login_all(Browser(app.url))
    assert first != second
    records = token_rows(database)
    assert sorted(records) == sorted((u, p) for u in (first, second) for p in PROVIDERS)
    plaintexts = {
        record: tuple(c and Fernet(TEST_TOKEN_KEY).decrypt(c) for c in ciphertexts)
        for record, ciphertexts in records.items()
    }
    # An unreadable record in the middle of the key order: the batches go on past it.
    ordered = rows(database, "SELECT user_id, provider FROM provider_tokens ORDER BY 1, 2")
    broken = tuple(ordered[len(ordered) // 2])
    write_ciphertexts(database, *broken, b"garbage", None)

    new_key = Fernet.generate_key().decode()
    rotated = TokenVault((new_key, TEST_TOKEN_KEY))
    previous = token_rows(database)
    for batch in (1, 2, 1):
        with app.app.app_context():
            assert rotated.reencrypt_all(batch=batch) == (len(records) - 1, 1)
        now = token_rows(database)  # committed: seen from another connection
        assert now[broken] == (b"garbage", None)
        for record, (access, refresh) in now.items():
            if record == broken:
                continue
            assert access != previous[record][0]  # every readable record, every run
            assert not decrypts(TEST_TOKEN_KEY, access)
            assert refresh is None or not decrypts(TEST_TOKEN_KEY, refresh)
            assert (
                Fernet(new_key).decrypt(access),
                refresh and Fernet(new_key).decrypt(refresh),
            ) == plaintexts[record]
        previous = now


def test_undecryptable_record_asks_to_reconnect(browser, app, provider, database) -> None:
    browser.login(provider)
    uid = user_id(browser)
    access, refresh = token_rows(database)[(uid, provider)]
    ours = Fernet(TEST_TOKEN_KEY)
    bad_records = [
        (b"garbage", refresh),  # not Fernet at all
        (Fernet(Fernet.generate_key()).encrypt(b"x"), refresh),  # an unknown key
        (ours.encrypt(b"\xff\xfe not UTF-8"), refresh),
        (access, b"garbage"),  # a readable access token beside an unreadable refresh token
    ]
    for bad_access, bad_refresh in bad_records:
        write_ciphertexts(database, uid, provider, access, refresh)  # readable again
        assert profile(browser, provider).status_code == 200
        write_ciphertexts(database, uid, provider, bad_access, bad_refresh)
        assert load(app, uid, provider) is None
        assert_reauth_required(profile(browser, provider), provider)
        assert_reconnect_shown(browser, provider)
        assert browser.me().status_code == 200  # still signed in
    browser.login(provider)  # reconnecting stores a readable record again
    assert decrypts(TEST_TOKEN_KEY, token_rows(database)[(uid, provider)][0])
    assert profile(browser, provider).status_code == 200
    assert_reconnect_shown(browser, provider, shown=False)


# --- refresh before an API call -----------------------------------------------------


@needs_google
def test_google_token_expiring_within_the_leeway_is_refreshed_once(browser, app, mock) -> None:
    mock.control.switch("google", expires_in=60)
    browser.login("google")
    uid = user_id(browser)
    before = load(app, uid, "google")
    assert before.refresh_token and counts(mock, "google")["token"] == 1
    response = profile(browser, "google")
    assert response.status_code == 200, response.text
    assert counts(mock, "google")["token"] == 2
    after = load(app, uid, "google")
    assert after.access_token != before.access_token
    # Google's refresh response has no refresh_token: the old one is kept.
    assert after.refresh_token == before.refresh_token
    # ...and still works: the refreshed token also expires within the leeway.
    assert profile(browser, "google").status_code == 200
    assert counts(mock, "google")["token"] == 3


@needs_google
def test_google_token_with_life_left_is_not_refreshed(browser, app, mock) -> None:
    browser.login("google")  # expires_in 3599
    for _ in range(3):
        assert profile(browser, "google").status_code == 200
    assert counts(mock, "google")["token"] == 1
    assert counts(mock, "google")["userinfo"] == 3


def test_single_flight_refresh_across_gunicorn_workers(
    released_port, project_env, app_env, app_url, tmp_path, mock
) -> None:
    if not REFRESHABLE:
        pytest.skip("baked without Google and GitHub: no refresh tokens")
    name = REFRESHABLE[0]
    command = gunicorn_command(released_port, "--workers", "2", "--threads", "8")
    env = {**project_env, **app_env}
    with run_server(command, env, tmp_path, app_url) as log_path:
        browser = Browser(app_url)
        expiring(mock, name)
        assert browser.login(name).status_code == 200
        long_lived(mock, name)  # the refreshed token is not due again
        assert counts(mock, name)["token"] == 1
        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(lambda _: profile(browser, name), range(20)))
    assert [r.status_code for r in responses] == [200] * 20, log_path.read_text()[-2000:]
    assert counts(mock, name)["token"] == 2  # exactly one refresh
    assert len({r.json()["profile"]["subject"] for r in responses}) == 1


# --- refresh-token rotation and token lifetimes -----------------------------------------


def github_refresh_at_mock(mock, refresh_token: str) -> dict[str, Any]:
    env = mock.app_env()
    response = requests.post(
        f"{env['GITHUB_URL']}/login/oauth/access_token",
        data={
            "client_id": env["GITHUB_CLIENT_ID"],
            "client_secret": env["GITHUB_CLIENT_SECRET"],
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        },
        headers={"Accept": "application/json"},
        timeout=10,
    )
    return response.json()


def github_user_status(mock, access_token: str) -> int:
    env = mock.app_env()
    return requests.get(
        f"{env['GITHUB_API_URL']}/user",
        headers={"Authorization": f"Bearer {access_token}", "User-Agent": "tests"},
        timeout=10,
    ).status_code


@needs_github
def test_github_app_refresh_rotates_and_the_vault_keeps_the_new_token(browser, app, mock) -> None:
    expiring(mock, "github")
    browser.login("github")
    uid = user_id(browser)
    seen = {load(app, uid, "github").refresh_token}
    for round_ in range(1, 4):
        old = load(app, uid, "github")
        assert profile(browser, "github").status_code == 200
        assert counts(mock, "github")["token"] == 1 + round_
        new = load(app, uid, "github")
        assert new.refresh_token.startswith("ghr_") and new.refresh_token not in seen
        assert new.access_token.startswith("ghu_") and new.access_token != old.access_token
        seen.add(new.refresh_token)
        # The old pair is dead at GitHub; the stored one works.
        assert github_user_status(mock, old.access_token) == 401
        assert github_user_status(mock, new.access_token) == 200
    assert github_refresh_at_mock(mock, old.refresh_token)["error"] == "bad_refresh_token"


@needs_github
def test_github_oauth_app_token_never_expires(browser, app, mock, database) -> None:
    browser.login("github")
    uid = user_id(browser)
    token = load(app, uid, "github")
    assert token.access_token.startswith("gho_")
    assert token.expires_at is None and token.refresh_token is None
    # A year old: age alone must not matter (the vault stamps updated_at on every save).
    aged = execute(
        database,
        "UPDATE provider_tokens SET updated_at = updated_at - :year"
        " WHERE user_id = :uid AND provider = 'github'",
        year=365 * 86400,
        uid=uid,
    )
    assert aged == 1
    assert load(app, uid, "github").updated_at < time.time() - 364 * 86400
    for _ in range(3):
        assert profile(browser, "github").status_code == 200
    assert counts(mock, "github")["token"] == 1
    assert load(app, uid, "github").access_token == token.access_token


@needs_github
def test_github_app_user_token_works_then_refreshes_when_expired(browser, app, mock) -> None:
    mock.control.switch("github", app_mode=True)  # 8-hour tokens
    browser.login("github")
    uid = user_id(browser)
    token = load(app, uid, "github")
    assert token.access_token.startswith("ghu_") and token.refresh_token.startswith("ghr_")
    assert abs(token.expires_at - (time.time() + 28800)) < 30
    assert profile(browser, "github").status_code == 200
    assert counts(mock, "github")["token"] == 1
    token.expires_at = int(time.time()) - 10  # eight hours later
    save(app, uid, "github", token)
    assert profile(browser, "github").status_code == 200
    assert counts(mock, "github")["token"] == 2
    assert load(app, uid, "github").expires_at > time.time() + 28000


# --- Facebook: long-lived tokens, no refresh --------------------------------------------


@needs_facebook
def test_facebook_short_lived_login_token_is_exchanged(browser, app, mock) -> None:
    mock.control.switch("facebook", short_lived=True)
    browser.login("facebook")
    assert counts(mock, "facebook")["token"] == 2  # code exchange + fb_exchange_token
    token = load(app, user_id(browser), "facebook")
    issued = [s for s in mock.control.minted() if s.startswith("EAAR")]
    assert len(issued) == 2 and token.access_token == issued[-1]  # the long-lived one
    assert abs(token.expires_at - (time.time() + FACEBOOK_LONG_LIVED)) < 60
    assert profile(browser, "facebook").status_code == 200


@needs_facebook
def test_facebook_long_lived_login_token_is_not_exchanged(browser, app, mock) -> None:
    browser.login("facebook")
    assert counts(mock, "facebook")["token"] == 1
    token = load(app, user_id(browser), "facebook")
    assert abs(token.expires_at - (time.time() + FACEBOOK_LONG_LIVED)) < 60


@needs_facebook
def test_facebook_expired_token_needs_reauth_without_calling_facebook(browser, app, mock) -> None:
    mock.control.switch("facebook", expires_in=1)
    browser.login("facebook")
    token = load(app, user_id(browser), "facebook")
    time.sleep(max(0.0, token.expires_at - time.time()) + 0.05)
    before = counts(mock, "facebook")["me"]
    assert_reauth_required(profile(browser, "facebook"), "facebook")
    assert counts(mock, "facebook")["me"] == before  # known expired: no Graph call
    assert_reconnect_shown(browser, "facebook")


@needs_facebook
def test_facebook_session_expired_at_facebook_needs_reauth(browser, mock) -> None:
    browser.login("facebook")
    mock.control.switch("facebook", me="expired")
    assert_reauth_required(profile(browser, "facebook"), "facebook")
    assert_reconnect_shown(browser, "facebook")


# --- Google: when to ask for consent again ---------------------------------------------


@needs_google
def test_google_asks_for_consent_only_without_a_stored_refresh_token(browser, app) -> None:
    def authorize_params() -> dict[str, str]:
        response = browser.get("/login/google")
        assert response.status_code == 302
        return query(response.headers["Location"])

    signed_out = authorize_params()
    assert signed_out["access_type"] == "offline" and "prompt" not in signed_out

    browser.login("google")  # the first consent gives a refresh token
    uid = user_id(browser)
    assert load(app, uid, "google").refresh_token
    with_refresh = authorize_params()
    assert with_refresh["access_type"] == "offline"
    assert "consent" not in with_refresh.get("prompt", "")

    without = [
        None,  # record deleted
        StoredToken(access_token="ya29.x", expires_at=int(time.time()) + 3000),
        StoredToken(access_token="ya29.x", refresh_token="1//x", reauth_required=True),
    ]
    for record in without:
        if record is None:
            delete(app, uid, "google")
        else:
            save(app, uid, "google", record)
        params = authorize_params()
        assert params["access_type"] == "offline" and params["prompt"] == "consent"

    browser.login("google")  # consenting again brings a refresh token back
    token = load(app, uid, "google")
    assert token.refresh_token and token.refresh_token != "1//x"
    assert not token.reauth_required


# --- a dead refresh token -------------------------------------------------------------


def kill_refresh_token(mock, app: RunningApp, uid: str, provider: str) -> None:
    if provider == "google":
        mock.control.switch("google", refresh="invalid_grant")
    else:  # someone else used the rotating refresh token first
        stolen = load(app, uid, "github").refresh_token
        assert "access_token" in github_refresh_at_mock(mock, stolen)


def test_dead_refresh_token_marks_the_link_for_reconnect(browser, app, mock, refreshable) -> None:
    expiring(mock, refreshable)
    uid = login_all(browser)
    kill_refresh_token(mock, app, uid, refreshable)
    tokens_before = counts(mock, refreshable)["token"]
    response = profile(browser, refreshable)
    assert_reauth_required(response, refreshable)
    assert counts(mock, refreshable)["token"] == tokens_before + 1
    # Known dead: the next call does not spend another request at the provider.
    assert_reauth_required(profile(browser, refreshable), refreshable)
    assert counts(mock, refreshable)["token"] == tokens_before + 1
    assert_reconnect_shown(browser, refreshable)
    me = browser.me()
    assert me.status_code == 200 and me.json()["id"] == uid
    assert sorted(i["provider"] for i in me.json()["identities"]) == sorted(PROVIDERS)
    for other in PROVIDERS:
        if other != refreshable:
            assert_reconnect_shown(browser, other, shown=False)
            assert profile(browser, other).status_code == 200

    # Reconnecting (a login while signed in) clears it.
    if refreshable == "google":
        mock.control.switch("google", refresh="ok")
    long_lived(mock, refreshable)
    login = browser.get(f"/login/{refreshable}")
    if refreshable == "google":
        assert query(login.headers["Location"])["prompt"] == "consent"
    assert browser.login(refreshable).status_code == 200
    assert user_id(browser) == uid
    assert profile(browser, refreshable).status_code == 200
    assert_reconnect_shown(browser, refreshable, shown=False)


# --- the provider API client ----------------------------------------------------------


def test_profile_returns_the_fresh_normalised_profile(browser, mock, provider) -> None:
    browser.login(provider)
    (identity,) = browser.me().json()["identities"]
    before = counts(mock, provider)[PROFILE_ENDPOINT[provider]]
    response = profile(browser, provider)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {"provider": provider, "profile": identity}
    assert counts(mock, provider)[PROFILE_ENDPOINT[provider]] == before + 1  # asked live


RATE_LIMITS = [
    pytest.param("github", {"rate_limit": "primary"}, (3500, 3600), marks=needs_github),
    pytest.param("github", {"rate_limit": "secondary"}, (60, 60), marks=needs_github),
    pytest.param("google", {"userinfo": "quota"}, (1, 3600), marks=needs_google),
    pytest.param("facebook", {"usage_percent": 100}, (1, 3600), marks=needs_facebook),
]


@pytest.mark.parametrize(("name", "switches", "retry_range"), RATE_LIMITS)
def test_rate_limit_is_503_with_retry_after(
    browser, app, mock, name, switches, retry_range
) -> None:
    browser.login(name)
    mock.control.switch(name, **switches)
    response = profile(browser, name)
    assert response.status_code in (429, 503), response.text
    assert response.json()["error"] == "provider_rate_limited"
    low, high = retry_range
    assert low <= int(response.headers["Retry-After"]) <= high
    # A rate limit is not a dead grant: the link stays usable.
    assert not load(app, user_id(browser), name).reauth_required
    assert_reconnect_shown(browser, name, shown=False)
    defaults = {"rate_limit": None, "userinfo": "ok", "usage_percent": None}
    mock.control.switch(name, **{k: defaults[k] for k in switches})
    assert profile(browser, name).status_code == 200


def test_provider_5xx_is_a_502_and_keeps_the_link(browser, app, mock, refreshable) -> None:
    expiring(mock, refreshable)
    browser.login(refreshable)
    uid = user_id(browser)
    mock.control.switch(refreshable, token_http_status=503)
    response = profile(browser, refreshable)
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "provider_unavailable"
    assert not load(app, uid, refreshable).reauth_required
    mock.control.switch(refreshable, token_http_status=None)
    assert profile(browser, refreshable).status_code == 200


def test_provider_timeout_is_a_504(variant, mock) -> None:
    # Signed in with the usual timeout (a loaded machine may need more than 0.5 s for a
    # login); the session and the tokens outlive the app, which comes back with 0.5 s.
    browser = Browser(variant().url)
    uid = login_all(browser)
    running = variant(OAUTH_HTTP_TIMEOUT="0.5")
    for name in PROVIDERS:
        mock.control.switch(name, delay=1.0)
        response = profile(browser, name)
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "provider_timeout"
        mock.control.switch(name, delay=0.0)
        assert not load(running, uid, name).reauth_required


def revoke_grant_at_provider(mock, app: RunningApp, uid: str, provider: str) -> None:
    """The user removes the app at the provider (or it revokes the grant on its own)."""
    if provider == "google":
        mock.control.switch("google", userinfo="unauthorized")
    elif provider == "github":
        env = mock.app_env()
        response = requests.delete(
            f"{env['GITHUB_API_URL']}/applications/{env['GITHUB_CLIENT_ID']}/grant",
            auth=(env["GITHUB_CLIENT_ID"], env["GITHUB_CLIENT_SECRET"]),
            json={"access_token": load(app, uid, "github").access_token},
            timeout=10,
        )
        assert response.status_code == 204
    else:
        mock.control.switch("facebook", me="password_changed")


def test_revoked_grant_is_reauth_required(browser, app, mock, provider) -> None:
    uid = login_all(browser)
    revoke_grant_at_provider(mock, app, uid, provider)
    assert_reauth_required(profile(browser, provider), provider)
    assert_reconnect_shown(browser, provider)
    me = browser.me()
    assert me.status_code == 200
    assert len(me.json()["identities"]) == len(PROVIDERS)


def test_provider_not_connected_is_404(browser) -> None:
    assert profile(browser, PROVIDERS[0]).status_code == 401  # signed out
    browser.login(PROVIDERS[0])
    for name in PROVIDERS[1:]:
        response = profile(browser, name)
        assert response.status_code == 404
        assert response.json()["error"] == "not_connected"
    assert profile(browser, "nope").status_code == 404


# --- logout ---------------------------------------------------------------------------


def logout(browser: Browser) -> None:
    page = browser.get("/").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = browser.http.post(
        f"{browser.app_url}/logout", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert response.status_code == 303
    assert browser.me().status_code == 401


def test_revoke_on_logout_revokes_every_grant(variant, mock, database) -> None:
    running = variant(REVOKE_ON_LOGOUT="true")
    browser = Browser(running.url)
    uid = login_all(browser)
    github_token = load(running, uid, "github") if "github" in PROVIDERS else None
    logout(browser)
    for name in PROVIDERS:
        assert counts(mock, name)[REVOKE_ENDPOINT[name]] == 1
        assert load(running, uid, name) is None
    assert not token_rows(database)
    # Only the grants go: the links stay, and signing in again connects them anew.
    linked = rows(database, "SELECT provider FROM identities WHERE user_id = :uid", uid=uid)
    assert sorted(r[0] for r in linked) == sorted(PROVIDERS)
    if github_token:
        assert github_user_status(mock, github_token.access_token) == 401


def test_logout_revokes_nothing_by_default(browser, app, mock) -> None:
    uid = login_all(browser)
    logout(browser)
    for name in PROVIDERS:
        assert counts(mock, name)[REVOKE_ENDPOINT[name]] == 0
        assert load(app, uid, name) is not None


# --- a login's token beside the stored one ------------------------------------------


def test_a_login_without_refresh_token_keeps_a_refused_one_refused() -> None:
    """Google sends no refresh token on an ordinary sign-in: the one it refused stays dead."""
    dead = StoredToken(access_token="old", refresh_token="1//dead", reauth_required=True)
    kept = StoredToken.from_response({"access_token": "new", "expires_in": 3599}, dead)
    assert kept.access_token == "new" and kept.refresh_token == "1//dead"
    assert kept.reauth_required and not kept.has_usable_refresh_token
    renewed = StoredToken.from_response({"access_token": "new", "refresh_token": "1//new"}, dead)
    assert renewed.refresh_token == "1//new" and renewed.has_usable_refresh_token
    alive = StoredToken(access_token="old", refresh_token="1//alive")
    assert StoredToken.from_response({"access_token": "new"}, alive).has_usable_refresh_token
    # Without refresh tokens (Facebook, GitHub OAuth apps) the new access token heals the link.
    expired = StoredToken(access_token="old", reauth_required=True)
    healed = StoredToken.from_response({"access_token": "new"}, expired)
    assert not healed.reauth_required and healed.refresh_token is None
