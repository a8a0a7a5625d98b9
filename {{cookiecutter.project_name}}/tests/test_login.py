"""The login flow every provider shares, over real HTTP against the mock providers, Redis and
the database."""

from __future__ import annotations

import pytest
import redis
import requests
import sqlalchemy as sa
from conftest import (
    Browser,
    command_calls,
    everything_in_database,
    is_oidc,
    issuer_param,
    query,
    rows,
)

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

PROVIDERS = list(PROVIDER_CLASSES)


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def session_keys(db: redis.Redis) -> list[bytes]:
    return db.keys("*session:*")


def stored_logins(database: sa.Engine) -> dict[str, list[tuple]]:
    """What a login keeps in the database: users, identities and provider tokens."""
    return {
        "users": [tuple(r) for r in rows(database, "SELECT id FROM users")],
        "identities": [
            tuple(r) for r in rows(database, "SELECT provider, subject FROM identities")
        ],
        "provider_tokens": [
            tuple(r) for r in rows(database, "SELECT provider FROM provider_tokens")
        ],
    }


def assert_stored_login(database: sa.Engine, provider: str, subject: str) -> None:
    """One user with this one identity and its (encrypted) provider token: what
    assert_failed_cleanly checks is absent after a failed login."""
    stored = stored_logins(database)
    assert len(stored["users"]) == 1, stored
    assert stored["identities"] == [(provider, subject)]
    assert stored["provider_tokens"] == [(provider,)]


# --- the happy path -----------------------------------------------------------------


def test_login_page_has_one_button_per_enabled_provider(browser: Browser) -> None:
    page = browser.get("/login").text
    for name in PROVIDERS:
        assert f'href="/login/{name}"' in page
        assert f"Sign in with {PROVIDER_CLASSES[name].title}" in page


def test_full_login_lands_signed_in_with_a_normalised_identity(browser, provider, database) -> None:
    final = browser.login(provider)
    assert final.status_code == 200
    assert 'id="welcome"' in final.text
    me = browser.me()
    assert me.status_code == 200
    body = me.json()
    assert set(body) == {
        "id",
        "name",
        "email",
        "email_verified",
        "avatar_url",
        "roles",
        "identities",
    }
    assert body["roles"] == ["user"]
    (identity,) = body["identities"]
    assert identity["provider"] == provider
    assert isinstance(identity["subject"], str) and identity["subject"]
    assert set(identity) == {
        "provider",
        "subject",
        "username",
        "email",
        "email_verified",
        "name",
        "avatar_url",
    }
    assert_stored_login(database, provider, identity["subject"])
    assert stored_logins(database)["users"] == [(body["id"],)]


def test_same_identity_signs_in_to_the_same_user(app, provider) -> None:
    first, second = Browser(app.url), Browser(app.url)
    first.login(provider)
    second.login(provider)
    assert first.me().json()["id"] == second.me().json()["id"]


def test_account_page_requires_login_and_shows_the_profile(browser, provider) -> None:
    response = browser.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Faccount"
    final = browser.login(provider, next_path="/account")
    assert final.url.endswith("/account")
    assert "Connected providers" in final.text


# --- session hygiene ----------------------------------------------------------------


def test_session_id_is_regenerated_at_login(browser, provider, redis_db) -> None:
    callback = browser.start_login(provider)
    pre_login_cookie = browser.cookie()
    assert pre_login_cookie
    assert len(session_keys(redis_db)) == 1
    browser.finish_login(callback)
    assert browser.cookie() != pre_login_cookie
    assert len(session_keys(redis_db)) == 1  # the pre-login record is gone
    planted = Browser(browser.app_url)
    planted.http.cookies.set("session", pre_login_cookie)
    assert planted.me().status_code == 401


def test_nothing_stored_holds_the_session_id_or_login_secrets(
    browser, provider, redis_db, database, mock
) -> None:
    browser.start_login(provider)
    (record,) = [redis_db.get(k) for k in session_keys(redis_db)]
    assert b"code_verifier" not in record and b"_state_" not in record and b"nonce" not in record
    browser.login(provider)
    cookie = browser.cookie()
    assert stored_logins(database)["provider_tokens"] == [(provider,)]  # kept, encrypted
    for where, dump in (
        ("Redis", b"".join(k + (redis_db.dump(k) or b"") for k in redis_db.keys("*"))),
        ("the database", everything_in_database(database)),
    ):
        assert cookie.encode() not in dump, where
        minted = mock.control.minted()
        assert minted  # codes and tokens were handed out
        for secret in minted:
            assert secret.encode() not in dump, where


@pytest.mark.parametrize("path", ["/", "/api/me"])
def test_reading_the_session_costs_one_get_and_no_write(browser, provider, redis_db, path) -> None:
    browser.login(provider)
    browser.get(path)  # a first read may complete the session's copy of the user
    redis_db.config_resetstat()
    response = browser.get(path)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert command_calls(redis_db) == {"get": 1}


def test_anonymous_pages_touch_neither_redis_nor_cookies(browser, redis_db) -> None:
    redis_db.config_resetstat()
    for path in ("/", "/login"):
        response = browser.get(path)
        assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert command_calls(redis_db) == {}


def test_pre_login_sessions_are_short_lived(browser, provider, redis_db) -> None:
    browser.start_login(provider)
    (key,) = session_keys(redis_db)
    assert 0 < redis_db.ttl(key) <= 15 * 60
    browser.login(provider)
    (key,) = session_keys(redis_db)
    assert redis_db.ttl(key) > 24 * 3600


def test_production_cookie_is_host_prefixed_secure_httponly_lax(variant, provider) -> None:
    app = variant(APP_ENV="production")
    response = requests.get(f"{app.url}/login/{provider}", allow_redirects=False, timeout=10)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite"} <= attributes
    assert "domain" not in attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie


class LoopbackHttp(requests.Session):
    """Sends Secure cookies to http://127.0.0.1, as browsers do for localhost."""

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        for cookie in self.cookies:
            cookie.secure = False
        return super().prepare_request(request)


def test_production_logout_clears_the_host_cookie(variant, provider) -> None:
    """Browsers ignore a __Host- cookie, even one that clears, without Secure and Path=/."""
    app = variant(APP_ENV="production")
    browser = Browser(app.url, http=LoopbackHttp())
    assert browser.login(provider).status_code == 200
    assert browser.me().status_code == 200
    response = browser.http.post(
        f"{app.url}/logout",
        data={"csrf_token": browser.csrf_token()},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303
    (cookie,) = response.raw.headers.getlist("Set-Cookie")
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert name_value == "__Host-session="
    named = {a.split("=")[0].lower(): a for a in attributes}
    assert "secure" in named and named["path"] == "Path=/" and "domain" not in named
    assert named["max-age"] == "Max-Age=0"
    assert {"httponly", "samesite"} <= set(named)  # as it was set
    assert browser.cookie() is None
    assert browser.me().status_code == 401


def test_development_cookie_is_httponly_lax(browser, provider) -> None:
    response = browser.get(f"/login/{provider}")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- redirects we build -------------------------------------------------------------


def test_redirect_uri_comes_from_public_url_not_forged_headers(browser, provider, app) -> None:
    response = browser.get(
        f"/login/{provider}",
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    redirect_uri = query(response.headers["Location"])["redirect_uri"]
    assert redirect_uri == f"{app.url}/auth/{provider}/callback"


def test_authorization_request_carries_state_and_pkce(browser, provider) -> None:
    params = query(browser.get(f"/login/{provider}").headers["Location"])
    assert len(params["state"]) >= 20
    if PROVIDER_CLASSES[provider].uses_pkce:
        assert params["code_challenge_method"] == "S256"
        assert len(params["code_challenge"]) == 43
    else:
        assert "code_challenge" not in params
    if is_oidc(provider):  # the ID token must come back bound to it
        assert len(params["nonce"]) >= 20
    else:
        assert "nonce" not in params


@pytest.mark.parametrize(
    "evil",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "%2F%2Fevil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "%252F%252Fevil.example",
        "/%09/evil.example",
        "http:/evil.example",
        "evil.example",
        "/ok\r\nLocation: https://evil.example",
    ],
)
def test_next_never_leaves_the_site(browser, evil) -> None:
    provider = PROVIDERS[0]
    assert "evil" not in browser.get("/login", params={"next": evil}).text.split("<main>")[1]
    final = browser.login(provider, next_path=evil)
    assert final.status_code == 200
    assert browser.hops[-1] == f"{browser.app_url}/"


@pytest.mark.parametrize("good", ["/account", "/account?tab=1", "/api/me"])
def test_a_same_site_next_is_kept(browser, good) -> None:
    browser.login(PROVIDERS[0], next_path=good)
    assert browser.hops[-1] == browser.app_url + good


# --- failures: a clean 4xx page, never a session ------------------------------------


def assert_failed_cleanly(response, browser, redis_db, database, status: int, code: str) -> None:
    """The right status and code on a page without a traceback, and nothing kept: no
    session (Redis), no user, identity or provider token (the database)."""
    assert response.status_code == status, response.text
    assert code in response.text
    assert "Traceback" not in response.text
    assert browser.me().status_code == 401
    assert not session_keys(redis_db)
    assert stored_logins(database) == {"users": [], "identities": [], "provider_tokens": []}


def test_denied_consent(browser, provider, mock, redis_db, database) -> None:
    mock.control.switch(provider, deny=True)
    response = browser.finish_login(browser.start_login(provider))
    assert_failed_cleanly(response, browser, redis_db, database, 403, "access_denied")
    assert "cancelled" in response.text


def assert_refused_and_the_real_sign_in_goes_on(
    response, browser, database, provider: str, callback: str
) -> None:
    """A callback whose state matches nothing in this browser: refused, nothing stored, and
    the browser's own pending sign-in (its state, PKCE verifier, nonce) left alone, so its
    real callback, a moment later, still signs in."""
    assert response.status_code == 400, response.text
    assert "invalid_state" in response.text and "Traceback" not in response.text
    assert browser.me().status_code == 401
    assert stored_logins(database) == {"users": [], "identities": [], "provider_tokens": []}
    assert browser.finish_login(callback).status_code == 200
    assert browser.me().status_code == 200
    assert_stored_login(database, provider, browser.identity()["subject"])


def test_missing_state(browser, provider, database) -> None:
    callback = browser.start_login(provider)
    params = {"code": query(callback)["code"], **issuer_param(callback)}
    response = browser.get(f"/auth/{provider}/callback", params=params)
    assert "cookies" in response.text
    assert_refused_and_the_real_sign_in_goes_on(response, browser, database, provider, callback)


def test_forged_state(browser, provider, database) -> None:
    callback = browser.start_login(provider)
    response = browser.get(
        f"/auth/{provider}/callback", params={"code": query(callback)["code"], "state": "forged"}
    )
    assert_refused_and_the_real_sign_in_goes_on(response, browser, database, provider, callback)


def test_a_planted_callback_does_not_cancel_the_pending_sign_in(app, provider, database) -> None:
    """Login CSRF: the attacker's own callback (their code and state) sent to the victim's
    browser, while the victim is signing in."""
    victim = Browser(app.url)
    callback = victim.start_login(provider)
    planted = Browser(app.url).start_login(provider)
    response = victim.get(planted.split("#")[0])
    assert_refused_and_the_real_sign_in_goes_on(response, victim, database, provider, callback)


def test_a_failed_attempt_leaves_the_other_pending_one(browser, provider, mock) -> None:
    """Two tabs signing in: one fails at the provider, the other still finishes."""
    first = browser.start_login(provider, next_path="/account")
    second = browser.start_login(provider, next_path="/account")
    mock.control.switch(provider, token_http_status=503)
    assert browser.finish_login(first).status_code == 502
    mock.control.switch(provider, token_http_status=None)
    assert browser.finish_login(second).status_code == 200
    assert browser.me().status_code == 200
    assert browser.hops[-1].endswith("/account")  # the pending `next` was kept too


def test_replayed_callback(browser, provider, redis_db) -> None:
    callback = browser.start_login(provider)
    browser.finish_login(callback)
    browser.get("/")  # signed in
    attacker = Browser(browser.app_url)
    response = attacker.finish_login(callback)
    assert response.status_code == 400 and "invalid_state" in response.text


def test_replayed_code_with_fresh_state(app, provider, redis_db) -> None:
    victim = Browser(app.url)
    callback = victim.start_login(provider)
    victim.finish_login(callback)
    assert victim.me().status_code == 200  # the code is now redeemed
    used_code = query(callback)["code"]
    attacker = Browser(app.url)
    own = attacker.start_login(provider)
    params = {"code": used_code, "state": query(own)["state"], **issuer_param(own)}
    response = attacker.get(f"/auth/{provider}/callback", params=params)
    assert response.status_code == 400 and "token_error" in response.text
    assert attacker.me().status_code == 401


def test_error_redirect_with_unknown_state_is_refused(
    browser, provider, redis_db, database
) -> None:
    response = browser.get(
        f"/auth/{provider}/callback", params={"error": "access_denied", "state": "nope"}
    )
    assert_failed_cleanly(response, browser, redis_db, database, 400, "invalid_state")


def test_failures_answer_json_when_asked(browser, provider) -> None:
    response = browser.get(
        f"/auth/{provider}/callback",
        params={"code": "x", "state": "y"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_state" and body["hint"]


def test_token_endpoint_5xx_is_a_502_and_the_login_can_be_retried(
    browser, provider, mock, redis_db, database
) -> None:
    mock.control.switch(provider, token_http_status=503)
    response = browser.finish_login(browser.start_login(provider))
    assert_failed_cleanly(response, browser, redis_db, database, 502, "provider_unavailable")
    mock.control.switch(provider, token_http_status=None)
    assert browser.login(provider).status_code == 200
    assert browser.me().status_code == 200


def test_provider_timeout_is_a_504(variant, provider, mock, redis_db, database) -> None:
    app = variant(OAUTH_HTTP_TIMEOUT="0.5")
    browser = Browser(app.url)
    mock.control.switch(provider, delay=1.5)
    response = browser.finish_login(browser.start_login(provider))
    assert_failed_cleanly(response, browser, redis_db, database, 504, "provider_timeout")


def test_signed_in_user_is_kept_when_a_later_login_fails(browser, provider, mock) -> None:
    browser.login(provider)
    mock.control.switch(provider, deny=True)
    response = browser.finish_login(browser.start_login(provider))
    assert response.status_code == 403
    assert browser.me().status_code == 200


# --- logout and the API -------------------------------------------------------------


def test_logout_deletes_the_server_side_session(browser, provider, redis_db) -> None:
    browser.login(provider)
    old_cookie = browser.cookie()
    token = browser.csrf_token()
    response = browser.http.post(
        f"{browser.app_url}/logout", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status_code == 303
    assert "session=;" in response.headers["Set-Cookie"]
    assert not session_keys(redis_db)
    replay = Browser(browser.app_url)
    replay.http.cookies.set("session", old_cookie)
    assert replay.me().status_code == 401


def test_logout_refuses_get(browser) -> None:
    assert browser.get("/logout").status_code == 405


@pytest.mark.parametrize(
    ("headers", "with_token"),
    [
        ({"Origin": "https://evil.example"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({}, False),
    ],
)
def test_cross_site_logout_is_refused(browser, headers, with_token) -> None:
    browser.login(PROVIDERS[0])
    data = {"csrf_token": browser.csrf_token()} if with_token else {}
    response = browser.http.post(
        f"{browser.app_url}/logout", data=data, headers=headers, allow_redirects=False
    )
    assert response.status_code == 403
    assert browser.me().status_code == 200


def test_api_me_unauthenticated_is_401_json(browser) -> None:
    response = browser.me()
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"]
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ["/login/nope", "/auth/nope/callback", "/login/NOPE"])
def test_unknown_provider_is_404(browser, path) -> None:
    assert browser.get(path).status_code == 404


def test_healthz(browser) -> None:
    assert browser.get("/healthz").json() == {"status": "ok"}


def test_healthz_is_503_when_redis_is_down(variant) -> None:
    app = variant(REDIS_URL="redis://127.0.0.1:1/0")
    response = requests.get(f"{app.url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
