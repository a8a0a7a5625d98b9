"""`python -m bench.growth`: does what a route costs stay flat as the data grows?

The app runs twice per database, on a small data set and a large one (by default 1,000 and
100,000 users; one and 1,000 other sessions of the admin; one API token and the most one
person may hold), each time on a fresh database and Redis key prefix, under gunicorn
(`--workers 2`, sync) in APP_ENV=production. Users and sessions are seeded in bulk (SQL
inserts, one Redis pipeline); the admin signs in for real through the mock providers.
Each route is then requested over HTTP, one request at a time, and its median time, body
size, SQL statements, Redis commands and Redis round trips per request are compared:
large / small. Round trips are counted inside the app's workers (`counted_growth_app`),
where redis-py writes to its socket and waits; a pipeline is one. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import mmap
import os
import re
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import redis
import requests
import sqlalchemy as sa
from flask import Flask

from bench.postgresql import postgresql_database, postgresql_missing
from bench.reference_apps import counted_app
from bench.run import (
    APP_COOKIE,
    HTTP_TIMEOUT,
    REDIS_MISSING,
    AppClient,
    Children,
    RedisStats,
    SqlStats,
    add_database_options,
    app_env,
    free_port,
    login,
    postgresql_server,
    preferred_provider,
    start_gunicorn,
    start_redis,
    wait_up,
    with_children,
)

PACKAGE = "{{ cookiecutter.package_name }}"
ROOT = Path(__file__).resolve().parent.parent
ROUND_TRIPS_DIR = "BENCH_ROUND_TRIPS"  # where each worker keeps its round-trip count
GROWTH_APP = "bench.growth:counted_growth_app()"
WARMUP = 3  # unmeasured requests per route first (caches, connections, the page's code)
FLAT = 1.5  # a page at the large size costs at most this many times the small one's
HOUSEKEEPING = {b"HELLO", b"CLIENT", b"AUTH", b"SELECT", b"PING", b"READONLY"}
FIRST_COMMAND = re.compile(rb"^\*\d+\r\n\$\d+\r\n([A-Za-z]+)")
_SLOT = struct.Struct("<Q")


# --- in the app's workers: Redis round trips, counted -----------------------------------------


class RoundTripCounts:
    """One worker's count of Redis requests sent (one per round trip), memory-mapped."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, _SLOT.size)
            self.map = mmap.mmap(fd, _SLOT.size)
        finally:
            os.close(fd)
        self.count = 0

    def sent(self, command: Any) -> None:
        """A connection's handshake and health checks are the pool's business, not counted."""
        packed = command if isinstance(command, bytes) else b"".join(command)
        name = FIRST_COMMAND.match(packed)
        if not (name and name.group(1).upper() in HOUSEKEEPING):
            self.count += 1
            _SLOT.pack_into(self.map, 0, self.count)

    @staticmethod
    def read(directory: Path) -> int:
        return sum(_SLOT.unpack(p.read_bytes())[0] for p in directory.glob("*.trips"))


def counted_growth_app() -> Flask:
    """`counted_app()` (the app, its SQL statements counted) plus its Redis round trips.

    Only in the benchmark's workers: redis-py's socket write is wrapped, nothing of the app.
    """
    from redis.connection import AbstractConnection

    app = counted_app()
    counts = RoundTripCounts(Path(os.environ[ROUND_TRIPS_DIR]) / f"{os.getpid()}.trips")
    send = AbstractConnection.send_packed_command

    def counted_send(connection: Any, command: Any, check_health: bool = True) -> None:
        counts.sent(command)
        return send(connection, command, check_health)

    AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    app.extensions["bench_round_trips"] = counts
    return app


# --- sizes, measurements --------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    label: str
    users: int
    sessions: int  # other sessions of the admin, seeded (as from before the cap)
    tokens: int  # the admin's API tokens


@dataclass
class Cost:
    """One route at one size: medians over the repeats, counts per request."""

    ms: float
    kb: float
    sql: float
    redis_commands: float
    round_trips: float


@dataclass
class Stats:
    """Where the counts come from, for one app server."""

    redis: RedisStats
    sql: SqlStats
    trips: Path

    def snapshot(self) -> tuple[Counter, Counter, int]:
        return self.redis.read(settle=False), self.sql.read(), RoundTripCounts.read(self.trips)


@dataclass
class Route:
    label: str
    # Runs once before each measured request (re-seeding what the request consumes).
    prepare: Callable[[], None] | None
    # The measured request: returns its response (a page or a CLI's exit status).
    request: Callable[[], requests.Response | int]
    # "page": large <= FLAT x small. "fixed": no more Redis round trips at the large size
    # than at the small one, plus `slack` (a sign-in over the cap ends what is over it: one
    # more pipeline).
    kind: str = "page"
    slack: int = 0
    costs: dict[str, Cost] = field(default_factory=dict)


def measure(route: Route, stats: Stats, repeat: int) -> Cost:
    """`repeat` requests, one at a time, after WARMUP; what a preparation does is not counted."""
    for _ in range(WARMUP if route.prepare is None else 0):
        _checked_size(route, route.request())
    times, sizes = [], []
    redis_commands, sql, trips = Counter(), Counter(), 0
    for _ in range(repeat):
        if route.prepare:
            route.prepare()
        before = stats.snapshot()
        started = time.perf_counter()
        response = route.request()
        times.append(1000 * (time.perf_counter() - started))
        after = stats.snapshot()
        redis_commands += after[0] - before[0]
        sql += after[1] - before[1]
        trips += after[2] - before[2]
        sizes.append(_checked_size(route, response))
    return Cost(
        ms=statistics.median(times),
        kb=statistics.median(sizes) / 1024,
        sql=sum(sql.values()) / repeat,
        redis_commands=sum(redis_commands.values()) / repeat,
        round_trips=trips / repeat,
    )


def _checked_size(route: Route, response: requests.Response | int) -> int:
    """The body's size; a failure stops the run (its numbers would mean nothing)."""
    if isinstance(response, int):
        if response != 0:
            raise SystemExit(f"{route.label}: exit status {response}")
        return 0
    if response.status_code >= 400:
        raise SystemExit(f"{route.label}: {response.status_code} {response.text[:300]}")
    return len(response.content)


# --- seeding --------------------------------------------------------------------------------


def seed_users(url: str, count: int, provider: str) -> None:
    """`count` users, each with one verified identity: bulk inserts, 5,000 rows a statement."""
    models = importlib.import_module(f"{PACKAGE}.models")
    engine = sa.create_engine(url)
    batch = 5000
    try:
        with engine.begin() as connection:
            for start in range(0, count, batch):
                numbers = range(start, min(start + batch, count))
                users = [_user(models.search_key, n) for n in numbers]
                connection.execute(models.User.__table__.insert(), users)
                identities = [_identity(u["id"], provider, n) for n, u in enumerate(users, start)]
                connection.execute(models.UserIdentity.__table__.insert(), identities)
        if engine.dialect.name == "postgresql":  # as autovacuum would, in time
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def _user(search_key: Callable[[str], str], n: int) -> dict[str, Any]:
    name, email = f"Person {n}", f"user{n}@example.org"
    return {
        "id": f"{n:024x}",
        "name": name,
        "email": email,
        "email_lower": search_key(email),
        "name_lower": search_key(name),
        "email_verified": True,
        "created_at": 1_600_000_000 + n // 10,
        "last_login_at": 1_600_000_000,
    }


def _identity(user_id: str, provider: str, n: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "provider": provider,
        "subject": f"seed-{n}",
        "email": f"user{n}@example.org",
        "email_verified": True,
        "created_at": 0,
        "last_login_at": 0,
    }


class SessionSeeder:
    """Live sessions of one user written as a sign-in writes them (record and index entry),
    sealed with the app's own session interface: one pipeline for any number."""

    def __init__(self, redis_url: str, prefix: str, secret_key: str) -> None:
        sessions = importlib.import_module(f"{PACKAGE}.sessions")
        self.client = redis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.interface = sessions.SecureRedisSessionInterface(
            Flask(__name__),
            client=self.client,
            key_prefix=f"{prefix}session:",
            secret_key=secret_key,
        )

    def seed(self, user_id: str, count: int) -> None:
        now = int(time.time())
        pipe = self.client.pipeline(transaction=False)
        for n in range(count):
            store_key = self.interface._get_store_id(secrets.token_urlsafe(32))
            public_id = secrets.token_hex(8)
            data = {"user_id": user_id, "sid_public": public_id, "user": {"id": user_id}}
            pipe.set(store_key, self.interface._seal(store_key, data), ex=3600)
            seen = now - 3600 - 60 * n
            entry = {"store_key": store_key, "created_at": seen, "last_seen_at": seen}
            entry |= {"ip": "192.0.2.1", "user_agent": "Seeded", "provider": "seed"}
            pipe.hset(f"{self.prefix}user_sessions:{user_id}", public_id, json.dumps(entry))
        pipe.execute()


# --- one size on one database ---------------------------------------------------------------


@dataclass
class Running:
    server: subprocess.Popen
    url: str
    database_url: str
    env: dict[str, str]
    stats: Stats
    mock: Any
    admin: AppClient
    admin_id: str
    seeder: SessionSeeder


def start_app(
    children: Children,
    stack: ExitStack,
    tmp: Path,
    database: str,
    database_url: str,
    size: Size,
    redis_url: str,
    args: argparse.Namespace,
) -> Running:
    mock_providers = importlib.import_module("mock_providers")
    importlib.import_module(f"{PACKAGE}.database").upgrade_database(database_url)
    provider = baked_preferred_provider()
    seed_users(database_url, size.users, provider)
    port = free_port()
    mock = mock_providers.start(mock_providers.MockSettings(app_url=f"http://127.0.0.1:{port}"))
    stack.callback(mock.stop)
    name = f"{database}-{size.label}"
    sql = SqlStats(tmp / f"sql-{name}")
    trips = tmp / f"trips-{name}"
    trips.mkdir()
    env = app_env(name, database_url, port, redis_url, sql, mock)
    env |= {ROUND_TRIPS_DIR: str(trips), "REDIS_KEY_PREFIX": f"growth-{name}:"}
    env |= {"LOGIN_RATE_LIMIT": "10000 per minute", "API_TOKEN_RATE_LIMIT": "10000 per minute"}
    server = start_gunicorn(children, f"app-{name}", GROWTH_APP, port, env, args.workers, tmp)
    wait_up(server)
    stats = Stats(RedisStats(redis_url), sql, trips)
    admin, admin_id = sign_in_admin(server.url, mock, provider, stats, database_url)
    seeder = SessionSeeder(redis_url, env["REDIS_KEY_PREFIX"], env["SECRET_KEY"])
    return Running(
        server.process, server.url, database_url, env, stats, mock, admin, admin_id, seeder
    )


def baked_preferred_provider() -> str:
    enabled = list(importlib.import_module(f"{PACKAGE}.providers").PROVIDER_CLASSES)
    return preferred_provider(enabled)


def sign_in_admin(
    url: str, mock: Any, provider: str, stats: Stats, database_url: str
) -> tuple[AppClient, str]:
    """A real sign-in; the admin role granted in the database; a second sign-in to take it."""
    first = login(url, mock, provider, stats.redis, stats.sql).client
    user_id = first.request("GET", "/api/me").json()["id"]
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO role_grants (user_id, role, source, granted_at) "
                    "VALUES (:id, 'admin', 'manual', 0)"
                ),
                {"id": user_id},
            )
    finally:
        engine.dispose()
    admin = login(url, mock, provider, stats.redis, stats.sql).client
    if "admin" not in admin.request("GET", "/api/me").json()["roles"]:
        raise SystemExit("the admin role did not take")
    return admin, user_id


def csrf_of(client: AppClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.request("GET", "/").text)
    if not match:
        raise SystemExit("no csrf_token input on / after login")
    return match.group(1)


def middle_cursor(app: Running) -> str:
    """The cursor of the page that starts halfway through the users (as paging there would
    give, without the hundreds of requests)."""
    user_list = importlib.import_module(f"{PACKAGE}.user_list")
    engine = sa.create_engine(app.database_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
            row = connection.execute(
                sa.text(
                    "SELECT created_at, id FROM users ORDER BY created_at, id LIMIT 1 OFFSET :n"
                ),
                {"n": count // 2},
            ).one()
    finally:
        engine.dispose()
    codec = user_list.CursorCodec(app.env["SECRET_KEY"])
    return codec.encode(user_list.Position(user_list.BY_CREATION, row.created_at, row.id), "")


def routes(app: Running, size: Size, tmp: Path) -> list[Route]:
    admin = app.admin
    middle = middle_cursor(app)
    csrf = csrf_of(admin)
    email = f"user{size.users // 2}@example.org"

    def get(path: str) -> Callable[[], requests.Response]:
        return lambda: admin.request("GET", path)

    def sign_out_others() -> requests.Response:
        return admin.request("POST", "/account/sessions/sign-out-others", data={"csrf_token": csrf})

    def grant() -> int:
        command = [
            sys.executable,
            "-m",
            "flask",
            "--app",
            PACKAGE,
            "roles",
            "grant",
            email,
            "admin",
        ]
        return subprocess.run(  # noqa: S603 - our own command line
            command, env=app.env, cwd=tmp, capture_output=True, check=False, timeout=120
        ).returncode

    seed = lambda: app.seeder.seed(app.admin_id, size.sessions)  # noqa: E731
    return [
        Route("GET /api/admin/users (first page)", None, get("/api/admin/users")),
        Route(
            "GET /api/admin/users?cursor= (middle)", None, get(f"/api/admin/users?cursor={middle}")
        ),
        Route("GET /api/admin/users?q=user1 (email)", None, get("/api/admin/users?q=user1")),
        Route("GET /api/admin/users?q=person 1 (name)", None, get("/api/admin/users?q=person%201")),
        Route("GET /admin (HTML, first page)", None, get("/admin")),
        Route("flask roles grant EMAIL admin", None, grant),
        Route("POST sign-out-others (S sessions)", seed, sign_out_others, "fixed"),
        Route("sign-in with S sessions (to the cap)", seed, lambda: timed_sign_in(app), "fixed", 1),
        Route("GET /account (after the cap)", None, get("/account"), "fixed"),
        Route("GET /api/tokens (T tokens)", None, get("/api/tokens"), "fixed"),
    ]


def timed_sign_in(app: Running) -> requests.Response:
    """A sign-in as the admin's browser does it; the app's answers only are what is timed
    (the measure covers the mock's part too, the same at both sizes)."""
    provider = baked_preferred_provider()
    client = AppClient(app.url, APP_COOKIE)
    client.cookie = app.admin.cookie  # signed in: /login/<provider> renews the sign-in
    browser = requests.Session()
    response = client.request("GET", f"/login/{provider}")
    for _ in range(12):
        if not response.is_redirect:
            break
        location = urljoin(response.url, response.headers["Location"]).split("#")[0]
        if location.startswith(app.mock.url):
            response = browser.get(location, allow_redirects=False, timeout=HTTP_TIMEOUT)
        else:
            response = client.request("GET", location)
    app.admin.cookie = client.cookie  # the new session is the admin's from now on
    return response


def create_tokens(app: Running, count: int) -> None:
    csrf = csrf_of(app.admin)
    for n in range(count):
        response = app.admin.request(
            "POST",
            "/api/tokens",
            json={"name": f"bench {n}", "scopes": ["profile:read"], "expires_in": 3600},
            headers={"X-CSRF-Token": csrf},
        )
        if response.status_code != 201:
            raise SystemExit(f"POST /api/tokens: {response.status_code} {response.text}")


# --- the run --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.growth",
        description="Compare what each route costs on a small and a large data set.",
    )
    parser.add_argument("--small", type=int, default=1000, help="users, small size (1000)")
    parser.add_argument("--large", type=int, default=100_000, help="users, large size (100000)")
    parser.add_argument(
        "--sessions", type=int, default=1000, help="other sessions of one person, large (1000)"
    )
    parser.add_argument("--tokens", type=int, default=50, help="API tokens, large size (50)")
    parser.add_argument("--repeat", type=int, default=20, help="requests per route (20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (2)")
    add_database_options(parser)
    args = parser.parse_args(argv)
    args.postgresql = postgresql_server(args.postgresql)
    for name in ("small", "large", "sessions", "tokens", "repeat", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print(REDIS_MISSING)
        return 1
    return with_children("growth-", lambda children, tmp: run(args, redis_server, children, tmp))


def databases(args: argparse.Namespace) -> list[str]:
    chosen = ["sqlite"] if args.database in ("both", "sqlite") else []
    if args.database in ("both", "postgresql"):
        problem = postgresql_missing(args.postgresql)
        if problem is None:
            chosen.append("postgresql")
        elif args.database == "postgresql":
            raise SystemExit(f"{problem}: cannot run on PostgreSQL (--database postgresql)")
        else:
            print(f"{problem}: SQLite only (PostgreSQL SKIPPED)", flush=True)
    return chosen


def run(args: argparse.Namespace, redis_server: str, children: Children, tmp: Path) -> None:
    sizes = [
        Size("small", args.small, 1, 1),
        Size("large", args.large, args.sessions, args.tokens),
    ]
    print(
        f"small: {sizes[0].users:,} users, {sizes[0].sessions} other session, "
        f"{sizes[0].tokens} API token; large: {sizes[1].users:,} users, "
        f"{sizes[1].sessions:,} other sessions, {sizes[1].tokens} API tokens; "
        f"gunicorn --workers {args.workers} (sync), {args.repeat} requests per route",
        flush=True,
    )
    redis_url = start_redis(children, redis_server, tmp)
    for database in databases(args):
        measured: list[Route] = []
        for size in sizes:
            with ExitStack() as stack:
                url = database_url(database, size, tmp, args, stack)
                print(f"  {database} {size.label}: seeding {size.users:,} users", flush=True)
                app = start_app(children, stack, tmp, database, url, size, redis_url, args)
                create_tokens(app, size.tokens)
                found = routes(app, size, tmp)
                measured = measured or found
                for mine, route in zip(measured, found, strict=True):
                    print(f"    {size.label}: {mine.label}", flush=True)
                    mine.costs[size.label] = measure(route, app.stats, repeat_of(route, args))
                app.server.terminate()  # before its database is dropped
                app.server.wait(timeout=15)
        report(database, measured, sizes)


def repeat_of(route: Route, args: argparse.Namespace) -> int:
    """A CLI run starts a Python process (about a second): fewer of those."""
    return min(args.repeat, 3) if route.label.startswith("flask ") else args.repeat


def database_url(
    database: str, size: Size, tmp: Path, args: argparse.Namespace, stack: ExitStack
) -> str:
    if database == "sqlite":
        return f"sqlite:///{tmp / f'growth-{size.label}.sqlite3'}"
    return stack.enter_context(postgresql_database(args.postgresql, prefix="growth"))


# --- the report -----------------------------------------------------------------------------


def report(database: str, measured: list[Route], sizes: list[Size]) -> None:
    small, large = (size.label for size in sizes)
    width = max(len(r.label) for r in measured)
    print(f"\n{database}: the cost of one request, small -> large (ratio = large / small)")
    header = (
        f"{'route':<{width}} {'ms':>15} {'ratio':>6} {'KB':>13} {'sql/req':>11} "
        f"{'redis/req':>13} {'trips/req':>11}"
    )
    print(header)
    print("-" * len(header))
    for route in measured:
        a, b = route.costs[small], route.costs[large]
        print(
            f"{route.label:<{width}} {a.ms:>6.1f} -> {b.ms:>6.1f} {b.ms / a.ms:>6.2f} "
            f"{a.kb:>5.1f} -> {b.kb:>5.1f} {a.sql:>4.1f} -> {b.sql:>4.1f} "
            f"{a.redis_commands:>5.0f} -> {b.redis_commands:>5.0f} "
            f"{a.round_trips:>4.1f} -> {b.round_trips:>4.1f}"
        )
    print(f"\n{database}: targets")
    for route in measured:
        a, b = route.costs[small], route.costs[large]
        if route.kind == "page":
            what = f"large <= {FLAT} x small"
            _check(route.label, what, b.ms <= FLAT * a.ms, f"{b.ms / a.ms:.2f}")
        else:
            what = "no more Redis round trips at the large size"
            what += f" (+{route.slack})" if route.slack else ""
            measured_trips = f"{a.round_trips:.1f} -> {b.round_trips:.1f}"
            _check(route.label, what, b.round_trips <= a.round_trips + route.slack, measured_trips)


def _check(label: str, what: str, ok: bool, measured: str) -> None:
    print(f"  [{'met' if ok else 'MISSED'}] {label}: {what}: {measured}")


if __name__ == "__main__":
    sys.exit(main())
