"""Security events: one JSON log line each, and the recent ones kept per user in Redis.

Callers pass only identifiers (provider names, token ids and names, scopes, roles): an
event never carries a token, code or secret.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

log = logging.getLogger("{{ cookiecutter.package_name }}.audit")

MAX_EVENTS_PER_USER = 100


class AuditLog:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}events:{user_id}"

    def record(self, event: str, user_id: str | None, **fields: Any) -> None:
        entry = {"event": event, "at": int(time.time()), "user_id": user_id, **fields}
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True)
        log.info("%s", line, extra={"fields": entry})
        if user_id:
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(self._key(user_id), line)
            pipe.ltrim(self._key(user_id), 0, MAX_EVENTS_PER_USER - 1)
            pipe.execute()

    def recent(self, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(self._key(user_id), 0, limit - 1)]

    def forget(self, user_id: str) -> None:
        self.client.delete(self._key(user_id))
