"""/api/*: JSON only; a signed-out caller gets 401 JSON, never a redirect."""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.integrations.base_client import InvalidTokenError
from flask import Blueprint, current_app, jsonify, request, session
from flask.typing import ResponseReturnValue

from ..accounts import end_session
from ..api_tokens import SCOPES, TooManyTokens
from ..auth import login_required, require_recent_sign_in, roles_required, signed_in_user
from ..errors import AppError
from ..extensions import (
    api_token_store,
    audit_log,
    get_provider,
    oauth_client,
    session_index,
    token_service,
    user_list_cursors,
    user_store,
)
from ..models import db
from ..provider_errors import translate
from ..providers.errors import TokenRefused
from ..tokens import ReauthRequired
from ..user_list import next_cursor, parse_list_request, user_page

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/me")
@login_required(scope="profile:read")
def me() -> ResponseReturnValue:
    response = jsonify(signed_in_user().to_api())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/providers/<provider>/profile")
@login_required
def provider_profile(provider: str) -> ResponseReturnValue:
    """Call the provider's user API with the stored token, refreshed first when needed."""
    adapter = get_provider(provider)
    user = signed_in_user()
    if not any(i["provider"] == provider for i in user.identities):
        raise AppError(
            404,
            "not_connected",
            f"{adapter.title} is not connected to this account.",
            f"Connect it at /login/{provider}.",
        )
    client = oauth_client(provider)
    tokens = token_service()
    try:
        token = tokens.fresh_token(user.id, adapter, client)
        identity = adapter.fetch_profile(client, token.as_oauth_token())
    except (ReauthRequired, InvalidTokenError):
        return reauth_required(provider)
    except TokenRefused:  # the token itself: revoked grant, expired session...
        tokens.mark_reauth(user.id, provider, "API call refused")
        return reauth_required(provider)
    except AppError:
        raise
    except Exception as exc:
        raise translate(adapter, exc) from exc
    response = jsonify(provider=provider, profile=identity.as_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


def reauth_required(provider: str) -> ResponseReturnValue:
    login_url = f"/login/{provider}?" + urlencode({"next": "/account"})
    body = {
        "error": "reauth_required",
        "provider": provider,
        "message": f"{get_provider(provider).title} needs you to connect again.",
        "login_url": login_url,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="api"', "Cache-Control": "no-store"}
    return jsonify(body), 401, headers


# --- personal API tokens ------------------------------------------------------------


@bp.post("/tokens")
@login_required
def create_token() -> ResponseReturnValue:
    """Create a token for the signed-in user (session only: a token cannot mint tokens).

    An `admin` token outlives the session and works from anywhere: minting one needs a
    recent sign-in, so a stolen session cookie cannot turn into lasting admin access.
    """
    user = signed_in_user()
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON
        body = None
    if not isinstance(body, dict):
        raise AppError(400, "invalid_request", "Send a JSON object.", TOKEN_BODY_HINT)
    name, scopes, lifetime = _token_request(body)
    if "admin" in scopes:
        require_recent_sign_in("creating a token with the admin scope", user, "/account")
    try:
        token, secret = api_token_store().create(user.id, name, scopes, lifetime)
    except TooManyTokens as exc:
        db.session.rollback()
        raise AppError(
            409,
            "too_many_tokens",
            f"You already have {exc.limit} API tokens, the most one person may hold.",
            "Revoke one you no longer use (DELETE /api/tokens/<id>, or on your account page), "
            "then create this one.",
        ) from None
    audit_log().record(
        "api_token_created", user.id, token_id=token.id, token_name=name, scopes=token.scopes
    )
    db.session.commit()
    response = jsonify(
        id=token.id, token=secret, name=name, scopes=token.scopes, expires_at=token.expires_at
    )
    response.headers["Cache-Control"] = "no-store"
    return response, 201


TOKEN_BODY_HINT = (
    'Body: {"name": "my script", "scopes": ["profile:read"], "expires_in": 2592000}; '
    f"scopes are {', '.join(SCOPES)}."
)


def _token_request(body: dict) -> tuple[str, list[str], int]:
    settings = current_app.config["APP_SETTINGS"]
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise AppError(
            400, "invalid_request", "`name` must be 1 to 100 characters.", TOKEN_BODY_HINT
        )
    scopes = body.get("scopes")
    # Strings only: a nested list or object is unhashable and would fail the lookup itself.
    valid = isinstance(scopes, list) and all(isinstance(s, str) and s in SCOPES for s in scopes)
    if not scopes or not valid:
        raise AppError(
            400,
            "invalid_scope",
            f"`scopes` must be a non-empty list of: {', '.join(SCOPES)}.",
            TOKEN_BODY_HINT,
        )
    lifetime = body.get("expires_in", settings.api_token_default_lifetime)
    maximum = settings.api_token_max_lifetime
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 60 <= lifetime <= maximum:
        raise AppError(
            400,
            "invalid_request",
            f"`expires_in` must be whole seconds from 60 to {maximum}.",
            TOKEN_BODY_HINT,
        )
    return name.strip(), scopes, lifetime


@bp.get("/tokens")
@login_required
def list_tokens() -> ResponseReturnValue:
    return jsonify(api_token_store().list(signed_in_user().id))


@bp.delete("/tokens/<token_id>")
@login_required
def revoke_token(token_id: str) -> ResponseReturnValue:
    user = signed_in_user()
    if not api_token_store().revoke(user.id, token_id):
        raise AppError(404, "not_found", "No such token.", "List your tokens with GET /api/tokens.")
    audit_log().record("api_token_revoked", user.id, token_id=token_id)
    db.session.commit()
    return "", 204


# --- admin ------------------------------------------------------------------------------


@bp.get("/admin/users")
@roles_required("admin", scope="admin")
def admin_users() -> ResponseReturnValue:
    """One page: `?limit=1..100&cursor=<next_cursor>&q=<email or name prefix>` (user_list.py)."""
    codec = user_list_cursors()
    listing = parse_list_request(request.query_string, codec)
    page = user_page(user_store(), listing)
    response = jsonify(
        users=[u.to_api() for u in page.users], next_cursor=next_cursor(codec, page, listing)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/users/<user_id>/events")
@roles_required("admin", scope="admin")
def admin_user_events(user_id: str) -> ResponseReturnValue:
    if user_store().get(user_id) is None:
        raise AppError(404, "not_found", "No such user.")
    return jsonify(audit_log().recent(user_id, limit=100))


# --- sessions ------------------------------------------------------------------------


@bp.get("/sessions")
@login_required
def list_sessions() -> ResponseReturnValue:
    current = session.get("sid_public")
    sessions = session_index().list(signed_in_user().id)
    return jsonify([{**s, "current": s["id"] == current} for s in sessions])


@bp.delete("/sessions/<session_id>")
@login_required
def delete_session(session_id: str) -> ResponseReturnValue:
    end_session(signed_in_user().id, session_id)
    if session_id == session.get("sid_public"):
        session.clear()
    return "", 204
