"""Facebook's "try again" (codes 1 and 2, `is_transient`) and its usage header.

Graph answers a passing fault with code 1 ("An unknown error has occurred.") or 2 ("An
unexpected error has occurred. Please retry your request later."), `"is_transient": true`,
under HTTP 500 or even 400/401 with `type: OAuthException`. That is never a dead token: the
person is told to try again (503 with Retry-After), a link is never marked "reconnect", and a
revocation is tried again or reported, never counted as done. Throttling stays a rate limit,
and its Retry-After comes from X-App-Usage (the header of user- and app-token calls).
"""

from __future__ import annotations

import pytest
from conftest import Browser
from test_facebook import (
    ADA_ID,
    counts,
    failed_login,
    graph_get,
    permissions_at_facebook,
    submit,
)
from test_facebook import user_token as mock_user_token
from test_linking import disconnect_form, other_than, post, providers_of
from test_tokens import assert_reconnect_shown, load, profile, user_id

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

TRANSIENT = [
    pytest.param(2, 500, id="code2-http500"),
    pytest.param(1, 401, id="code1-http401"),
    pytest.param(2, 400, id="code2-http400"),
]
needs_two = pytest.mark.skipif(len(PROVIDER_CLASSES) < 2, reason="baked with a single provider")


# --- the mock ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), TRANSIENT)
def test_mock_transient_errors_are_graphs(mock, code, status) -> None:
    token = mock_user_token(mock)
    mock.control.switch("facebook", transient=code, transient_status=status)
    for path, method in [("me", "GET"), (f"{ADA_ID}/permissions", "DELETE")]:
        response = graph_get(mock, path, token, method)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == code and error["is_transient"] is True
        assert error["type"] == "OAuthException" and error["fbtrace_id"]
    mock.control.switch("facebook", transient=None)
    assert permissions_at_facebook(mock)["email"] == "granted"  # the DELETE removed nothing


def test_mock_transient_calls_count_down(mock) -> None:
    token = mock_user_token(mock)
    mock.control.switch("facebook", transient=2, transient_calls=2)
    assert [graph_get(mock, "me", token).status_code for _ in range(3)] == [500, 500, 200]
    assert mock.control.switches()["facebook"]["transient_calls"] == 0


@pytest.mark.parametrize(
    "values", [{"transient": 3}, {"transient": "2"}, {"transient_status": 200}]
)
def test_mock_transient_switches_are_validated(mock, values) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        mock.control.switch("facebook", **values)


# --- the app: a passing fault is never a dead token ---------------------------------------


@pytest.mark.parametrize(("code", "status"), TRANSIENT)
def test_a_transient_error_at_sign_in_is_a_503_to_retry(
    browser, mock, redis_db, database, code, status
) -> None:
    response = failed_login(
        browser,
        mock,
        redis_db,
        database,
        503,
        "provider_unavailable",
        transient=code,
        transient_status=status,
    )
    assert int(response.headers["Retry-After"]) > 0
    assert 'id="retry" href="/login/facebook"' in response.text
    mock.control.switch("facebook", transient=None)
    assert browser.login("facebook").status_code == 200


def test_a_transient_token_endpoint_answer_under_4xx_is_a_503(
    browser, mock, redis_db, database
) -> None:
    """The token endpoint's "try again" (code 2, is_transient) under a 401: not a refusal."""
    response = failed_login(
        browser, mock, redis_db, database, 503, "provider_unavailable", token_http_status=401
    )
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("code", "status"), TRANSIENT)
def test_a_transient_error_keeps_the_link(browser, app, mock, code, status) -> None:
    browser.login("facebook")
    mock.control.switch("facebook", transient=code, transient_status=status)
    response = profile(browser, "facebook")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "provider_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert not load(app, user_id(browser), "facebook").reauth_required
    assert_reconnect_shown(browser, "facebook", shown=False)
    mock.control.switch("facebook", transient=None)
    assert profile(browser, "facebook").status_code == 200


# --- revocation: tried again, or reported -------------------------------------------------


def test_a_transient_error_while_revoking_is_tried_again(variant, mock) -> None:
    running = variant(REVOKE_ON_LOGOUT="true")
    browser = Browser(running.url)
    browser.login("facebook")
    mock.control.switch("facebook", transient=2, transient_calls=1)
    before = counts(mock)["permissions"]
    assert "unrevoked" not in submit(browser, "/logout")
    assert counts(mock)["permissions"] == before + 2  # the fault, then the retry
    assert permissions_at_facebook(mock) == {}  # the app left the person's settings


def test_a_lasting_transient_error_is_reported_never_counted_as_done(app, mock) -> None:
    browser = Browser(app.url)
    browser.login("facebook")
    mock.control.switch("facebook", transient=2)
    location = submit(browser, "/account/delete")
    assert "unrevoked=facebook" in location
    page = browser.get(location).text
    assert 'class="notice warn unrevoked" data-provider="facebook"' in page
    mock.control.switch("facebook", transient=None)
    assert permissions_at_facebook(mock)["email"] == "granted"  # still authorised there


@needs_two
def test_disconnect_during_a_transient_error_keeps_the_link(app, mock) -> None:
    browser = Browser(app.url)
    browser.login(other_than("facebook"))
    browser.login("facebook")
    action, data = disconnect_form(browser, "facebook")
    mock.control.switch("facebook", transient=1, transient_status=401)
    response = post(browser, action, data)
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "facebook" in providers_of(browser)
    mock.control.switch("facebook", transient=None)
    assert permissions_at_facebook(mock)["email"] == "granted"


# --- throttling: X-App-Usage ------------------------------------------------------------


@pytest.mark.parametrize(("percent", "retry_after"), [(100, 60), (150, 1200), (400, 2700)])
def test_retry_after_comes_from_x_app_usage(
    browser, mock, redis_db, database, percent, retry_after
) -> None:
    """Platform rate limits count calls over a rolling hour; the further over, the longer."""
    response = failed_login(
        browser, mock, redis_db, database, 503, "provider_rate_limited", usage_percent=percent
    )
    assert int(response.headers["Retry-After"]) == retry_after
