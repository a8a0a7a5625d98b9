"""Security headers on every response: pages, JSON, errors, redirects and static files.

The values are built once, at start, with `secure` (typed builders that validate each
header); a WSGI middleware adds them to every response, whatever produced it (a view, an
error handler, Flask's static route), without a Flask hook per request.

- Content-Security-Policy: scripts, styles and fetches from this origin only, and no inline
  code at all (the templates keep theirs in static/*.js). Images may also come over https
  (provider avatars live on CDNs that change hosts; an image runs no code) and from the
  plain-http loopback mock providers this app is configured with. Forms post only here,
  nothing may frame the pages, no <base>, no plugins.
- X-Frame-Options: DENY, for browsers that ignore `frame-ancestors`.
- X-Content-Type-Options: nosniff.
- Referrer-Policy: strict-origin-when-cross-origin. Other sites (a provider, an avatar
  CDN) get at most our origin, so a page shown at the callback URL (an error page) never
  hands its `?code=…&state=…` to anyone else. Not `no-referrer`: with it, Chromium sends
  `Origin: null` with this site's own form posts (sign out, disconnect, delete), and the
  CSRF check rightly refuses those.
- Strict-Transport-Security: production only, HSTS_SECONDS (0 sends none). Browsers
  ignore it over plain http, so sending it on every response is safe behind a TLS proxy.
- Cache-Control: no-store unless the response set its own. Pages carry the CSRF token
  (the sign-out form is on every page of a signed-in person), /api answers carry
  personal data and new API tokens: none may stay in a shared or browser cache. Static
  files keep Flask's own caching (revalidated with ETags).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask
from secure import (
    ContentSecurityPolicy,
    ReferrerPolicy,
    Secure,
    StrictTransportSecurity,
    XContentTypeOptions,
    XFrameOptions,
)

from .settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SELF, NONE = "'self'", "'none'"


def loopback_http_origins(settings: Settings) -> list[str]:
    """Origins of the provider URLs served over plain http (settings allow it on loopback
    only: the mock providers), whose avatar images the pages show."""
    origins = set()
    for config in settings.providers.values():
        for value in config.extra.values():
            parts = urlsplit(value)
            if parts.scheme == "http" and parts.netloc:
                origins.add(f"http://{parts.netloc}")
    return sorted(origins)


def header_policy(settings: Settings) -> Secure:
    csp = (
        ContentSecurityPolicy()
        .default_src(SELF)
        .script_src(SELF)
        .style_src(SELF)
        .img_src(SELF, "https:", *loopback_http_origins(settings))
        .connect_src(SELF)
        .form_action(SELF)
        .frame_ancestors(NONE)
        .base_uri(NONE)
        .object_src(NONE)
    )
    hsts = None
    if settings.is_production and settings.hsts_seconds:
        hsts = StrictTransportSecurity().max_age(settings.hsts_seconds)
    return Secure(
        csp=csp,
        hsts=hsts,
        referrer=ReferrerPolicy().strict_origin_when_cross_origin(),
        xcto=XContentTypeOptions().nosniff(),
        xfo=XFrameOptions().deny(),
    ).validate_and_normalize_headers()


class SecurityHeaders:
    """WSGI middleware: adds `headers` to every response that did not set them itself,
    and `Cache-Control: no-store` to every response outside `static_prefix` without one."""

    def __init__(
        self, wsgi_app: WSGIApplication, headers: Iterable[tuple[str, str]], static_prefix: str
    ) -> None:
        self.wsgi_app = wsgi_app
        self.headers = [(name, value) for name, value in headers]
        self.names = frozenset(name.lower() for name, _ in self.headers)
        self.static_prefix = static_prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        static = environ.get("PATH_INFO", "").startswith(self.static_prefix)

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            present = {name.lower() for name, _ in headers}
            if self.names.isdisjoint(present):  # as almost every response: all of them
                headers.extend(self.headers)
            else:
                headers.extend(h for h in self.headers if h[0].lower() not in present)
            if not static and "cache-control" not in present:
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_headers)


def init_security_headers(app: Flask, settings: Settings) -> None:
    items = header_policy(settings).headers.items()
    app.wsgi_app = SecurityHeaders(  # type: ignore[method-assign]
        app.wsgi_app, items, f"{app.static_url_path}/"
    )
