"""{{ cookiecutter.project_description }}.

`create_app()` is the application factory: `flask --app {{ cookiecutter.package_name }} run`
in development, `gunicorn '{{ cookiecutter.package_name }}:create_app()'` in production.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import NoReturn

from dotenv import load_dotenv
from flask import Flask, abort, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import get_content_length

from . import api, auth, pages
from .auth import track_last_seen
from .auth.csrf import csrf_token
{%- if cookiecutter.use_facebook %}
from .auth.facebook_callbacks import bp as facebook_callbacks
{%- endif %}
from .cli import register_cli
from .database import DatabaseNotReady, init_database, prepare_schema
from .errors import register_error_handlers
from .extensions import init_extensions
from .flask_app import App
from .flask_command import db_command_requested, doctor_requested
from .logs import configure_logging, init_request_logging
from .ratelimits import init_rate_limits
from .redis import connect
from .security_headers import init_security_headers
from .sessions import SecureRedisSessionInterface
from .settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

APP_NAME = "{{ cookiecutter.project_name }}"  # the brand in the page header and titles
MAX_CONTENT_LENGTH = 64 * 1024  # nothing here accepts large bodies


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `env` (default: the process environment plus `.env`)."""
    if env is None:
        # .env next to pyproject.toml; never overrides variables that are already set.
        load_dotenv(Path.cwd() / ".env", override=False)
        try:
            # The doctor must start even on a configuration the app would refuse.
            settings = load_settings(strict=not doctor_requested())
        except SettingsError as error:
            exit_with(str(error))
    else:
        settings = load_settings(env)
    configure_logging(settings)

    app = App(__name__)
    configure_app(app, settings)
    init_database(app, settings)
    if not (doctor_requested() or db_command_requested()):  # those two report or fix it
        try:
            prepare_schema(app, settings)
        except DatabaseNotReady as error:
            exit_with(str(error))
    init_extensions(app, settings, connect(settings))
    app.session_interface = SecureRedisSessionInterface(
        app,
        client=app.extensions["redis"],
        key_prefix=f"{settings.redis_key_prefix}session:",
        secret_key=settings.secret_key,
    )
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
{%- if cookiecutter.use_facebook %}
    if "facebook" in settings.providers:  # Facebook's deauthorize and data-deletion callbacks
        app.register_blueprint(facebook_callbacks)
{%- endif %}
    init_rate_limits(app, settings, app.extensions["redis"])  # wraps views: after blueprints
    register_error_handlers(app)
    register_cli(app)
    app.before_request(before_each_request)
    init_request_logging(app)
    init_security_headers(app, settings)
    app.jinja_env.globals.update(
        app_name=APP_NAME,
        csrf_token=csrf_token,
        provider_title=partial(provider_title, settings),
        provider_scripts=provider_scripts(app),
    )
    app.jinja_env.filters["datetime"] = format_timestamp

    if settings.trusted_proxy_count:
        count = settings.trusted_proxy_count
        # With PUBLIC_URL set, the forwarded host is never trusted.
        x_host = 0 if settings.public_url else count
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=x_host
        )
    log.info(
        "app ready env=%s providers=%s",
        settings.app_env,
        ",".join(settings.providers) or "none",
    )
    return app


def exit_with(message: str) -> NoReturn:
    """One clear message, no traceback. Under gunicorn, exit code 4 (app load error) stops
    the master instead of restarting a worker that can never boot."""
    if "gunicorn.arbiter" in sys.modules:
        print(message, file=sys.stderr)
        raise SystemExit(4) from None
    raise SystemExit(message) from None


def before_each_request() -> None:
    """What every request needs, in order, in one hook: Flask charges each hook a dispatch."""
    # 413 before anything else looks at the request (guards, CSRF, views).
    environ = request._get_current_object().environ  # type: ignore[attr-defined]
    if (get_content_length(environ) or 0) > MAX_CONTENT_LENGTH:
        abort(413)
    track_last_seen()


def format_timestamp(timestamp: int | float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def provider_title(settings: Settings, name: str) -> str:
    cls = settings.provider_classes.get(name)
    return cls.title if cls else name


def provider_scripts(app: Flask) -> list[str]:
    """The static scripts the enabled providers need on every page (`page_scripts`)."""
    providers = app.extensions["providers"].values()
    return list(dict.fromkeys(script for p in providers for script in p.page_scripts))


def configure_app(app: Flask, settings: Settings) -> None:
    production = settings.is_production
    app.config.update(
        APP_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_lifetime),
        # A request that only reads the session must not write it back.
        SESSION_REFRESH_EACH_REQUEST=False,
        # __Host- pins the cookie to this exact host, Path=/ and Secure (browsers enforce it).
        SESSION_COOKIE_NAME="__Host-session" if production else "session",
        SESSION_COOKIE_SECURE=production,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # Strict would drop the cookie on the provider's redirect
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
    )
    if not production and not settings.providers:
        log.warning("no provider is configured: set the *_CLIENT_ID/_SECRET variables in .env")
