"""Users and their provider identities, kept in the database (models.User, UserIdentity).

A user is found by (provider, subject) only, never by email: two accounts that share an
address at different providers stay two users unless the person links them. The database
enforces it too: (provider, subject) is unique, so two simultaneous first sign-ins with one
identity make exactly one user.

The store writes through the request's SQLAlchemy session and never commits: the caller
commits once, so a login's user, identity, token and audit event land together or not at
all. What it returns is a `UserView`, a plain copy that outlives the database session.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from .models import AuditEvent, RoleGrant, User, UserIdentity, db
from .providers import Identity

MANUAL = "manual"  # roles given with `flask roles grant`
FROM_ADMIN_EMAILS = "admin_emails"  # the admin role derived from a verified email
BUILTIN_ROLES = frozenset({"admin"})  # `user` is everyone's; APP_ROLES adds the app's own
SIGN_IN_ATTEMPTS = 3


class IdentityTaken(Exception):  # noqa: N818
    """The identity already belongs to another user: never merge silently."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider


class LastIdentity(Exception):  # noqa: N818
    """Removing it would leave the user unable to sign in."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider


@dataclass
class UserView:
    """A user as the app passes it around: the /api/me shape plus bookkeeping.

    Built from the database record, or from the copy kept in the session (then without
    bookkeeping). Change a user through `UserStore`, never through a view.

    `roles` are the roles that count now: those granted by hand, plus `admin` granted at a
    sign-in from ADMIN_EMAILS while a verified email of the user is still listed there. The
    list is checked each time a view is built, so removing an address takes admin away at
    once (after a restart), in every session and API token, without a new sign-in.
    """

    id: str
    name: str | None
    email: str | None
    email_verified: bool
    avatar_url: str | None
    roles: list[str]
    identities: list[dict[str, Any]] = field(default_factory=list)
    created_at: int = 0
    last_login_at: int = 0
    # Roles given by hand (`flask roles grant`); `roles` adds those derived at login.
    granted_roles: list[str] = field(default_factory=list)
    # Roles granted at a sign-in from ADMIN_EMAILS, whether they still count or not.
    derived_roles: list[str] = field(default_factory=list)

    @classmethod
    def from_model(cls, user: User, admin_emails: frozenset[str] | None = None) -> UserView:
        identities = [i.as_dict() for i in user.identities]
        granted = {g.role for g in user.role_grants if g.source == MANUAL}
        derived = {g.role for g in user.role_grants if g.source == FROM_ADMIN_EMAILS}
        return cls(
            id=user.id,
            name=user.name,
            email=user.email,
            email_verified=user.email_verified,
            avatar_url=user.avatar_url,
            roles=effective_roles(granted, derived, identities, admin_emails),
            identities=identities,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            granted_roles=sorted(granted),
            derived_roles=sorted(derived),
        )

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> UserView:
        """A read-only view rebuilt from the session's copy (`to_session`), roles checked now."""
        identities = [dict(i) for i in data.get("identities", [])]
        granted = set(data.get("granted_roles", []))
        derived = set(data.get("derived_roles", []))
        return cls(
            id=data["id"],
            name=data.get("name"),
            email=data.get("email"),
            email_verified=bool(data.get("email_verified")),
            avatar_url=data.get("avatar_url"),
            roles=effective_roles(granted, derived, identities),
            identities=identities,
            granted_roles=sorted(granted),
            derived_roles=sorted(derived),
        )

    @property
    def stored_roles(self) -> list[str]:
        """Every role stored, counting now or not: compared at sign-in to record changes."""
        return role_list([*self.granted_roles, *self.derived_roles])

    def to_api(self) -> dict[str, Any]:
        """The /api/me shape."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "email_verified": self.email_verified,
            "avatar_url": self.avatar_url,
            "roles": list(self.roles),
            "identities": [dict(i) for i in self.identities],
        }

    def to_session(self) -> dict[str, Any]:
        """The copy kept in the session: /api/me plus where the roles come from."""
        return {
            **self.to_api(),
            "granted_roles": list(self.granted_roles),
            "derived_roles": list(self.derived_roles),
        }


def role_list(roles: Iterable[str]) -> list[str]:
    """Everyone has `user`, listed first; the rest sorted."""
    return ["user", *sorted(set(roles) - {"user"})]


def configured_admin_emails() -> frozenset[str]:
    """ADMIN_EMAILS as this process was started with."""
    return current_app.config["APP_SETTINGS"].admin_emails


def is_admin_by_email(
    identities: Iterable[Mapping[str, Any]], admin_emails: frozenset[str]
) -> bool:
    """Only a provider-verified email can make an admin."""
    return any(
        i.get("email_verified") and (i.get("email") or "").lower() in admin_emails
        for i in identities
    )


def effective_roles(
    granted: Iterable[str],
    derived: Iterable[str],
    identities: Iterable[Mapping[str, Any]],
    admin_emails: frozenset[str] | None = None,
) -> list[str]:
    """The roles that count now: by hand, and `admin` only while ADMIN_EMAILS still backs it.

    Costs no query: the identities come with the user (or the session's copy). Adding an
    address to ADMIN_EMAILS grants admin at the person's next sign-in (`_derive_roles`).
    """
    roles = set(granted)
    if "admin" in derived:
        listed = configured_admin_emails() if admin_emails is None else admin_emails
        if is_admin_by_email(identities, listed):
            roles.add("admin")
    return role_list(roles)


def known_roles() -> frozenset[str]:
    """The role names `flask roles grant` accepts: admin, SECURITY_ROLES and APP_ROLES."""
    settings = current_app.config["APP_SETTINGS"]
    return BUILTIN_ROLES | settings.security_roles | settings.app_roles


def _with_relations() -> Any:
    return (selectinload(User.identities), selectinload(User.role_grants))


class UserStore:
    def __init__(self, admin_emails: frozenset[str]):
        self.admin_emails = admin_emails

    # --- reading ----------------------------------------------------------------------

    def _record(self, user_id: str) -> User | None:
        return db.session.get(User, user_id, options=_with_relations())

    def get(self, user_id: str) -> UserView | None:
        user = self._record(user_id)
        return self._view(user) if user else None

    def _view(self, user: User) -> UserView:
        return UserView.from_model(user, self.admin_emails)

    def _identity(self, provider: str, subject: str) -> UserIdentity | None:
        return db.session.scalar(
            select(UserIdentity).where(
                UserIdentity.provider == provider, UserIdentity.subject == subject
            )
        )

    def find_by_identity(self, provider: str, subject: str) -> UserView | None:
        identity = self._identity(provider, subject)
        return self.get(identity.user_id) if identity else None

    def find_by_email(self, email: str) -> list[UserView]:
        """Users with an identity that has this address, verified or not (indexed, any case).

        Callers decide what an unverified match is worth: `flask roles` and `flask users`
        act only on provider-verified addresses (cli._one_user).
        """
        email = email.strip().lower()
        # From the identities' lower(email) index to the users: never a walk over users.
        user_ids = db.session.scalars(
            select(UserIdentity.user_id).where(func.lower(UserIdentity.email) == email).limit(20)
        )
        views = self.views(list(dict.fromkeys(user_ids)))
        return sorted(views, key=lambda u: (u.created_at, u.id))

    def views(self, user_ids: list[str]) -> list[UserView]:
        """These users, in this order, with their identities and roles: three queries.

        The admin list (user_list.py) finds a page's ids in an index, then loads them here.
        """
        if not user_ids:
            return []
        users = db.session.scalars(
            select(User).where(User.id.in_(user_ids)).options(*_with_relations())
        )
        by_id = {u.id: u for u in users}
        return [self._view(by_id[i]) for i in user_ids if i in by_id]

    # --- signing in and linking -------------------------------------------------------

    def sign_in(self, identity: Identity) -> UserView:
        """Find or create the user of this identity and refresh its profile (not committed)."""
        for attempt in range(SIGN_IN_ATTEMPTS):
            row = self._identity(identity.provider, identity.subject)
            try:
                if row is None:
                    user = User(id=secrets.token_hex(12), created_at=int(time.time()))
                    db.session.add(user)
                    user.identities.append(self._new_identity(identity))
                else:
                    found = self._record(row.user_id)
                    assert found is not None  # identities.user_id is a foreign key
                    user = found
                self._update(user, identity)
                db.session.flush()
                return self._view(user)
            except IntegrityError:
                # Another first sign-in of this identity won the unique constraint: roll
                # back (this is the login's first write) and sign in to the winner's user.
                db.session.rollback()
                if attempt == SIGN_IN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def link(self, view: UserView, identity: Identity) -> UserView:
        """Attach an identity to a signed-in user; refuse one that belongs to someone else."""
        row = self._identity(identity.provider, identity.subject)
        if row is not None and row.user_id != view.id:
            raise IdentityTaken(identity.provider)
        user = self._record(view.id)
        if user is None:
            raise LookupError(view.id)
        if row is None:
            user.identities.append(self._new_identity(identity))
        self._update(user, identity)
        try:
            db.session.flush()
        except IntegrityError:  # linked elsewhere in the meantime
            db.session.rollback()
            raise IdentityTaken(identity.provider) from None
        return self._view(user)

    def unlink(self, view: UserView, provider: str) -> UserView:
        """Remove the user's identity at this provider (never the last one)."""
        return self._remove(view, provider, allow_last=False)

    def remove_identity(self, view: UserView, provider: str) -> UserView:
        """Like unlink, but may leave the user without any identity (the provider said so)."""
        return self._remove(view, provider, allow_last=True)

    def _remove(self, view: UserView, provider: str, allow_last: bool) -> UserView:
        user = self._record(view.id)
        if user is None:
            raise LookupError(view.id)
        remaining = [i for i in user.identities if i.provider != provider]
        if not remaining and not allow_last:
            raise LastIdentity(provider)
        # The identity's provider token goes with it (ON DELETE CASCADE).
        for identity in [i for i in user.identities if i.provider == provider]:
            user.identities.remove(identity)
        db.session.flush()
        self._recompute_profile(user)
        db.session.flush()
        return self._view(user)

    def delete(self, view: UserView) -> None:
        """The user and everything of theirs: identities, tokens, grants, API tokens, events."""
        db.session.execute(delete(AuditEvent).where(AuditEvent.user_id == view.id))
        db.session.execute(delete(User).where(User.id == view.id))
        db.session.expire_all()

    def set_granted_role(self, view: UserView, role: str, granted: bool) -> UserView:
        user = self._record(view.id)
        if user is None:
            raise LookupError(view.id)
        existing = [g for g in user.role_grants if g.role == role and g.source == MANUAL]
        if granted and not existing:
            user.role_grants.append(RoleGrant(role=role, source=MANUAL))
        for grant in existing if not granted else []:
            user.role_grants.remove(grant)
        db.session.flush()
        return self._view(user)

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _new_identity(identity: Identity) -> UserIdentity:
        return UserIdentity(provider=identity.provider, subject=identity.subject)

    def _update(self, user: User, identity: Identity) -> None:
        """Copy the provider's latest profile into the identity and the user."""
        row = next(
            i
            for i in user.identities
            if (i.provider, i.subject) == (identity.provider, identity.subject)
        )
        now = int(time.time())
        row.username, row.email, row.email_verified = (
            identity.username,
            identity.email,
            identity.email_verified,
        )
        row.name, row.avatar_url, row.last_login_at = identity.name, identity.avatar_url, now
        # The profile follows the identity used last, keeping known values.
        user.name = identity.name or user.name
        if identity.email and (identity.email_verified or not user.email_verified):
            user.email, user.email_verified = identity.email, identity.email_verified
        user.avatar_url = identity.avatar_url or user.avatar_url
        user.last_login_at = now
        self._derive_roles(user)

    def _recompute_profile(self, user: User) -> None:
        """After an identity left: nothing of it may stay (name, email, picture URL)."""
        identities = user.identities
        user.name = next((i.name for i in identities if i.name), None)
        verified = [i for i in identities if i.email and i.email_verified]
        with_email = verified or [i for i in identities if i.email]
        user.email = with_email[0].email if with_email else None
        user.email_verified = bool(verified)
        user.avatar_url = next((i.avatar_url for i in identities if i.avatar_url), None)
        self._derive_roles(user)

    def _derive_roles(self, user: User) -> None:
        """Granted or dropped at every login and link; between them `effective_roles` checks it.

        The stored grant records what a sign-in decided (and lets the next one notice a
        change, record it and sign out other sessions); it counts only while the address
        is still listed.
        """
        derived = [g for g in user.role_grants if g.source == FROM_ADMIN_EMAILS]
        if is_admin_by_email([i.as_dict() for i in user.identities], self.admin_emails):
            if not derived:
                user.role_grants.append(RoleGrant(role="admin", source=FROM_ADMIN_EMAILS))
        else:
            for grant in derived:
                user.role_grants.remove(grant)
