"""Provider failures as pages: what adapters raise, and what Authlib, joserfc and requests raise.

Adapters (providers/) know nothing of pages. A `ProviderError` already says what the person
should read, so it becomes an AppError as it is; the libraries' exceptions get their page
here, by kind. The token endpoint's Date header is kept for the request, so a refused ID
token can say how far this server's clock is off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from flask import g, has_app_context
from joserfc.errors import JoseError

from .errors import AppError
from .providers import Provider
from .providers.base import safe_code
from .providers.errors import InvalidProfile, ProviderError


def invalid_state_error() -> AppError:
    return AppError(
        400,
        "invalid_state",
        "This sign-in attempt has expired or was already used.",
        "Start again from the login page. If it keeps happening, allow cookies for this "
        "site, and finish signing in within 15 minutes in the same browser tab.",
    )


def as_app_error(error: ProviderError) -> AppError:
    return AppError(
        error.status,
        error.code,
        error.message,
        error.hint,
        retry_after=error.retry_after,
        details=dict(error.details),
        calm=error.calm,
    )


def translate(provider: Provider, exc: Exception) -> AppError:
    """The page for a provider call's failure; anything else is raised again as it is."""
    if isinstance(exc, ProviderError):
        return as_app_error(exc)
    if isinstance(exc, MismatchingStateError):
        return invalid_state_error()
    if isinstance(exc, InvalidProfile):
        return AppError(
            502,
            "invalid_profile",
            f"{provider.title} sent a profile this app cannot use ({exc}).",
            "Try again in a moment. If it keeps happening, the provider's API may have "
            "changed: check for an update of this app.",
        )
    if isinstance(exc, OAuthError):
        return as_app_error(provider.token_refused(exc))
    if isinstance(exc, JoseError):
        details = {
            "reason": safe_code(getattr(exc, "error", "jose_error")),
            "description": str(getattr(exc, "description", "") or "")[:200],
            "clock_skew_seconds": clock_skew_seconds(),
        }
        return AppError(
            400,
            "invalid_id_token",
            f"The identity token from {provider.title} failed validation.",
            "Start the sign-in again. If it keeps failing, check that this server's clock "
            "is correct (an ID token 'issued in the future' means the clock is behind).",
            details={k: v for k, v in details.items() if v is not None},
        )
    if isinstance(exc, requests.Timeout):
        return AppError(
            504,
            "provider_timeout",
            f"{provider.title} did not answer in time.",
            "Try again in a moment.",
        )
    if isinstance(exc, requests.RequestException | ValueError):
        return AppError(
            502,
            "provider_unavailable",
            f"{provider.title} could not be reached or sent an unreadable answer.",
            "Try again in a moment.",
            details={"exception": type(exc).__name__},
        )
    raise exc


@contextmanager
def provider_failures(provider: Provider) -> Iterator[None]:
    """Calls to `provider` inside fail as AppErrors; outcomes (RestartLogin...) pass as they are."""
    try:
        yield
    except AppError:
        raise
    except Exception as exc:
        raise translate(provider, exc) from exc


def remember_provider_clock(response: requests.Response) -> requests.Response:
    """Keep the token endpoint's Date header: it measures our clock skew if the ID token fails."""
    if has_app_context():
        g.provider_date = response.headers.get("Date")
    return response


def keeping_clock(compliance_fix: Callable[[Any], None]) -> Callable[[Any], None]:
    """A provider's Authlib compliance fix, plus `remember_provider_clock` on token responses."""

    def fix(session: Any) -> None:
        session.register_compliance_hook("access_token_response", remember_provider_clock)
        compliance_fix(session)

    return fix


def clock_skew_seconds() -> int | None:
    """Provider time minus ours, from the last token response of this request."""
    date = g.get("provider_date") if has_app_context() else None
    if not date:
        return None
    try:
        return int(parsedate_to_datetime(date).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
