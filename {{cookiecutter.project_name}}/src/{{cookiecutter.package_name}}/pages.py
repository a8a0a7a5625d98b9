"""HTML pages outside the login flow (home, account, connections) and the health check."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .accounts import (
    delete_account,
    end_session,
    refresh_sessions,
    revoke_grant,
    sign_out_everywhere,
    unrevoked_query,
)
from .api_tokens import SCOPES
from .auth import login_required, roles_required, signed_in_user
from .auth.csrf import check_csrf
from .auth.guards import recently_signed_in, remember_user, require_recent_sign_in
from .errors import AppError, is_database_outage
from .extensions import (
    api_token_store,
    audit_log,
    enabled_providers,
    get_provider,
    redis_client,
    session_index,
    token_service,
    user_list_cursors,
    user_store,
)
from .models import db
from .providers import Provider
from .user_list import DEFAULT_LIMIT, next_cursor, parse_list_request, user_page
from .users import LastIdentity

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    # Reads only the session (one Redis GET): the name was stored there at login.
    return render_template("index.html", name=session.get("name"), signed_in="user_id" in session)


@bp.get("/account")
@login_required
def account() -> ResponseReturnValue:
    user = user_store().get(signed_in_user().id)
    if user is None:  # deleted meanwhile
        session.clear()
        return redirect(url_for("auth.login_page"))
    remember_user(user)  # the page shows the record: keep the session's copy in step
    vault = token_service().vault
    connections = []
    for provider in enabled_providers():
        identity = next((i for i in user.identities if i["provider"] == provider.name), None)
        token = vault.load(user.id, provider.name) if identity else None
        needs_reconnect = identity is not None and (token is None or token.reauth_required)
        connections.append(
            {"provider": provider, "identity": identity, "needs_reconnect": needs_reconnect}
        )
    return render_template(
        "account.html",
        user=user,
        connections=connections,
        can_disconnect=len(user.identities) > 1,
        tokens=api_token_store().list(user.id),
        scopes=SCOPES,
        max_token_days=current_app.config["APP_SETTINGS"].api_token_max_lifetime // 86400,
        events=audit_log().recent(user.id),
        sessions=session_index().list(user.id),
        current_session=session.get("sid_public"),
        recent_login=recently_signed_in(),
    )


@bp.post("/account/sessions/<session_id>/end")
@login_required
def end_one_session(session_id: str) -> ResponseReturnValue:
    end_session(signed_in_user().id, session_id)
    if session_id == session.get("sid_public"):
        session.clear()
        return redirect(url_for("pages.index"), code=303)
    return redirect(url_for("pages.account"), code=303)


@bp.post("/account/sessions/sign-out-others")
@login_required
def sign_out_others() -> ResponseReturnValue:
    sign_out_everywhere(signed_in_user().id, keep=session.get("sid_public"), reason="user request")
    return redirect(url_for("pages.account"), code=303)


@bp.post("/account/delete")
@login_required
def delete_my_account() -> ResponseReturnValue:
    """Needs a sign-in within REAUTH_WINDOW seconds: a stolen session alone cannot do it."""
    user = user_store().get(signed_in_user().id)
    if user is None:
        session.clear()
        return redirect(url_for("pages.index"), code=303)
    require_recent_sign_in("deleting your account", user, "/account#delete")
    unrevoked = delete_account(user, by="user")
    session.clear()
    return redirect(url_for("pages.index", deleted=1, **unrevoked_query(unrevoked)), code=303)


@bp.get("/admin")
@roles_required("admin")
def admin() -> str:
    """An example of a role-protected page: the users, a page at a time (user_list.py)."""
    codec = user_list_cursors()
    listing = parse_list_request(request.query_string, codec)
    page = user_page(user_store(), listing)
    return render_template(
        "admin.html",
        users=page.users,
        q=listing.q,
        limit=listing.limit if listing.limit != DEFAULT_LIMIT else None,
        first_page=listing.after is not None,
        next_cursor=next_cursor(codec, page, listing),
    )


@bp.post("/account/connections/<provider>/disconnect")
@login_required
def disconnect(provider: str) -> ResponseReturnValue:
    """Revoke the grant at the provider, forget its token, remove the link.

    Needs a recent sign-in: with a stolen cookie alone, nobody may cut the owner off from
    their account (disconnect their provider, then sign in with one the thief linked).
    """
    check_csrf()
    adapter = get_provider(provider)
    user = user_store().get(signed_in_user().id)
    if user is None:  # deleted meanwhile
        session.clear()
        return redirect(url_for("pages.index"), code=303)
    identity = next((i for i in user.identities if i["provider"] == provider), None)
    if identity is None:
        raise AppError(404, "not_connected", f"{adapter.title} is not connected.")
    if len(user.identities) == 1:
        raise AppError(
            409,
            "last_identity",
            f"{adapter.title} is the only way you sign in here.",
            "Connect another provider first, then disconnect this one.",
        )
    require_recent_sign_in(f"disconnecting {adapter.title}", user, "/account")
    # A provider that cannot be asked (down) blocks: try again. One that cannot be made to
    # forget the grant does not: the link goes, and the page says where to remove the app.
    unrevoked = revoke_grant(user, provider, identity["subject"])
    try:
        user = user_store().unlink(user, provider)
    except LastIdentity:  # a concurrent disconnect removed the other one
        raise AppError(409, "last_identity", "This is the last way you sign in here.") from None
    audit_log().record("provider_unlinked", user.id, provider=provider)
    db.session.commit()
    remember_user(user)
    refresh_sessions(user)
    query = unrevoked_query([unrevoked] if unrevoked else [])
    return redirect(url_for("pages.account", **query), code=303)


@bp.app_context_processor
def unrevoked_notice() -> dict[str, list[Provider]]:
    """`?unrevoked=<name>,…` (after sign-out, disconnect or deletion): where to remove the app."""
    names = request.args.get("unrevoked", "").split(",")[:10]
    providers = current_app.extensions["providers"]
    return {"unrevoked": [providers[name] for name in dict.fromkeys(names) if name in providers]}


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when Redis and the database answer; 503 naming what does not."""
    failing = []
    try:
        redis_client().ping()
    except RedisError:
        failing.append("redis")
    try:
        db.session.execute(select(1))
    except SQLAlchemyError as exc:
        db.session.rollback()
        if not is_database_outage(exc):
            raise
        failing.append("database")
    if failing:
        body = {"status": "unavailable", "error": f"{failing[0]}_unavailable", "failing": failing}
        return jsonify(body), 503, {"Retry-After": "5"}
    return jsonify(status="ok")
