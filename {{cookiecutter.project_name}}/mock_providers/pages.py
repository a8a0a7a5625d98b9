"""The HTML side of the mocks: the consent page, provider error pages and avatar images."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Response, render_template, request
from markupsafe import escape
from werkzeug.wrappers import Response as BaseResponse

from .core import state

PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2")


def decide(
    provider: str,
    *,
    client_id: str,
    scopes: list[str],
    redirect_uri: str,
    approve: Callable[[str], BaseResponse],
    deny: Callable[[], BaseResponse],
    declinable: Sequence[str] = (),
) -> BaseResponse:
    """Ask the person (interactive) or the switches (automatic) whether to grant access.

    The consent form posts back to the same URL, so the OAuth parameters stay in the query
    string and the provider view validates them again before `approve` or `deny` runs.
    `declinable` permissions get a ticked box: `approve` reads the form's `share` values.
    """
    mock = state()
    module = mock.providers[provider]
    if request.method == "POST":
        if request.form.get("decision") != "approve":
            return deny()
        user = request.form.get("user") or mock.switch(provider, "user")
        if user not in module.PERSONAS:
            return error_page(provider, "Unknown test user", f"No persona named {user!r}.", 400)
        return approve(user)
    if mock.switch(provider, "deny"):
        return deny()
    if not mock.interactive(provider):
        return approve(mock.switch(provider, "user"))
    html = render_template(
        "consent.html",
        title=module.TITLE,
        client_id=client_id,
        scopes=scopes,
        redirect_uri=redirect_uri,
        personas=list(module.PERSONA_LABELS.items()),
        declinable=list(declinable),
        selected=mock.switch(provider, "user"),
        action=request.full_path,
    )
    return Response(html, headers={"Cache-Control": "no-store"})


def error_page(provider: str, heading: str, message: str, status: int) -> Response:
    """An error the provider shows the person instead of redirecting back to the app."""
    title = state().providers[provider].TITLE
    html = render_template("error.html", title=title, heading=heading, message=message)
    return Response(html, status=status)


def persona_with(
    personas: Mapping[str, dict[str, Any]], key: str, value: Any
) -> dict[str, Any] | None:
    """The persona whose `key` is `value` (ids in URLs), if any."""
    return next((p for p in personas.values() if p[key] == value), None)


def persona_avatar(persona: Mapping[str, Any] | None, seed: str) -> Response:
    """The persona's initials (of the name, else the login) as a picture."""
    name = (persona.get("name") or persona.get("login") or "?") if persona else "?"
    return avatar(seed, "".join(word[0] for word in name.split()).upper())


def avatar(seed: str, initials: str) -> Response:
    """A small SVG with initials, so profile pictures work offline in the demo."""
    color = PALETTE[hashlib.sha256(seed.encode()).digest()[0] % len(PALETTE)]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        f'<rect width="96" height="96" rx="48" fill="{color}"/>'
        '<text x="48" y="60" font-family="sans-serif" font-size="36" fill="#fff" '
        f'text-anchor="middle">{escape(initials[:2])}</text></svg>'
    )
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=86400"})
