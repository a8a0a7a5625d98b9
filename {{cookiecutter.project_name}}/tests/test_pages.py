"""What the pages offer: the brand, error pages that fit the visitor, calm notices."""

from __future__ import annotations

import re

import pytest
from conftest import Browser
from test_api_tokens import cli, sign_in

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

PROVIDERS = list(PROVIDER_CLASSES)


def ids(page: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page))


def test_the_brand_is_the_project_name(browser: Browser) -> None:
    page = browser.get("/").text
    brand = re.search(r'<a class="brand"[^>]*>([^<]*)</a>', page)
    assert brand and brand.group(1) == "{{ cookiecutter.project_name }}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_cancelled_sign_in_is_a_calm_notice_with_try_again(browser, mock, provider) -> None:
    mock.control.switch(provider, deny=True)
    response = browser.finish_login(browser.start_login(provider))
    assert response.status_code == 403
    page = response.text
    assert '<section class="error calm" data-error="access_denied">' in page
    assert f'id="retry" href="/login/{provider}"' in page
    assert "to-sign-in" not in ids(page)  # "Try again" is the way to sign in here


def test_error_pages_offer_what_fits_the_visitor(app, mock) -> None:
    anonymous = Browser(app.url).get("/no-such-page")
    assert anonymous.status_code == 404
    assert "to-sign-in" in ids(anonymous.text) and "to-account" not in ids(anonymous.text)
    signed_in = sign_in(app.url, mock).get("/no-such-page")
    assert signed_in.status_code == 404
    assert "to-account" in ids(signed_in.text) and "to-sign-in" not in ids(signed_in.text)
    assert "Back to sign in" not in signed_in.text


def test_the_admin_scope_is_offered_only_to_admins(app, mock, app_env) -> None:
    browser = sign_in(app.url, mock)
    admin_box = 'name="scopes" value="admin"'
    page = browser.get("/account").text
    assert 'name="scopes" value="profile:read"' in page and admin_box not in page
    user_id = browser.me().json()["id"]
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    assert admin_box in browser.get("/account").text


def test_a_revocation_left_to_the_person_names_where_to_do_it(app, browser: Browser) -> None:
    provider = PROVIDERS[0]
    adapter = app.app.extensions["providers"][provider]  # the page may depend on a URL setting
    page = browser.get("/", params={"unrevoked": f"{provider},nonsense,{provider}"}).text
    notices = re.findall(r'<p class="notice warn unrevoked" data-provider="([^"]+)"', page)
    assert notices == [provider]  # unknown names are ignored, each provider said once
    assert f'href="{adapter.user_apps_url}"' in page
    assert not re.findall("unrevoked", browser.get("/").text)
