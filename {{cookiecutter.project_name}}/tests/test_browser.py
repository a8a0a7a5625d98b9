"""A real headless Chromium (conftest's `chromium`) signs in through the mock providers'
consent page.

Every page the app serves is watched: a console error, an uncaught script error or a
Content-Security-Policy violation fails the test, so the policy can never silently break
a page (an inline script it blocks, an avatar host it does not allow).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, expect
from test_api_tokens import TOKEN_RE

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

# Recorded in the page before any of its own scripts run; a policy violation is an event
# of the document (Chromium also logs it to the console as an error).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || document.location.href}:${event.lineNumber}`);
});
"""


class Watched:
    """A page whose console errors, uncaught errors and CSP violations are collected."""

    def __init__(self, chromium: Browser, app_url: str) -> None:
        self.app_url = app_url
        self.page = chromium.new_page()
        self.problems: list[str] = []
        self.page.add_init_script(RECORD_VIOLATIONS)
        self.page.on("console", self.console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))

    def console(self, message) -> None:
        """Errors of this app's pages (the mock providers' pages are not under test here)."""
        url = message.location.get("url") or self.page.url
        if message.type == "error" and url.startswith(self.app_url):
            self.problems.append(f"{message.text} ({url})")

    def violations(self) -> list[str]:
        """The violations recorded by the page now shown (if it is one of the app's)."""
        if not self.page.url.startswith(self.app_url):
            return []
        return self.page.evaluate("window.__cspViolations || []")

    def assert_clean(self) -> None:
        problems = self.problems + self.violations()
        assert not problems, problems

    def close(self) -> None:
        self.page.close()


@pytest.fixture()
def watched(chromium, app) -> Iterator[Watched]:
    opened = Watched(chromium, app.url)
    yield opened
    opened.close()


@pytest.mark.parametrize("provider", list(PROVIDER_CLASSES))
def test_sign_in_by_clicking_through_the_consent_page(chromium, app, mock, provider) -> None:
    mock.control.switch(provider, interactive=True)
    watched = Watched(chromium, app.url)
    page = watched.page
    try:
        page.goto(f"{app.url}/login")
        page.get_by_role("link", name=f"Sign in with {PROVIDER_CLASSES[provider].title}").click()
        expect(page.locator("#approve")).to_be_visible()
        page.click("#approve")
        page.wait_for_url(f"{app.url}/")
        expect(page.locator("#welcome")).to_contain_text("Signed in as")
        assert "#_=_" not in page.url  # a provider's own leftovers are cleaned (page_scripts)
        watched.assert_clean()
        page.get_by_role("link", name="Account", exact=True).click()
        expect(page.locator("#name")).not_to_be_empty()
        watched.assert_clean()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
        watched.assert_clean()
    finally:
        watched.close()


def test_create_and_revoke_an_api_token_on_the_account_page(watched, app) -> None:
    provider = next(iter(PROVIDER_CLASSES))
    page = watched.page

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
        # The list has the new token at once, without a reload.
        rows = page.locator("tr[data-token]")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("laptop script")
        expect(page.get_by_text("No tokens yet.")).to_be_hidden()
        page.reload()
        assert secret not in page.content()  # never shown again
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("laptop script")
        rows.get_by_role("button", name="Revoke").click()
        expect(page.locator("tr[data-token]")).to_have_count(0)
        expect(page.get_by_text("No tokens yet.")).to_be_visible()
        assert bearer_status(secret) == 401
        expect(page).to_have_title("Your account")
        watched.assert_clean()
    finally:
        page.close()


def test_the_pages_run_under_the_content_security_policy(watched, app, mock) -> None:
    """Home, sign-in, account and error pages: their scripts run, nothing is blocked."""
    page = watched.page
    provider = next(iter(PROVIDER_CLASSES))
    title = PROVIDER_CLASSES[provider].title
    response = page.goto(f"{app.url}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
    page.goto(f"{app.url}/login")
    expect(page.get_by_role("link", name=f"Sign in with {title}")).to_be_visible()
    watched.assert_clean()
    page.goto(f"{app.url}/login/{provider}")  # the mock approves at once
    page.wait_for_url(f"{app.url}/")
    page.goto(f"{app.url}/account")
    expect(page.locator("#name")).not_to_be_empty()
    avatar = page.locator("img.avatar")
    if avatar.count():  # the mock's avatar, from its own (loopback http) origin
        expect(avatar).to_have_js_property("complete", True)
        assert avatar.evaluate("image => image.naturalWidth") > 0
    watched.assert_clean()
    # A confirmation guards the deletion form (a handler that used to be inline).
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    delete = page.locator("#delete-account")
    if delete.count():
        delete.click()
        expect(page.locator("#delete-account")).to_be_visible()  # dismissed: nothing sent
        assert asked == ["Delete your account and all its data?"]
        expect(page).to_have_url(f"{app.url}/account")
    watched.assert_clean()
    # An error page, at the callback URL a provider sends people back to.
    page.goto(f"{app.url}/auth/{provider}/callback?code=forged&state=forged")
    expect(page.locator("section.error")).to_be_visible()
    # The console reports the page's own 400; nothing else may be there.
    assert [p for p in watched.problems if "status of 400" not in p] == []
    assert watched.violations() == []


def test_the_pages_fit_a_phone_screen(chromium, app) -> None:
    """375 px wide (an iPhone SE or mini): no page scrolls sideways."""
    context = chromium.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    provider = next(iter(PROVIDER_CLASSES))

    def assert_fits(path: str) -> None:
        page.goto(f"{app.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide at 375 px"

    try:
        cancelled = f"/auth/{provider}/callback?error=access_denied"
        for path in ("/", "/login", "/no-such-page", cancelled):
            assert_fits(path)
        page.goto(f"{app.url}/login/{provider}")  # the mock approves at once
        page.wait_for_url(f"{app.url}/")
        page.goto(f"{app.url}/account")
        page.get_by_label("Token name").fill("a script with a rather long name, as people write")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator("#token-secret")).to_have_text(TOKEN_RE)
        for path in ("/", "/account", "/no-such-page"):
            assert_fits(path)
    finally:
        context.close()
