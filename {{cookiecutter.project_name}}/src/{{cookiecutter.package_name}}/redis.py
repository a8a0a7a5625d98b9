"""One Redis client per app, built from REDIS_URL: plain, TLS, Sentinel or Cluster.

- `redis://` / `rediss://` / `unix://`: one server (TLS with rediss).
- `redis+sentinel://[:password@]host:port[,host:port]/<master-name>[?db=N]`: the current
  master as Sentinel reports it, followed through failovers.
- `redis+cluster://[:password@]host:port[,host:port]`: Redis Cluster.

Timeouts are short so a hung Redis cannot hang the workers. Without REDIS_URL, development
gets an in-process emulation (fakeredis); settings refuse that in production.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from .settings import REDIS_SCHEMES, Settings

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 2.0

# decode_responses stays False: Flask-Session stores binary values.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": SOCKET_TIMEOUT,
    "socket_connect_timeout": SOCKET_TIMEOUT,
}


def _hosts(netloc: str) -> list[tuple[str, int]]:
    hosts = netloc.rpartition("@")[2]
    pairs = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        pairs.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
    return pairs


def _password(netloc: str) -> str | None:
    credentials = netloc.rpartition("@")[0]
    password = credentials.partition(":")[2]
    return unquote(password) if password else None


def connect(settings: Settings) -> redis.Redis | RedisCluster:
    url = settings.redis_url
    if not url or urlsplit(url).scheme not in REDIS_SCHEMES:
        # Unset (development), or refused by the settings and only reached by the doctor.
        import fakeredis

        log.warning(
            "REDIS_URL is not set: using an in-process Redis emulation. Sessions live in this "
            "process only and end on restart; accounts are in the database (development only)."
        )
        return fakeredis.FakeRedis(server=fakeredis.FakeServer())
    parts = urlsplit(url)
    if parts.scheme == "redis+sentinel":
        master = parts.path.strip("/") or "mymaster"
        db = int(parse_qs(parts.query).get("db", ["0"])[0])
        password = _password(parts.netloc)
        sentinel = Sentinel(_hosts(parts.netloc), sentinel_kwargs=CLIENT_OPTIONS, **CLIENT_OPTIONS)
        return sentinel.master_for(master, db=db, password=password, **CLIENT_OPTIONS)
    if parts.scheme == "redis+cluster":
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc)]
        return RedisCluster(startup_nodes=nodes, password=_password(parts.netloc), **CLIENT_OPTIONS)
    return redis.Redis.from_url(url, health_check_interval=30, **CLIENT_OPTIONS)
