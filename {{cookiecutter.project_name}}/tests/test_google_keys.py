"""Google's signing keys (JWKS): cached as long as Google's Cache-Control says, no longer.

Google: cache the keys "using the cache directives of the HTTP response"
(https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken). A
key Google withdraws must stop being trusted without a restart, and ID tokens naming kids
nobody published must not make the app fetch the keys again and again. Each test starts an
app of its own: the key set is cached per process, in the app's Google client.
"""

from __future__ import annotations

import time

import requests
from conftest import Browser
from test_google import counts, failed_login


def test_certs_carry_googles_cache_control(mock) -> None:
    url = f"{mock.url}/google/oauth2/v3/certs"
    assert requests.get(url, timeout=10).headers["Cache-Control"] == (
        "public, max-age=21600, must-revalidate, no-transform"
    )
    mock.control.switch("google", certs_max_age=2)
    response = requests.get(url, timeout=10)
    assert response.headers["Cache-Control"] == "public, max-age=2, must-revalidate, no-transform"
    assert response.json()["keys"]


def test_the_key_set_is_fetched_again_once_its_max_age_ran_out(variant, mock) -> None:
    mock.control.switch("google", certs_max_age=2)
    app = variant()
    for _ in range(2):
        assert Browser(app.url).login("google").status_code == 200
    assert counts(mock)["certs"] == 1  # fresh for 2 s: one fetch for both logins
    time.sleep(2.1)
    assert Browser(app.url).login("google").status_code == 200
    assert counts(mock)["certs"] == 2  # stale: fetched again before use
    assert counts(mock)["discovery"] == 1  # the discovery document stays cached


def test_a_withdrawn_key_stops_being_trusted_after_max_age(variant, mock) -> None:
    mock.control.switch("google", certs_max_age=1)
    app = variant()
    assert Browser(app.url).login("google").status_code == 200  # caches the current key
    mock.control.rotate_keys("google")  # Google withdraws that key...
    mock.control.switch("google", kid="withdrawn")  # ...which still signs (say it leaked)
    time.sleep(1.2)  # past the max-age of the set that still had it: no restart
    browser = Browser(app.url)
    response = browser.login("google")
    assert response.status_code == 400 and "invalid_id_token" in response.text
    assert "<code>invalid_key_id</code>" in response.text
    assert browser.me().status_code == 401
    assert counts(mock)["userinfo"] == 0
    mock.control.switch("google", kid="published")
    assert Browser(app.url).login("google").status_code == 200  # the new key is trusted


def test_forged_kids_refetch_the_key_set_at_most_once_per_interval(
    variant, mock, redis_db, database
) -> None:
    app = variant()
    mock.control.switch("google", kid="unpublished")
    for _ in range(8):
        response = failed_login(Browser(app.url), mock, redis_db, database, 400, "invalid_id_token")
        assert "<code>invalid_key_id</code>" in response.text
    # The first fetch, then one forced re-fetch for the unknown kid; the other seven forged
    # tokens are refused from the cache (JWKS_REFETCH_INTERVAL is 30 s).
    assert counts(mock)["certs"] == 2
    mock.control.switch("google", kid="published")
    assert Browser(app.url).login("google").status_code == 200
    assert counts(mock)["certs"] == 2  # the genuine key was in the cached set
