"""Revoking Facebook after the user token expired, died, or was never kept.

A user token lives about 60 days and its data access 90; the person's grant lives on. Graph
refuses a dead user token with 190 and removes nothing, so that answer is never "already
revoked": `DELETE /{app-scoped-user-id}/permissions` with the app access token
`{app-id}|{app-secret}` removes the app from the person's settings whatever became of the
user token (Graph's "User Permissions" reference).
"""

from __future__ import annotations

import time

import pytest
import requests
import sqlalchemy as sa
from conftest import Browser
from test_facebook import (
    ADA_ID,
    app_token,
    counts,
    graph,
    graph_get,
    permissions_at_facebook,
    submit,
)
from test_facebook import user_token as mock_user_token
from test_tokens import load, user_id


def delete_with(mock, token: str, subject: str = ADA_ID) -> requests.Response:
    return requests.delete(
        f"{graph(mock)}/{subject}/permissions", params={"access_token": token}, timeout=10
    )


def wait_until_expired(mock, running, uid: str) -> None:
    """Until the stored token has expired for the app and for Graph (190/463) alike."""
    token = load(running, uid, "facebook")
    assert token.expires_at is not None
    deadline = time.monotonic() + 5
    while not token.expires_within(0) or graph_get(mock, "me", token.access_token).ok:
        assert time.monotonic() < deadline, "the token did not expire"
        time.sleep(0.2)
    error = graph_get(mock, "me", token.access_token).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 463)


# --- the mock ---------------------------------------------------------------------------


def test_mock_refuses_an_expired_user_token_with_190_and_keeps_the_grant(mock) -> None:
    mock.control.switch("facebook", expires_in=1)
    token = mock_user_token(mock)
    time.sleep(1.2)
    refused = graph_get(mock, f"{ADA_ID}/permissions", token, "DELETE")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert permissions_at_facebook(mock) == {"public_profile": "granted", "email": "granted"}


@pytest.mark.parametrize(
    ("failure", "subcode"), [("password_changed", 460), ("data_access_expired", 493)]
)
def test_mock_dead_user_tokens_cannot_revoke(mock, failure, subcode) -> None:
    token = mock_user_token(mock)
    mock.control.switch("facebook", user_token_failure=failure)
    for path, method in [("me", "GET"), (f"{ADA_ID}/permissions", "DELETE")]:
        error = graph_get(mock, path, token, method).json()["error"]
        assert (error["code"], error["error_subcode"]) == (190, subcode)
    assert permissions_at_facebook(mock)["email"] == "granted"


def test_mock_accepts_the_app_token_and_refuses_a_wrong_one(mock) -> None:
    token = mock_user_token(mock)
    wrong = f"{mock.settings.client_id('facebook')}|{'0' * 32}"
    refused = delete_with(mock, wrong)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == 190
    assert "signature" in refused.json()["error"]["message"]
    assert permissions_at_facebook(mock)["email"] == "granted"

    assert delete_with(mock, app_token(mock)).json() == {"success": True}
    assert permissions_at_facebook(mock) == {}  # gone from the person's settings
    error = graph_get(mock, "me", token).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 458)  # and every token with it


# --- the app ------------------------------------------------------------------------------


def test_sign_out_revokes_with_the_app_token_once_the_user_token_expired(variant, mock) -> None:
    running = variant(REVOKE_ON_LOGOUT="true")
    browser = Browser(running.url)
    mock.control.switch("facebook", expires_in=2)
    assert browser.login("facebook").status_code == 200
    wait_until_expired(mock, running, user_id(browser))
    before = counts(mock)["permissions"]
    assert "unrevoked" not in submit(browser, "/logout")
    assert counts(mock)["permissions"] == before + 1  # known expired: straight to the app token
    assert permissions_at_facebook(mock) == {}


@pytest.mark.parametrize("failure", ["password_changed", "data_access_expired"])
def test_deletion_with_a_dead_user_token_revokes_with_the_app_token(app, mock, failure) -> None:
    browser = Browser(app.url)
    browser.login("facebook")
    mock.control.switch("facebook", user_token_failure=failure)
    before = counts(mock)["permissions"]
    assert "unrevoked" not in submit(browser, "/account/delete")
    assert counts(mock)["permissions"] == before + 2  # refused (190), then the app token
    assert permissions_at_facebook(mock) == {}


def test_deletion_without_a_stored_token_revokes_with_the_app_token(app, mock, database) -> None:
    browser = Browser(app.url)
    browser.login("facebook")
    with database.begin() as connection:
        connection.execute(sa.text("DELETE FROM provider_tokens WHERE provider = 'facebook'"))
    assert "unrevoked" not in submit(browser, "/account/delete")
    assert permissions_at_facebook(mock) == {}


def test_an_app_token_facebook_refuses_is_reported_not_counted_as_done(variant, mock) -> None:
    """Restarted with another App Secret: the proof and the app token are both refused."""
    browser = Browser(variant(REVOKE_ON_LOGOUT="true").url)
    browser.login("facebook")
    variant(REVOKE_ON_LOGOUT="true", FACEBOOK_CLIENT_SECRET="f" * 32)
    assert "unrevoked=facebook" in submit(browser, "/logout")
    assert permissions_at_facebook(mock)["email"] == "granted"
