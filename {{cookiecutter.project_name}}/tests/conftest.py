"""Test infrastructure: a real redis-server, a real database, the mock providers and the app,
all over real HTTP.

Nothing here mocks Redis, the database or Authlib: the app under test talks to a
`redis-server` child process on a free port, to a database of this run's own (a SQLite file,
or a PostgreSQL database created for the run and dropped after it) and to `mock_providers`
through sockets, exactly as in production.

TEST_DATABASE=postgresql runs the whole suite on PostgreSQL (at TEST_DATABASE_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres, where a database per run is created).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import redis
import requests
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.database import upgrade_database
from {{ cookiecutter.package_name }}.models import db as app_db
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES, Provider

import bench.postgresql
import mock_providers
from mock_providers import MockSettings
from mock_providers.facts import facts

if TYPE_CHECKING:
    from playwright.sync_api import Browser as PlaywrightBrowser

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A strong key for tests only; production-mode tests use it too.
TEST_SECRET_KEY = "test-secret-key-5f0c1f0e8b7a4d2c9e6a3b1d7f4c2a9e"
TEST_TOKEN_KEY = "q3W0d0bq8h2Y7uYpZ8o1sHk7r2mV6cXy9nLp4tQe5wU="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException, redis.RedisError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout}s")


# --- redis-server -------------------------------------------------------------------


def start_redis_server(port: int, workdir: Path, *args: str) -> subprocess.Popen:
    """A redis-server child process on loopback that keeps nothing on disk; waits until up."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `sudo apt-get install -y redis-server`")
    process = subprocess.Popen(
        [
            binary,
            *args,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        if process.poll() is not None:  # e.g. its port was taken: say so now, not in 10 s
            raise RuntimeError(f"redis-server :{port} exited with status {process.returncode}")
        return bool(redis.Redis(port=port).ping())

    try:
        wait_for(up, what=f"redis-server :{port}")
    except RuntimeError:
        process.kill()
        raise
    return process


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our own redis-server child process; the machine's Redis on 6379 is never touched."""
    port = free_port()
    process = start_redis_server(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture()
def redis_db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


def command_calls(db: redis.Redis) -> dict[str, int]:
    """Redis commands run since the last CONFIG RESETSTAT, without our own probes."""
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in db.info("commandstats").items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))
    }


def redis_keys_and_values(db: redis.Redis) -> tuple[list[bytes], bytes]:
    """Every key; and every value of every type, read type-aware, plus each key's DUMP."""
    keys = list(db.scan_iter(count=1000))
    parts: list[bytes] = []
    for key in keys:
        kind = db.type(key)
        if kind == b"string":
            parts.append(db.get(key) or b"")
        elif kind == b"hash":
            for field, value in db.hgetall(key).items():
                parts += [field, value]
        elif kind == b"list":
            parts += db.lrange(key, 0, -1)
        elif kind == b"set":
            parts += list(db.smembers(key))
        elif kind == b"zset":
            parts += [member for member, _ in db.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for _id, fields in db.xrange(key):
                parts += [*fields.keys(), *fields.values()]
        elif kind != b"none":  # expired between SCAN and TYPE
            raise AssertionError(f"unexpected Redis type {kind!r} for {key!r}")
        parts.append(db.dump(key) or b"")
    return keys, b"\n".join(parts)


def everything_in_redis(db: redis.Redis) -> bytes:
    """Every key and every value of every type, read type-aware, plus each key's DUMP."""
    keys, values = redis_keys_and_values(db)
    return b"\n".join([*keys, values])


# --- the database ---------------------------------------------------------------------

DEFAULT_POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgresql_server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRESQL_URL
    return bench.postgresql.with_psycopg(url)


def postgresql_database(server_url: str) -> contextlib.AbstractContextManager[str]:
    """A new database on the server, dropped when the block ends."""
    return bench.postgresql.postgresql_database(server_url, prefix="test")


def require_postgresql() -> str:
    """The server URL, or a skip (a failure where REQUIRE_POSTGRESQL=1, as in CI)."""
    server_url = postgresql_server_url()
    problem = bench.postgresql.postgresql_missing(server_url)
    if problem:
        if os.environ.get("REQUIRE_POSTGRESQL") == "1":
            pytest.fail(f"{problem}: REQUIRE_POSTGRESQL=1 forbids skipping", pytrace=False)
        pytest.skip(f"{problem}: set TEST_DATABASE_URL to run the PostgreSQL tests")
    return server_url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This run's database, at the code's schema: SQLite, or PostgreSQL (TEST_DATABASE)."""
    if os.environ.get("TEST_DATABASE", "sqlite") == "postgresql":
        with postgresql_database(require_postgresql()) as url:
            upgrade_database(url)
            yield url
        return
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    upgrade_database(url)
    yield url


@pytest.fixture(scope="session")
def database_engine(database_url: str) -> Iterator[sa.Engine]:
    """The tests' own connection to the app's database (to look, and to clean up)."""
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


def empty_database(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(app_db.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture()
def database(database_engine: sa.Engine) -> sa.Engine:
    """The app's database, emptied for this test."""
    empty_database(database_engine)
    return database_engine


def rows(engine: sa.Engine, query: str, **params: object) -> list[sa.Row]:
    """Run one SQL query on the app's database, e.g. rows(db, "SELECT * FROM users")."""
    with engine.connect() as connection:
        return list(connection.execute(sa.text(query), params))


def database_dump(engine: sa.Engine) -> bytes:
    """Every value of every row of every table, for scans like everything_in_redis."""
    parts: list[bytes] = []
    with engine.connect() as connection:
        for table in app_db.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for value in row:
                    parts.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(parts)


def everything_in_database(engine: sa.Engine) -> bytes:
    """Every value of every row; on SQLite also the raw bytes of the file and its -wal.

    The files are read by another process: closing a file descriptor of a SQLite file drops
    every POSIX lock this process holds on it, the app's connections' locks included, and
    another process (a gunicorn worker) could then reset the WAL under them.
    """
    stored = database_dump(engine)
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database)
        files = [str(f) for f in (path, path.with_name(path.name + "-wal")) if f.exists()]
        assert str(path) in files
        read = (
            "import sys\nfor f in sys.argv[1:]:\n    sys.stdout.buffer.write(open(f, 'rb').read())"
        )
        raw = subprocess.run(
            [sys.executable, "-c", read, *files], capture_output=True, check=True, timeout=60
        ).stdout
        assert raw.startswith(b"SQLite format 3\0")
        stored += raw
    return stored


# --- the mock providers -------------------------------------------------------------


@pytest.fixture(scope="session")
def app_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def app_url(app_port: int) -> str:
    return f"http://127.0.0.1:{app_port}"


@pytest.fixture(scope="session")
def mock_server(app_url: str) -> Iterator[mock_providers.RunningMock]:
    running = mock_providers.start(MockSettings(app_url=app_url))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def mock(mock_server: mock_providers.RunningMock) -> mock_providers.RunningMock:
    mock_server.control.reset()
    return mock_server


@pytest.fixture(scope="module")
def lone_mock() -> Iterator[mock_providers.RunningMock]:
    """The mock providers alone, for the tests of the mocks themselves: the app they know is
    at MockSettings' default URL, where nothing listens (the tests read the redirects)."""
    with mock_providers.start(MockSettings()) as running:
        yield running


@pytest.fixture()
def fake(lone_mock: mock_providers.RunningMock) -> mock_providers.RunningMock:
    """`lone_mock`, reset."""
    lone_mock.control.reset()
    return lone_mock


# --- what the tests know of each provider -------------------------------------------

PROVIDERS = list(PROVIDER_CLASSES)
# What each enabled mock declares about itself (mock_providers/facts.py): tests that hold
# for every provider read it, so a new provider needs no edit to them.
FACTS = facts()
# Providers whose mock issues refresh tokens (under its `refresh.expiring` switches).
REFRESHABLE = [name for name in PROVIDERS if FACTS[name].refresh]
# Providers where the app cannot revoke a grant (no revocation endpoint): it tells the person.
UNREVOCABLE = [name for name in PROVIDERS if FACTS[name].revoke_endpoint is None]


def revocations(mock, provider: str) -> int:
    """Revocations of a grant the provider received from the app (0 where none can be)."""
    endpoint = FACTS[provider].revoke_endpoint
    return mock.control.requests()[provider][endpoint] if endpoint else 0


def unrevoked(location: str) -> set[str]:
    """The providers a redirect's `?unrevoked=` names: where the person must remove the app."""
    return set(filter(None, query(location).get("unrevoked", "").split(",")))


def issuer_param(callback_url: str) -> dict[str, str]:
    """RFC 9207's `iss` of a provider's callback, where it sends one: a callback made by hand
    carries it too, to get past the issuer check to the check a test is after."""
    sent = query(callback_url)
    return {"iss": sent["iss"]} if "iss" in sent else {}


def cases_or_skip(cases: Iterable[object], reason: str) -> list:
    """Parameters for a test over `cases` (e.g. providers); with none, one case skipped
    with `reason` (an empty list would be skipped too, with a reason pytest makes up)."""
    found = list(cases)
    return found or [pytest.param(None, marks=pytest.mark.skip(reason=reason))]


def own_urls(cls: type[Provider]) -> dict[str, str]:
    """A provider's URL variables that have no default (an issuer of one's own), as a person
    enabling it sets them: an example URL each."""
    return {name: "https://idp.example.com" for name, url in cls.url_settings.items() if not url}


def is_oidc(provider: str) -> bool:
    """The app signs in there with OpenID Connect: it asks for `openid`, so an ID token
    answers, bound to the nonce it sent."""
    return "openid" in PROVIDER_CLASSES[provider].scope.replace(",", " ").split()


# --- the app ------------------------------------------------------------------------


@dataclass
class RunningApp:
    """An app served by werkzeug in a thread; `app` is the Flask object."""

    url: str
    port: int
    app: Flask
    server: BaseWSGIServer | None = None
    thread: threading.Thread | None = None

    def start(self) -> RunningApp:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        # serve_forever's default poll (0.5 s) is how long stop() waits: every test that
        # swaps the app for a variant would pay it twice.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)
            self.server = None


def base_env(
    mock_server: mock_providers.RunningMock, redis_url: str, app_url: str, database_url: str
) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "SECRET_KEY": TEST_SECRET_KEY,
        "TOKEN_ENCRYPTION_KEY": TEST_TOKEN_KEY,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "PUBLIC_URL": app_url,
        "OAUTH_HTTP_TIMEOUT": "3",
        # Limits no other test reaches; test_rate_limits.py lowers them where it means to.
        "LOGIN_RATE_LIMIT": "10000 per minute",
        "API_TOKEN_RATE_LIMIT": "10000 per minute",
{%- if cookiecutter.use_facebook %}
        "FACEBOOK_CALLBACK_RATE_LIMIT": "10000 per minute",
{%- endif %}
        **mock_server.app_env(),
    }


@pytest.fixture(scope="session")
def app_server(
    mock_server, redis_url: str, app_url: str, app_port: int, database_url: str
) -> Iterator[RunningApp]:
    """The development-mode app, on the port the mock knows as the registered callback."""
    env = base_env(mock_server, redis_url, app_url, database_url)
    running = RunningApp(app_url, app_port, create_app(env))
    yield running.start()
    running.stop()


@pytest.fixture()
def app_env(mock_server, redis_url: str, app_url: str, database_url: str) -> dict[str, str]:
    """The environment of `app_server`, for tests that build their own app variant."""
    return base_env(mock_server, redis_url, app_url, database_url)


@pytest.fixture()
def app(app_server: RunningApp, redis_db: redis.Redis, database: sa.Engine, mock) -> RunningApp:
    """The shared app with a clean Redis, an empty database and reset mock providers."""
    return app_server


@pytest.fixture()
def released_port(
    app_server: RunningApp, redis_db: redis.Redis, database: sa.Engine, mock
) -> Iterator[int]:
    """The registered-callback port, freed from the shared app for this test."""
    app_server.stop()
    try:
        yield app_server.port
    finally:
        app_server.start()


@pytest.fixture()
def variant(released_port: int, app_url: str, app_env: dict[str, str]):
    """Serve the app with other settings, e.g. `variant(OAUTH_HTTP_TIMEOUT="0.5")`.

    A value of None removes the variable. Only one variant runs at a time.
    """
    current: list[RunningApp] = []

    def start(**overrides: str | None) -> RunningApp:
        for running in current:
            running.stop()
        env = {k: v for k, v in {**app_env, **overrides}.items() if v is not None}
        current[:] = [RunningApp(app_url, released_port, create_app(env)).start()]
        return current[0]

    yield start
    for running in current:
        running.stop()


def gunicorn_command(port: int, *options: str, app: str | None = None) -> list[str]:
    """`gunicorn [options] --bind 127.0.0.1:<port> <app>`: by default the README's app."""
    app = app or f"{create_app.__module__}:create_app()"
    return [sys.executable, "-m", "gunicorn", *options, "--bind", f"127.0.0.1:{port}", app]


@contextmanager
def run_server(command: list[str], env: dict[str, str], workdir: Path, url: str) -> Iterator[Path]:
    """Run a server process until the block ends; yield the file collecting its output."""
    log_path = workdir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(
                lambda: requests.get(f"{url}/healthz", timeout=1).ok, timeout=30, what="server"
            )
            yield log_path
        finally:
            process.terminate()
            process.wait(timeout=15)


# --- a browser-like client ------------------------------------------------------------


@dataclass
class Browser:
    """A cookie-keeping HTTP client that walks OAuth redirects one hop at a time."""

    app_url: str
    http: requests.Session = field(default_factory=requests.Session)
    hops: list[str] = field(default_factory=list)

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.http.get(
            urljoin(self.app_url, url), allow_redirects=False, timeout=10, **kwargs
        )

    def follow(self, response: requests.Response, limit: int = 10) -> requests.Response:
        """Follow redirects, recording each Location (fragments dropped, as browsers send)."""
        while response.is_redirect and limit:
            location = urljoin(response.url, response.headers["Location"])
            self.hops.append(location)
            response = self.http.get(location.split("#")[0], allow_redirects=False, timeout=10)
            limit -= 1
        return response

    def start_login(self, provider: str, next_path: str | None = None) -> str:
        """Go to /login/<provider> and through the provider; return the callback URL."""
        params = {"next": next_path} if next_path else None
        response = self.get(f"/login/{provider}", params=params)
        assert response.status_code == 302, response.text
        at_provider = self.http.get(response.headers["Location"], allow_redirects=False, timeout=10)
        assert at_provider.status_code == 302, at_provider.text
        return urljoin(at_provider.url, at_provider.headers["Location"])

    def finish_login(self, callback_url: str) -> requests.Response:
        return self.follow(
            self.http.get(callback_url.split("#")[0], allow_redirects=False, timeout=10)
        )

    def login(self, provider: str, next_path: str | None = None) -> requests.Response:
        return self.finish_login(self.start_login(provider, next_path))

    def me(self) -> requests.Response:
        return self.get("/api/me")

    def identity(self) -> dict:
        """The one identity of a user signed in with a single provider."""
        me = self.me()
        assert me.status_code == 200, me.text
        (identity,) = me.json()["identities"]
        return identity

    def csrf_token(self) -> str:
        """The CSRF token from the home page's hidden `csrf_token` input."""
        page = self.get("/").text
        return page.split('name="csrf_token" value="')[1].split('"')[0]

    def post_form(self, path: str) -> requests.Response:
        """POST one of the app's CSRF-protected forms (sign-out...) as its page would."""
        return self.http.post(
            urljoin(self.app_url, path),
            data={"csrf_token": self.csrf_token()},
            allow_redirects=False,
            timeout=10,
        )

    def cookie(self) -> str | None:
        for cookie in self.http.cookies:
            if cookie.name.endswith("session"):
                return cookie.value
        return None


@pytest.fixture()
def browser(app: RunningApp) -> Browser:
    """A fresh client of the shared app (clean Redis, reset mocks)."""
    return Browser(app.url)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="session")
def project_env() -> dict[str, str]:
    """Environment for subprocesses (gunicorn, flask run) that import the package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)])
    return env


# --- a real browser --------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> Iterator[PlaywrightBrowser]:
    """A headless Chromium: Debian's, driven by Playwright (`executable_path`), so no browser
    download is needed; `make test` checks that it exists and says how to install it."""
    from playwright.sync_api import sync_playwright  # only the browser tests need it

    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: run `sudo apt-get install -y chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


# --- flask auth doctor ----------------------------------------------------------------

# Every run checks deadlines (Graph versions that expire) as of this day, never the calendar's.
TODAY = "2026-12-07"


@dataclass
class Report:
    """One doctor run: exit code, stdout, stderr, and the parsed --json body if asked."""

    returncode: int
    stdout: str
    stderr: str
    body: dict | None

    def checks(self, section: str | None = None, status: str | None = None) -> list[dict]:
        assert self.body is not None
        return [
            c
            for c in self.body["checks"]
            if (section is None or c["section"] == section)
            and (status is None or c["status"] == status)
        ]

    def messages(self, section: str | None = None, status: str | None = None) -> str:
        return "\n".join(c["message"] for c in self.checks(section, status))

    def status_of(self, section: str, pattern: str) -> str:
        matching = [c["status"] for c in self.checks(section) if re.search(pattern, c["message"])]
        assert len(matching) == 1, (pattern, self.checks(section))
        return matching[0]


@pytest.fixture()
def doctor(project_env, app_env, tmp_path: Path, redis_db, mock):
    """Run `flask auth doctor` as a real process: `doctor(APP_ENV="production",
    REDIS_URL=None)`; None unsets.

    `doctor.many(dict, dict, ...)` runs several at once (each run mostly imports the app).
    """

    def start(
        overrides: dict[str, str | None], as_json: bool, today: str = TODAY
    ) -> subprocess.Popen:
        env = {**project_env, **app_env, **overrides}
        env = {k: v for k, v in env.items() if v is not None}
        command = [sys.executable, "-m", "flask", "--app", create_app.__module__]
        command += ["auth", "doctor", "--today", today]
        if as_json:
            command.append("--json")
        # cwd=tmp_path: no .env is read.
        return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=PIPE, stderr=PIPE, text=True)

    def finish(process: subprocess.Popen, as_json: bool) -> Report:
        stdout, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stdout + stderr, stderr
        body = json.loads(stdout) if as_json else None
        return Report(process.returncode, stdout, stderr, body)

    def run(as_json: bool = True, today: str = TODAY, **overrides: str | None) -> Report:
        return finish(start(overrides, as_json, today), as_json)

    def many(*runs: dict[str, str | None]) -> list[Report]:
        processes = [start(overrides, True) for overrides in runs]
        return [finish(process, True) for process in processes]

    run.many = many
    return run
