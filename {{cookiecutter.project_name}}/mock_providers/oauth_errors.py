"""How a refused token or revocation request is answered: one reason, each provider's words.

The toolkit raises `Problem("code.used")` and the like; a provider's `ErrorStyle` turns that
into its own answer (RFC 6749 JSON reworded, an error body sent with HTTP 200, a nested
error object), so the rules are written once and the quirks stay declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from werkzeug.wrappers import Response

from .core import json_response

T = TypeVar("T")

# RFC 6749 §5.2 and RFC 7009 §2.2.1 answers, by `Problem` reason or group:
# (error, HTTP status, description). A provider rewords them in its `ErrorStyle`.
RFC_ERRORS: dict[str, tuple[str, int, str]] = {
    "client": ("invalid_client", 401, "Client authentication failed."),  # or none was sent
    "grant_type": ("unsupported_grant_type", 400, "Unsupported grant_type: {detail}"),
    "code": ("invalid_grant", 400, "The authorization code is invalid, used or expired."),
    "code.redirect": ("invalid_grant", 400, "redirect_uri differs from the authorization's."),
    "pkce": ("invalid_grant", 400, "The code_verifier does not match the code_challenge."),
    "refresh": ("invalid_grant", 400, "The refresh token is invalid, expired or revoked."),
    "token": ("invalid_request", 400, "The request has no token to revoke."),
}


class Problem(Exception):
    """A refused token or revocation request, by reason; the provider's `ErrorStyle` words it.

    Reasons are "group.detail": client.missing|unknown|secret, code.unknown|used|expired|
    client|redirect, pkce.missing|wrong|unexpected|required, refresh.unknown|expired|client|
    reused, grant_type, token.missing|unknown.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail

    def pick(self, *tables: Mapping[str, T]) -> T:
        """The entry for this reason, else for its group, from the first table that has one."""
        for table in tables:
            for key in (self.reason, self.reason.partition(".")[0]):
                if key in table:
                    return table[key]
        raise KeyError(self.reason)


class ErrorStyle(Protocol):
    """How a provider answers a refused request and an outage of its token endpoint."""

    def refuse(self, problem: Problem) -> Response: ...

    def unavailable(self, status: int) -> Response: ...


@dataclass
class OAuthErrors:
    """RFC 6749 JSON errors; `table` rewords them by reason or group (see `Problem`), and
    `codes` (by reason or group, or "outage") starts a description with the provider's own
    code for it, as in "AADSTS54005: ..."."""

    table: Mapping[str, tuple[str, int, str]] = field(default_factory=dict)
    outage: tuple[str, str] = ("temporarily_unavailable", "The server is unavailable.")
    codes: Mapping[str, str] = field(default_factory=dict)

    def refuse(self, problem: Problem) -> Response:
        error, status, description = problem.pick(self.table, RFC_ERRORS)
        code = problem.pick(self.codes, {problem.reason: ""})  # "": the provider has none
        text = self.coded(code, description.format(detail=problem.detail))
        return json_response(dict(error=error, error_description=text), status)

    def unavailable(self, status: int) -> Response:
        error, description = self.outage
        text = self.coded(self.codes.get("outage", ""), description)
        return json_response(dict(error=error, error_description=text), status)

    @staticmethod
    def coded(code: str, description: str) -> str:
        return f"{code}: {description}" if code else description
