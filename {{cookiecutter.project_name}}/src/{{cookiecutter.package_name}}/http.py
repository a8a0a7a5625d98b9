"""Outbound HTTP: one connection pool per process, shared by every Authlib session.

Authlib builds a fresh requests session for each call and closes it afterwards, which
would throw the pool away every time; one adapter whose close() is a no-op, mounted on
each of them by the provider adapters (providers/oauth2.py), keeps TCP/TLS connections
alive across requests and threads.
"""

from __future__ import annotations

from requests.adapters import HTTPAdapter


class SharedAdapter(HTTPAdapter):
    def close(self) -> None:  # the pool outlives the short-lived sessions using it
        pass


def make_shared_adapter(pool_size: int = 20) -> SharedAdapter:
    return SharedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
