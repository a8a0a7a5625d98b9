"""What every OpenID Connect provider's sign-in checks beyond the ID token, against its mock.

The discovery document is used only when it names the configured issuer (OpenID Connect
Discovery 4.3); the callback's `iss` must name it too (RFC 9207, the defence against a
mixed-up provider); an ID token signed with another public-key algorithm than RS256 gets a
page that says which setting to change. Each refusal leaves nothing behind.

An app keeps the discovery document (and the keys) it loaded for its life: a test that
switches what they say signs in through an app of its own (`variant`), so the shared app
never caches a switched document.
"""

from __future__ import annotations

import pytest
from conftest import PROVIDERS, Browser, cases_or_skip, is_oidc, query
from test_login import assert_failed_cleanly

OIDC = cases_or_skip([p for p in PROVIDERS if is_oidc(p)], "no OpenID Connect provider baked")


def token_requests(mock, provider: str) -> int:
    return mock.control.requests()[provider]["token"]


@pytest.mark.parametrize("provider", OIDC)
@pytest.mark.parametrize("how", ["wrong", "wrong-unadvertised", "missing"])
def test_a_callback_without_the_issuers_iss_is_refused(
    variant, mock, redis_db, database, provider, how
) -> None:
    mock.control.switch(provider, response_iss=how)  # all but "wrong-unadvertised" advertise it
    browser = Browser(variant().url)
    callback = browser.start_login(provider)
    assert ("iss" in query(callback)) == how.startswith("wrong")
    response = browser.finish_login(callback)
    assert_failed_cleanly(response, browser, redis_db, database, 400, "issuer_mismatch")
    assert "does not come from" in response.text
    assert token_requests(mock, provider) == 0  # the code never went anywhere


@pytest.mark.parametrize("provider", OIDC)
def test_a_callback_with_the_issuers_iss_signs_in(variant, mock, provider) -> None:
    mock.control.switch(provider, response_iss="correct")
    browser = Browser(variant().url)
    callback = browser.start_login(provider)
    assert query(callback)["iss"]
    assert browser.finish_login(callback).status_code == 200
    assert browser.me().status_code == 200


@pytest.mark.parametrize("provider", OIDC)
def test_a_discovery_document_naming_another_issuer_is_not_used(
    variant, mock, redis_db, database, provider
) -> None:
    mock.control.switch(provider, discovery_issuer="https://evil.example")
    browser = Browser(variant().url)
    response = browser.get(f"/login/{provider}", headers={"Accept": "text/html"})
    assert_failed_cleanly(response, browser, redis_db, database, 502, "discovery_issuer_mismatch")
    assert "https://evil.example" in response.text
    assert mock.control.requests()[provider]["authorize"] == 0  # nobody was sent there


@pytest.mark.parametrize("provider", OIDC)
def test_an_id_token_signed_with_es256_says_which_setting_to_change(
    variant, mock, redis_db, database, provider
) -> None:
    mock.control.switch(provider, alg="ES256")  # its key set has the EC key too
    browser = Browser(variant().url)
    response = browser.login(provider)
    assert_failed_cleanly(response, browser, redis_db, database, 400, "id_token_algorithm")
    assert "signed the identity token with ES256" in response.text
    assert "RS256" in response.text
