"""The lock that serialises every use of a shared model, served in arrival order.

`threading.RLock` is not fair: a job that releases the model between two chunks and
takes it straight back (it still holds the GIL) wins again and again, so a visitor's
top-5 forward pass waited behind a whole gallery job (issue 24, break 5). `ModelLock`
hands the model to the longest waiter at every release, so a waiting prediction gets
it after the current chunk. It is re-entrant like `RLock` (nested holds by one thread
count, and only the outermost release hands the model on). No library offers a fair
re-entrant lock; this is the few lines one needs.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class ModelLock:
    """A fair (first come, first served) re-entrant lock; `with lock:` like `RLock`."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[tuple[int, threading.Lock]] = deque()  # (thread, its own gate), in arrival order

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (again, when this thread holds it); False when not `blocking` and
        it is held or others wait, or when `timeout` seconds pass first."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                return True
            if not blocking:
                return False
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append((me, gate))
        if gate.acquire(timeout=timeout):  # released by `release`, which has made this thread the owner
            return True
        with self._mutex:
            if self._owner == me:  # handed over just as the wait timed out
                return True
            self._waiters.remove((me, gate))
            return False

    def release(self) -> None:
        """Give one hold back; the outermost release hands the lock to the longest waiter."""
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a model lock this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            if self._waiters:
                waiter, gate = self._waiters.popleft()
                self._owner, self._depth = waiter, 1
                gate.release()

    def held_by_other(self) -> bool:
        """Whether another thread holds the lock or waits for it now (a hint: it may change at once)."""
        with self._mutex:
            return (self._owner is not None and self._owner != threading.get_ident()) or bool(self._waiters)

    def waiting(self) -> int:
        """How many threads wait for the lock now."""
        with self._mutex:
            return len(self._waiters)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
