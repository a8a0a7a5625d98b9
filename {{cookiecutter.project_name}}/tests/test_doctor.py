"""`flask auth doctor`, run as a real process against redis-server, the database and the mock
providers.

Every provider URL points at 127.0.0.1 (the mock, a closed port or a tiny origin served
here): the doctor never reaches a real provider from these tests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import FACTS, PROVIDERS, cases_or_skip

from {{ cookiecutter.package_name }}.database import UPGRADE_COMMAND
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

CLOSED = "http://127.0.0.1:1"
# Providers whose doctor check loads an OpenID Connect discovery document.
OIDC = [name for name in PROVIDERS if FACTS[name].issuer is not None]


def title(provider: str) -> str:
    return PROVIDER_CLASSES[provider].title


def probes_at(base: str) -> dict[str, str]:
    """Point every provider's doctor check (and API) at `base`, each under its own name."""
    return {FACTS[name].api_variable: f"{base}/{name}{FACTS[name].api_path}" for name in PROVIDERS}


# --- a tiny origin whose answers (and Date header) we choose ------------------------


class Origin:
    """A plain HTTP server on 127.0.0.1: every GET answers `body` with a Date `skew` off;
    under `/<provider>/` (see `probes_at`), what `bodies` holds for that provider, if any."""

    def __init__(self) -> None:
        self.body: dict = {}
        self.bodies: dict[str, dict] = {}
        self.status = 200
        self.skew = 0
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                first = self.path.split("/")[1]
                payload = json.dumps(origin.bodies.get(first, origin.body)).encode()
                self.send_response_only(origin.status)  # no automatic Date header
                self.send_header("Date", formatdate(time.time() + origin.skew, usegmt=True))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def origin() -> Iterator[Origin]:
    running = Origin()
    yield running
    running.close()


# --- all is well --------------------------------------------------------------------


def test_a_healthy_setup_exits_0_with_callbacks_consoles_and_progress(
    doctor, redis_db, database_url
) -> None:
    report = doctor(PUBLIC_URL="https://login.example.com")
    assert report.returncode == 0, report.stdout
    assert report.body["ok"] is True
    assert not report.checks(status="fail")
    assert set(report.body["providers"]) == set(PROVIDERS)
    for name, info in report.body["providers"].items():
        assert info["enabled"] is True
        assert info["callback_url"] == f"https://login.example.com/auth/{name}/callback"
        assert info["console"] == PROVIDER_CLASSES[name].console_name
        assert info["console_url"] == PROVIDER_CLASSES[name].console_url
        assert info["console_url"].startswith("https://")
        assert report.status_of(title(name), "clock") == "ok"
        assert report.status_of(title(name), "reachable|discovery document loaded") == "ok"
    version = redis_db.info("server")["redis_version"]
    assert report.status_of("redis", f"^Redis {re.escape(version)} answers$") == "ok"
    # Development: a Redis without persistence is only mentioned.
    assert report.status_of("redis", "keeps nothing on disk") == "ok"
    backend = sa.make_url(database_url).get_backend_name()
    assert report.status_of("database", f"^{backend} answers at ") == "ok"
    assert report.status_of("database", r"^schema is current \(\w+\)$") == "ok"
    assert not report.checks("database", "warn")
    # A progress line per check on stderr, so a slow network does not look like a hang.
    progress = [line for line in report.stderr.splitlines() if line.startswith("… ")]
    sections = ["configuration", "redis", "database"] + [title(p) for p in PROVIDERS]
    assert [line[2:].split(":")[0] for line in progress] == sections


def test_the_human_report_lists_what_to_register_where(doctor, app_env) -> None:
    report = doctor(as_json=False)
    assert report.returncode == 0, report.stdout
    public_url = app_env["PUBLIC_URL"]
    assert "Callback URLs to register:" in report.stdout
    for name, cls in PROVIDER_CLASSES.items():
        assert f"{public_url}/auth/{name}/callback" in report.stdout
        assert f"in the {cls.console_name}: {cls.console_url}" in report.stdout
    assert re.search(r"\n0 problem\(s\), \d+ warning\(s\)\n?$", report.stdout)
    assert "… configuration" in report.stderr and "… configuration" not in report.stdout


def test_a_healthy_production_setup_passes_with_warnings(doctor, database_url) -> None:
    """Production against the loopback mock, our non-persisting redis-server and our database."""
    report = doctor(APP_ENV="production")
    assert report.returncode == 0, report.checks(status="fail")
    assert report.body["ok"] is True
    assert report.status_of("redis", "keeps nothing on disk") == "warn"  # --save ""
    assert report.status_of("database", "^schema is current") == "ok"
    if sa.make_url(database_url).get_backend_name() == "sqlite":
        assert report.status_of("database", "^SQLite in production") == "warn"
        assert "PostgreSQL" in report.messages("database", "warn")
    else:
        assert not report.checks("database", "warn")
    # PUBLIC_URL is http://127.0.0.1:<port>: allowed on loopback, but cookies are Secure.
    assert report.status_of("configuration", "PUBLIC_URL") == "warn"
    assert "Secure" in report.messages("configuration", "warn")
    assert "SECRET_KEY" not in report.messages()  # the test key is strong
    assert "https" not in report.messages(status="fail")  # loopback http mocks are fine


def test_a_persisting_redis_is_not_warned_about(doctor, redis_db) -> None:
    redis_db.config_set("save", "3600 1")
    try:
        report = doctor(APP_ENV="production")
    finally:
        redis_db.config_set("save", "")
    assert "keeps nothing on disk" not in report.messages("redis")
    assert not report.checks("redis", "warn")


def test_development_is_lenient_but_says_what_production_would_refuse(doctor) -> None:
    last = PROVIDERS[-1]
    prefix = PROVIDER_CLASSES[last].env_prefix
    report = doctor(
        SECRET_KEY="dev",
        TOKEN_ENCRYPTION_KEY=None,
        FLASK_DEBUG="1",
        AUTHLIB_INSECURE_TRANSPORT="1",
        **{f"{prefix}_CLIENT_ID": None, f"{prefix}_CLIENT_SECRET": None},
    )
    assert report.returncode == 0, report.checks(status="fail")
    assert report.status_of("configuration", "SECRET_KEY") == "warn"
    assert report.status_of("configuration", "TOKEN_ENCRYPTION_KEY") == "warn"
    assert "FLASK_DEBUG" not in report.messages()
    assert "AUTHLIB_INSECURE_TRANSPORT" not in report.messages()
    # A disabled provider: shown, with the reason and its callback URL all the same.
    info = report.body["providers"][last]
    assert info["enabled"] is False
    assert info["callback_url"].endswith(f"/auth/{last}/callback")
    (finding,) = report.checks(title(last))
    assert finding["status"] == "warn"
    assert "disabled" in finding["message"] and f"{prefix}_CLIENT_SECRET" in finding["message"]


# --- the database ---------------------------------------------------------------------


def test_a_database_behind_the_code_fails_in_production_and_is_never_migrated(
    doctor, tmp_path: Path
) -> None:
    empty = tmp_path / "behind.sqlite3"
    empty.touch()  # a database at no revision at all
    url = f"sqlite:///{empty}"
    production, development = doctor.many(
        {"APP_ENV": "production", "DATABASE_URL": url}, {"DATABASE_URL": url}
    )
    assert production.returncode == 1
    assert production.body["ok"] is False
    (behind,) = production.checks("database", "fail")
    assert behind["message"] == "schema is behind the code (at nothing)"
    assert UPGRADE_COMMAND in behind["hint"]
    assert production.status_of("database", "^sqlite answers at ") == "ok"
    assert production.status_of("database", "^SQLite in production") == "warn"
    # Development migrates at start, so there it is only a warning.
    assert development.returncode == 0, development.checks(status="fail")
    assert development.status_of("database", "^schema is behind the code") == "warn"
    assert not development.checks("database", "fail")
    # The doctor only looks: the database is still empty.
    engine = sa.create_engine(url)
    try:
        assert not sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_an_unreachable_database_fails_naming_database_url(doctor) -> None:
    unreachable = "postgresql+psycopg://app:s3cret-pw@127.0.0.1:1/app"
    started = time.monotonic()
    report = doctor(APP_ENV="production", DATABASE_URL=unreachable)
    assert time.monotonic() - started < 15
    assert report.returncode == 1
    (failed,) = report.checks("database", "fail")
    assert "does not answer" in failed["message"] and "DATABASE_URL" in failed["message"]
    assert "DATABASE_URL" in failed["hint"]
    assert "s3cret-pw" not in report.stdout + report.stderr
    assert report.body["providers"]  # and the rest of the report is there


# --- providers ------------------------------------------------------------------------


def test_malformed_credentials_and_an_old_graph_version_fail(doctor) -> None:
    overrides: dict[str, str] = {}
    for name in PROVIDERS:
        overrides.update(FACTS[name].malformed_settings)
    report = doctor(**overrides)
    assert report.returncode == 1
    assert report.body["ok"] is False
    for name in PROVIDERS:
        failures = report.checks(title(name), "fail")
        for complaint in FACTS[name].malformed_findings:
            (failed,) = [c for c in failures if complaint in c["message"]]
            assert failed["hint"], failed
        assert report.status_of(title(name), "clock") == "ok"  # still probed


def test_an_unreachable_provider_or_redis_fails_quickly(doctor) -> None:
    started = time.monotonic()
    report = doctor(REDIS_URL="redis://127.0.0.1:1/0", **probes_at(CLOSED))
    assert time.monotonic() - started < 15
    assert report.returncode == 1
    for name in PROVIDERS:
        (failed,) = report.checks(title(name), "fail")
        assert "unreachable" in failed["message"] and "127.0.0.1:1" in failed["message"]
        assert failed["hint"]
    (failed,) = report.checks("redis", "fail")
    assert "does not answer" in failed["message"] and "REDIS_URL" in failed["hint"]
    assert not report.checks("database", "fail")  # only what is down is reported


@pytest.mark.parametrize("provider", cases_or_skip(OIDC, "no OpenID Connect provider here"))
def test_a_discovery_document_with_another_issuer_or_none_fails(doctor, provider) -> None:
    other_issuer, missing = Origin(), Origin()
    variable, path = FACTS[provider].api_variable, FACTS[provider].api_path
    try:
        other_issuer.body = {"issuer": "https://accounts.evil.example"}
        missing.status = 404
        wrong, absent = doctor.many(
            {variable: other_issuer.url + path}, {variable: missing.url + path}
        )
    finally:
        other_issuer.close()
        missing.close()
    assert wrong.returncode == 1
    assert re.search(
        r"issuer .*accounts\.evil\.example.* does not match",
        wrong.messages(title(provider), "fail"),
    )
    assert absent.returncode == 1
    assert "did not load (HTTP 404)" in absent.messages(title(provider), "fail")


@pytest.mark.parametrize(
    ("skew", "status", "direction"),
    [(30, "warn", "behind"), (300, "fail", "behind"), (-300, "fail", "ahead of")],
)
def test_clock_skew_against_the_date_header(doctor, origin, skew, status, direction) -> None:
    # As each discovery document says: its fixed issuer, or where the document is.
    origin.bodies = {
        name: {"issuer": FACTS[name].issuer or f"{origin.url}/{name}"} for name in OIDC
    }
    origin.skew = skew
    report = doctor(**probes_at(origin.url))
    assert report.returncode == (1 if status == "fail" else 0)
    for name in PROVIDERS:
        (clock,) = [c for c in report.checks(title(name)) if "clock" in c["message"]]
        assert clock["status"] == status
        measured = re.search(rf"(\d+)s {direction} {title(name)}'s", clock["message"])
        assert measured, clock["message"]
        assert abs(int(measured.group(1)) - abs(skew)) <= 2  # Date has a 1 s resolution
        assert "NTP" in clock["hint"]


def test_the_mock_clock_skew_switch_is_caught(doctor, mock) -> None:
    for name in PROVIDERS:
        mock.control.switch(name, clock_skew=300)
    report = doctor()
    assert report.returncode == 1
    for name in PROVIDERS:
        assert report.status_of(title(name), "clock") == "fail"


# --- settings -------------------------------------------------------------------------


def test_it_starts_on_settings_the_app_refuses(doctor) -> None:
    """Production without REDIS_URL: exit 1 with the problem listed, not a crash."""
    report = doctor(APP_ENV="production", REDIS_URL=None)
    assert report.returncode == 1
    assert report.body["ok"] is False
    assert "REDIS_URL is required in production" in report.messages("configuration", "fail")
    assert report.body["providers"]  # and the rest of the report is there
    text = doctor(APP_ENV="production", REDIS_URL=None, as_json=False)
    assert text.returncode == 1
    assert " FAIL  REDIS_URL is required in production" in text.stdout
    assert "Callback URLs to register:" in text.stdout


def test_every_bad_production_setting_is_listed_in_one_run(doctor) -> None:
    unfetched = [  # URL variables the doctor does not fetch: nothing leaves 127.0.0.1
        variable
        for name, cls in PROVIDER_CLASSES.items()
        for variable in cls.url_settings
        if variable != FACTS[name].api_variable
    ]
    plain_http = {unfetched[0]: "http://idp.example.com"} if unfetched else {}
    report = doctor(
        APP_ENV="production",
        SECRET_KEY="changeme",
        TOKEN_ENCRYPTION_KEY=None,
        DATABASE_URL=None,
        PUBLIC_URL="http://app.example.com",
        OAUTH_HTTP_TIMEOUT="soon",
        FLASK_DEBUG="1",
        AUTHLIB_INSECURE_TRANSPORT="true",
        **plain_http,
    )
    assert report.returncode == 1
    failures = report.messages(status="fail")
    for expected in (
        "SECRET_KEY is too weak",
        "TOKEN_ENCRYPTION_KEY is required in production",
        "DATABASE_URL is required in production",
        "PUBLIC_URL must use https://",
        "OAUTH_HTTP_TIMEOUT",
        "FLASK_DEBUG is set in production",
        "AUTHLIB_INSECURE_TRANSPORT is set in production",
    ):
        assert expected in failures
    for variable in plain_http:
        assert f"{variable} must use https:// in production" in failures


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        pytest.param({"TOKEN_ENCRYPTION_KEY": "not-a-fernet-key"}, "TOKEN_ENCRYPTION_KEY"),
        pytest.param({"REDIS_URL": "http://127.0.0.1:1/0"}, "REDIS_URL"),
        pytest.param({"DATABASE_URL": "not a database"}, "DATABASE_URL"),
        pytest.param({"APP_ENV": "staging", "REVOKE_ON_LOGOUT": "maybe"}, "APP_ENV"),
    ],
)
def test_a_bad_value_is_a_finding_not_a_crash(doctor, overrides, variable) -> None:
    report = doctor(**overrides)
    assert report.returncode == 1
    assert variable in report.messages(status="fail")
    assert report.body["providers"]


def test_public_url_unset_or_malformed(doctor) -> None:
    unset, malformed, development = doctor.many(
        {"APP_ENV": "production", "PUBLIC_URL": None},
        {"PUBLIC_URL": "app.example.com"},
        {"PUBLIC_URL": None},
    )
    assert unset.returncode == 1
    assert unset.status_of("configuration", "PUBLIC_URL is required in production") == "fail"
    assert all(
        info["callback_url"].startswith("http://127.0.0.1:5000/auth/")
        for info in unset.body["providers"].values()
    )
    assert malformed.returncode == 1
    assert "PUBLIC_URL must look like" in malformed.messages("configuration", "fail")
    # Development may follow the Host header (a laptop, a tunnel): only mentioned.
    assert development.returncode == 0, development.checks(status="fail")
    assert development.status_of("configuration", "PUBLIC_URL is not set") == "ok"


def unset_all_providers() -> dict[str, None]:
    return {
        f"{cls.env_prefix}_{part}": None
        for cls in PROVIDER_CLASSES.values()
        for part in ("CLIENT_ID", "CLIENT_SECRET")
    }


def test_a_half_configured_provider_or_none_at_all_fails(doctor) -> None:
    """Used to be "0 problems": a provider silently disabled, or a server nobody can sign in to."""
    first, last = PROVIDER_CLASSES[PROVIDERS[0]], PROVIDER_CLASSES[PROVIDERS[-1]]
    no_secret, no_id, none_in_production, none_in_development = doctor.many(
        {"APP_ENV": "production", f"{last.env_prefix}_CLIENT_SECRET": None},
        {f"{first.env_prefix}_CLIENT_ID": None},  # development too: it is a typo
        {"APP_ENV": "production", **unset_all_providers()},
        unset_all_providers(),
    )
    assert no_secret.returncode == 1
    assert no_secret.body["ok"] is False
    assert (
        f"{last.env_prefix}_CLIENT_SECRET is not set but {last.env_prefix}_CLIENT_ID is"
        in no_secret.messages("configuration", "fail")
    )
    assert no_id.returncode == 1
    assert f"{first.env_prefix}_CLIENT_ID is not set" in no_id.messages("configuration", "fail")
    assert none_in_production.returncode == 1
    failed = none_in_production.messages("configuration", "fail")
    assert "no sign-in provider is configured" in failed
    for cls in PROVIDER_CLASSES.values():
        assert f"{cls.env_prefix}_CLIENT_ID and {cls.env_prefix}_CLIENT_SECRET" in failed
    # Development: nobody can sign in, which is worth a warning, not a refusal.
    assert none_in_development.returncode == 0, none_in_development.checks(status="fail")
    assert none_in_development.status_of("configuration", "no sign-in provider") == "warn"


# --- no credentials in the report -----------------------------------------------------

PASSWORD = "hunter2-s3cret"


def test_no_password_of_a_mistyped_or_unreachable_url_is_echoed(doctor) -> None:
    """Each URL is named by its variable and shown without its userinfo, stdout and stderr."""
    unreachable_providers = probes_at(f"http://u:{PASSWORD}@127.0.0.1:1")
    database = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1"
    runs = {
        "REDIS_URL": [
            f"redsi://:{PASSWORD}@127.0.0.1:1/0",  # mistyped scheme
            f"127.0.0.1:{PASSWORD}@1",  # no scheme at all
            f"redis://default:{PASSWORD}@127.0.0.1:1/0",  # unreachable
        ],
        "DATABASE_URL": [f"{database}:54x2/app", f"{database}:1/app?password={PASSWORD}"],
    }
    overrides = [{variable: url} for variable, urls in runs.items() for url in urls]
    reports = doctor.many(*overrides, unreachable_providers)
    for given, report in zip([*overrides, unreachable_providers], reports, strict=True):
        assert report.returncode == 1, given
        assert PASSWORD not in report.stdout + report.stderr, given
        failed = report.messages(status="fail")
        if "REDIS_URL" in given or "DATABASE_URL" in given:
            assert next(iter(given)) in failed, (given, failed)
    assert "http://***@127.0.0.1:1" in reports[-1].messages(status="fail")
    assert "http://***@127.0.0.1:1" in reports[-1].stderr  # the progress lines
