"""`flask --app {{ cookiecutter.package_name }} auth doctor`: what is wrong, and how to fix it.

It starts even when the configuration would stop the app (create_app loads the settings
leniently for it), prints a progress line per check on stderr so a slow network does not
look like a hang, and exits 1 when any check fails.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TypedDict
from urllib.parse import urlsplit

import click
import redis
import requests
from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .database import UPGRADE_COMMAND, is_sqlite, redacted_url, schema_status
from .masking import mask_url
from .models import db
from .providers import Check, Provider, ProviderConfig
from .settings import NO_DATABASE, REDIS_SCHEMES, Settings

LOCAL_URL = "http://127.0.0.1:5000"
# Variables that only make sense on a developer's machine.
DEVELOPMENT_ONLY = ("FLASK_DEBUG", "AUTHLIB_INSECURE_TRANSPORT", "OAUTHLIB_INSECURE_TRANSPORT")
CLOCK_SKEW_WARN = 10  # seconds
CLOCK_SKEW_FAIL = 60  # half of the ID-token leeway: logins start failing beyond it
URL_IN_TEXT = re.compile(r"\bhttps?://[^\s'\"]+")


@dataclass(frozen=True)
class Finding:
    """One result of a check: status is "ok", "warn" or "fail"."""

    status: str
    message: str
    hint: str | None = None


def clock_finding(title: str, response: requests.Response, elapsed: float) -> Finding:
    """Compare the provider's Date header with our clock."""
    date = response.headers.get("Date")
    if not date:
        return Finding("warn", f"{title} sent no Date header: clock skew not measured")
    try:
        theirs = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Finding("warn", f"{title} sent an unreadable Date header")
    skew = theirs - (time.time() - elapsed / 2)
    if abs(skew) <= CLOCK_SKEW_WARN:
        return Finding("ok", f"clock within {CLOCK_SKEW_WARN}s of {title}'s")
    status = "fail" if abs(skew) > CLOCK_SKEW_FAIL else "warn"
    direction = "behind" if skew > 0 else "ahead of"
    return Finding(
        status,
        f"this server's clock is {abs(skew):.0f}s {direction} {title}'s",
        "Sync the clock (NTP): tokens will look issued in the future or already expired.",
    )


def masked(check: Check) -> Finding:
    """A provider's check as a finding, with every URL in it shown without credentials."""
    message = URL_IN_TEXT.sub(lambda url: mask_url(url.group(0)), check.message)
    return Finding(check.status, message, check.hint)


def diagnose(
    cls: type[Provider], config: ProviderConfig, http: requests.Session, timeout: float
) -> list[Finding]:
    """Credentials, reachability and clock, then what the provider reads in its probe."""
    findings = [masked(c) for c in cls.credential_checks(config)] or [
        Finding("ok", "client id and secret look well-formed")
    ]
    url = cls.probe_url(config)
    started = time.monotonic()
    try:
        response = http.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        findings.append(
            Finding(
                "fail",
                f"{mask_url(url)} is unreachable ({type(exc).__name__})",
                "Check the URL, DNS, firewall and proxy settings, and REQUESTS_CA_BUNDLE.",
            )
        )
        return findings
    findings.append(clock_finding(cls.title, response, time.monotonic() - started))

    def fetch(other: str) -> requests.Response:
        return http.get(other, timeout=timeout, allow_redirects=False)

    findings += [masked(c) for c in cls.probe_checks(config, response, fetch)]
    return findings


class CallbackInfo(TypedDict):
    """What to register in a provider's console (the doctor's "providers" in JSON)."""

    enabled: bool
    callback_url: str
    other_urls: dict[str, str]
    console: str
    console_url: str


@dataclass
class Result:
    section: str
    status: str
    message: str
    hint: str | None = None


class Doctor:
    def __init__(self, app: Flask, quiet: bool, today: date | None = None) -> None:
        self.app = app
        # Deadlines (an API version that expires) are checked as of this day.
        self.today = today or date.today()
        self.settings: Settings = app.config["APP_SETTINGS"]
        self.quiet = quiet
        self.results: list[Result] = []
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "{{ cookiecutter.project_name }}-doctor"

    def check(self, section: str, what: str, run: Callable[[], Sequence[Finding]]) -> None:
        if not self.quiet:
            click.echo(f"… {section}: {what}", err=True)
        try:
            findings = run()
        except Exception as exc:  # a check that crashes is itself a finding
            findings = [Finding("fail", f"{what} could not be checked ({type(exc).__name__})")]
        self.results += [Result(section, f.status, f.message, f.hint) for f in findings]

    def run(self) -> None:
        self.check("configuration", "environment variables", self.configuration)
        self.check("redis", "connection and persistence", self.redis)
        self.check("database", "connection and schema", self.database)
        timeout = self.settings.http_timeout
        for name, cls in self.settings.provider_classes.items():
            config = self.settings.providers.get(name)
            if config is None:
                reason = self.settings.disabled_providers.get(name, "not configured")
                self.results.append(Result(cls.title, "warn", f"disabled: {reason}"))
                continue
            self.check(
                cls.title,
                f"credentials, reachability and clock ({mask_url(cls.probe_url(config))})",
                partial(self.provider, cls, config, timeout),
            )

    # --- checks -----------------------------------------------------------------------

    def provider(
        self, cls: type[Provider], config: ProviderConfig, timeout: float
    ) -> list[Finding]:
        lifetime = [masked(c) for c in cls.lifetime_checks(config, self.today)]
        return diagnose(cls, config, self.http, timeout) + lifetime

    def configuration(self) -> list[Finding]:
        s = self.settings
        findings = [Finding("fail", problem) for problem in s.problems]
        findings.append(Finding("ok", f"APP_ENV={s.app_env}"))
        if not s.is_production and len(s.secret_key) < 32:
            findings.append(Finding("warn", "SECRET_KEY is weak: production will refuse it", None))
        if not s.token_encryption_keys:
            findings.append(
                Finding(
                    "warn",
                    "TOKEN_ENCRYPTION_KEY is not set: provider tokens are not kept",
                    "Set one (Fernet.generate_key()) to call provider APIs after login.",
                )
            )
        if s.public_url is None and not s.is_production:  # production: a problem above
            findings.append(
                Finding(
                    "ok",
                    "PUBLIC_URL is not set: redirect URIs follow the request's Host header",
                    "Set PUBLIC_URL to the address users see, e.g. https://app.example.com.",
                )
            )
        elif s.is_production and (s.public_url or "").startswith("http://"):
            findings.append(
                Finding(
                    "warn",
                    "PUBLIC_URL is http:// but production cookies are Secure (https only)",
                    "Serve the app over https and set PUBLIC_URL=https://…",
                )
            )
        if not s.providers and not s.is_production:  # production: a problem above
            findings.append(
                Finding(
                    "warn",
                    "no sign-in provider is configured: nobody can sign in",
                    "Set a provider's *_CLIENT_ID and *_CLIENT_SECRET (see below).",
                )
            )
        if s.is_production:
            for variable in DEVELOPMENT_ONLY:
                if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
                    findings.append(
                        Finding("fail", f"{variable} is set in production", f"Unset {variable}.")
                    )
        return findings

    def redis(self) -> list[Finding]:
        url = self.settings.redis_url
        if not url:
            return [Finding("ok", "in-process Redis emulation (development only)")]
        if urlsplit(url).scheme not in REDIS_SCHEMES:
            return [Finding("fail", "REDIS_URL is not a Redis URL (see the configuration above)")]
        client: redis.Redis = self.app.extensions["redis"]
        try:
            info = client.info("server")
        except redis.RedisError as exc:
            return [
                Finding(
                    "fail",
                    f"Redis at REDIS_URL does not answer ({type(exc).__name__})",
                    "Start Redis or fix REDIS_URL (host, port, password, rediss:// for TLS).",
                )
            ]
        findings = [Finding("ok", f"Redis {info.get('redis_version', '?')} answers")]
        try:
            persistence = client.info("persistence")
            saves = client.config_get("save").get("save", "")
            persists = bool(saves) or persistence.get("aof_enabled") == 1
        except redis.RedisError:  # managed services often disable CONFIG
            return findings + [Finding("warn", "could not tell whether Redis persists data")]
        if not persists:
            findings.append(
                Finding(
                    "warn" if self.settings.is_production else "ok",
                    "Redis keeps nothing on disk: a restart signs everyone out (accounts and "
                    "tokens are safe in the database)",
                    "Enable RDB snapshots or AOF (appendonly yes) to keep sessions.",
                )
            )
        return findings

    def database(self) -> list[Finding]:
        url = self.settings.database_url
        if url == NO_DATABASE:
            return [Finding("fail", "no usable DATABASE_URL (see the configuration above)")]
        try:
            with self.app.app_context():
                current, heads = schema_status(db.engine)
        except SQLAlchemyError as exc:
            return [
                Finding(
                    "fail",
                    f"the database at DATABASE_URL does not answer ({type(exc).__name__})",
                    "Start the database or fix DATABASE_URL (host, port, user, password, name).",
                )
            ]
        backend = make_url(url).get_backend_name()
        findings = [Finding("ok", f"{backend} answers at {redacted_url(url)}")]
        if current == heads:
            findings.append(Finding("ok", f"schema is current ({', '.join(sorted(heads))})"))
        else:
            findings.append(
                Finding(
                    "fail" if self.settings.is_production else "warn",
                    f"schema is behind the code (at {', '.join(sorted(current)) or 'nothing'})",
                    f"Run `{UPGRADE_COMMAND}`"
                    + ("." if self.settings.is_production else " (or start the app: it does)."),
                )
            )
        if is_sqlite(url) and self.settings.is_production:
            findings.append(
                Finding(
                    "warn",
                    "SQLite in production: fine on one host with a few workers; use PostgreSQL "
                    "when several hosts run the app or writes get busy",
                    "DATABASE_URL=postgresql+psycopg://user:password@host:5432/dbname",
                )
            )
        return findings

    # --- output -------------------------------------------------------------------------

    def callbacks(self) -> dict[str, CallbackInfo]:
        base = self.settings.public_url or LOCAL_URL
        configs = self.settings.providers
        return {
            name: {
                "enabled": name in configs,
                "callback_url": f"{base}/auth/{name}/callback",
                "other_urls": {
                    label: base + path
                    for label, path in cls.other_callbacks(configs.get(name)).items()
                },
                "console": cls.console_name,
                "console_url": cls.console_url,
            }
            for name, cls in self.settings.provider_classes.items()
        }

    @property
    def ok(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    def report(self, as_json: bool) -> None:
        if as_json:
            body = {
                "ok": self.ok,
                "providers": self.callbacks(),
                "checks": [asdict(r) for r in self.results],
            }
            click.echo(json.dumps(body, indent=2))
            return
        marks = {"ok": "  ok  ", "warn": " warn ", "fail": " FAIL "}
        section = None
        for r in self.results:
            if r.section != section:
                section = r.section
                click.echo(f"\n{section}")
            click.echo(f"{marks[r.status]} {r.message}")
            if r.hint and r.status != "ok":
                click.echo(f"        -> {r.hint}")
        click.echo("\nCallback URLs to register:")
        for name, info in self.callbacks().items():
            state = "" if info["enabled"] else " (disabled)"
            click.echo(f"  {name:<9} {info['callback_url']}{state}")
            for label, url in info["other_urls"].items():
                click.echo(f"  {'':<9} {label}: {url}")
            click.echo(f"  {'':<9} in the {info['console']}: {info['console_url']}")
        fails = sum(r.status == "fail" for r in self.results)
        warns = sum(r.status == "warn" for r in self.results)
        click.echo(f"\n{fails} problem(s), {warns} warning(s)")


def run_doctor(app: Flask, as_json: bool, today: date | None = None) -> int:
    doctor = Doctor(app, quiet=False, today=today)
    doctor.run()
    doctor.report(as_json)
    return 0 if doctor.ok else 1
