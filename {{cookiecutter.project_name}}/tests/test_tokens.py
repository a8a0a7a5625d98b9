"""Provider tokens after login: the encrypted vault, refresh, rotation and the provider API.

Real Redis, a real database, real HTTP to the mock providers; the vault is inspected with
the app's own `TokenVault` and the test key (in an application context: it works through
`db.session`) or with SQL on the `provider_tokens` table, and the mock's counters tell how
often the app called it. What differs between providers comes from the facts each mock
declares (mock_providers/facts.py); one provider's own token rules are tested in
test_<provider>_tokens.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
import sqlalchemy as sa
from conftest import (
    FACTS,
    PROVIDERS,
    REFRESHABLE,
    TEST_TOKEN_KEY,
    UNREVOCABLE,
    Browser,
    RunningApp,
    cases_or_skip,
    database_dump,
    everything_in_redis,
    gunicorn_command,
    query,
    revocations,
    rows,
    run_server,
    unrevoked,
)
from cryptography.fernet import Fernet, InvalidToken

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.models import db
from {{ cookiecutter.package_name }}.tokens import StoredToken, TokenVault

from mock_providers.facts import AppGrant

NO_REFRESH = "no provider of this bake issues refresh tokens"


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


@pytest.fixture(params=cases_or_skip(REFRESHABLE, NO_REFRESH))
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


def token_calls(mock, provider: str) -> int:
    """Requests to the provider's token endpoint: code exchanges and refreshes."""
    return counts(mock, provider)[FACTS[provider].token_endpoint]


def expiring(mock, provider: str) -> None:
    """The next login gets a refresh token and an access token due for refresh at once."""
    mock.control.switch(provider, **FACTS[provider].refresh.expiring)


def long_lived(mock, provider: str) -> None:
    """Tokens issued from now on have hours of life left."""
    mock.control.switch(provider, **FACTS[provider].refresh.long_lived)


def grant_of(running: RunningApp, uid: str, provider: str) -> AppGrant:
    """The person's grant at the provider, as the app holds it (for the mock's facts)."""
    token = load(running, uid, provider)
    assert token is not None
    with running.app.app_context():
        identities = running.app.extensions["users"].get(uid).to_api()["identities"]
    subject = next(i["subject"] for i in identities if i["provider"] == provider)
    return AppGrant(subject, token.access_token, token.refresh_token)


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
    for name in PROVIDERS:  # every refresh, rotation and exchange there is
        mock.control.switch(name, **FACTS[name].most_tokens)
    uid = login_all(browser)
    for _ in range(3):
        for name in PROVIDERS:
            assert profile(browser, name).status_code == 200
    for name in REFRESHABLE:
        assert token_calls(mock, name) == 4  # the login and three refreshes
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
        mock.control.switch(name, user=FACTS[name].other_persona)
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


def test_single_flight_refresh_across_gunicorn_workers(
    released_port, project_env, app_env, app_url, tmp_path, mock
) -> None:
    if not REFRESHABLE:
        pytest.skip(NO_REFRESH)
    name = REFRESHABLE[0]
    command = gunicorn_command(released_port, "--workers", "2", "--threads", "8")
    env = {**project_env, **app_env}
    with run_server(command, env, tmp_path, app_url) as log_path:
        browser = Browser(app_url)
        expiring(mock, name)
        assert browser.login(name).status_code == 200
        long_lived(mock, name)  # the refreshed token is not due again
        assert token_calls(mock, name) == 1
        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(lambda _: profile(browser, name), range(20)))
    assert [r.status_code for r in responses] == [200] * 20, log_path.read_text()[-2000:]
    assert token_calls(mock, name) == 2  # exactly one refresh
    assert len({r.json()["profile"]["subject"] for r in responses}) == 1


# --- a dead refresh token -------------------------------------------------------------


def test_dead_refresh_token_marks_the_link_for_reconnect(browser, app, mock, refreshable) -> None:
    refresh = FACTS[refreshable].refresh
    expiring(mock, refreshable)
    uid = login_all(browser)
    refresh.kill(mock.control, mock.app_env(), grant_of(app, uid, refreshable))
    tokens_before = token_calls(mock, refreshable)
    response = profile(browser, refreshable)
    assert_reauth_required(response, refreshable)
    assert token_calls(mock, refreshable) == tokens_before + 1
    # Known dead: the next call does not spend another request at the provider.
    assert_reauth_required(profile(browser, refreshable), refreshable)
    assert token_calls(mock, refreshable) == tokens_before + 1
    assert_reconnect_shown(browser, refreshable)
    me = browser.me()
    assert me.status_code == 200 and me.json()["id"] == uid
    assert sorted(i["provider"] for i in me.json()["identities"]) == sorted(PROVIDERS)
    for other in PROVIDERS:
        if other != refreshable:
            assert_reconnect_shown(browser, other, shown=False)
            assert profile(browser, other).status_code == 200

    # Reconnecting (a login while signed in) clears it, asking for what brings a new
    # refresh token where the provider still remembers the consent (a consent screen, say).
    long_lived(mock, refreshable)
    sent = query(browser.get(f"/login/{refreshable}").headers["Location"])
    assert {name: sent.get(name) for name in refresh.reconsent} == refresh.reconsent
    assert browser.login(refreshable).status_code == 200
    assert user_id(browser) == uid
    assert profile(browser, refreshable).status_code == 200
    assert_reconnect_shown(browser, refreshable, shown=False)


# --- the provider API client ----------------------------------------------------------


def test_profile_returns_the_fresh_normalised_profile(browser, mock, provider) -> None:
    browser.login(provider)
    (identity,) = browser.me().json()["identities"]
    endpoint = FACTS[provider].profile_endpoint
    before = counts(mock, provider)[endpoint]
    response = profile(browser, provider)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {"provider": provider, "profile": identity}
    assert counts(mock, provider)[endpoint] == before + 1  # asked live


RATE_LIMITS = [
    pytest.param((name, limit), id=f"{name}-{limit.id}")
    for name in PROVIDERS
    for limit in FACTS[name].rate_limits
]


@pytest.mark.parametrize("case", cases_or_skip(RATE_LIMITS, "no provider here has a rate limit"))
def test_rate_limit_is_503_with_retry_after(browser, app, mock, case) -> None:
    name, limit = case
    browser.login(name)
    mock.control.switch(name, **limit.switches)
    response = profile(browser, name)
    assert response.status_code in (429, 503), response.text
    assert response.json()["error"] == "provider_rate_limited"
    low, high = limit.retry_after
    assert low <= int(response.headers["Retry-After"]) <= high
    # A rate limit is not a dead grant: the link stays usable.
    assert not load(app, user_id(browser), name).reauth_required
    assert_reconnect_shown(browser, name, shown=False)
    mock.control.switch(name, **limit.undo)
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


# The person removes the app at the provider; or the provider drops the grant by itself
# and refuses the token (where its mock has a switch for that).
GRANT_LOSSES = [pytest.param(name, "removed", id=f"{name}-removed") for name in PROVIDERS] + [
    pytest.param(name, "refused", id=f"{name}-refused")
    for name in PROVIDERS
    if FACTS[name].token_refused is not None
]


@pytest.mark.parametrize(("provider", "loss"), GRANT_LOSSES)
def test_revoked_grant_is_reauth_required(browser, app, mock, provider, loss) -> None:
    uid = login_all(browser)
    if loss == "removed":
        FACTS[provider].remove_app(mock.control, mock.app_env(), grant_of(app, uid, provider))
    else:
        mock.control.switch(provider, **FACTS[provider].token_refused)
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


def logout(browser: Browser) -> str:
    """Sign out; returns where the app sends the browser."""
    page = browser.get("/").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = browser.http.post(
        f"{browser.app_url}/logout", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert response.status_code == 303
    assert browser.me().status_code == 401
    return response.headers["Location"]


def test_revoke_on_logout_revokes_every_grant(variant, mock, database) -> None:
    running = variant(REVOKE_ON_LOGOUT="true")
    browser = Browser(running.url)
    uid = login_all(browser)
    env = mock.app_env()
    tokens = {name: load(running, uid, name).access_token for name in PROVIDERS}
    assert all(FACTS[name].token_works(env, token) for name, token in tokens.items())
    # Where the app cannot revoke, it says so: the person removes the app there.
    assert unrevoked(logout(browser)) == set(UNREVOCABLE)
    for name in PROVIDERS:
        assert revocations(mock, name) == (0 if name in UNREVOCABLE else 1)
        assert load(running, uid, name) is None
    assert not token_rows(database)
    # Only the grants go: the links stay, and signing in again connects them anew.
    linked = rows(database, "SELECT provider FROM identities WHERE user_id = :uid", uid=uid)
    assert sorted(r[0] for r in linked) == sorted(PROVIDERS)
    for name, token in tokens.items():  # dead at the provider, not just forgotten here
        assert FACTS[name].token_works(env, token) is (name in UNREVOCABLE), name


def test_logout_revokes_nothing_by_default(browser, app, mock) -> None:
    uid = login_all(browser)
    assert not unrevoked(logout(browser))
    for name in PROVIDERS:
        assert revocations(mock, name) == 0
        assert load(app, uid, name) is not None


# --- a login's token beside the stored one ------------------------------------------


def test_a_login_without_refresh_token_keeps_a_refused_one_refused() -> None:
    """A provider may send no refresh token on an ordinary sign-in: one it refused stays dead."""
    dead = StoredToken(access_token="old", refresh_token="1//dead", reauth_required=True)
    kept = StoredToken.from_response({"access_token": "new", "expires_in": 3599}, dead)
    assert kept.access_token == "new" and kept.refresh_token == "1//dead"
    assert kept.reauth_required and not kept.has_usable_refresh_token
    renewed = StoredToken.from_response({"access_token": "new", "refresh_token": "1//new"}, dead)
    assert renewed.refresh_token == "1//new" and renewed.has_usable_refresh_token
    alive = StoredToken(access_token="old", refresh_token="1//alive")
    assert StoredToken.from_response({"access_token": "new"}, alive).has_usable_refresh_token
    # Without refresh tokens (long-lived access tokens) the new access token heals the link.
    expired = StoredToken(access_token="old", reauth_required=True)
    healed = StoredToken.from_response({"access_token": "new"}, expired)
    assert not healed.reauth_required and healed.refresh_token is None
