"""One Redis client per app, built from REDIS_URL: plain, TLS, Sentinel or Cluster.

- `redis://` / `rediss://` / `unix://`: one server (TLS with rediss).
- `redis+sentinel://[:password@]host:port[,host:port]/<master-name>[?db=N]`: the current
  master as Sentinel reports it, followed through failovers.
- `redis+cluster://[:password@]host:port[,host:port]`: Redis Cluster.

How long a request may wait on Redis is ours to say (REDIS_TIMEOUT, default 1 s): it is
the socket connect timeout and the read timeout of every command. A refused or dropped
connection (Redis restarting, a Sentinel or Cluster failover under way) is retried twice
with a short jittered backoff (RETRIES, BACKOFF_*), reconnecting each time (and, under
Sentinel, asking the sentinels again for the master); a timeout is not retried, so a hung
Redis costs one REDIS_TIMEOUT. A request waits at most about REDIS_TIMEOUT plus ~0.5 s of
backoff before its 503. Without REDIS_URL, development gets an in-process emulation
(fakeredis); settings refuse that in production.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import FullJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from .settings import NO_REDIS_EMULATION, REDIS_SCHEMES, Settings

log = logging.getLogger(__name__)

RETRIES = 2  # after the first attempt, on a refused or dropped connection only
BACKOFF_BASE = 0.05  # seconds: the n-th retry waits a random share of base * 2**n...
BACKOFF_CAP = 0.2  # ...and never more than this


def retry_policy() -> Retry:
    """Retry connection errors, not timeouts: a hung Redis must not hold a worker N times."""
    backoff = FullJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)  # redis-py 4.2 and later
    return Retry(backoff, RETRIES, supported_errors=(redis.ConnectionError,))


def client_options(settings: Settings) -> dict[str, Any]:
    """Timeouts for every connection. decode_responses stays False: Flask-Session stores
    binary values."""
    return {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
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


# What `connect` returns: the stores work with either (single-key commands, pipelines).
RedisClient = redis.Redis | RedisCluster


def connect(settings: Settings) -> RedisClient:
    url = settings.redis_url
    if not url or urlsplit(url).scheme not in REDIS_SCHEMES:
        # Unset (development), or refused by the settings and only reached by the doctor.
        try:
            import fakeredis
        except ModuleNotFoundError:  # a production install (no [dev] extra)
            raise SystemExit(NO_REDIS_EMULATION) from None

        log.warning(
            "REDIS_URL is not set: using an in-process Redis emulation. Sessions live in this "
            "process only and end on restart; accounts are in the database (development only)."
        )
        return fakeredis.FakeRedis(server=fakeredis.FakeServer())
    parts = urlsplit(url)
    options = client_options(settings)
    if parts.scheme == "redis+sentinel":
        master = parts.path.strip("/") or "mymaster"
        db = int(parse_qs(parts.query).get("db", ["0"])[0])
        password = _password(parts.netloc)
        options["retry"] = retry_policy()
        sentinel = Sentinel(_hosts(parts.netloc), sentinel_kwargs=options, **options)
        return sentinel.master_for(master, db=db, password=password, **options)
    if parts.scheme == "redis+cluster":
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc)]
        return RedisCluster(
            startup_nodes=nodes, password=_password(parts.netloc), retry=retry_policy(), **options
        )
    return redis.Redis.from_url(url, health_check_interval=30, retry=retry_policy(), **options)
