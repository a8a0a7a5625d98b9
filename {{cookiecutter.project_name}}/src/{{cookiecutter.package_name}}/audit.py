"""Security events: one JSON log line each, and a row in the database (models.AuditEvent).

Callers pass only identifiers (provider names, token ids and names, scopes, roles): an
event never carries a token, code or secret. `record` adds the row to the caller's
transaction, so an event is stored exactly when what it describes is: commit after it.
Events older than AUDIT_RETENTION_DAYS are deleted in batches, at most once an hour per
process (and by `flask audit prune`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import delete, select

from .models import AuditEvent, db

log = logging.getLogger("{{ cookiecutter.package_name }}.audit")

PRUNE_EVERY = 3600  # seconds
PRUNE_BATCH = 1000
PRUNE_BATCHES_PER_RUN = 10  # up to 240,000 events a day per process; `flask audit prune` for more


class AuditLog:
    def __init__(self, retention: int) -> None:
        self.retention = retention
        self._last_prune = float("-inf")  # monotonic time: the first event of a process prunes
        self._lock = threading.Lock()

    def record(self, event: str, user_id: str | None, **fields: Any) -> None:
        entry = {"event": event, "at": int(time.time()), "user_id": user_id, **fields}
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True)
        log.info("%s", line, extra={"fields": entry})
        db.session.add(AuditEvent(user_id=user_id, event=event, at=entry["at"], data=fields))
        self._prune_now_and_then()

    def recent(self, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The user's newest events (an index on (user_id, id) serves it)."""
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.user_id == user_id)
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
        return [{"event": r.event, "at": r.at, "user_id": r.user_id, **r.data} for r in rows]

    def prune(self, now: float | None = None) -> int:
        """Delete one batch of events past the retention period; returns how many."""
        cutoff = int((now or time.time()) - self.retention)
        old = select(AuditEvent.id).where(AuditEvent.at < cutoff).limit(PRUNE_BATCH)
        ids = list(db.session.scalars(old))
        if ids:
            db.session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
        return len(ids)

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_prune < PRUNE_EVERY:
                return
            self._last_prune = now
        for _batch in range(PRUNE_BATCHES_PER_RUN):  # bounded: this runs inside a request
            if self.prune() < PRUNE_BATCH:
                break
