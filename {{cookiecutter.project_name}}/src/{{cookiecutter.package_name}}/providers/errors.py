"""What an adapter raises when a provider fails it: the app's error handling shows these.

A `ProviderError` already says what the person should read (status, a stable code, a
sentence and a hint), so the app shows it as it is (provider_errors.py); what Authlib,
joserfc and requests raise is translated there too. The other exceptions here are outcomes
a caller acts on, not pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class ProviderError(Exception):
    """A failure described for the person; `details` help fix configuration (never secrets)."""

    status: int
    code: str
    message: str
    hint: str | None = None
    retry_after: int | None = field(default=None, kw_only=True)
    # Not a fault (the person cancelled): a notice, not an alarm.
    calm: bool = field(default=False, kw_only=True)
    details: Mapping[str, Any] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        self.details = {k: v for k, v in self.details.items() if v is not None}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class LoginRefused(ProviderError):
    """The provider (or its answer) refused this sign-in: a 4xx, starting again may help."""


class TokenRefused(LoginRefused):
    """The provider refused the access token itself (revoked grant, expired session).

    After sign-in this means the link needs the person again, not a broken provider.
    """

    def __init__(
        self, message: str, hint: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(400, "profile_error", message, hint, details=details or {})


class ProviderBusy(ProviderError):
    """The provider rate-limits this app: a 503 that says when to try again."""

    def __init__(self, message: str, hint: str, retry_after: int) -> None:
        super().__init__(503, "provider_rate_limited", message, hint, retry_after=retry_after)


class ProviderUnavailable(ProviderError):
    """The provider is down or sent an answer this app cannot use: try again later."""

    def __init__(
        self,
        message: str,
        hint: str | None = "Try again in a moment.",
        *,
        status: int = 502,
        code: str = "provider_unavailable",
        retry_after: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            status, code, message, hint, retry_after=retry_after, details=details or {}
        )


class InvalidProfile(ValueError):
    """The provider's answer has no usable account id, or is not the object it should be."""


class RefreshTokenDead(Exception):  # noqa: N818 - an outcome, not a failure of ours
    """The provider will never accept this refresh token again: the person must consent."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class RevocationIncomplete(Exception):  # noqa: N818 - an outcome the person must act on
    """The provider may still list this app for the person: we could not withdraw the grant.

    Raised by `Provider.revoke` when asking is impossible (the token is dead and cannot be
    refreshed) or the provider refused; the person is sent to `user_apps_url` instead.
    `reason` is a short code for logs and the audit trail, never a token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RestartLogin(Exception):  # noqa: N818 - a signal, not an error
    """The callback cannot be used, but a fresh authorization will succeed silently."""
