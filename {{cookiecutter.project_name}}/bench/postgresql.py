"""Throwaway PostgreSQL databases, for the benchmark and the tests (which import this too)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


def with_psycopg(raw: str) -> str:
    """The server URL with the driver the app uses (psycopg 3), as the app's settings do."""
    for scheme in ("postgres://", "postgresql://"):
        if raw.startswith(scheme):
            return "postgresql+psycopg://" + raw.removeprefix(scheme)
    return raw


def redacted(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def postgresql_missing(server_url: str) -> str | None:
    """Why the PostgreSQL server cannot be used (None when it can)."""
    engine = sa.create_engine(server_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        return f"PostgreSQL is not reachable at {redacted(server_url)} ({type(exc).__name__})"
    finally:
        engine.dispose()
    return None


@contextmanager
def postgresql_database(server_url: str, prefix: str = "bench") -> Iterator[str]:
    """A new, empty database on the server for this run; dropped at the end."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
