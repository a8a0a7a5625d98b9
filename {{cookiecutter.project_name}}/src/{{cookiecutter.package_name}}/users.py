"""Users and their provider identities in Redis.

A user is found by (provider, subject) only, never by email: two accounts that share an
address at different providers stay two users unless the person links them.

Keys: `<prefix>user:<id>` holds the user as JSON; `<prefix>identity:<provider>:<subject>`
holds the user id.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from .providers import Identity


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
class User:
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

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> User:
        """A read-only view rebuilt from the /api/me shape (the copy kept in the session)."""
        return cls(
            id=data["id"],
            name=data.get("name"),
            email=data.get("email"),
            email_verified=bool(data.get("email_verified")),
            avatar_url=data.get("avatar_url"),
            roles=list(data.get("roles", [])),
            identities=[dict(i) for i in data.get("identities", [])],
        )

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


def roles_for(
    identities: Iterable[dict[str, Any]], admin_emails: frozenset[str], granted: Iterable[str]
) -> list[str]:
    """Re-evaluated at every login; only a provider-verified email can make an admin."""
    roles = {"user", *granted}
    if any(
        i.get("email_verified") and (i.get("email") or "").lower() in admin_emails
        for i in identities
    ):
        roles.add("admin")
    return sorted(roles, key=lambda r: (r != "user", r))


class UserStore:
    def __init__(self, client: redis.Redis, prefix: str, admin_emails: frozenset[str]):
        self.client = client
        self.prefix = prefix
        self.admin_emails = admin_emails

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def _identity_key(self, provider: str, subject: str) -> str:
        return f"{self.prefix}identity:{provider}:{subject}"

    def get(self, user_id: str) -> User | None:
        raw = self.client.get(self._user_key(user_id))
        return User(**json.loads(raw)) if raw else None

    def save(self, user: User) -> None:
        self.client.set(self._user_key(user.id), json.dumps(asdict(user)))

    def find_by_identity(self, provider: str, subject: str) -> User | None:
        user_id = self.client.get(self._identity_key(provider, subject))
        return self.get(user_id.decode()) if user_id else None

    def sign_in(self, identity: Identity) -> User:
        """Find or create the user of this identity and refresh its profile."""
        user = self.find_by_identity(identity.provider, identity.subject)
        if user is None:
            user = self._create(identity)
        return self._update(user, identity)

    def link(self, user: User, identity: Identity) -> User:
        """Attach an identity to a signed-in user; refuse one that belongs to someone else."""
        key = self._identity_key(identity.provider, identity.subject)
        self.client.set(key, user.id, nx=True)
        owner = self.client.get(key)
        if owner is None or owner.decode() != user.id:
            raise IdentityTaken(identity.provider)
        return self._update(user, identity)

    def unlink(self, user: User, provider: str) -> User:
        """Remove the user's identity at this provider (never the last one)."""
        remaining = [i for i in user.identities if i["provider"] != provider]
        if not remaining:
            raise LastIdentity(provider)
        for identity in user.identities:
            if identity["provider"] == provider:
                self.client.delete(self._identity_key(provider, identity["subject"]))
        user.identities = remaining
        self._recompute_profile(user)
        self.save(user)
        return user

    def _roles(self, user: User) -> list[str]:
        return roles_for(user.identities, self.admin_emails, user.granted_roles)

    def remove_identity(self, user: User, provider: str) -> User:
        """Like unlink, but may leave the user without any identity (the provider said so)."""
        for identity in user.identities:
            if identity["provider"] == provider:
                self.client.delete(self._identity_key(provider, identity["subject"]))
        user.identities = [i for i in user.identities if i["provider"] != provider]
        self._recompute_profile(user)
        self.save(user)
        return user

    def _recompute_profile(self, user: User) -> None:
        """After an identity left: nothing of it may stay (name, email, picture URL)."""
        user.name = next((i["name"] for i in user.identities if i.get("name")), None)
        verified = [i for i in user.identities if i.get("email") and i.get("email_verified")]
        with_email = verified or [i for i in user.identities if i.get("email")]
        user.email = with_email[0]["email"] if with_email else None
        user.email_verified = bool(verified)
        user.avatar_url = next(
            (i["avatar_url"] for i in user.identities if i.get("avatar_url")), None
        )
        user.roles = self._roles(user)

    def delete(self, user: User) -> None:
        for identity in user.identities:
            self.client.delete(self._identity_key(identity["provider"], identity["subject"]))
        self.client.delete(self._user_key(user.id))

    def _update(self, user: User, identity: Identity) -> User:
        user.identities = [
            i
            for i in user.identities
            if (i["provider"], i["subject"]) != (identity.provider, identity.subject)
        ] + [identity.as_dict()]
        # The profile follows the identity used last, keeping known values.
        user.name = identity.name or user.name
        if identity.email and (identity.email_verified or not user.email_verified):
            user.email, user.email_verified = identity.email, identity.email_verified
        user.avatar_url = identity.avatar_url or user.avatar_url
        user.roles = self._roles(user)
        user.last_login_at = int(time.time())
        self.save(user)
        return user

    def all(self) -> list[User]:
        """Every user (SCAN: fine for an admin page, not for a hot path)."""
        keys = sorted(self.client.scan_iter(match=self._user_key("*"), count=500))
        pipe = self.client.pipeline(transaction=False)  # not MGET: Cluster spreads the keys
        for key in keys:
            pipe.get(key)
        return [User(**json.loads(v)) for v in pipe.execute() if v]

    def find_by_email(self, email: str) -> list[User]:
        email = email.strip().lower()
        return [
            u
            for u in self.all()
            if (u.email or "").lower() == email
            or any((i.get("email") or "").lower() == email for i in u.identities)
        ]

    def set_granted_role(self, user: User, role: str, granted: bool) -> User:
        roles = set(user.granted_roles)
        roles = roles | {role} if granted else roles - {role}
        user.granted_roles = sorted(roles)
        user.roles = self._roles(user)
        self.save(user)
        return user

    def _create(self, identity: Identity) -> User:
        user = User(
            id=secrets.token_hex(12),
            name=None,
            email=None,
            email_verified=False,
            avatar_url=None,
            roles=["user"],
            created_at=int(time.time()),
        )
        self.save(user)
        # NX: two first logins racing for one identity end up as one user.
        if self.client.set(
            self._identity_key(identity.provider, identity.subject), user.id, nx=True
        ):
            return user
        self.client.delete(self._user_key(user.id))
        existing = self.find_by_identity(identity.provider, identity.subject)
        if existing is None:  # the winner's record vanished in between: try once more
            return self._create(identity)
        return existing
