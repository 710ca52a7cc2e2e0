"""Wrong upload-password guesses, limited per client address across the whole process.

Counting per browser session is not a limit: every new session would bring fresh
guesses. `GuessLimiter` keys the count by the client's address instead and answers with
an exponential backoff: the first `free` wrong guesses cost nothing, then each one
doubles the wait (from `base_delay` seconds up to `max_delay`) before the next guess is
even checked. A right password clears the address's record. Behind a reverse proxy
every visitor has the proxy's address, so the limit becomes instance-wide: stricter,
never looser. Plain Python: the Streamlit side (`pages/ui/access.py`) passes the
address in.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last_seen: float = 0.0


class GuessLimiter:
    """Thread-safe count of wrong guesses per client key, with exponential backoff.

    `clock` returns seconds (monotonic); records idle for `forget_after` seconds are
    dropped once more than `max_clients` are held, so the table stays bounded."""

    def __init__(
        self, free: int = 5, base_delay: float = 30.0, max_delay: float = 3600.0, *,
        forget_after: float = 24 * 3600.0, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free < 1 or base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need free >= 1 and 0 < base_delay <= max_delay")
        self.free, self.base_delay, self.max_delay = free, base_delay, max_delay
        self.forget_after, self.max_clients, self.clock = forget_after, max_clients, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """Seconds before `client` may guess again (0.0: now)."""
        with self._lock:
            record = self._records.get(client)
            return max(0.0, record.blocked_until - self.clock()) if record is not None else 0.0

    def failed(self, client: str) -> float:
        """Record a wrong guess; returns the wait it imposes before the next one."""
        with self._lock:
            now = self.clock()
            record = self._records.get(client)
            if record is None:
                self._forget_idle(now)
                record = self._records[client] = _Record()
            record.failures += 1
            record.last_seen = now
            extra = record.failures - self.free
            delay = 0.0 if extra < 0 else min(self.max_delay, self.base_delay * 2.0 ** min(extra, 64))
            record.blocked_until = now + delay
            return delay

    def succeeded(self, client: str) -> None:
        """The right password: the address starts afresh."""
        with self._lock:
            self._records.pop(client, None)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def _forget_idle(self, now: float) -> None:
        if len(self._records) < self.max_clients:
            return
        for key in [
            k for k, r in self._records.items() if now - r.last_seen > self.forget_after and now >= r.blocked_until
        ]:
            del self._records[key]
        while len(self._records) >= self.max_clients:  # still full: drop the least recently seen
            del self._records[min(self._records, key=lambda k: self._records[k].last_seen)]


# The process-wide limiter of upload-password guesses.
PASSWORD_GUESSES = GuessLimiter()
