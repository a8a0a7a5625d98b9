"""Facebook in a real headless Chromium: the "#_=_" it appends to its redirect, which
browsers keep through our redirects, is removed by its page script on any page it lands on
(`FacebookProvider.page_scripts`, static/facebook_fragment.js)."""

from __future__ import annotations

from playwright.sync_api import expect
from test_browser import Watched


def test_the_fragment_facebook_appends_is_removed_on_any_page(chromium, app) -> None:
    watched = Watched(chromium, app.url)
    page = watched.page
    try:
        for path in ("/?from=facebook", "/login", "/no-such-page"):
            page.goto(f"{app.url}{path}#_=_")
            expect(page).to_have_url(f"{app.url}{path}")
        assert [p for p in watched.problems if "status of 404" not in p] == []
        assert watched.violations() == []
    finally:
        watched.close()
