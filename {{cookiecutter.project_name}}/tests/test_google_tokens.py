"""Google's tokens: refreshed only when due, never rotated, a refresh token only from a
consent screen (moved here from test_tokens.py, which holds what every provider shares), and
its one refusal of a revocation that means done (from test_provider_bases.py)."""

from __future__ import annotations

import time

import pytest
from conftest import query
from test_provider_bases import adapter_and_client, served_issuer, stored
from test_tokens import counts, delete, load, profile, save, user_id

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.providers.errors import RevocationIncomplete
from {{ cookiecutter.package_name }}.tokens import StoredToken

# --- refresh before an API call -----------------------------------------------------


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


def test_google_token_with_life_left_is_not_refreshed(browser, app, mock) -> None:
    browser.login("google")  # expires_in 3599
    for _ in range(3):
        assert profile(browser, "google").status_code == 200
    assert counts(mock, "google")["token"] == 1
    assert counts(mock, "google")["userinfo"] == 3


# --- when to ask for consent again ---------------------------------------------------


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


# --- revocation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "done"), [({"error": "invalid_token"}, True), ({"error": "invalid_request"}, False)]
)
def test_google_counts_its_400_invalid_token_as_revoked(body, done) -> None:
    """Google documents 400 invalid_token as "already revoked"; a real issuer over HTTP."""
    with served_issuer() as issuer:
        issuer.revoke_answer = (400, body)
        provider, client = adapter_and_client(issuer, PROVIDER_CLASSES["google"])
        if done:
            provider.revoke(client, stored(), "subject")
        else:
            with pytest.raises(RevocationIncomplete):
                provider.revoke(client, stored(), "subject")
