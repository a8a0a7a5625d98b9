"""Reference apps: the same answer as /api/me, with as little machinery as possible.

Served by gunicorn exactly like the app, e.g. `gunicorn 'bench.reference_apps:create_app("bare")'`:

- `bare`: a Flask route returning the body; no session at all (the ceiling).
- `redis_get`: reads its session with exactly one Redis GET and returns what it read (the
  floor for any Redis-backed session). Like any app whose session lives in Redis, it has
  no Flask cookie session as well (`NoCookieSession`).
- `cookie_session`: Flask's default signed-cookie session holding the user (what most Flask
  apps use; no server-side state).

Each sends the same headers as the app's /api/me (security headers, Cache-Control, Vary, a
request id): the ratios compare the work behind the answer, not the size of the answer.

Environment: `BENCH_BODY` (the JSON to serve), `BENCH_HEADERS` (a JSON list of the app's
header pairs, see `response_headers`), `REDIS_URL` (redis_get), `SECRET_KEY`
(cookie_session). `POST /bench/session` sets a session cookie for the load generator.

`counted_app()` is the app itself, `{{ cookiecutter.package_name }}.create_app()` unchanged, with
a count of the SQL statements it sends (see `SqlCounts`); the benchmark serves it that way.
"""

from __future__ import annotations

import importlib
import itertools
import json
import mmap
import os
import secrets
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Request, Response, abort, jsonify, request, session
from flask.sessions import SessionInterface, SessionMixin

KINDS = ("bare", "redis_get", "cookie_session")
SESSION_COOKIE = "bench_sid"
KEY_PREFIX = "bench:ref:"
PACKAGE = "{{ cookiecutter.package_name }}"
SQL_COUNTS_DIR = "BENCH_SQL_COUNTS"  # where each worker keeps its statement counts
SQL_KINDS = ("select", "insert", "update", "delete", "other")
_SLOT = struct.Struct("<Q")
HEADERS: list[tuple[str, str]] = []  # BENCH_HEADERS: what /api/me sends besides its body


# What every HTTP stack adds itself, or what changes per response: not copied from the app.
OWN_HEADERS = frozenset(
    {"content-length", "content-type", "date", "server", "connection", "x-request-id"}
)
_request_numbers = itertools.count()


def response_headers(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of the app's /api/me answer that a reference app sends as they are."""
    return [(name, value) for name, value in pairs if name.lower() not in OWN_HEADERS]


def _json(body: object) -> Response:
    response = jsonify(body)
    # The same headers as /api/me (security headers, Cache-Control, Vary) and a request id
    # of the same shape: the ratios then compare the work behind the answer, not its size.
    response.headers.extend(HEADERS)
    response.headers["X-Request-ID"] = f"{os.getpid():x}-{next(_request_numbers):08x}"
    return response


class NoCookieSession(SessionInterface):
    """No Flask session at all: Flask uses its null session and saves nothing.

    With Flask's default, the floor would also open and save a signed-cookie session on
    every request: the cost of a cookie session on top of its own in Redis, which no
    Redis-backed session pays (the app replaces the interface too)."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def create_app(kind: str) -> Flask:
    if kind not in KINDS:
        raise ValueError(f"unknown reference app {kind!r}: one of {', '.join(KINDS)}")
    body = json.loads(os.environ["BENCH_BODY"])
    HEADERS[:] = [tuple(pair) for pair in json.loads(os.environ.get("BENCH_HEADERS", "[]"))]
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
        SESSION_REFRESH_EACH_REQUEST=False,  # as the app: reading never rewrites the cookie
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    if kind == "bare":

        @app.get("/api/me")
        def me_bare() -> Response:
            return _json(body)

    elif kind == "redis_get":
        app.session_interface = NoCookieSession()
        # The app's client options (redis.py): short timeouts, periodic health check.
        client = redis.Redis.from_url(
            os.environ["REDIS_URL"],
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )

        @app.post("/bench/session")
        def start_redis_session() -> Response:
            sid = secrets.token_urlsafe(32)
            client.set(KEY_PREFIX + sid, json.dumps(body), ex=3600)
            response = jsonify(status="ok")
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax")
            return response

        @app.get("/api/me")
        def me_redis_get() -> Response:
            sid = request.cookies.get(SESSION_COOKIE)
            raw = client.get(KEY_PREFIX + sid) if sid else None
            if raw is None:
                abort(401)
            return _json(json.loads(raw))

    else:

        @app.post("/bench/session")
        def start_cookie_session() -> Response:
            session["user_id"] = body["id"]
            session["user"] = body
            return jsonify(status="ok")

        @app.get("/api/me")
        def me_cookie_session() -> Response:
            user = session.get("user")
            if not user:
                abort(401)
            return _json(user)

    return app


# --- the app, with its SQL statements counted -----------------------------------------------


class SqlCounts:
    """One process's SQL statement counts, by kind, in a small memory-mapped file.

    Each gunicorn worker writes its own file (`<pid>.sql`: one 8-byte counter per kind) with a
    store to memory, no system call per statement; the benchmark sums the files (`read`).
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, _SLOT.size * len(SQL_KINDS))
            self.map = mmap.mmap(fd, _SLOT.size * len(SQL_KINDS))
        finally:
            os.close(fd)
        self.counts = [0] * len(SQL_KINDS)

    def statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        """A `before_cursor_execute` listener: every statement the engine sends, once."""
        word = statement.lstrip()[:6].lower()
        kind = SQL_KINDS.index(word) if word in SQL_KINDS else len(SQL_KINDS) - 1
        self.counts[kind] += 1
        _SLOT.pack_into(self.map, _SLOT.size * kind, self.counts[kind])

    @staticmethod
    def read(directory: Path) -> Counter:
        """The statements of every process that counted into `directory`, by kind."""
        total: Counter = Counter()
        for path in directory.glob("*.sql"):
            data = path.read_bytes()
            if len(data) == _SLOT.size * len(SQL_KINDS):
                for index, kind in enumerate(SQL_KINDS):
                    total[kind] += _SLOT.unpack_from(data, _SLOT.size * index)[0]
        return +total  # without the kinds never seen


def counted_app() -> Flask:
    """`create_app()` as gunicorn serves it in production, its SQL statements counted.

    Nothing of the app is changed or wrapped: a SQLAlchemy `before_cursor_execute` listener
    on the app's own engine counts each statement the app executes (not the driver's own
    round trips: BEGIN, ROLLBACK, SQLite's connection pragmas). The
    listener is attached after `create_app()`, so its start-up schema check is not counted.
    """
    app = importlib.import_module(PACKAGE).create_app()
    from sqlalchemy import event  # only here: the reference apps do not load SQLAlchemy

    db = importlib.import_module(f"{PACKAGE}.models").db
    counts = SqlCounts(Path(os.environ[SQL_COUNTS_DIR]) / f"{os.getpid()}.sql")
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", counts.statement)
    app.extensions["bench_sql_counts"] = counts  # kept alive with the app
    return app
