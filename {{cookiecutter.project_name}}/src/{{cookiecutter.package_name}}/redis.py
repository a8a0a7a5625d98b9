"""One Redis client per app, built from REDIS_URL.

Timeouts are short so a hung Redis cannot hang the workers. Without REDIS_URL, development
gets an in-process emulation (fakeredis); settings refuse that in production.
"""

from __future__ import annotations

import logging

import redis

from .settings import Settings

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 2.0


def connect(settings: Settings) -> redis.Redis:
    # decode_responses must stay False: Flask-Session stores binary values.
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            health_check_interval=30,
        )
    import fakeredis

    log.warning(
        "REDIS_URL is not set: using an in-process Redis emulation. Sessions and users live "
        "in this process only and vanish on restart (development only)."
    )
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())
