"""Security headers on every response: pages, JSON, errors, redirects and static files.

Real HTTP against the app, the mock providers, Redis and the database. That the pages
still work under the Content-Security-Policy is checked in a real browser in
test_browser.py; here every kind of response is collected and its headers checked.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests
from conftest import Browser
from test_api_tokens import create_token, sign_in
from test_guards import VERIFIED, VERIFIED_EMAIL, needs_verified

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

PROVIDER = next(iter(PROVIDER_CLASSES))
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
YEAR = 365 * 24 * 3600


def csp(response: requests.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy's directives: {"script-src": ["'self'"], ...}."""
    header = response.headers.get("Content-Security-Policy", "")
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


def assert_security_headers(label: str, response: requests.Response) -> None:
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, (label, name, response.headers)
    policy = csp(response)
    assert policy.get("frame-ancestors") == ["'none'"], (label, policy)
    assert policy.get("script-src") == ["'self'"], (label, policy)
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"], label


def every_kind_of_response(app_url: str, mock) -> dict[str, requests.Response]:
    """label -> response: anonymous and signed-in pages, JSON, errors, redirects, static."""
    anonymous = Browser(app_url)
    responses = {
        "page /": anonymous.get("/"),
        "page /login": anonymous.get("/login"),
        "redirect to the provider": anonymous.get(f"/login/{PROVIDER}"),
        "redirect to sign in": anonymous.get("/account"),
        "json /healthz": anonymous.get("/healthz"),
        "json 401": anonymous.get("/api/me"),
        "page 404": anonymous.get("/no-such-page"),
        "json 404": anonymous.get("/api/no-such-thing"),
        "page 405": anonymous.get("/logout"),
        "page 413": anonymous.http.post(
            f"{app_url}/logout", data="x" * 100_000, allow_redirects=False, timeout=10
        ),
        "static css": anonymous.get("/static/style.css"),
        "static js": anonymous.get("/static/site.js"),
        "static 404": anonymous.get("/static/no-such-file.js"),
    }
    browser = sign_in(app_url, mock)
    responses.update(
        {
            "page / signed in": browser.get("/"),
            "page /account": browser.get("/account"),
            "json /api/me": browser.me(),
            "json new token": create_token(browser),
            "json token list": browser.get("/api/tokens"),
        }
    )
    signed_in = Browser(app_url)
    responses["callback redirect"] = signed_in.http.get(
        signed_in.start_login(PROVIDER), allow_redirects=False, timeout=10
    )
    responses["logout redirect"] = signed_in.http.post(
        f"{app_url}/logout",
        data={"csrf_token": signed_in.csrf_token()},
        allow_redirects=False,
        timeout=10,
    )
    return responses


def test_every_response_carries_the_security_headers(app, mock) -> None:
    responses = every_kind_of_response(app.url, mock)
    statuses = {label: r.status_code for label, r in responses.items()}
    # The collection covers what it says it covers.
    assert statuses["redirect to the provider"] == 302, statuses
    assert statuses["callback redirect"] in (302, 303), statuses
    assert statuses["logout redirect"] in (302, 303), statuses
    assert statuses["json new token"] == 201, statuses
    assert statuses["page 404"] == statuses["json 404"] == statuses["static 404"] == 404
    assert (statuses["page 405"], statuses["page 413"], statuses["json 401"]) == (405, 413, 401)
    assert statuses["static css"] == statuses["static js"] == 200
    for label, response in responses.items():
        assert_security_headers(label, response)
    # Production adds HSTS to the same set; development sends none (a laptop's http).
    assert not [r for r in responses.values() if "Strict-Transport-Security" in r.headers]


def test_nothing_but_static_files_may_be_stored(app, mock) -> None:
    """Pages carry the CSRF token, /api answers personal data and new tokens: never cached."""
    for label, response in every_kind_of_response(app.url, mock).items():
        cache_control = response.headers.get("Cache-Control", "")
        if label.startswith("static") and response.status_code == 200:
            # Flask's own: revalidated with the ETag, so a deploy is seen at once.
            assert "no-store" not in cache_control, (label, cache_control)
            assert response.headers.get("ETag"), label
        else:
            assert cache_control == "no-store", (label, response.status_code, cache_control)


@needs_verified
def test_the_admin_page_is_not_stored_either(variant, mock) -> None:
    app = variant(ADMIN_EMAILS=VERIFIED_EMAIL)
    browser = sign_in(app.url, mock, provider=VERIFIED)
    page = browser.get("/admin")
    assert page.status_code == 200, page.text[:300]
    assert page.headers["Cache-Control"] == "no-store"
    assert_security_headers("/admin", page)


def test_the_content_security_policy_allows_no_inline_code_and_no_framing(app, mock) -> None:
    policy = csp(Browser(app.url).get("/"))
    assert policy["default-src"] == ["'self'"]
    for directive in ("script-src", "style-src", "connect-src", "form-action"):
        assert policy[directive] == ["'self'"], directive
    assert policy["frame-ancestors"] == policy["object-src"] == policy["base-uri"] == ["'none'"]
    # Avatars: provider CDNs over https, and the loopback mock providers this app uses.
    mock_origin = "http://" + urlsplit(mock.url).netloc
    assert set(policy["img-src"]) == {"'self'", "https:", mock_origin}
    for values in policy.values():
        assert not {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"} & set(values)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[^>]+\sstyle\s*=|<style", re.IGNORECASE)
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=\"([^\"]+)\"", re.IGNORECASE)


def test_no_page_holds_inline_script_handler_or_style(app, mock) -> None:
    """What the policy would block must not be there: every script is a static file."""
    browser = sign_in(app.url, mock)
    pages = {path: browser.get(path) for path in ("/", "/login", "/account", "/no-such-page")}
    pages["error page"] = Browser(app.url).get(f"/auth/{PROVIDER}/callback?code=x&state=forged")
    scripts = set()
    for label, page in pages.items():
        assert "text/html" in page.headers["Content-Type"], label
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE):
            assert not pattern.search(page.text), (label, pattern.search(page.text))
        scripts.update(SCRIPT_SRC.findall(page.text))
    assert {"/static/site.js", "/static/account.js"} <= scripts
    for src in scripts:
        served = browser.get(src)
        assert served.status_code == 200, src
        assert "javascript" in served.headers["Content-Type"], src


@pytest.mark.parametrize(
    ("hsts_seconds", "expected"),
    [(None, f"max-age={YEAR}"), ("600", "max-age=600"), ("0", None)],
)
def test_production_sends_hsts_as_configured(variant, hsts_seconds, expected) -> None:
    running = variant(APP_ENV="production", HSTS_SECONDS=hsts_seconds)
    for path in ("/", "/healthz", "/no-such-page", f"/login/{PROVIDER}", "/static/style.css"):
        response = requests.get(running.url + path, allow_redirects=False, timeout=10)
        assert response.headers.get("Strict-Transport-Security") == expected, path
        assert_security_headers(path, response)
