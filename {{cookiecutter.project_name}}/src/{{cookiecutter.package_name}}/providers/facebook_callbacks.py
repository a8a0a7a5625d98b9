"""Facebook's deauthorize and data-deletion callbacks (required of live Facebook Login apps).

Facebook POSTs a `signed_request`: base64url(signature) "." base64url(JSON payload), the
signature an HMAC-SHA256 of the encoded payload keyed with the App Secret. Anything else
(another algorithm, a bad signature, garbage) is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import delete

from ..accounts import delete_account, drop_identity
from ..errors import AppError
from ..extensions import audit_log, user_store
from ..models import DataDeletionRequest, db

bp = Blueprint("facebook_callbacks", __name__, url_prefix="/auth/facebook")

DELETION_STATUS_DAYS = 90  # how long the status page answers
MAX_SIGNED_REQUEST = 8192


@bp.before_request
def machine_caller() -> None:
    if request.method == "POST":  # Facebook's servers, not a person: errors as JSON
        g.json_errors = True


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def parse_signed_request(signed_request: str, app_secret: str) -> dict[str, Any]:
    """The verified payload; ValueError for anything Facebook would not have sent."""
    signature_b64, _, payload_b64 = signed_request.partition(".")
    if not signature_b64 or not payload_b64 or len(signed_request) > MAX_SIGNED_REQUEST:
        raise ValueError("not a signed_request")
    try:
        signature = _b64decode(signature_b64)
    except ValueError as exc:
        raise ValueError("undecodable signature") from exc
    # The signature first: nothing unauthenticated reaches the JSON parser.
    expected = hmac.new(app_secret.encode(), payload_b64.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise ValueError("bad signature")
    try:
        payload = json.loads(_b64decode(payload_b64))
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError("undecodable payload") from exc
    if not isinstance(payload, dict) or str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise ValueError("unsupported algorithm")
    if not str(payload.get("user_id", "")).isdigit():
        raise ValueError("no user_id")
    return payload


def _payload() -> dict[str, Any]:
    secret = current_app.extensions["providers"]["facebook"].config.client_secret
    try:
        return parse_signed_request(request.form.get("signed_request", ""), secret)
    except ValueError as exc:
        raise AppError(
            400, "invalid_signed_request", f"The signed_request was refused: {exc}."
        ) from None


@bp.post("/deauthorize")
def deauthorize() -> ResponseReturnValue:
    """The person removed the app in Facebook: forget the link and its tokens."""
    payload = _payload()
    user = user_store().find_by_identity("facebook", str(payload["user_id"]))
    if user is not None:
        drop_identity(user, "facebook")
    return jsonify(status="ok")


@bp.post("/data-deletion")
def data_deletion() -> ResponseReturnValue:
    """Delete the person's data; answer with a status URL and a confirmation code."""
    payload = _payload()
    user = user_store().find_by_identity("facebook", str(payload["user_id"]))
    if user is not None:
        if [i["provider"] for i in user.identities] == ["facebook"]:
            delete_account(user, by="facebook")
        else:  # they also sign in another way: keep the account, drop Facebook's part
            drop_identity(user, "facebook")
    code = secrets.token_hex(10)
    now = int(time.time())
    db.session.add(
        DataDeletionRequest(
            confirmation_code=code,
            provider="facebook",
            status="completed",
            found=user is not None,
            requested_at=now,
            completed_at=now,
        )
    )
    # Status pages past their time are forgotten (an indexed delete).
    cutoff = now - DELETION_STATUS_DAYS * 24 * 3600
    db.session.execute(delete(DataDeletionRequest).where(DataDeletionRequest.requested_at < cutoff))
    audit_log().record("facebook_data_deletion", None, confirmation_code=code)
    db.session.commit()
    public_url = current_app.config["APP_SETTINGS"].public_url or request.host_url.rstrip("/")
    return jsonify(url=f"{public_url}/auth/facebook/data-deletion/{code}", confirmation_code=code)


@bp.get("/data-deletion/<code>")
def data_deletion_status(code: str) -> ResponseReturnValue:
    found = code.isalnum() and len(code) <= 64 and db.session.get(DataDeletionRequest, code)
    expired = found and found.requested_at < time.time() - DELETION_STATUS_DAYS * 24 * 3600
    if not found or expired:
        raise AppError(404, "not_found", "No data-deletion request has this confirmation code.")
    status = {"status": found.status, "completed_at": found.completed_at, "found": found.found}
    return render_template("facebook_data_deletion.html", code=code, status=status)
