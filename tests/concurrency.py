"""Many callers at once: what the concurrency tests of every tier share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

BATCH_TIMEOUT = 60.0  # seconds: one concurrent batch, as a whole


def concurrently(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call at once (released by a barrier), in its own thread."""
    barrier = threading.Barrier(len(calls), timeout=BATCH_TIMEOUT)

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=BATCH_TIMEOUT) for future in futures]
