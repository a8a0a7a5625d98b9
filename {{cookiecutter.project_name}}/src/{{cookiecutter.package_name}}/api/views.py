"""/api/*: JSON only; a signed-out caller gets 401 JSON, never a redirect."""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.integrations.base_client import InvalidTokenError
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ..auth import current_user, login_required
from ..errors import AppError
from ..extensions import get_provider, oauth_client, token_service
from ..tokens import ReauthRequired

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/me")
@login_required
def me() -> ResponseReturnValue:
    response = jsonify(current_user().to_api())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/providers/<provider>/profile")
@login_required
def provider_profile(provider: str) -> ResponseReturnValue:
    """Call the provider's user API with the stored token, refreshed first when needed."""
    adapter = get_provider(provider)
    user = current_user()
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
    except AppError as error:
        if error.code != "profile_error":
            raise
        # The provider refused the token itself: revoked grant, expired session...
        tokens.mark_reauth(user.id, provider, "API call refused")
        return reauth_required(provider)
    except Exception as exc:
        raise adapter.translate(exc) from exc
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
    headers = {"WWW-Authenticate": 'Session realm="api"', "Cache-Control": "no-store"}
    return jsonify(body), 401, headers
