"""The runtime's notion of time. Lambda waits for many things (batching windows, retry backoff,
asynchronous retry delays of one and two minutes, SQS visibility timeouts, record and event
ages); ``drain()`` must not sit through an hour of them, so it skips idle waits by advancing this
clock. Every age and due time in the runtime is computed against it, so the semantics stay
exact: only real seconds are saved. In ``up`` mode the offset stays 0 and the clock is wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Wall time plus an offset; ``on_change`` is told every new offset (the runtime moves
    moto's clock with it, so both agree on every timestamp)."""

    def __init__(self, on_change: Callable[[float], None] | None = None) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self.on_change = on_change

    def now(self) -> float:
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            self._offset += seconds
            self._notify()

    def advance_to(self, when: float) -> None:
        with self._lock:
            gap = when - (time.time() + self._offset)
            if gap > 0:
                self._offset += gap
                self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self._offset)


def iso_millis(epoch: float) -> str:
    """AWS's timestamp format in invocation records: 2019-11-14T00:38:06.021Z."""
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_seconds(epoch: float) -> str:
    """EventBridge's timestamp format: 2015-10-08T16:53:06Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
