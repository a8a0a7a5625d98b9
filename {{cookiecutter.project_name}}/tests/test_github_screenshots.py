"""The READMEs' screenshots (docs/screenshots): the sign-in page of the default bake, and
the account page of someone signed in with GitHub, taken in a real headless Chromium.

The test fails when a page no longer matches the outline its picture was taken of
(`*.outline.yml`); `UPDATE_SCREENSHOTS=1 pytest -k screenshots` takes them again.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from playwright.sync_api import Page, expect

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
CREDENTIALS = ("CLIENT_ID", "CLIENT_SECRET")
UPDATE = "UPDATE_SCREENSHOTS"
# What changes from run to run on the account page: times, the address, the browser.
VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"), "<time>"),
    (re.compile(r"\d+\.\d+\.\d+\.\d+"), "<ip>"),
    (re.compile(r"\w*Chrom\w* on \w+"), "<browser>"),  # HeadlessChrome, Chromium...
]


def page_outline(page: Page) -> str:
    """The page's content as the accessibility tree sees it, without what varies."""
    outline = page.locator("main").aria_snapshot()
    for pattern, placeholder in VOLATILE:
        outline = pattern.sub(placeholder, outline)
    return outline + "\n"


def check_or_update(page: Page, name: str, tmp_path: Path) -> None:
    """Compare the page with the outline its committed screenshot was taken of.

    With UPDATE_SCREENSHOTS=1, take the screenshot and record its outline instead (the
    template's `make screenshots` does it in a default bake and copies them back).
    """
    outline = page_outline(page)
    png, recorded = SCREENSHOTS / f"{name}.png", SCREENSHOTS / f"{name}.outline.yml"
    if os.environ.get(UPDATE) == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(png), full_page=True)
        recorded.write_text(outline)
        return
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)  # it renders
    assert png.is_file(), f"{png} is missing: {UPDATE}=1 pytest -k screenshots writes it"
    assert outline == recorded.read_text(), (
        f"the {name} page changed since its screenshot was taken: run `make screenshots` in "
        f"the template (or {UPDATE}=1 pytest -k screenshots here) and commit docs/screenshots"
    )


def pictured() -> set[str]:
    """The providers whose button the sign-in picture shows (a default bake's)."""
    recorded = (SCREENSHOTS / "sign-in.outline.yml").read_text()
    return {name for name, cls in PROVIDER_CLASSES.items() if f"with {cls.title}" in recorded}


def test_the_readme_screenshots_show_the_pages_as_they_are(chromium, variant, mock, tmp_path):
    if not SCREENSHOTS.is_dir():  # baked without one of the providers they show
        pytest.skip("the screenshots go with the default bake, every provider in it")
    # A bake with more providers takes them with just the pictured ones configured.
    others = [cls for name, cls in PROVIDER_CLASSES.items() if name not in pictured()]
    app = variant(**{f"{cls.env_prefix}_{part}": None for cls in others for part in CREDENTIALS})
    context = chromium.new_context(viewport={"width": 900, "height": 640})
    page = context.new_page()
    try:
        page.goto(f"{app.url}/login")
        check_or_update(page, "sign-in", tmp_path)
        mock.control.switch("github", user="ada")
        page.goto(f"{app.url}/login/github")  # the mock approves at once
        page.wait_for_url(f"{app.url}/")
        page.goto(f"{app.url}/account")
        page.get_by_label("Token name").fill("backup script")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator("tr[data-token]")).to_have_count(1)
        page.reload()  # the list as it stays, without the one-time secret
        check_or_update(page, "account", tmp_path)
    finally:
        context.close()
