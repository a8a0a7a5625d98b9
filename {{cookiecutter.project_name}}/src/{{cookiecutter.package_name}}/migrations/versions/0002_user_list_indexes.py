"""The admin user list pages by index: by creation, or by an email or name prefix.

Adds users.email_lower and users.name_lower (the lowercased copies the search compares,
byte by byte: the "C" collation on PostgreSQL), fills them in, and indexes (created_at, id),
(email_lower, id) and (name_lower, id). The lower(email) index of users goes: nothing looks
users up by it, (email_lower, id) serves the same lookups.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCH_KEY = sa.String(length=320).with_variant(sa.String(length=320, collation="C"), "postgresql")
BATCH = 1000


def search_key(value: str | None) -> str | None:
    """As models.search_key at the time of this revision: Python's lowercasing, not SQL's."""
    return value.lower()[:320] if value else None


def fill_search_keys() -> None:
    """Set the keys of existing users, a batch at a time (in id order)."""
    users = sa.table(
        "users",
        sa.column("id", sa.String),
        sa.column("email", sa.String),
        sa.column("name", sa.String),
        sa.column("email_lower", SEARCH_KEY),
        sa.column("name_lower", SEARCH_KEY),
    )
    connection = op.get_bind()
    last = ""
    while True:
        rows = connection.execute(
            sa.select(users.c.id, users.c.email, users.c.name)
            .where(users.c.id > last)
            .order_by(users.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        connection.execute(
            users.update()
            .where(users.c.id == sa.bindparam("user_id"))
            .values(email_lower=sa.bindparam("email_key"), name_lower=sa.bindparam("name_key")),
            [
                {"user_id": r.id, "email_key": search_key(r.email), "name_key": search_key(r.name)}
                for r in rows
            ],
        )
        last = rows[-1].id


def upgrade() -> None:
    op.add_column("users", sa.Column("email_lower", SEARCH_KEY, nullable=True))
    op.add_column("users", sa.Column("name_lower", SEARCH_KEY, nullable=True))
    fill_search_keys()
    op.drop_index("ix_users_email_lower", table_name="users")
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])
    op.create_index("ix_users_email_lower_id", "users", ["email_lower", "id"])
    op.create_index("ix_users_name_lower_id", "users", ["name_lower", "id"])


def downgrade() -> None:
    op.drop_index("ix_users_name_lower_id", table_name="users")
    op.drop_index("ix_users_email_lower_id", table_name="users")
    op.drop_index("ix_users_created_at_id", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("name_lower")
        batch_op.drop_column("email_lower")
    op.create_index("ix_users_email_lower", "users", [sa.text("lower(email)")])
