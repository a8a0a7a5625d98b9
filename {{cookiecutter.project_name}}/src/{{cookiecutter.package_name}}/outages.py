"""Outages of Redis or the database, told once: a WARNING when it goes, a reminder a
minute while it stays down, an INFO when it is back.

Every request during an outage answers 503 with Retry-After (errors.py); logging each of
them (with a traceback, as Flask does for an error raised while the session opens) would
bury the real errors under hundreds of lines a second. The state is per process (each
gunicorn worker has its own, and says so once for itself), guarded by a lock for threaded
workers. While it is marked down, a request that did not fail on it checks whether it
answers again, once a second at most and only a second after the last failure (a database
locked for writes still answers a probe's read); no request pays for that otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

REMIND_EVERY = 60.0  # seconds between reminders while a dependency stays down
PROBE_EVERY = 1.0  # seconds between "is it back?" checks, and after the last failure


class Outage:
    """Whether one dependency (Redis, the database) is down, as this process last saw it."""

    def __init__(self, name: str, probe: Callable[[], object]) -> None:
        self.name = name
        self.probe = probe  # raises while the dependency is down
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._reminded = 0.0
        self._probed = 0.0
        self._refused = 0

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException) -> None:
        """A request failed on the dependency: warn if it is news, or a minute old."""
        now = time.monotonic()
        with self._lock:
            self._refused += 1
            self._probed = now  # "back?" is asked only a second after the last failure
            if self.down_since is None:
                self.down_since = self._reminded = now
                self._refused = 1
                message = "%s unreachable (%s): answering 503 until it is back"
                args: tuple[object, ...] = (self.name, type(error).__name__)
            elif now - self._reminded >= REMIND_EVERY:
                self._reminded = now
                message = "%s still unreachable after %.0f s (%s): %d requests answered 503"
                args = (self.name, now - self.down_since, type(error).__name__, self._refused)
            else:
                return
        log.warning(message, *args)

    def check_back(self) -> None:
        """While marked down, at most once a second: does it answer again? Then say so."""
        if self.down_since is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._probed < PROBE_EVERY:
                return
            self._probed = now
        try:
            self.probe()
        except Exception:  # still down (or hung): the next failure or check tells
            return
        self.recovered()

    def recovered(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            seconds = time.monotonic() - self.down_since
            refused, self.down_since = self._refused, None
        log.info("%s is back after %.1f s; %d requests answered 503", self.name, seconds, refused)
