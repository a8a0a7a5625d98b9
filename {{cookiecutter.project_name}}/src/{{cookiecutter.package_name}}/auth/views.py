"""The login flow: /login, /login/<provider>, /auth/<provider>/callback and /logout."""

from __future__ import annotations

import secrets
import time

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..accounts import refresh_sessions, revoke_provider_grants, sign_out_everywhere
from ..errors import AppError
from ..extensions import (
    audit_log,
    enabled_providers,
    get_provider,
    oauth_client,
    session_index,
    token_service,
    user_store,
)
from ..models import db
from ..providers.base import Identity, RestartLogin, invalid_state_error
from ..session_index import LAST_SEEN_EVERY, device_summary
from ..users import IdentityTaken, UserView
from .csrf import check_csrf, new_csrf_token
from .guards import current_user, remember_user
from .urls import external_url, safe_next

bp = Blueprint("auth", __name__)

NEXT_KEY = "login_next"


def track_last_seen() -> None:
    """Refresh the session list's last-seen time (a write), at most every few minutes.

    Runs before every request (from `before_each_request`); between refreshes a request
    that only reads the session writes nothing.
    """
    current = session._get_current_object()  # one context lookup for the three reads
    sid_public = current.get("sid_public")
    if sid_public is None:
        return
    now = int(time.time())
    if now - current.get("seen_at", 0) >= LAST_SEEN_EVERY:
        current["seen_at"] = now
        session_index().touch(current["user_id"], sid_public)


@bp.get("/login")
def login_page() -> str:
    return render_template(
        "login.html", providers=enabled_providers(), next=safe_next(request.args.get("next"))
    )


@bp.get("/login/<provider>")
def login(provider: str) -> Response:
    """Start a login, or, when signed in, connect (or reconnect) this provider."""
    adapter = get_provider(provider)
    next_path = safe_next(request.args.get("next"))
    if next_path:
        session[NEXT_KEY] = next_path
    else:
        session.pop(NEXT_KEY, None)
    user = current_user()
    has_refresh_token = None
    if user is not None:
        stored = token_service().vault.load(user.id, provider)
        has_refresh_token = bool(stored and stored.refresh_token and not stored.reauth_required)
    params = adapter.authorize_params(has_refresh_token)
    try:
        return oauth_client(provider).authorize_redirect(_redirect_uri(provider), **params)
    except Exception as exc:  # e.g. Google's discovery document unreachable
        error = adapter.translate(exc)
        error.retry_url = request.full_path
        raise error from exc


def _redirect_uri(provider: str) -> str:
    return external_url(url_for("auth.callback", provider=provider))


@bp.get("/auth/<provider>/callback")
def callback(provider: str) -> Response:
    adapter = get_provider(provider)
    client = oauth_client(provider)
    started = time.monotonic()
    try:
        if request.args.get("error") and not client.framework.get_state_data(
            session, request.args.get("state")
        ):
            raise invalid_state_error()  # an error redirect we never asked for
        identity, token = adapter.complete_login(client, request.args)
    except RestartLogin:
        return redirect(url_for("auth.login", provider=provider))
    except AppError as error:
        _abandon_login_attempt(provider)
        error.retry_url = url_for("auth.login", provider=provider)
        if error.code in ("token_error", "provider_error"):
            error.details.setdefault("redirect_uri", _redirect_uri(provider))
        audit_log().record(
            "login_failed",
            session.get("user_id"),
            provider=provider,
            error=error.code,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        db.session.commit()
        raise
    # One transaction: the user, the identity, the provider token and the event land
    # together or not at all. Sessions (Redis) change only after it committed.
    signed_in = current_user() and user_store().get(current_user().id)
    lost_roles: set[str] = set()
    if signed_in is None:
        previous = user_store().find_by_identity(identity.provider, identity.subject)
        user = user_store().sign_in(identity)
        event = "login_succeeded"
        if previous is not None and previous.roles != user.roles:
            # ADMIN_EMAILS or the verified email changed since the last login.
            audit_log().record("roles_changed", user.id, before=previous.roles, after=user.roles)
            lost_roles = set(previous.roles) - set(user.roles)
    else:
        user = _link(signed_in, identity)
        event = "provider_linked"
    token_service().store_login_token(user.id, adapter, token)
    audit_log().record(
        event,
        user.id,
        provider=provider,
        ip=request.remote_addr,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    db.session.commit()
    if event == "provider_linked":
        refresh_sessions(user)
    next_path = session.get(NEXT_KEY)
    _start_session(user, provider)
    if lost_roles & current_app.config["APP_SETTINGS"].security_roles:
        sign_out_everywhere(user.id, keep=session["sid_public"], reason="role removed")
    return redirect(next_path or url_for("pages.index"))


def _link(user: UserView, identity: Identity) -> UserView:
    """Connect an identity to the signed-in user; never merge two users."""
    for linked in user.identities:
        if linked["provider"] == identity.provider and linked["subject"] != identity.subject:
            raise AppError(
                409,
                "provider_already_connected",
                f"Another {get_provider(identity.provider).title} account is already connected.",
                "Disconnect it on your account page first, then connect this one.",
            )
    try:
        return user_store().link(user, identity)
    except IdentityTaken:
        raise AppError(
            409,
            "identity_in_use",
            f"This {get_provider(identity.provider).title} account belongs to another user.",
            "Sign out and sign in with it instead, or connect a different account.",
        ) from None


@bp.post("/logout")
def logout() -> Response:
    user = current_user()
    if user is not None:
        check_csrf()
        if current_app.config["APP_SETTINGS"].revoke_on_logout:
            revoke_provider_grants(user)
        audit_log().record("logout", user.id)
        db.session.commit()
        if session.get("sid_public"):
            session_index().end(user.id, session["sid_public"])
    session.clear()  # deletes the Redis record and expires the cookie
    return redirect(url_for("pages.index"), code=303)


def _start_session(user: UserView, provider: str) -> None:
    """A fresh session id at login: whatever id existed before (maybe planted) is dead."""
    index = session_index()
    if session.get("user_id") and session.get("sid_public"):
        index.end(session["user_id"], session["sid_public"])
    session.clear()
    now = int(time.time())
    session["user_id"] = user.id
    remember_user(user)
    session["provider"] = provider
    session["csrf"] = new_csrf_token()
    session["login_at"] = time.time()  # to the fraction: REAUTH_WINDOW is exact
    session["seen_at"] = now
    session["sid_public"] = secrets.token_hex(8)
    session.permanent = True
    # Only after data is set: Flask-Session's regenerate() ignores an "empty" session.
    current_app.session_interface.regenerate(session)
    index.add(
        user.id,
        session["sid_public"],
        current_app.session_interface.store_key(session),
        ip=request.remote_addr,
        user_agent=device_summary(request.headers.get("User-Agent", "")),
        provider=provider,
    )


def _abandon_login_attempt(provider: str) -> None:
    """A failed callback leaves no trace: its state is gone and no session is created."""
    if not session.get("user_id"):
        session.clear()
        return
    session.pop(NEXT_KEY, None)
    for key in [k for k in session if k.startswith(f"_state_{provider}_")]:
        session.pop(key, None)
