"""Route guards: who is calling, and may they?

A caller is either the session's user (cookie) or, on /api/*, the owner of a personal API
token (`Authorization: Bearer`), checked by Authlib's ResourceProtector. HTML routes send
a signed-out visitor to /login; API routes answer 401/403 JSON (RFC 6750 for tokens).
Cookie-authenticated requests that change state must pass the CSRF check; bearer ones
carry no ambient credential and need not.

    @bp.get("/reports")
    @login_required
    def reports(): ...

    @bp.get("/api/reports")
    @roles_required("admin", scope="admin")
    def admin_reports(): ...

    protect_blueprint(admin_bp, "admin")   # every route of the blueprint

A sensitive change also needs a recent sign-in (REAUTH_WINDOW), so a stolen cookie alone
cannot make it; the refusal sends the person to sign in again and back:

    require_recent_sign_in("changing the payout account", current_user(), "/payouts")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Blueprint, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from ..api_tokens import TokenGrant
from ..errors import AppError, wants_json
from ..extensions import api_token_store, audit_log, enabled_providers, user_store
from ..users import UserView
from .csrf import check_csrf

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
REALM = "api"
_UNSET = object()


class ApiTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> TokenGrant | None:
        return api_token_store().find(token_string)


# Authlib's resource protection: parses the header, runs the validator, checks scopes.
require_api_token = ResourceProtector()
require_api_token.register_token_validator(ApiTokenValidator(realm=REALM))


def current_user() -> UserView | None:
    """The caller, loaded once per request.

    For a session this is the copy of the user stored in the session at login (and
    refreshed whenever this app changes the user), so reading it costs no Redis call
    beyond the session's own GET. Code that changes the user loads the full record with
    `user_store().get(current_user().id)`; role checks always read the record.
    """
    # One context lookup each, not one per access: this runs on every signed-in request.
    request_globals = g._get_current_object()
    loaded = request_globals.get("user", _UNSET)  # (getattr would raise and catch on a miss)
    if loaded is not _UNSET:
        return cast("UserView | None", loaded)
    user = None
    current_session = session._get_current_object()  # type: ignore[attr-defined]
    snapshot = current_session.get("user")
    if snapshot and "derived_roles" in snapshot:
        user = UserView.from_session(snapshot)  # roles checked against ADMIN_EMAILS now
    elif current_session.get("user_id"):  # a session from before the copy (or its role sources)
        user = user_store().get(current_session["user_id"])
        if user is None:
            current_session.clear()
        else:
            remember_user(user)
    request_globals.user = user
    return user


def signed_in_user() -> UserView:
    """The caller of a view behind `login_required` (typed: never None there)."""
    user = current_user()
    if user is None:  # only reached when a view forgot its guard
        raise AppError(401, "login_required", "Sign in first.")
    return user


def remember_user(user: UserView) -> None:
    """Refresh the session's copy of the signed-in user after a change (writes only if it did)."""
    snapshot = user.to_session()
    if session.get("user") != snapshot:
        session["user"] = snapshot
        session["name"] = user.name
    g.user = user


def recently_signed_in() -> bool:
    """Signed in within REAUTH_WINDOW seconds, with an identity that was already linked.

    `login_at` is set when a session starts (a sign-in) and when the person signs in again
    with a provider already linked; connecting a new provider never moves it.
    """
    window = current_app.config["APP_SETTINGS"].reauth_window
    return time.time() - session.get("login_at", 0) <= window


def require_recent_sign_in(action: str, user: UserView, next_path: str) -> None:
    """Refuse a sensitive change unless `recently_signed_in()`: 403 reauthentication_required.

    A stolen session cookie alone must not connect the thief's account, disconnect the
    owner's, delete the account or mint an admin token. The person follows `retry_url`:
    a sign-in with one of their linked providers that comes back to `next_path`.
    """
    if recently_signed_in():
        return
    enabled = {p.name: p.title for p in enabled_providers()}
    linked = [i["provider"] for i in user.identities if i["provider"] in enabled]
    provider = session.get("provider")
    if provider not in linked:
        provider = linked[0] if linked else None
    retry_url = (
        url_for("auth.login", provider=provider, next=next_path)
        if provider
        else url_for("auth.login_page", next=next_path)
    )
    ways = " or ".join(enabled[p] for p in dict.fromkeys(linked)) or "a connected provider"
    window = current_app.config["APP_SETTINGS"].reauth_window
    raise AppError(
        403,
        "reauthentication_required",
        f"Sign in again to confirm it is you before {action}.",
        f"Sign in again with {ways} (an account already connected here), then continue "
        f"within {_duration(window)}.",
        retry_url=retry_url,
        fields={"retry_url": retry_url},
    )


def _duration(seconds: int) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def current_api_token() -> TokenGrant | None:
    """The personal API token this request was authenticated with, if any."""
    return g.get("api_token")


def _bearer_user(scope: str | None) -> UserView:
    """Validate the bearer token (existence, expiry, scope) and load its owner."""
    try:
        token: TokenGrant = require_api_token.acquire_token([scope] if scope else None)
    except OAuth2Error as error:
        if error.error == "insufficient_scope":
            raise bearer_error(403, "insufficient_scope", scope) from None
        # Garbage, expired, revoked or malformed: all the same to the caller.
        raise bearer_error(401, "invalid_token", scope) from None
    if scope is None:  # a valid token, on a route that only takes a signed-in session
        raise bearer_error(403, "insufficient_scope", None)
    user = token.user  # loaded with the token, in the same query
    if user is None:
        raise bearer_error(401, "invalid_token", scope)
    g.api_token = token
    api_token_store().record_use(
        token,
        lambda t, uses: audit_log().record(
            "api_token_used", t.user_id, token_id=t.id, token_name=t.name, uses=uses
        ),
    )
    return user


def bearer_error(status: int, code: str, scope: str | None) -> AppError:
    """An RFC 6750 error: the JSON body says it in words, WWW-Authenticate for machines."""
    messages = {
        "invalid_token": "The API token is invalid, expired or revoked.",
        "insufficient_scope": f"The API token lacks the scope this endpoint needs: {scope}."
        if scope
        else "This endpoint does not accept API tokens: sign in instead.",
    }
    challenge = f'Bearer realm="{REALM}", error="{code}"'
    if code == "insufficient_scope" and scope:
        challenge += f', scope="{scope}"'
    return AppError(
        status,
        code,
        messages.get(code, "Send a valid API token as `Authorization: Bearer <token>`."),
        "Create a token on your account page.",
        headers={"WWW-Authenticate": challenge},
    )


def authenticate(scope: str | None = None) -> UserView | Response:
    """The calling user, or a redirect to /login for a signed-out visitor of an HTML page.

    `scope` is what a personal API token needs for this route; a route without one does not
    accept API tokens at all.
    """
    current = request._get_current_object()  # type: ignore[attr-defined]  # one lookup each
    token = g._get_current_object().get("api_token")
    if token is not None:  # already authenticated by a token: check this route's scope too
        if scope is None or scope not in token.scopes:
            raise bearer_error(403, "insufficient_scope", scope)
        return g.user
    if current.environ.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer ":
        if not current.path.startswith("/api/"):
            raise AppError(400, "bearer_not_accepted", "API tokens are only accepted on /api/*.")
        g.user = _bearer_user(scope)
        return g.user
    user = current_user()
    if user is None:
        if wants_json():
            raise AppError(
                401,
                "unauthorized",
                "Sign in, or send an API token, to use this endpoint.",
                "Sign in at /login, or send `Authorization: Bearer <token>`.",
            )
        return redirect("/login?" + urlencode({"next": current.full_path.rstrip("?")}))
    if current.method not in SAFE_METHODS:
        check_csrf()
    return user


def require_roles(user: UserView, roles: tuple[str, ...]) -> None:
    # The stored record, not the session's copy: a removed role stops working at once.
    # A token's owner was read from the database with the token, in this request.
    stored = user if g.get("api_token") is not None else user_store().get(user.id)
    granted = stored.roles if stored else []
    missing = [r for r in roles if r not in granted]
    if missing:
        raise AppError(
            403,
            "forbidden",
            "You do not have permission to do this.",
            f"This needs the role: {', '.join(missing)}.",
        )


def check_access(roles: tuple[str, ...], scope: str | None) -> Response | None:
    """None when the caller may go on; a redirect to /login for a signed-out page visit."""
    result = authenticate(scope)
    if isinstance(result, Response):
        return result
    if roles:
        require_roles(result, roles)
    return None


def roles_required(*roles: str, scope: str | None = None) -> Callable[[F], F]:
    """Signed in (or a token with `scope`) and holding every one of `roles`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return check_access(roles, scope) or view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def login_required(view: F | None = None, *, scope: str | None = None) -> Any:
    """`@login_required`, or `@login_required(scope="profile:read")` to also accept tokens."""
    decorate = roles_required(scope=scope)
    return decorate(view) if view is not None else decorate


def protect_blueprint(blueprint: Blueprint, *roles: str, scope: str | None = None) -> None:
    """Guard every route of a blueprint at once."""
    blueprint.before_request(lambda: check_access(roles, scope))
