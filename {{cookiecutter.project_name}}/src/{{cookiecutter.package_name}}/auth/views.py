"""The login flow: /login, /login/<provider>, /auth/<provider>/callback and /logout."""

from __future__ import annotations

import secrets
import time

from authlib.integrations.flask_client import FlaskOAuth2App
from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..accounts import (
    refresh_sessions,
    revoke_provider_grants,
    sign_out_everywhere,
    unrevoked_query,
)
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
from ..provider_errors import invalid_state_error, provider_failures
from ..providers import Identity, Provider
from ..providers.errors import RestartLogin
from ..session_index import LAST_SEEN_EVERY, device_summary
from ..sessions import session_store
from ..tokens.vault import StoredToken
from ..users import IdentityTaken, UserView
from .csrf import check_csrf, new_csrf_token
from .guards import current_user, remember_user, require_recent_sign_in
from .urls import external_url, safe_next

bp = Blueprint("auth", __name__)

NEXT_KEY = "login_next"
# The ID token of this session's sign-in, for a provider that ends its own session at our
# logout (RP-Initiated Logout's id_token_hint): in the session, whose record is encrypted
# (sessions.py) and goes at logout, so it never reaches a cookie, a page or the database.
ID_TOKEN_KEY = "id_token"  # noqa: S105 - a session key, not a secret


def track_last_seen() -> None:
    """Refresh the session list's last-seen time (a write), at most every few minutes.

    Runs before every request (from `before_each_request`); between refreshes a request
    that only reads the session writes nothing.
    """
    current = session._get_current_object()  # type: ignore[attr-defined]  # one lookup
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
    """Start a login, or, when signed in, connect (or reconnect) this provider.

    Connecting a provider not yet linked is a sensitive change: it needs a recent sign-in
    before we even send the person to the provider (and the callback checks again).
    Signing in again with a linked one is how a person renews that recent sign-in.
    """
    adapter = get_provider(provider)
    user = current_user()
    if user is not None and not _has_provider(user, provider):
        require_recent_sign_in(f"connecting {adapter.title}", user, request.full_path.rstrip("?"))
    next_path = safe_next(request.args.get("next"))
    if next_path:
        session[NEXT_KEY] = next_path
    else:
        session.pop(NEXT_KEY, None)
    has_refresh_token = None
    if user is not None:
        stored = token_service().vault.load(user.id, provider)
        has_refresh_token = bool(stored and stored.has_usable_refresh_token)
    client = oauth_client(provider)
    try:
        with provider_failures(adapter):  # e.g. a discovery document unreachable
            params = {
                **adapter.authorize_params(client, has_refresh_token),
                **adapter.login_options(request.args),  # e.g. asking again for a declined email
            }
            return client.authorize_redirect(_redirect_uri(provider), **params)
    except AppError as error:
        error.retry_url = request.full_path
        raise


def _has_provider(user: UserView, provider: str) -> bool:
    return any(i["provider"] == provider for i in user.identities)


def _redirect_uri(provider: str) -> str:
    return external_url(url_for("auth.callback", provider=provider))


@bp.get("/auth/<provider>/callback")
def callback(provider: str) -> Response:
    adapter = get_provider(provider)
    client = oauth_client(provider)
    started = time.monotonic()
    # Did this browser start the attempt this callback answers? Only then is there
    # anything of ours to clean up if it fails.
    state = request.args.get("state")
    attempt = bool(state) and client.framework.get_state_data(session, state) is not None
    try:
        if (state or request.args.get("error")) and not attempt:
            # An answer to no attempt of this browser's, whatever else it says or lacks
            # (RFC 9207's iss, say): refused before the provider's own checks.
            raise invalid_state_error()
        with provider_failures(adapter):
            identity, token = adapter.complete_login(client, request.args)
    except RestartLogin:
        return redirect(url_for("auth.login", provider=provider))
    except AppError as error:
        if attempt and state:
            _abandon_login_attempt(client, state)
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
    caller = current_user()
    signed_in = user_store().get(caller.id) if caller else None
    if signed_in is None:
        previous = user_store().find_by_identity(identity.provider, identity.subject)
        user = user_store().sign_in(identity)
        event = "login_succeeded"
    elif _is_linked(signed_in, identity):
        # Signing in again with an identity already linked: a re-authentication.
        previous, event = signed_in, "reauthenticated"
        user = user_store().link(signed_in, identity)
    else:
        previous, event = signed_in, "provider_linked"
        user = _link(signed_in, identity)
    lost_roles: set[str] = set()
    roles_changed = False
    if previous is not None and previous.stored_roles != user.stored_roles:
        # ADMIN_EMAILS or the verified email changed since the last login.
        before, after = previous.stored_roles, user.stored_roles
        audit_log().record("roles_changed", user.id, before=before, after=after)
        lost_roles, roles_changed = set(before) - set(after), True
    stored = token_service().store_login_token(user.id, adapter, token)
    if signed_in is not None and not session_store().record_exists(session):
        # The session was ended (signed out elsewhere) while the person was at the
        # provider: whoever held it may not link or renew anything any more.
        db.session.rollback()
        raise AppError(401, "session_ended", "This session has ended.", "Sign in again.")
    audit_log().record(
        event,
        user.id,
        provider=provider,
        ip=request.remote_addr,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    db.session.commit()
    next_path = session.pop(NEXT_KEY, None)
    copy_changed = previous is None or previous.to_session() != user.to_session()
    if (event != "login_succeeded" or roles_changed) and copy_changed:
        # Every live session's copy: identities, profile, roles. Only when it changed: a
        # rewrite reads and writes each session (compare-and-set, so another tab's request
        # writing its own session meanwhile is not undone), two round trips for nothing.
        refresh_sessions(user)
    if event == "provider_linked":
        # The same session goes on: a link is no sign-in and must not renew `login_at`.
        remember_user(user)
    else:
        _start_session(user, provider)
        if adapter.ends_provider_session and isinstance(token.get("id_token"), str):
            session[ID_TOKEN_KEY] = token["id_token"]
    if lost_roles & current_app.config["APP_SETTINGS"].security_roles:
        sign_out_everywhere(user.id, keep=session["sid_public"], reason="role removed")
    if signed_in is None and _wants_refresh_consent(adapter, client, stored):
        # Signed in now, /login/<provider> knows the refresh token is dead or missing and
        # asks for consent; the second callback comes back signed in, so it cannot loop.
        return redirect(url_for("auth.login", provider=provider, next=next_path))
    return redirect(next_path or url_for("pages.index"))


def _wants_refresh_consent(adapter: Provider, client: FlaskOAuth2App, stored: StoredToken) -> bool:
    """A sign-in left no usable refresh token, and asking knowing that would bring one.

    Only a provider whose authorization request changes when it is told there is no refresh
    token (with prompt=consent, say: for some the only way to get a new one) is asked again.
    """
    if stored.has_usable_refresh_token or not token_service().vault.enabled:
        return False
    return adapter.authorize_params(client, False) != adapter.authorize_params(client, None)


def _is_linked(user: UserView, identity: Identity) -> bool:
    return any(
        (i["provider"], i["subject"]) == (identity.provider, identity.subject)
        for i in user.identities
    )


def _link(user: UserView, identity: Identity) -> UserView:
    """Connect an identity to the signed-in user; never merge two users.

    Time passed at the provider since /login/<provider> checked: the sign-in must still be
    recent now. "Try again" renews it, then starts this link anew.
    """
    title = get_provider(identity.provider).title
    for linked in user.identities:
        if linked["provider"] == identity.provider and linked["subject"] != identity.subject:
            raise AppError(
                409,
                "provider_already_connected",
                f"Another {title} account is already connected.",
                "Disconnect it on your account page first, then connect this one.",
            )
    start = url_for("auth.login", provider=identity.provider, next=session.get(NEXT_KEY))
    require_recent_sign_in(f"connecting {title}", user, start)
    try:
        return user_store().link(user, identity)
    except IdentityTaken:
        raise AppError(
            409,
            "identity_in_use",
            f"This {title} account belongs to another user.",
            "Sign out and sign in with it instead, or connect a different account.",
        ) from None


@bp.post("/logout")
def logout() -> Response:
    """End our session (revoking the grants first with REVOKE_ON_LOGOUT), then, if the
    provider of this sign-in ends its own session too, send the browser there (303)."""
    user = current_user()
    unrevoked = []
    provider_logout = None
    if user is not None:
        check_csrf()
        if current_app.config["APP_SETTINGS"].revoke_on_logout:
            unrevoked = revoke_provider_grants(user)
            for outcome in unrevoked:
                details = {"provider": outcome.provider, "reason": outcome.reason}
                audit_log().record("revocation_incomplete", user.id, **details)
        audit_log().record("logout", user.id)
        db.session.commit()
        if session.get("sid_public"):
            session_index().end(user.id, session["sid_public"])
        provider_logout = _provider_logout_url(session.get("provider"), session.get(ID_TOKEN_KEY))
    session.clear()  # deletes the Redis record and expires the cookie
    if provider_logout:  # the person comes back to the home page, signed out
        return redirect(provider_logout, code=303)
    return redirect(url_for("pages.index", **unrevoked_query(unrevoked)), code=303)


def _provider_logout_url(provider: str | None, id_token: str | None) -> str | None:
    """Where the provider of this session's sign-in ends its own session, if it does."""
    adapter = current_app.extensions["providers"].get(provider or "")
    if adapter is None or not adapter.ends_provider_session:
        return None
    home = external_url(url_for("pages.index"))
    return adapter.end_session_url(oauth_client(adapter.name), id_token, home)


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
    session_store().regenerate(session)
    ended = index.add(
        user.id,
        session["sid_public"],
        session_store().store_key(session),
        ip=request.remote_addr,
        user_agent=device_summary(request.headers.get("User-Agent", "")),
        provider=provider,
    )
    if ended:  # beyond MAX_SESSIONS_PER_USER: the least recently seen went
        audit_log().record(
            "session_limit_reached",
            user.id,
            limit=index.max_sessions,
            count=len(ended),
            ended=[{"id": s["id"], "device": s.get("user_agent")} for s in ended[:10]],
        )
        db.session.commit()


def _abandon_login_attempt(client: FlaskOAuth2App, state: str) -> None:
    """A failed attempt leaves no trace, and takes nothing else with it.

    Only the callback of an attempt this browser started comes here: a forged or stale
    callback (its state matches nothing) changes nothing, or it would cancel the person's
    real sign-in still pending in this session. The attempt's own state goes; with no other
    attempt pending, so does `next`, and a session that never signed in goes entirely.
    """
    client.framework.clear_state_data(session, state)
    if any(key.startswith("_state_") for key in session):
        return  # another attempt (tab, provider) is still pending: it keeps its `next`
    if session.get("user_id"):
        session.pop(NEXT_KEY, None)
    else:
        session.clear()  # no session is created by a failed sign-in
