"""Every known failure becomes a short page or JSON body that says what to do next.

Each error carries a reference id that is also in its log line, so "it failed, reference
3f2a…" leads an operator straight to the cause. Production shows no internals; development
adds the details that help fix configuration (never secrets).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .models import db
from .outages import Outage

log = logging.getLogger(__name__)

REDIS_RETRY_AFTER = 5  # seconds


class AppError(Exception):
    """A failure we understand: status, a stable machine code, a sentence and a hint."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str | None = None,
        *,
        retry_after: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_url: str | None = None,
        fields: dict[str, Any] | None = None,
        calm: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        # Shown only in development: never secrets, only what helps fix configuration.
        self.details = details or {}
        self.headers = headers or {}
        # Where "Try again" leads (e.g. a fresh login at the same provider).
        self.retry_url = retry_url
        # More members of the JSON body, for machines (e.g. where to sign in again).
        self.fields = fields or {}
        # Not a fault (the person cancelled): the page is a plain notice, not an alarm.
        self.calm = calm


def redis_unavailable() -> AppError:
    return AppError(
        503,
        "service_unavailable",
        "The session store is not answering.",
        "Try again in a few seconds.",
        retry_after=REDIS_RETRY_AFTER,
    )


def database_unavailable() -> AppError:
    return AppError(
        503,
        "service_unavailable",
        "The database is not answering.",
        "Try again in a few seconds.",
        retry_after=REDIS_RETRY_AFTER,
    )


def is_database_outage(exc: BaseException) -> bool:
    """Unreachable, locked, restarting or out of pooled connections: not a bug of ours."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def wants_json() -> bool:
    """API paths (and machine callbacks) always get JSON; elsewhere the Accept header decides."""
    if request.path.startswith("/api/") or g.get("json_errors"):
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(["text/html", "application/json"])
    return best == "application/json" and accept[best] > accept["text/html"]


def error_response(
    error: AppError, exc_info: BaseException | None = None, *, level: int | None = None
) -> Response:
    """The page or JSON body for `error`; its log line at `level` (by default WARNING for a
    5xx, INFO otherwise, ERROR with the traceback when `exc_info` is given)."""
    reference = secrets.token_hex(6)
    if level is None:
        level = logging.WARNING if error.status >= 500 else logging.INFO
    fields = {
        "event": "error",
        "reference": reference,
        "error": error.code,
        "status": error.status,
        "path": request.path,
        **{k: v for k, v in error.details.items() if isinstance(v, str | int | float)},
    }
    log.log(
        logging.ERROR if exc_info else level,
        "error ref=%s error=%s status=%s path=%s",
        reference,
        error.code,
        error.status,
        request.path,
        extra={"fields": fields},
        exc_info=exc_info,
    )
    production = current_app.config["APP_SETTINGS"].is_production
    details = {} if production else error.details
    if wants_json():
        body: dict[str, Any] = {"error": error.code, "message": error.message}
        if error.hint:
            body["hint"] = error.hint
        body.update(error.fields)
        if details:
            body["details"] = details
        body["reference"] = reference
        response = jsonify(body)
    else:
        try:
            page = render_template("error.html", error=error, details=details, reference=reference)
        except Exception:  # the page reads the session, and Redis may be what failed
            page = f"<h1>{error.message}</h1><p>{error.hint or ''}</p><p>Reference {reference}</p>"
        response = Response(page, mimetype="text/html")
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    response.headers.update(error.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


_HTTP_HINTS = {
    400: "The request could not be understood. Check the address and try again.",
    404: "Check the address, or go back to the home page.",
    405: "This address does not accept that method.",
    413: "The request is too large.",
    414: "The address is too long.",
    431: "The request headers are too large.",
}


def init_outages(app: Flask) -> dict[str, Outage]:
    """One outage state per dependency, per process; each request that did not fail on one
    lets it check whether it is back (outages.py)."""
    client = app.extensions["redis"]

    def database_probe() -> None:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    outages = {
        "redis": Outage("redis", client.ping),
        "database": Outage("database", database_probe),
    }
    app.extensions["outages"] = outages

    @app.teardown_request
    def check_outages(exc: BaseException | None) -> None:
        for name, outage in outages.items():
            # `outage.is_down`, without a property call on every request
            if outage.down_since is not None and g.get("outage") != name:
                outage.check_back()

    quiet_expected_outages(app)
    return outages


def is_outage(exc: BaseException | None) -> bool:
    return isinstance(exc, RedisError) or (exc is not None and is_database_outage(exc))


def quiet_expected_outages(app: Flask) -> None:
    """Flask logs an error raised outside the view (Redis failing while the session opens)
    as unhandled, with its traceback, before our handler turns it into a 503: an outage is
    expected, and outages.py tells it once."""
    log_exception = app.log_exception

    def log_unless_outage(exc_info: Any) -> None:
        if not is_outage(exc_info[1]):
            log_exception(exc_info)

    app.log_exception = log_unless_outage  # type: ignore[method-assign]


def outage_response(name: str, exc: BaseException, error: AppError) -> Response:
    """A 503 with Retry-After; the log says it once per outage, not once per request."""
    g.outage = name
    current_app.extensions["outages"][name].failed(exc)
    return error_response(error, level=logging.DEBUG)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AppError, error_response)
    init_outages(app)

    @app.errorhandler(RedisError)
    def redis_error(exc: RedisError) -> Response:
        return outage_response("redis", exc, redis_unavailable())

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    def database_error(exc: Exception) -> Response:
        db.session.rollback()  # nothing half-written is committed later in this request
        if not is_database_outage(exc):
            return unexpected(exc)
        return outage_response("database", exc, database_unavailable())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Failures outside the view (opening or saving the session) arrive here wrapped
        # in a 500 that keeps the original exception.
        original = getattr(exc, "original_exception", None)
        if isinstance(original, AppError):
            return error_response(original)
        if isinstance(original, RedisError):
            return redis_error(original)
        if isinstance(original, DBAPIError | PoolTimeout):
            return database_error(original)
        if original is not None:
            return unexpected(original)
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(
            AppError(status, code, exc.name or "Error", _HTTP_HINTS.get(status))
        )
        valid_methods = getattr(exc, "valid_methods", None)
        if valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        return error_response(
            AppError(
                500,
                "internal_error",
                "Something went wrong on our side.",
                "Try again in a moment. If it keeps happening, quote the reference below.",
            ),
            exc_info=exc,
        )
