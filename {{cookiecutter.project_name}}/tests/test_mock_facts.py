"""The facts each mock declares (mock_providers/facts.py) are true of the mock and the app.

The cross-provider tests trust these facts to pick switches, counters and people; a fact
that is wrong would make them test the wrong thing, or nothing. So each fact is checked
here against the running mock and the app, for every enabled provider.
"""

from __future__ import annotations

import pytest
from conftest import FACTS, PROVIDERS, Browser, is_oidc
from test_tokens import grant_of, load

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def switch_sets(provider: str) -> list[dict]:
    """Every set of switches the facts name."""
    facts = FACTS[provider]
    found = [dict(facts.most_tokens), dict(facts.token_refused or {})]
    if facts.refresh:
        found += [dict(facts.refresh.expiring), dict(facts.refresh.long_lived)]
    for limit in facts.rate_limits:
        found += [dict(limit.switches), dict(limit.undo)]
    return found


def test_every_provider_of_the_app_has_a_mock_with_facts() -> None:
    assert list(FACTS) == list(PROVIDER_CLASSES)
    assert all(FACTS[name].name == name for name in FACTS)


def test_endpoints_switches_and_variables_are_the_mocks(mock, provider) -> None:
    facts = FACTS[provider]
    endpoints = mock.control.requests()[provider]
    for endpoint in (
        facts.authorize_endpoint,
        facts.token_endpoint,
        facts.profile_endpoint,
        facts.revoke_endpoint,
    ):
        assert endpoint is None or endpoint in endpoints
    defaults = mock.control.switches()[provider]
    for switches in switch_sets(provider):
        mock.control.switch(provider, **switches)  # a typo raises ValueError
    for limit in facts.rate_limits:
        mock.control.reset()
        assert mock.control.switch(provider, **limit.switches) != defaults
        assert mock.control.switch(provider, **limit.undo) == defaults  # lifted again
    assert facts.api_variable in mock.app_env()
    assert facts.api_variable in PROVIDER_CLASSES[provider].url_settings
    assert is_oidc(provider) == (facts.issuer is not None)  # the app and the mock agree


def test_the_people_are_who_the_facts_say(app, mock, provider) -> None:
    facts = FACTS[provider]
    ada = Browser(app.url)
    assert ada.login(provider).status_code == 200
    first = ada.me().json()
    assert (first["email"], first["email_verified"]) == (facts.email, facts.email_verified)

    mock.control.switch(provider, user=facts.other_persona)
    other = Browser(app.url)
    assert other.login(provider).status_code == 200
    second = other.me().json()
    assert second["identities"][0]["subject"] != first["identities"][0]["subject"]
    assert second["email"] != first["email"] or second["email"] is None


def test_removing_the_app_kills_the_token_at_the_provider(browser, app, mock, provider) -> None:
    assert browser.login(provider).status_code == 200
    uid = browser.me().json()["id"]
    env = mock.app_env()
    access_token = load(app, uid, provider).access_token
    assert FACTS[provider].token_works(env, access_token)
    FACTS[provider].remove_app(mock.control, env, grant_of(app, uid, provider))
    assert not FACTS[provider].token_works(env, access_token)
