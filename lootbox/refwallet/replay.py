"""The signatures a wallet has accepted recently, so that none is accepted twice.

A signed wallet call stays valid for the whole timestamp window (300 s either way), so a
captured call could be sent again within it: a debit refused for want of funds would be
charged after a top-up. Remembering each accepted ``(operator, timestamp, signature)`` until
its timestamp leaves the window closes that hole; after that the window itself refuses it.

Entries are grouped by timestamp, so forgetting the expired ones is dropping whole groups,
and there are at most ``2 × window + 1`` groups. The number of entries is bounded: when it
is reached the wallet answers "busy" rather than forget a signature that is still valid.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# About 800 calls a second sustained over a 300 s window, several times what this test
# server serves; at roughly 200 bytes an entry, a full cache is about 50 MB.
DEFAULT_CAPACITY = 250_000


@dataclass(frozen=True)
class SignedCall:
    """Who signed a call (the operator whose secret matched), when, and the signature."""

    operator: str
    timestamp: int
    signature: str


class ReplayCacheFull(Exception):
    """Every slot holds a signature that is still within the window."""


class SeenSignatures:
    """Thread-safe, bounded set of the signatures seen within the last window."""

    def __init__(
        self,
        window_seconds: int,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_seconds < 0 or capacity < 1:
            raise ValueError("window_seconds must be >= 0 and capacity >= 1")
        self._window = window_seconds
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._by_timestamp: dict[int, set[tuple[str, str]]] = {}
        self._size = 0

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def first_use(self, signed: SignedCall) -> bool:
        """Remember ``signed``; ``False`` if it was already remembered (a replay).
        Raises ``ReplayCacheFull`` rather than forget a signature that is still valid."""
        entry = (signed.operator, signed.signature)
        with self._lock:
            self._forget_expired()
            seen = self._by_timestamp.get(signed.timestamp)
            if seen is not None and entry in seen:
                return False
            if self._size >= self._capacity:
                raise ReplayCacheFull(f"{self._size} signatures are still within the window")
            self._by_timestamp.setdefault(signed.timestamp, set()).add(entry)
            self._size += 1
            return True

    def forget(self, signed: SignedCall) -> None:
        """Forget ``signed``: the call it signed never reached the wallet's rules."""
        with self._lock:
            seen = self._by_timestamp.get(signed.timestamp)
            if seen is not None and (signed.operator, signed.signature) in seen:
                seen.remove((signed.operator, signed.signature))
                self._size -= 1

    def clear(self) -> None:
        with self._lock:
            self._by_timestamp.clear()
            self._size = 0

    def _forget_expired(self) -> None:
        # A timestamp is accepted while it is at most ``window`` seconds old, so its
        # signatures are needed until then and not a moment longer.
        oldest_valid = self._clock() - self._window
        for timestamp in [t for t in self._by_timestamp if t < oldest_valid]:
            self._size -= len(self._by_timestamp.pop(timestamp))
