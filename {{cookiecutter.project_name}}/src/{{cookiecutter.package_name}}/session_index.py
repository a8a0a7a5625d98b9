"""Each user's live sessions, so they can be listed and ended from any worker or instance.

`<prefix>user_sessions:<user_id>` maps a public session id (random, shown to the user; never
the cookie's secret id) to the session's Redis key and what we show about it: a device
summary from the User-Agent, the IP, created and last-seen times and the provider used.
Ending a session deletes its Redis key, so its cookie is dead on the next request.

What one person costs stays bounded, however many sessions they start:
- at most MAX_SESSIONS_PER_USER sessions: a sign-in beyond it ends the least recently seen;
- entries whose session expired (TTL) or was destroyed are dropped at each sign-in (the
  write) and whenever the list is read;
- every operation on all of a user's sessions takes a fixed number of round trips (reads,
  then one pipeline of writes), never one or more per session. Pipelines, not a script: the
  records and the index live in different hash slots under Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ua_parser import parse as parse_user_agent

from .redis import RedisClient

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


# ua-parser's names, shortened where people know another one.
SYSTEM_NAMES = {"Mac OS X": "macOS", "Other": None}
MAX_USER_AGENT = 512  # characters looked at: a longer header is junk or an attack on the regexes


def device_summary(user_agent: str) -> str:
    """ "Firefox on Linux" from a User-Agent string: enough to recognise one's devices.

    ua-parser (the uap-core regexes) runs once per sign-in, never on a session read.
    """
    parsed = parse_user_agent(user_agent[:MAX_USER_AGENT])
    browser = parsed.user_agent.family if parsed.user_agent else "Other"
    if browser == "Other":
        browser = "Unknown browser"
    family = parsed.os.family if parsed.os else "Other"
    system = SYSTEM_NAMES.get(family, family)
    return f"{browser} on {system}" if system else browser


class SessionIndex:
    def __init__(
        self, client: RedisClient, prefix: str, lifetime: int, max_sessions: int = 50
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.lifetime = lifetime
        self.max_sessions = max_sessions
        self._update_if_present = client.register_script(UPDATE_IF_PRESENT)

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}user_sessions:{user_id}"

    def add(self, user_id: str, public_id: str, store_key: str, **meta: Any) -> list[dict]:
        """Index a new session, then drop dead entries and end what goes beyond the cap.

        Returns the sessions ended to make room (as `list` shows them), least recently seen
        first. Three round trips at most, whatever the number of sessions.
        """
        now = int(time.time())
        entry = {"store_key": store_key, "created_at": now, "last_seen_at": now, **meta}
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self._key(user_id), public_id, json.dumps(entry))
        pipe.expire(self._key(user_id), self.lifetime)
        pipe.hgetall(self._key(user_id))
        others = _decode(pipe.execute()[-1])
        others.pop(public_id, None)
        live, dead = self._split_live(others)
        over = len(live) + 1 - self.max_sessions
        evicted = sorted(live, key=lambda p: (live[p]["last_seen_at"], live[p]["created_at"]))
        evicted = evicted[: max(over, 0)]
        self._remove(user_id, dead, {p: live[p] for p in evicted})
        return [_public(p, live[p]) for p in evicted]

    def touch(self, user_id: str, public_id: str) -> None:
        raw = self.client.hget(self._key(user_id), public_id)
        if raw:
            entry = json.loads(raw)
            entry["last_seen_at"] = int(time.time())
            self._update_if_present(keys=[self._key(user_id)], args=[public_id, json.dumps(entry)])

    def list(self, user_id: str) -> list[dict[str, Any]]:
        """Live sessions, most recently seen first; dead entries are removed on the way."""
        live, dead = self._split_live(_decode(self.client.hgetall(self._key(user_id))))
        self._remove(user_id, dead, {})
        sessions = [_public(public_id, entry) for public_id, entry in live.items()]
        return sorted(sessions, key=lambda s: s["last_seen_at"], reverse=True)

    def store_keys(self, user_id: str) -> Sequence[str]:
        return [json.loads(v)["store_key"] for v in self.client.hvals(self._key(user_id))]

    def end(self, user_id: str, public_id: str) -> bool:
        raw = self.client.hget(self._key(user_id), public_id)
        if raw is None:
            return False
        self._remove(user_id, [], {public_id: json.loads(raw)})
        return True

    def end_all(self, user_id: str, keep: str | None = None) -> int:
        """End every session of the user except `keep`; returns how many were still live.

        Two round trips whatever their number: the index, then one pipeline that deletes
        the records and their entries. Only the entries read are removed: a session that
        starts meanwhile keeps its entry (an emptied hash disappears by itself).
        """
        ending = _decode(self.client.hgetall(self._key(user_id)))
        if keep is not None:
            ending.pop(keep, None)
        return self._remove(user_id, [], ending)

    # --- helpers ----------------------------------------------------------------------

    def _split_live(self, entries: dict[str, dict]) -> tuple[dict[str, dict], Sequence[str]]:
        """(live entries, ids of dead ones): one pipeline of EXISTS on their records."""
        if not entries:
            return {}, []
        pipe = self.client.pipeline(transaction=False)
        for entry in entries.values():
            pipe.exists(entry["store_key"])
        alive = pipe.execute()
        live = {p: e for (p, e), up in zip(entries.items(), alive, strict=True) if up}
        return live, [p for p in entries if p not in live]

    def _remove(self, user_id: str, dead: Sequence[str], ending: dict[str, dict]) -> int:
        """Drop these entries and end these sessions: one pipeline (nothing to do, no trip).

        Returns how many of the ended sessions' records still existed.
        """
        if not dead and not ending:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for entry in ending.values():
            pipe.delete(entry["store_key"])
        pipe.hdel(self._key(user_id), *dead, *ending)
        return sum(pipe.execute()[:-1])


def _decode(raw: Mapping[Any, Any]) -> dict[str, dict]:
    """An index hash as read (bytes) to entries by public id."""
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def _public(public_id: str, entry: dict) -> dict[str, Any]:
    """What the list shows of an entry: never its record's key."""
    return {"id": public_id, **{k: v for k, v in entry.items() if k != "store_key"}}
