"""Facebook's deauthorize and data-deletion callbacks (required of live Facebook Login apps).

Facebook POSTs a `signed_request`: base64url(signature) "." base64url(JSON payload), the
signature an HMAC-SHA256 of the encoded payload keyed with the App Secret. Anything else
(another algorithm, a bad signature, garbage, an `issued_at` out of the window) is a 400.

Both callbacks are idempotent. "The same request" is the same signed_request, byte for byte
(what a retry resends): it gets the same answer, with no second side effect, for as long as
it is remembered (DELETION_STATUS_DAYS) and whatever its age by then. For the data-deletion
callback that is the same confirmation code: the code is derived from the signed_request
(an HMAC keyed with SECRET_KEY), so the record that the status page reads is also the
memory. A deauthorization leaves a marker in Redis. A new signed_request for a person
already handled (Facebook signed it again) is a new request: deauthorize answers ok again
and changes nothing; data deletion gives a new code whose record says nothing was found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from redis.exceptions import LockError
from sqlalchemy import delete

from ..accounts import delete_account, drop_identity
from ..errors import AppError
from ..extensions import audit_log, redis_client, user_store
from ..models import DataDeletionRequest, db

bp = Blueprint("facebook_callbacks", __name__, url_prefix="/auth/facebook")

DELETION_STATUS_DAYS = 90  # how long the status page answers, and a request is remembered
MAX_SIGNED_REQUEST = 8192
# How old a signed_request may be. Meta's documentation of these callbacks gives the payload's
# `issued_at` ("the Unix timestamp when the request was signed", Login's signed_request
# reference) but documents no lifetime and no redelivery: Facebook signs and POSTs the request
# when the person removes the app or asks for deletion. An hour (the max_age that common
# signed_request parsers default to) leaves room for a slow delivery and clock skew. A retry
# of a request we already handled is answered from memory whatever its age (see above), so
# only a never-seen old request is refused: a leaked one replayed after the person came back.
MAX_AGE = 3600  # seconds
MAX_FUTURE = 300  # seconds: Facebook's clock may be a little ahead of ours
LOCK_TIMEOUT = 30  # seconds: a deletion revokes grants over HTTP while it holds the lock
LOCK_WAIT = 15


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
    issued_at = payload.get("issued_at")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise ValueError("no issued_at")
    return payload


def check_issued_at(payload: dict[str, Any], now: float) -> None:
    """ValueError when the request was signed more than MAX_AGE ago (or in the future)."""
    if payload["issued_at"] < now - MAX_AGE:
        raise ValueError(f"issued more than {MAX_AGE // 60} minutes ago")
    if payload["issued_at"] > now + MAX_FUTURE:
        raise ValueError("issued in the future")


def refused(reason: object) -> AppError:
    return AppError(400, "invalid_signed_request", f"The signed_request was refused: {reason}.")


def _payload() -> tuple[dict[str, Any], str]:
    """The verified payload and a digest that names this very signed_request."""
    secret = current_app.extensions["providers"]["facebook"].config.client_secret
    signed_request = request.form.get("signed_request", "")
    try:
        payload = parse_signed_request(signed_request, secret)
    except ValueError as exc:
        raise refused(exc) from None
    return payload, hashlib.sha256(signed_request.encode()).hexdigest()


def _fresh(payload: dict[str, Any]) -> None:
    try:
        check_issued_at(payload, time.time())
    except ValueError as exc:
        raise refused(exc) from None


def _key(*parts: str) -> str:
    return current_app.config["APP_SETTINGS"].redis_key_prefix + ":".join(parts)


@contextmanager
def _one_at_a_time(digest: str) -> Iterator[None]:
    """Concurrent copies of one request (a retry racing the original) run one after the other."""
    lock = redis_client().lock(
        _key("lock", "facebook", digest), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT
    )
    try:
        with lock:
            yield
    except LockError as exc:
        raise AppError(
            503, "busy", "The same request is being handled.", "Try again.", retry_after=5
        ) from exc


@bp.post("/deauthorize")
def deauthorize() -> ResponseReturnValue:
    """The person removed the app in Facebook: forget the link and its tokens."""
    payload, digest = _payload()
    marker = _key("facebook", "deauthorized", digest)
    with _one_at_a_time(digest):
        if redis_client().exists(marker):  # a repeat: it was done already
            return jsonify(status="ok")
        _fresh(payload)
        user = user_store().find_by_identity("facebook", str(payload["user_id"]))
        if user is not None:
            drop_identity(user, "facebook")
        redis_client().set(marker, b"1", ex=DELETION_STATUS_DAYS * 24 * 3600)
    return jsonify(status="ok")


def confirmation_code(digest: str) -> str:
    """20 hex characters, the same for the same signed_request, unguessable without SECRET_KEY."""
    key = current_app.secret_key
    key_bytes = key.encode() if isinstance(key, str) else bytes(key or b"")
    message = f"facebook-data-deletion:{digest}".encode()
    return hmac.new(key_bytes, message, hashlib.sha256).hexdigest()[:20]


def _deletion_answer(code: str) -> ResponseReturnValue:
    public_url = current_app.config["APP_SETTINGS"].public_url or request.host_url.rstrip("/")
    return jsonify(url=f"{public_url}/auth/facebook/data-deletion/{code}", confirmation_code=code)


@bp.post("/data-deletion")
def data_deletion() -> ResponseReturnValue:
    """Delete the person's data; answer with a status URL and a confirmation code."""
    payload, digest = _payload()
    code = confirmation_code(digest)
    with _one_at_a_time(digest):
        if _remembered(code):  # a repeat: the same answer, nothing done twice
            return _deletion_answer(code)
        _fresh(payload)
        _delete_data(str(payload["user_id"]), code)
    return _deletion_answer(code)


def _remembered(code: str) -> bool:
    record = db.session.get(DataDeletionRequest, code)
    return record is not None and record.requested_at >= _status_cutoff()


def _status_cutoff() -> float:
    return time.time() - DELETION_STATUS_DAYS * 24 * 3600


def _delete_data(facebook_id: str, code: str) -> None:
    user = user_store().find_by_identity("facebook", facebook_id)
    if user is not None:
        if [i["provider"] for i in user.identities] == ["facebook"]:
            delete_account(user, by="facebook")
        else:  # they also sign in another way: keep the account, drop Facebook's part
            drop_identity(user, "facebook")
    # Status pages past their time are forgotten first (an indexed delete): one of them may
    # hold this very code, from the same signed_request long ago.
    db.session.execute(
        delete(DataDeletionRequest).where(DataDeletionRequest.requested_at < _status_cutoff())
    )
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
    audit_log().record("facebook_data_deletion", None, confirmation_code=code)
    db.session.commit()


@bp.get("/data-deletion/<code>")
def data_deletion_status(code: str) -> ResponseReturnValue:
    found = (
        db.session.get(DataDeletionRequest, code) if code.isalnum() and len(code) <= 64 else None
    )
    if found is None or found.requested_at < _status_cutoff():
        raise AppError(404, "not_found", "No data-deletion request has this confirmation code.")
    status = {"status": found.status, "completed_at": found.completed_at, "found": found.found}
    return render_template("facebook_data_deletion.html", code=code, status=status)
