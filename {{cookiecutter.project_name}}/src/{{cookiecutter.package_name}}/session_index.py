"""Each user's live sessions, so they can be listed and ended from any worker or instance.

`<prefix>user_sessions:<user_id>` maps a public session id (random, shown to the user; never
the cookie's secret id) to the session's Redis key and what we show about it: a device
summary from the User-Agent, the IP, created and last-seen times and the provider used.
Entries whose session expired (TTL) or was destroyed are dropped whenever the list is read.
Ending a session deletes its Redis key, so its cookie is dead on the next request.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import redis

LAST_SEEN_EVERY = 300  # seconds: last-seen is written at most this often per session

# HSET only while the entry is there, in one step: a last-seen update racing with the end of
# its session must not list it again (nor recreate the hash, without a TTL, after end_all).
# One key, so Redis Cluster routes it like any other command.
UPDATE_IF_PRESENT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


def device_summary(user_agent: str) -> str:
    """ "Firefox on Linux" from a User-Agent string: enough to recognise one's devices."""
    browser = next(
        (
            name
            for pattern, name in (
                (r"Edg/", "Edge"),
                (r"OPR/|Opera", "Opera"),
                (r"Firefox/", "Firefox"),
                (r"Chrome/|Chromium/", "Chrome"),
                (r"Safari/", "Safari"),
                (r"curl/", "curl"),
                (r"python-requests", "Python requests"),
            )
            if re.search(pattern, user_agent)
        ),
        "Unknown browser",
    )
    system = next(
        (
            name
            for pattern, name in (
                (r"Android", "Android"),
                (r"iPhone|iPad|iOS", "iOS"),
                (r"Windows", "Windows"),
                (r"Mac OS X|Macintosh", "macOS"),
                (r"Linux", "Linux"),
            )
            if re.search(pattern, user_agent)
        ),
        None,
    )
    return f"{browser} on {system}" if system else browser


class SessionIndex:
    def __init__(self, client: redis.Redis, prefix: str, lifetime: int) -> None:
        self.client = client
        self.prefix = prefix
        self.lifetime = lifetime
        self._update_if_present = client.register_script(UPDATE_IF_PRESENT)

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}user_sessions:{user_id}"

    def add(self, user_id: str, public_id: str, store_key: str, **meta: Any) -> None:
        now = int(time.time())
        entry = {"store_key": store_key, "created_at": now, "last_seen_at": now, **meta}
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self._key(user_id), public_id, json.dumps(entry))
        pipe.expire(self._key(user_id), self.lifetime)
        pipe.execute()

    def touch(self, user_id: str, public_id: str) -> None:
        raw = self.client.hget(self._key(user_id), public_id)
        if raw:
            entry = json.loads(raw)
            entry["last_seen_at"] = int(time.time())
            self._update_if_present(keys=[self._key(user_id)], args=[public_id, json.dumps(entry)])

    def list(self, user_id: str) -> list[dict[str, Any]]:
        """Live sessions, most recently seen first; dead entries are removed on the way."""
        entries = {
            k.decode(): json.loads(v) for k, v in self.client.hgetall(self._key(user_id)).items()
        }
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        for entry in entries.values():
            pipe.exists(entry["store_key"])
        alive = pipe.execute()
        dead = [public_id for public_id, live in zip(entries, alive, strict=True) if not live]
        if dead:
            self.client.hdel(self._key(user_id), *dead)
        sessions = [
            {"id": public_id, **{k: v for k, v in entry.items() if k != "store_key"}}
            for public_id, entry in entries.items()
            if public_id not in dead
        ]
        return sorted(sessions, key=lambda s: s["last_seen_at"], reverse=True)

    def store_keys(self, user_id: str) -> list[str]:
        return [json.loads(v)["store_key"] for v in self.client.hvals(self._key(user_id))]

    def end(self, user_id: str, public_id: str) -> bool:
        raw = self.client.hget(self._key(user_id), public_id)
        if raw is None:
            return False
        self.client.delete(json.loads(raw)["store_key"])
        self.client.hdel(self._key(user_id), public_id)
        return True

    def end_all(self, user_id: str, keep: str | None = None) -> int:
        """End every session of the user except `keep`; returns how many were ended."""
        ended = 0
        for public_id in [k.decode() for k in self.client.hkeys(self._key(user_id))]:
            if public_id != keep and self.end(user_id, public_id):
                ended += 1
        if keep is None:
            self.client.delete(self._key(user_id))
        return ended
