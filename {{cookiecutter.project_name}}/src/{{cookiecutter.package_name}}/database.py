"""The SQL database: engine settings per backend, migrations, and the schema check at start.

- SQLite (the development default, a file in `instance/`): WAL, a busy timeout and foreign
  keys on every connection, so several gunicorn workers can share it and cascades happen.
- PostgreSQL (`postgresql+psycopg://…`): pooled connections, checked before use without a
  round trip (see `drop_closed_connection`). Other servers: SQLAlchemy's `pool_pre_ping`.

Development applies pending migrations at start. Production never migrates behind the
operator's back: it refuses to start on a schema that is behind the code and names the
command to run (`flask --app {{ cookiecutter.package_name }} db upgrade`).
"""

from __future__ import annotations

import importlib.util
import logging
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory, write_hooks
from flask import Flask
from flask_migrate import Migrate, upgrade
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from .masking import mask_url
from .models import db
from .settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "flask --app {{ cookiecutter.package_name }} db upgrade"
SQLITE_BUSY_TIMEOUT = 5.0  # seconds a writer waits for another one's transaction
CONNECT_TIMEOUT = 5  # seconds to reach PostgreSQL


class DatabaseNotReady(Exception):  # noqa: N818 - a state, like SettingsError
    """The database does not answer, or needs `db upgrade` before this code can run on it."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def engine_options(url: str) -> dict[str, Any]:
    if is_sqlite(url):
        # pysqlite's own transaction handling (BEGIN before the first write) is kept: a
        # transaction then starts with its first write and waits for the lock instead of
        # failing on a stale read snapshot.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    options: dict[str, Any] = {"pool_recycle": 1800}
    if make_url(url).get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    if not is_psycopg(url):  # psycopg's connections are checked by drop_closed_connection
        options["pool_pre_ping"] = True
    return options


def is_psycopg(url: str | URL) -> bool:
    return make_url(url).get_dialect().driver == "psycopg"


def drop_closed_connection(dbapi_connection: Any, _record: object, _proxy: object) -> None:
    """Before a pooled PostgreSQL connection is used: is it still open?

    When the server ends a connection (a restart, a failover, `pg_terminate_backend`, an idle
    timeout), it sends its reason and closes the socket, so an idle connection's socket
    turns readable: one poll, no round trip. `pool_pre_ping` would send a SELECT 1, in a
    transaction of its own, before every request's query, doubling the round trips of a
    bearer request. The pool replaces a connection refused here (DisconnectionError).
    """
    if dbapi_connection.closed:
        raise DisconnectionError("the connection was closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):  # an idle connection receives nothing unless it is being ended
        raise DisconnectionError("the server ended the connection")


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    _use_wal(cursor)  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default: cascades would be skipped
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (once; it sticks), retrying a brief "database is locked".

    When new connections switch a fresh file at the same moment (gunicorn workers starting,
    two commands), SQLite answers all but one with "locked" at once, without the busy wait.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def init_database(app: Flask, settings: Settings) -> None:
    url = settings.database_url
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(url),
        SQLALCHEMY_RECORD_QUERIES=False,
    )
    db.init_app(app)
    Migrate(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True)
    with app.app_context():
        init_engine(db.engine)


def init_engine(engine: Engine) -> None:
    """SQLite: the pragmas on every new connection. psycopg: the check at each checkout."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif is_psycopg(engine.url):
        event.listen(engine, "checkout", drop_closed_connection)


def upgrade_database(url: str) -> None:
    """`flask db upgrade` on the database at `url`, without the app's other settings.

    For tools that prepare a database before the app starts (tests, the benchmark).
    """
    app = Flask("schema")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS=engine_options(url))
    db.init_app(app)
    Migrate(app, db, directory=str(MIGRATIONS_DIR))
    with app.app_context():
        init_engine(db.engine)
        upgrade(directory=str(MIGRATIONS_DIR))
        db.engine.dispose()


def schema_status(engine: Engine) -> tuple[set[str], set[str]]:
    """(the revisions the database is at, the revisions the code has)."""
    heads = set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, heads


def prepare_schema(app: Flask, settings: Settings) -> None:
    """Development: upgrade to the code's schema. Production: refuse a schema behind it."""
    with app.app_context():
        try:
            current, heads = schema_status(db.engine)
        except SQLAlchemyError as exc:
            raise DatabaseNotReady(
                f"The database at DATABASE_URL ({redacted_url(settings.database_url)}) does not "
                f"answer ({type(exc).__name__}): start it, or fix DATABASE_URL."
            ) from None
        if current == heads:
            return
        if not settings.is_production:
            log.info("applying database migrations (%s)", redacted_url(settings.database_url))
            try:
                upgrade(directory=str(MIGRATIONS_DIR))
            except SQLAlchemyError:
                # Another process (a second worker, the reloader) may have just done it.
                if schema_status(db.engine)[0] != heads:
                    raise
            return
    raise DatabaseNotReady(
        f"The database schema is behind the code (at {', '.join(sorted(current)) or 'nothing'},"
        f" the code needs {', '.join(sorted(heads))}): run `{UPGRADE_COMMAND}` first."
    )


@write_hooks.register("ruff")
def tidy_revision(path: str, _options: dict) -> None:
    """`db migrate` writes revisions that ruff accepts as they are (when ruff is installed)."""
    if importlib.util.find_spec("ruff") is None:
        return
    for command in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
        subprocess.run([sys.executable, "-m", "ruff", *command, path], check=False)  # noqa: S603


def redacted_url(url: str) -> str:
    """For messages: no user name, password or ?password= (SQLAlchemy's hide_password masks
    only the password in the userinfo)."""
    return mask_url(url)
