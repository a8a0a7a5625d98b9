"""The records that must last live in the database: schema, invariants, transactions, outages.

The `backend` tests run on a fresh database of each kind (SQLite and PostgreSQL; PostgreSQL is
skipped where none is reachable, and never where REQUIRE_POSTGRESQL=1). The others use the
app of the suite, on the database the suite runs on (TEST_DATABASE).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import (
    PROJECT_ROOT,
    Browser,
    command_calls,
    everything_in_database,
    everything_in_redis,
    free_port,
    postgresql_database,
    require_postgresql,
    rows,
    run_server,
)
from test_api_tokens import call, cli, new_token, sign_in

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.database import (
    CONNECT_TIMEOUT,
    UPGRADE_COMMAND,
    engine_options,
    init_engine,
    upgrade_database,
)
from {{ cookiecutter.package_name }}.models import db
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

from mock_providers.demo import app_command

PACKAGE = "{{ cookiecutter.package_name }}"
PROVIDER = next(iter(PROVIDER_CLASSES))
TABLES = {
    "users",
    "identities",
    "role_grants",
    "provider_tokens",
    "api_tokens",
    "audit_events",
    "data_deletion_requests",
    "alembic_version",
}


# --- a fresh database of each kind ----------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of that kind, dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with postgresql_database(require_postgresql()) as url:
        yield url


@contextmanager
def connect(url: str) -> Iterator[sa.Connection]:
    """A connection that enforces foreign keys on SQLite too (the app's engines do)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys=ON"))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    with connect(url) as connection:
        return set(sa.inspect(connection).get_table_names())


def test_migrations_create_the_schema_and_go_back(backend: str) -> None:
    upgrade_database(backend)
    assert table_names(backend) == TABLES
    with connect(backend) as connection:
        assert MigrationContext.configure(connection).get_current_heads() == ("0002",)
    flask_db(backend, "downgrade", "base")
    assert table_names(backend) <= {"alembic_version"}
    flask_db(backend, "upgrade")
    assert table_names(backend) == TABLES


# SQLite cannot reflect the lower(email) indexes; PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_migrations_match_the_models(backend: str) -> None:
    """A model changed without its migration shows up here."""
    upgrade_database(backend)
    with connect(backend) as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_the_user_list_migration_fills_in_the_search_keys(backend: str) -> None:
    """0002 lowercases the email and name of the users already there, as the app does."""
    flask_db(backend, "upgrade", "0001")
    with connect(backend) as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (id, name, email, email_verified, created_at, last_login_at) "
                "VALUES ('u1', 'Élodie Durand', 'Elo@Example.ORG', false, 0, 0), "
                "('u2', NULL, NULL, false, 0, 0)"
            )
        )
        connection.commit()
    flask_db(backend, "upgrade")
    with connect(backend) as connection:
        keys = connection.execute(
            sa.text("SELECT id, email_lower, name_lower FROM users ORDER BY id")
        ).all()
    assert [tuple(k) for k in keys] == [
        ("u1", "elo@example.org", "élodie durand"),
        ("u2", None, None),
    ]


def seed_user(connection: sa.Connection, user_id: str, provider: str, subject: str) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO users (id, email_verified, created_at, last_login_at) "
            "VALUES (:id, false, 0, 0)"
        ),
        {"id": user_id},
    )
    connection.execute(
        sa.text(
            "INSERT INTO identities (user_id, provider, subject, email_verified, created_at, "
            "last_login_at) VALUES (:id, :provider, :subject, false, 0, 0)"
        ),
        {"id": user_id, "provider": provider, "subject": subject},
    )


def test_an_identity_belongs_to_one_user_by_constraint(backend: str) -> None:
    upgrade_database(backend)
    with connect(backend) as connection:
        seed_user(connection, "u1", "example", "583231")
        connection.commit()
        with pytest.raises(sa.exc.IntegrityError):
            seed_user(connection, "u2", "example", "583231")  # same identity, another user
        connection.rollback()
        with pytest.raises(sa.exc.IntegrityError):  # a second account at one provider
            connection.execute(
                sa.text(
                    "INSERT INTO identities (user_id, provider, subject, email_verified, "
                    "created_at, last_login_at) VALUES ('u1', 'example', '999', false, 0, 0)"
                )
            )
        connection.rollback()
        assert connection.execute(sa.text("SELECT count(*) FROM identities")).scalar() == 1


def test_deleting_a_user_removes_everything_of_theirs(backend: str) -> None:
    upgrade_database(backend)
    with connect(backend) as connection:
        for user_id in ("gone", "kept"):
            seed_user(connection, user_id, "example", f"subject-{user_id}")
            params = {"id": user_id, "hash": user_id * 8}
            connection.execute(
                sa.text(
                    "INSERT INTO provider_tokens (user_id, provider, access_token_encrypted, "
                    "token_type, reauth_required, updated_at) "
                    "VALUES (:id, 'example', :blob, 'bearer', false, 0)"
                ),
                {**params, "blob": b"ciphertext"},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO api_tokens (id, user_id, token_hash, prefix, name, scopes, "
                    "created_at, expires_at, use_count) "
                    "VALUES (:id, :id, :hash, 'p', 'n', 'profile:read', 0, 9999999999, 0)"
                ),
                params,
            )
            connection.execute(
                sa.text(
                    "INSERT INTO role_grants (user_id, role, source, granted_at) "
                    "VALUES (:id, 'admin', 'manual', 0)"
                ),
                params,
            )
        connection.commit()
        connection.execute(sa.text("DELETE FROM users WHERE id = 'gone'"))
        connection.commit()
        for table in ("identities", "provider_tokens", "api_tokens", "role_grants"):
            owners = connection.execute(sa.text(f"SELECT user_id FROM {table}")).scalars()  # noqa: S608
            assert list(owners) == ["kept"], table
        # Unlinking an identity takes its provider token with it.
        connection.execute(sa.text("DELETE FROM identities WHERE user_id = 'kept'"))
        connection.commit()
        assert connection.execute(sa.text("SELECT count(*) FROM provider_tokens")).scalar() == 0


def flask(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`flask --app <package> ARGS` as an operator runs it (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", PACKAGE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def flask_db(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    """`flask --app <package> db ARGS` on the database at `url` (development settings)."""
    env = {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "x" * 40,
        **(env or {}),
        "DATABASE_URL": url,
        # The package is importable without being installed (as in the template's tests).
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]),
    }
    result = flask("db", *args, env=env)
    return result.stdout + result.stderr


# --- the schema at start ----------------------------------------------------------------


def test_development_applies_pending_migrations_at_start(app_env, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    create_app({**app_env, "DATABASE_URL": url})
    assert table_names(url) == TABLES


def test_production_refuses_a_schema_behind_and_names_the_command(app_env, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.sqlite3'}"
    production = {**app_env, "APP_ENV": "production", "DATABASE_URL": url}
    with pytest.raises(SystemExit) as refused:
        create_app(production)
    assert UPGRADE_COMMAND in str(refused.value)
    assert table_names(url) <= {"alembic_version"}, "production must not migrate by itself"
    flask_db(url, "upgrade", env=production)  # the command it named, in production
    assert table_names(url) == TABLES
    create_app(production)  # now it starts


def test_sqlite_connections_are_set_up_for_several_workers(app) -> None:
    with app.app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only")
        with db.engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") >= 1000


def test_processes_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    # Workers starting at once on a fresh file (one engine each, as in separate processes):
    # SQLite answered some "database is locked" at once, with no busy wait, while another
    # one switched the file to WAL.
    failures: list[BaseException] = []

    def connect(url: str, start: threading.Barrier) -> None:
        engine = sa.create_engine(url, **engine_options(url))
        init_engine(engine)
        start.wait()
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        except sa.exc.OperationalError as exc:
            failures.append(exc)
        finally:
            engine.dispose()

    for trial in range(60):
        path = tmp_path / f"fresh-{trial}.sqlite3"
        path.touch()
        start = threading.Barrier(8)
        threads = [
            threading.Thread(target=connect, args=(f"sqlite:///{path}", start)) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures, f"{len(failures)} of 480 connections failed: {failures[0]}"


# --- what survives Redis ------------------------------------------------------------------


def test_accounts_and_tokens_survive_a_redis_flush(app, mock, redis_db, database) -> None:
    browser = sign_in(app.url, mock)
    me = browser.me().json()
    token = new_token(browser, scopes=["profile:read"])
    redis_db.flushall()  # or a restart without persistence, or an eviction
    assert browser.me().status_code == 401  # sessions may be lost...
    assert call(app.url, token["token"]).json()["id"] == me["id"]  # ...API tokens are not
    again = sign_in(app.url, mock)
    assert again.me().json() == me  # the same account, identities and roles
    assert rows(database, "SELECT count(*) FROM users")[0][0] == 1
    assert rows(database, "SELECT count(*) FROM provider_tokens")[0][0] == 1
    events = [r.event for r in rows(database, "SELECT event FROM audit_events ORDER BY id")]
    assert events.count("login_succeeded") == 2 and "api_token_created" in events


# --- invariants under concurrency -----------------------------------------------------


@pytest.mark.parametrize("trial", range(3))
def test_simultaneous_first_sign_ins_make_one_user(app, mock, database, trial) -> None:
    browsers = [Browser(app.url) for _ in range(6)]
    callbacks = [b.start_login(PROVIDER) for b in browsers]  # each has its own code and state
    start = threading.Barrier(len(browsers))

    def finish(pair: tuple[Browser, str]) -> int:
        browser, callback = pair
        start.wait()
        return browser.finish_login(callback).status_code

    with ThreadPoolExecutor(len(browsers)) as pool:
        statuses = list(pool.map(finish, zip(browsers, callbacks, strict=True)))
    assert statuses == [200] * len(browsers)
    ids = {b.me().json()["id"] for b in browsers}
    assert len(ids) == 1
    assert rows(database, "SELECT count(*) FROM users")[0][0] == 1
    assert rows(database, "SELECT count(*) FROM identities")[0][0] == 1


# --- cost per request ---------------------------------------------------------------


@contextmanager
def statements(app) -> Iterator[dict[str, list]]:
    """The SQL statements and commits the app runs inside the block."""
    seen: dict[str, list] = {"sql": [], "commits": []}
    with app.app.app_context():
        engine = db.engine
    on_sql = lambda *args: seen["sql"].append(args[2])  # noqa: E731
    on_commit = lambda connection: seen["commits"].append(connection)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", on_sql)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_sql)
        sa.event.remove(engine, "commit", on_commit)


def test_the_login_callback_is_one_transaction_with_bounded_statements(app, mock) -> None:
    browser = Browser(app.url)
    callback = browser.start_login(PROVIDER)
    with statements(app) as seen:
        assert browser.finish_login(callback).status_code == 200
    assert len(seen["commits"]) == 1
    writes = [s for s in seen["sql"] if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert 3 <= len(writes) <= 8, writes  # user, identity, token, event (+ roles)
    assert len(seen["sql"]) <= 16, seen["sql"]


def test_a_session_read_costs_no_sql_and_a_bearer_request_one_query(app, mock, redis_db) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser)["token"]
    assert call(app.url, token).status_code == 200  # the first use writes its usage
    with statements(app) as seen:
        redis_db.config_resetstat()
        assert browser.me().status_code == 200
        session_redis = command_calls(redis_db)
        session_sql = list(seen["sql"])
        redis_db.config_resetstat()
        assert call(app.url, token).status_code == 200
        bearer_redis = command_calls(redis_db)
        bearer_sql = seen["sql"][len(session_sql) :]
    assert session_sql == [] and session_redis == {"get": 1}
    assert len(bearer_sql) == 1 and sum(bearer_redis.values()) <= 1, (bearer_sql, bearer_redis)
    assert seen["commits"] == []


def raised_in(client, path: str) -> tuple[int, list[str]]:
    """The status of GET `path` (in-process) and the modules where an exception was raised."""
    modules: list[str] = []

    def trace(frame, event: str, arg):
        if event == "exception":
            modules.append(frame.f_globals.get("__name__", "?"))
        return trace

    sys.settrace(trace)
    try:
        status = client.get(path).status_code
    finally:
        sys.settrace(None)
    return status, modules


def test_a_request_closes_the_database_session_it_made_and_only_that(app, mock) -> None:
    # Flask-SQLAlchemy's own teardown raised and caught a KeyError after every request that
    # had no database session: the teardown of `models.Database` looks first.
    browser = sign_in(app.url, mock)
    client = app.app.test_client()
    client.set_cookie(app.app.config["SESSION_COOKIE_NAME"], browser.cookie())
    status, modules = raised_in(client, "/api/me")  # the session's copy: no SQL
    assert status == 200
    assert not [m for m in modules if m.startswith(("sqlalchemy", "flask_sqlalchemy"))], modules
    with app.app.app_context():
        pool = db.engine.pool
    assert client.get("/api/tokens").status_code == 200  # a query: a session made, then closed
    assert pool.checkedout() == 0  # its connection went back to the pool


# --- no secret in the database ------------------------------------------------------------


def test_no_secret_is_stored_in_plaintext(app, mock, database, redis_db) -> None:
    browser = sign_in(app.url, mock)
    token = new_token(browser, scopes=["profile:read"])["token"]
    assert call(app.url, token).status_code == 200
    stored = everything_in_database(database) + everything_in_redis(redis_db)
    secrets_ = [*mock.control.minted(), token, browser.cookie(), browser.csrf_token()]
    assert rows(database, "SELECT count(*) FROM provider_tokens")[0][0] == 1
    for secret in secrets_:
        assert secret and secret.encode() not in stored
        assert secret[-16:].encode() not in stored


# --- the CLI acts on the app's database -------------------------------------------------


def test_the_cli_acts_on_the_database_the_app_uses(app, mock, app_env) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    assert browser.get("/admin").status_code == 403
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    assert browser.get("/admin").status_code == 200
    assert "admin" in browser.me().json()["roles"]  # live sessions were told
    assert cli(app_env, "users", "delete", user_id, "--yes").exit_code == 0
    assert browser.me().status_code == 401


def test_demo_restart_keeps_accounts_and_the_cli_finds_them(
    released_port, project_env, app_env, app_url, tmp_path, mock
) -> None:
    """`make demo` as a person uses it: no DATABASE_URL, no REDIS_URL, restarted."""
    env = {**project_env, **app_env}
    for variable in ("DATABASE_URL", "REDIS_URL"):
        env.pop(variable)
    ids = []
    for _restart in range(2):
        with run_server(app_command(released_port), env, tmp_path, app_url):
            ids.append(sign_in(app_url, mock).me().json()["id"])
    assert ids[0] == ids[1]
    assert (tmp_path / "instance" / f"{PACKAGE}.sqlite3").is_file()
    granted = flask("roles", "grant", ids[0], "admin", env=env, cwd=tmp_path)
    assert "admin" in granted.stdout


# --- the database unreachable -----------------------------------------------------------


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers.get("Retry-After")
    assert response.json()["error"] == "service_unavailable"


def outage_checks(app_url: str, browser: Browser, token: str) -> None:
    """While the database is down: 503s that say so, and session-only reads still work."""
    assert browser.me().status_code == 200
    assert browser.get("/").status_code == 200
    health = requests.get(f"{app_url}/healthz", timeout=30)
    assert health.status_code == 503 and health.json()["failing"] == ["database"]
    assert_unavailable(
        browser.http.post(
            f"{app_url}/api/tokens",
            json={"name": "during outage", "scopes": ["profile:read"]},
            headers={"X-CSRF-Token": browser.csrf_token()},
            timeout=30,
        )
    )


def test_postgresql_outage_is_503_and_recovers(variant, mock) -> None:
    server = require_postgresql()
    with postgresql_database(server) as url:
        upgrade_database(url)
        app = variant(DATABASE_URL=url)
        browser = sign_in(app.url, mock)
        token = new_token(browser)["token"]
        name = sa.make_url(url).database
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name"
                    ),
                    {"name": name},
                )
            outage_checks(app.url, browser, token)
            assert_unavailable(call(app.url, token))
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
        assert call(app.url, token).status_code == 200  # back by itself
        assert requests.get(f"{app.url}/healthz", timeout=10).status_code == 200
        names = [t["name"] for t in browser.get("/api/tokens").json()]
        assert "during outage" not in names  # nothing half-written
        with app.app.app_context():
            db.engine.dispose()


def test_engine_options_check_pooled_connections_and_bound_connecting() -> None:
    psycopg = engine_options("postgresql+psycopg://app@db.example/app")
    assert "pool_pre_ping" not in psycopg  # drop_closed_connection checks, without a query
    assert psycopg["connect_args"] == {"connect_timeout": CONNECT_TIMEOUT}
    other_driver = engine_options("postgresql+psycopg2://app@db.example/app")
    assert other_driver["pool_pre_ping"] is True
    assert other_driver["connect_args"] == {"connect_timeout": CONNECT_TIMEOUT}
    assert engine_options("mysql+pymysql://app@db.example/app")["pool_pre_ping"] is True


def test_postgresql_connections_the_server_ended_are_replaced_before_use(variant, mock) -> None:
    """A restart or a failover ends every pooled connection: the next requests still answer,
    the pool having noticed without a round trip (no pre-ping SELECT 1 per request)."""
    server = require_postgresql()
    with postgresql_database(server) as url:
        upgrade_database(url)
        app = variant(DATABASE_URL=url)
        assert "pool_pre_ping" not in engine_options(url)
        browser = sign_in(app.url, mock)
        token = new_token(browser)["token"]
        name = sa.make_url(url).database
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            for _ in range(2):  # each time, every connection the app holds is ended
                assert call(app.url, token).status_code == 200
                with admin.connect() as connection:
                    ended = connection.execute(
                        sa.text(
                            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                            " WHERE datname = :name"
                        ),
                        {"name": name},
                    ).scalar_one()
                assert ended >= 1
                for _ in range(4):  # on each ended connection of the pool: replaced, no 503
                    assert call(app.url, token).status_code == 200
        finally:
            admin.dispose()
            with app.app.app_context():
                db.engine.dispose()


def test_sqlite_locked_by_another_writer_is_503_and_recovers(app, mock, database) -> None:
    if database.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    browser = sign_in(app.url, mock)
    token = new_token(browser)["token"]
    with database.connect() as blocker:
        blocker.exec_driver_sql("BEGIN IMMEDIATE")  # holds the write lock
        started = time.monotonic()
        response = browser.http.post(
            f"{app.url}/api/tokens",
            json={"name": "during outage", "scopes": ["profile:read"]},
            headers={"X-CSRF-Token": browser.csrf_token()},
            timeout=30,
        )
        assert_unavailable(response)
        assert time.monotonic() - started < 15
        assert browser.me().status_code == 200  # session reads need no database
        assert call(app.url, token).status_code == 200  # reads are not blocked (WAL)
        blocker.exec_driver_sql("ROLLBACK")
    assert [t["name"] for t in browser.get("/api/tokens").json()] == ["script"]
    assert new_token(browser, name="after")["name"] == "after"


def test_the_app_starts_without_a_reachable_database_only_to_say_so(app_env) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing"
    with pytest.raises(SystemExit) as refused:
        create_app({**app_env, "APP_ENV": "production", "DATABASE_URL": url})
    assert "DATABASE_URL" in str(refused.value)
