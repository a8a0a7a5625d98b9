"""Whole-account operations: sign out everywhere, and delete an account with all its data.

Database first, Redis after: a change is committed before live sessions are touched, so a
failure in between never leaves sessions pointing at records that were rolled back.
"""

from __future__ import annotations

import logging

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
from .ratelimits import forget_user
from .users import UserView

log = logging.getLogger(__name__)


def sign_out_everywhere(user_id: str, keep: str | None = None, reason: str = "") -> int:
    ended = session_index().end_all(user_id, keep=keep)
    if ended:
        audit_log().record("sessions_ended", user_id, count=ended, reason=reason)
        db.session.commit()
    return ended


def refresh_sessions(user: UserView) -> None:
    """Put the changed user into every live session's copy (roles, identities, profile)."""
    changes = {"user": user.to_session(), "name": user.name}
    for store_key in session_index().store_keys(user.id):
        current_app.session_interface.rewrite(store_key, changes)


def end_session(user_id: str, session_id: str) -> None:
    """End one of the user's sessions (from the account page or the API)."""
    if not session_index().end(user_id, session_id):
        raise AppError(404, "not_found", "No such session.", "It may have ended already.")
    audit_log().record("session_ended", user_id, session_id=session_id)
    db.session.commit()


def revoke_provider_grants(user: UserView) -> None:
    """Best effort: a provider that is down must not block signing out or deleting.

    The stored tokens are deleted in the caller's transaction: the caller commits.
    """
    tokens = token_service()
    providers = current_app.extensions["providers"]
    for identity in user.identities:
        name = identity["provider"]
        token = tokens.vault.load(user.id, name)
        if token is not None and name in providers:
            try:
                providers[name].revoke(oauth_client(name), token, identity["subject"])
            except AppError as error:
                log.warning("revoke failed provider=%s error=%s", name, error.code)
        tokens.vault.delete(user.id, name)


def delete_account(user: UserView, by: str) -> None:
    """Revoke every grant, then delete the user and all of theirs, then their sessions.

    One transaction removes the user, identities, provider and API tokens, role grants and
    events (foreign keys cascade); the sessions are ended once it has committed.
    """
    revoke_provider_grants(user)
    user_store().delete(user)
    # Without personal data: the id is a random internal one.
    audit_log().record("account_deleted", None, deleted_user_id=user.id, by=by)
    db.session.commit()
    session_index().end_all(user.id)
    forget_user(user.id)


def drop_identity(user: UserView, provider: str) -> None:
    """Forget one provider's link and tokens (Facebook's deauthorize callback)."""
    token_service().vault.delete(user.id, provider)
    user = user_store().remove_identity(user, provider)
    audit_log().record("provider_unlinked", user.id, provider=provider, by=provider)
    db.session.commit()
    refresh_sessions(user)
