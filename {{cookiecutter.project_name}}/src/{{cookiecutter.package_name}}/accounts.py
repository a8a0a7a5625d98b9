"""Whole-account operations: sign out everywhere, and delete an account with all its data.

Database first, Redis after: a change is committed before live sessions are touched, so a
failure in between never leaves sessions pointing at records that were rolled back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app

from .errors import AppError
from .extensions import (
    audit_log,
    oauth_client,
    session_index,
    token_service,
    user_store,
)
from .models import db
from .provider_errors import provider_failures
from .providers.errors import RevocationIncomplete
from .ratelimits import forget_user
from .sessions import session_store
from .tokens import ReauthRequired
from .users import UserView

log = logging.getLogger(__name__)


def sign_out_everywhere(user_id: str, keep: str | None = None, reason: str = "") -> int:
    ended = session_index().end_all(user_id, keep=keep)
    if ended:
        audit_log().record("sessions_ended", user_id, count=ended, reason=reason)
        db.session.commit()
    return ended


def refresh_sessions(user: UserView) -> None:
    """Put the changed user into every live session's copy (roles, identities, profile).

    Three round trips however many sessions: the index, then the records, read and written
    in one pipeline each.
    """
    changes = {"user": user.to_session(), "name": user.name}
    session_store().rewrite(session_index().store_keys(user.id), changes)


def end_session(user_id: str, session_id: str) -> None:
    """End one of the user's sessions (from the account page or the API)."""
    if not session_index().end(user_id, session_id):
        raise AppError(404, "not_found", "No such session.", "It may have ended already.")
    audit_log().record("session_ended", user_id, session_id=session_id)
    db.session.commit()


@dataclass(frozen=True)
class Unrevoked:
    """A provider that may still list this app for the person, who can remove it there."""

    provider: str
    reason: str


def revoke_grant(user: UserView, provider: str, subject: str) -> Unrevoked | None:
    """Withdraw one provider's grant and delete its stored token (in the caller's transaction).

    Raises AppError when the provider could not be asked (the caller decides whether that
    blocks); returns an Unrevoked when asking cannot work, for the person to act on.
    """
    tokens = token_service()
    adapter, client = current_app.extensions["providers"][provider], oauth_client(provider)
    token = tokens.vault.load(user.id, provider)
    if token is not None and adapter.revoke_needs_live_token:
        try:  # refreshed as for any API call: single-flight, a rotated token committed
            token = tokens.fresh_token(user.id, adapter, client)
        except ReauthRequired:  # now marked dead: the adapter says what that means
            token = tokens.vault.load(user.id, provider)
    try:
        with provider_failures(adapter):
            adapter.revoke(client, token, subject)
    except RevocationIncomplete as exc:
        log.warning("revocation incomplete provider=%s reason=%s", provider, exc.reason)
        outcome: Unrevoked | None = Unrevoked(provider, exc.reason)
    else:
        outcome = None
    tokens.vault.delete(user.id, provider)
    return outcome


def unrevoked_query(unrevoked: list[Unrevoked]) -> dict[str, Any]:
    """The query string that makes the next page say where to remove the app (names only)."""
    return {"unrevoked": ",".join(u.provider for u in unrevoked)} if unrevoked else {}


def revoke_provider_grants(user: UserView) -> list[Unrevoked]:
    """Best effort: a provider that is down must not block signing out or deleting.

    What could not be withdrawn is returned (and logged), never counted as done. The stored
    tokens are deleted in the caller's transaction: the caller commits.
    """
    providers = current_app.extensions["providers"]
    unrevoked = []
    for identity in user.identities:
        name = identity["provider"]
        if name not in providers:  # disabled since: nothing to ask it with
            token_service().vault.delete(user.id, name)
            continue
        try:
            outcome = revoke_grant(user, name, identity["subject"])
        except AppError as error:
            log.warning("revoke failed provider=%s error=%s", name, error.code)
            token_service().vault.delete(user.id, name)
            outcome = Unrevoked(name, error.code)
        if outcome is not None:
            unrevoked.append(outcome)
    return unrevoked


def delete_account(user: UserView, by: str) -> list[Unrevoked]:
    """Revoke every grant, then delete the user and all of theirs, then their sessions.

    One transaction removes the user, identities, provider and API tokens, role grants and
    events (foreign keys cascade); the sessions are ended once it has committed. Returns the
    providers that may still list the app, for the person to remove it there.
    """
    unrevoked = revoke_provider_grants(user)
    user_store().delete(user)
    # Without personal data: the id is a random internal one.
    audit_log().record(
        "account_deleted",
        None,
        deleted_user_id=user.id,
        by=by,
        unrevoked=[u.provider for u in unrevoked],
    )
    db.session.commit()
    session_index().end_all(user.id)
    forget_user(user.id)
    return unrevoked


def drop_identity(user: UserView, provider: str) -> None:
    """Forget one provider's link and tokens (a provider's deauthorize callback)."""
    token_service().vault.delete(user.id, provider)
    user = user_store().remove_identity(user, provider)
    audit_log().record("provider_unlinked", user.id, provider=provider, by=provider)
    db.session.commit()
    refresh_sessions(user)
