"""The records that must last, in the SQL database at DATABASE_URL.

Redis keeps only what may be lost (sessions, pending logins, locks, counters, caches);
everything here survives a Redis flush. Your own models live beside these and refer to a
user with a foreign key:

    from {{ cookiecutter.package_name }}.models import db, User

    class Note(Model):
        __tablename__ = "notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))

Times are Unix seconds (UTC) in integer columns: the same on SQLite and PostgreSQL.
Deleting a user deletes everything of theirs in the same transaction (ON DELETE CASCADE).
Change a model, then `flask --app {{ cookiecutter.package_name }} db migrate -m "what"` and
`db upgrade`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

# Stable constraint names, so migrations can alter them on every backend (SQLite too).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Unix seconds: 64 bits, so nothing overflows in 2038.
Seconds = BigInteger
# Row ids that may grow past 2**31 (events); SQLite only auto-increments INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")
# Lowercased text that is searched by prefix. Compared by code point on every database
# (SQLite's BINARY, PostgreSQL's "C" collation), so a prefix is one index range whatever
# the database's own collation; the app lowercases (Python's str.lower), not the database.
SearchKey = String(320).with_variant(String(320, collation="C"), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, without a cost on the requests that never touch the database.

    Its teardown calls `session.remove()` after every request. Where the request made no
    session (a session read, a page), that looks the scope up twice and raises and catches a
    KeyError: about 1% of a session read's work (`python -m bench.instructions`). This one
    removes the session only where there is one; a request that used the database still
    closes it.
    """

    def _teardown_session(self, exc: BaseException | None) -> None:
        if self.session.registry.has():
            self.session.remove()


db = Database(model_class=Base)
# Subclass Model (it is db.Model) for your own models: type checkers know it as a Base.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def now() -> int:
    return int(time.time())


class User(Model):
    """A person. Found by an identity (provider, subject), never by email."""

    __tablename__ = "users"
    # The admin list pages through users by one of these (keyset pagination, user_list.py):
    # by creation, or by an email or name prefix (any case).
    __table_args__ = (
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_email_lower_id", "email_lower", "id"),
        Index("ix_users_name_lower_id", "name_lower", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The profile shown in /api/me, taken from the identities (the last used wins).
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[int] = mapped_column(Seconds, default=now)
    last_login_at: Mapped[int] = mapped_column(Seconds, default=now)
    # email and name lowercased, kept in step by `_keep_search_keys`: what the admin searches.
    email_lower: Mapped[str | None] = mapped_column(SearchKey)
    name_lower: Mapped[str | None] = mapped_column(SearchKey)

    identities: Mapped[list[UserIdentity]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="UserIdentity.id",
    )
    role_grants: Mapped[list[RoleGrant]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RoleGrant.role"
    )

    @validates("email", "name")
    def _keep_search_keys(self, key: str, value: str | None) -> str | None:
        """Every write of email or name through the ORM also sets its search key."""
        setattr(self, f"{key}_lower", search_key(value))
        return value


def search_key(value: str | None) -> str | None:
    """What `email_lower` and `name_lower` hold (None stays None: such users never match)."""
    return value.lower()[:320] if value else None


class UserIdentity(Model):
    """One provider account linked to a user: the `identities` of /api/me."""

    __tablename__ = "identities"
    __table_args__ = (
        # An identity belongs to at most one user: two first sign-ins make one user.
        UniqueConstraint("provider", "subject"),
        # One account per provider and user (disconnect before connecting another).
        UniqueConstraint("user_id", "provider"),
        Index("ix_identities_email_lower", func.lower(text("email"))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(255))
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[int] = mapped_column(Seconds, default=now)
    last_login_at: Mapped[int] = mapped_column(Seconds, default=now)

    user: Mapped[User] = relationship(back_populates="identities")

    def as_dict(self) -> dict[str, str | bool | None]:
        """The /api/me shape of an identity."""
        return {
            "provider": self.provider,
            "subject": self.subject,
            "username": self.username,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
            "avatar_url": self.avatar_url,
        }


class RoleGrant(Model):
    """A role beyond `user`. `source` is "manual" (flask roles grant) or "admin_emails".

    An "admin_emails" grant is made at sign-in and counts only while the user's verified
    email is still in ADMIN_EMAILS (users.effective_roles checks it at every use).
    """

    __tablename__ = "role_grants"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    granted_at: Mapped[int] = mapped_column(Seconds, default=now)


class ProviderToken(Model):
    """A provider's tokens for one linked identity; the tokens themselves are encrypted.

    Tied to the identity (user, provider): unlinking or deleting the user deletes it.
    """

    __tablename__ = "provider_tokens"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "provider"],
            ["identities.user_id", "identities.provider"],
            ondelete="CASCADE",
        ),
    )

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Fernet tokens (MultiFernet over TOKEN_ENCRYPTION_KEY): never plaintext.
    access_token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_type: Mapped[str] = mapped_column(String(32), default="bearer")
    expires_at: Mapped[int | None] = mapped_column(Seconds)
    scope: Mapped[str | None] = mapped_column(String(1024))
    # True once the provider refused the token for good: the user must reconnect.
    reauth_required: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[int] = mapped_column(Seconds, default=now, index=True)


class ApiToken(Model):
    """A personal API token: only its SHA-256 hash is kept, never the token."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, shown so a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(255))  # space-separated
    created_at: Mapped[int] = mapped_column(Seconds, default=now)
    expires_at: Mapped[int] = mapped_column(Seconds, index=True)
    last_used_at: Mapped[int | None] = mapped_column(Seconds)
    use_count: Mapped[int] = mapped_column(BigInteger, default=0)

    user: Mapped[User] = relationship()


class AuditEvent(Model):
    """A security event. Kept AUDIT_RETENTION_DAYS; never holds a token, code or secret."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key: an event about a user deleted meanwhile must still be written.
    # Deleting a user deletes their events in the same transaction (users.UserStore.delete).
    user_id: Mapped[str | None] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(64))
    at: Mapped[int] = mapped_column(Seconds, default=now, index=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class DataDeletionRequest(Model):
    """A provider's data-deletion request: its status page answers by confirmation code."""

    __tablename__ = "data_deletion_requests"

    confirmation_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    found: Mapped[bool] = mapped_column(Boolean)
    requested_at: Mapped[int] = mapped_column(Seconds, default=now, index=True)
    completed_at: Mapped[int | None] = mapped_column(Seconds)
