"""A real headless Chromium signs in through the mock providers' consent page.

Debian's Chromium is driven by Playwright (`executable_path`), so no browser download is
needed; `make test` checks that /usr/bin/chromium exists and says how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, expect, sync_playwright
from test_api_tokens import TOKEN_RE

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: run `sudo apt-get install -y chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.mark.parametrize("provider", list(PROVIDER_CLASSES))
def test_sign_in_by_clicking_through_the_consent_page(chromium, app, mock, provider) -> None:
    mock.control.switch(provider, interactive=True)
    page = chromium.new_page()
    try:
        page.goto(f"{app.url}/login")
        page.get_by_role("link", name=f"Sign in with {PROVIDER_CLASSES[provider].title}").click()
        expect(page.locator("#approve")).to_be_visible()
        page.click("#approve")
        page.wait_for_url(f"{app.url}/")
        expect(page.locator("#welcome")).to_contain_text("Signed in as")
        assert "#_=_" not in page.url  # Facebook's fragment is cleaned up
        page.get_by_role("link", name="Account", exact=True).click()
        expect(page.locator("#name")).not_to_be_empty()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
    finally:
        page.close()


def test_create_and_revoke_an_api_token_on_the_account_page(chromium, app) -> None:
    provider = next(iter(PROVIDER_CLASSES))
    page = chromium.new_page()

    def bearer_status(secret: str) -> int:
        headers = {"Authorization": f"Bearer {secret}"}
        return requests.get(f"{app.url}/api/me", headers=headers, timeout=10).status_code

    try:
        page.goto(f"{app.url}/login/{provider}")  # the mock approves at once
        page.wait_for_url(f"{app.url}/")
        page.goto(f"{app.url}/account")
        page.get_by_label("Token name").fill("laptop script")
        page.get_by_role("button", name="Create token").click()
        shown = page.locator("#token-secret")
        expect(shown).to_have_text(TOKEN_RE)
        secret = shown.inner_text()
        assert page.content().count(secret) == 1  # shown once, in one place
        assert bearer_status(secret) == 200
        page.reload()
        assert secret not in page.content()  # never shown again
        rows = page.locator("tr[data-token]")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("laptop script")
        rows.get_by_role("button", name="Revoke").click()
        expect(page.locator("tr[data-token]")).to_have_count(0)
        assert bearer_status(secret) == 401
        expect(page).to_have_title("Your account")
    finally:
        page.close()
