"""Every known failure becomes a short page or JSON body that says what to do next."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


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
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        # Shown only in development: never secrets, only what helps fix configuration.
        self.details = details or {}


def wants_json() -> bool:
    """API paths always get JSON; elsewhere the Accept header decides."""
    if request.path.startswith("/api/"):
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(["text/html", "application/json"])
    return best == "application/json" and accept[best] > accept["text/html"]


def error_response(error: AppError) -> Response:
    from flask import current_app

    show_details = not current_app.config["APP_SETTINGS"].is_production
    details = error.details if show_details else {}
    if wants_json():
        body: dict[str, Any] = {"error": error.code, "message": error.message}
        if error.hint:
            body["hint"] = error.hint
        if details:
            body["details"] = details
        response = jsonify(body)
    else:
        response = Response(
            render_template("error.html", error=error, details=details), mimetype="text/html"
        )
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Session realm="api", login_url="/login"'
    response.headers["Cache-Control"] = "no-store"
    return response


_HTTP_HINTS = {
    400: "The request could not be understood. Check the address and try again.",
    404: "Check the address, or go back to the home page.",
    405: "This address does not accept that method.",
    413: "The request is too large.",
    431: "The request headers are too large.",
}


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AppError, error_response)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
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
        # The reference id ties the page to the log line without showing internals.
        reference = secrets.token_hex(6)
        log.error("unhandled error ref=%s", reference, exc_info=exc)
        return error_response(
            AppError(
                500,
                "internal_error",
                "Something went wrong on our side.",
                f"Try again in a moment. If it keeps happening, quote reference {reference}.",
            )
        )
