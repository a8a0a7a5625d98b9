"""Per-app objects (Redis, stores, OAuth clients) and the accessors views use to reach them.

The database session is Flask-SQLAlchemy's `db.session` (models.py), one per request.
"""

from __future__ import annotations

import redis
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from flask import Flask, abort, current_app
from redis.cluster import RedisCluster

from .api_tokens import ApiTokenStore
from .audit import AuditLog
from .http import make_shared_adapter
from .provider_errors import keeping_clock
from .providers import Provider
from .session_index import SessionIndex
from .settings import Settings
from .tokens.refresh import TokenService
from .tokens.vault import TokenVault
from .user_list import CursorCodec
from .users import UserStore


def init_extensions(app: Flask, settings: Settings, client: redis.Redis | RedisCluster) -> None:
    adapter = make_shared_adapter()
    oauth = OAuth(app)  # one registry per app, so test apps never share clients
    providers: dict[str, Provider] = {}
    for name, config in settings.providers.items():
        provider = settings.provider_classes[name](config, settings.http_timeout, adapter)
        registration = provider.registration()
        registration["compliance_fix"] = keeping_clock(registration["compliance_fix"])
        oauth.register(name, user_agent="{{ cookiecutter.project_name }}/0.1", **registration)
        providers[name] = provider
    app.extensions["redis"] = client
    app.extensions["providers"] = providers
    app.extensions["users"] = UserStore(settings.admin_emails)
    app.extensions["api_tokens"] = ApiTokenStore(
        client, settings.redis_key_prefix, settings.max_api_tokens_per_user
    )
    app.extensions["audit"] = AuditLog(settings.audit_retention)
    app.extensions["user_list_cursors"] = CursorCodec(settings.secret_key)
    app.extensions["session_index"] = SessionIndex(
        client, settings.redis_key_prefix, settings.session_lifetime, settings.max_sessions_per_user
    )
    vault = TokenVault(settings.token_encryption_keys)
    app.extensions["tokens"] = TokenService(client, vault, settings.redis_key_prefix)


def redis_client() -> redis.Redis:
    return current_app.extensions["redis"]


def user_store() -> UserStore:
    return current_app.extensions["users"]


def api_token_store() -> ApiTokenStore:
    return current_app.extensions["api_tokens"]


def session_index() -> SessionIndex:
    return current_app.extensions["session_index"]


def user_list_cursors() -> CursorCodec:
    return current_app.extensions["user_list_cursors"]


def audit_log() -> AuditLog:
    return current_app.extensions["audit"]


def token_service() -> TokenService:
    return current_app.extensions["tokens"]


def enabled_providers() -> list[Provider]:
    return list(current_app.extensions["providers"].values())


def get_provider(name: str) -> Provider:
    """The enabled provider of that name; an unknown or disabled one is a 404."""
    provider = current_app.extensions["providers"].get(name)
    if provider is None:
        abort(404)
    return provider


def oauth_client(name: str) -> FlaskOAuth2App:
    return current_app.extensions["authlib.integrations.flask_client"].create_client(name)
