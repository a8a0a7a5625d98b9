"""Rate limits (Flask-Limiter) on the routes a caller could use to load Redis or the database.

- `GET /login/<provider>`: `LOGIN_RATE_LIMIT` (30 per minute) per client IP;
- `GET /auth/<provider>/callback`: the same limit, its own counter, per client IP;
{%- if cookiecutter.use_facebook %}
- Facebook's deauthorize and data-deletion `POST`s: `FACEBOOK_CALLBACK_RATE_LIMIT`
  (300 per minute) per client IP, generous: they come from Facebook's servers, many users
  behind few addresses;
{%- endif %}
- `POST /api/tokens`: `API_TOKEN_RATE_LIMIT` (10 per minute) per signed-in user.

Each login start stores about 1 KB of pending state in Redis for 15 minutes: unlimited, one
client could fill Redis. The client IP is `request.remote_addr`, which ProxyFix has already
taken from `X-Forwarded-For` when `TRUSTED_PROXY_COUNT` says so; an IPv6 client counts by
its /64, since one host usually holds a whole /64.

Counters live in the app's own Redis client, whatever the form of `REDIS_URL` (plain, TLS,
unix socket, Sentinel, Cluster) or the development emulation, under `REDIS_KEY_PREFIX` +
`ratelimit:`, and expire with their window. When Redis fails during a check, Flask-Limiter
logs a warning and counts in this process's memory until Redis answers again: a rate
limiter must not take sign-in down. Over a limit: 429 with `Retry-After`, as a page or JSON
(errors.py). `RATELIMIT_ENABLED=false` turns every limit off.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, Response, current_app, request, session
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many
from limits.storage import RedisStorage, Storage
from redis.cluster import RedisCluster

from .errors import AppError, error_response
from .settings import Settings

log = logging.getLogger(__name__)

_SCHEME = "app-redis-client"  # our storage's name in limits' registry of storage schemes


class ClientRedisStorage(RedisStorage):
    """limits' Redis storage (its Lua scripts and key layout) on a client the app already has.

    Given a URL, limits builds a client of its own: a second connection pool without our
    timeouts, its own reading of Sentinel URLs (no `?db=`, the password sent to the
    sentinels too) and nothing for the development emulation.
    """

    STORAGE_SCHEME = [_SCHEME]  # registers the class with limits' storage_from_string

    def __init__(
        self,
        uri: str,
        *,
        client: redis.Redis | RedisCluster,
        key_prefix: str,
        **options: object,
    ) -> None:
        Storage.__init__(self, uri)  # not RedisStorage's: it would connect from the URI
        self.key_prefix = key_prefix
        self.target_server = "redis"
        self.dependency = redis  # whose RedisError counts as a storage failure
        self.storage = client
        self.initialize_storage(uri)


def client_ip() -> str:
    """The caller's address (after ProxyFix); an IPv6 address counts as its /64."""
    address = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"ip:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"ip:{ip}"


def user_or_ip() -> str:
    """The session's user; a signed-out caller (refused by the view anyway) by address."""
    user_id = session.get("user_id")
    return user_key(user_id) if user_id else client_ip()


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True)
class Rule:
    setting: str  # the Settings attribute holding the limit
    key: Callable[[], str]
    message: str
    hint: str  # {seconds} is the wait


SIGN_IN = Rule(
    "login_rate_limit",
    client_ip,
    "Too many sign-in attempts from your network.",
    "Wait {seconds} seconds, then sign in again.",
)
{%- if cookiecutter.use_facebook %}
FACEBOOK = Rule(
    "facebook_callback_rate_limit",
    client_ip,
    "Too many callbacks from this address.",
    "Retry after {seconds} seconds.",
)
{%- endif %}
RULES: dict[str, Rule] = {
    "auth.login": SIGN_IN,
    "auth.callback": SIGN_IN,
{%- if cookiecutter.use_facebook %}
    "facebook_callbacks.deauthorize": FACEBOOK,
    "facebook_callbacks.data_deletion": FACEBOOK,
{%- endif %}
    "api.create_token": Rule(
        "api_token_rate_limit",
        user_or_ip,
        "Too many API tokens created in a short time.",
        "Wait {seconds} seconds before creating another one.",
    ),
}


def init_rate_limits(app: Flask, settings: Settings, client: redis.Redis | RedisCluster) -> None:
    """Limit the views in RULES; call once the blueprints are registered."""
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit_enabled
    if not settings.ratelimit_enabled:
        if settings.is_production:
            log.warning("RATELIMIT_ENABLED=false: sign-in and token creation are not rate limited")
        return
    limiter = Limiter(
        client_ip,
        storage_uri=f"{_SCHEME}://",
        # ClientRedisStorage takes the app's client where limits expects connection options.
        storage_options={"client": client, "key_prefix": f"{settings.redis_key_prefix}ratelimit"},  # type: ignore[dict-item]
        # Counted from a key's first hit, which expires with its window: one INCR per request.
        strategy="fixed-window",
        # Redis failing: count in memory (with a warning) rather than refuse or crash.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        headers_enabled=False,  # Retry-After goes on the 429 alone (too_many_requests)
    )
    _init_without_app_wide_hooks(limiter, app)
    for endpoint, rule in RULES.items():
        view = app.view_functions.get(endpoint)
        if view is not None:  # a provider's own routes exist only while it is configured
            limit = limiter.limit(getattr(settings, rule.setting), key_func=rule.key)
            app.view_functions[endpoint] = limit(view)  # type: ignore[assignment]
    app.extensions["rate_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, too_many_requests)


def _init_without_app_wide_hooks(limiter: Limiter, app: Flask) -> None:
    """`init_app`, less the three hooks it adds to every request of the app.

    They evaluate app-wide, default and blueprint limits (we have none: ours wrap their
    views and are checked there) and cost about 60 µs on every request, as much as a whole
    session read. Per-request state lives on the request context and goes with it.
    """
    registries: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    before = [list(registry.get(None, [])) for registry in registries]
    limiter.init_app(app)
    for registry, kept in zip(registries, before, strict=True):
        registry[None] = kept


def forget_user(user_id: str) -> None:
    """Clear a user's counters (a deleted account leaves nothing of theirs in Redis)."""
    limiter: Limiter | None = current_app.extensions.get("rate_limiter")
    if limiter is None:
        return
    settings = current_app.config["APP_SETTINGS"]
    for endpoint, rule in RULES.items():
        if rule.key is user_or_ip:
            for item in parse_many(getattr(settings, rule.setting)):
                # Flask-Limiter's identifiers of a route's own limit: the key, then the endpoint.
                limiter.limiter.clear(item, user_key(user_id), endpoint)


def too_many_requests(exc: RateLimitExceeded) -> Response:
    rule = RULES.get(request.endpoint or "", SIGN_IN)
    seconds = _seconds_to_wait(exc)
    return error_response(
        AppError(
            429,
            "rate_limited",
            rule.message,
            rule.hint.format(seconds=seconds),
            retry_after=seconds,
        )
    )


def _seconds_to_wait(exc: RateLimitExceeded) -> int:
    """Until the breached window resets; its whole length if the store cannot say."""
    limiter: Limiter = current_app.extensions["rate_limiter"]
    try:
        breached = limiter.current_limit
        reset_at = breached.window.reset_time if breached is not None else None
    except redis.RedisError:
        reset_at = None
    if reset_at is None:
        return exc.limit.limit.get_expiry()
    return max(1, math.ceil(reset_at - time.time()))
