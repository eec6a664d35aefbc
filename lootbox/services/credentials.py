"""Who signs with an API key: read from the database once per key every few seconds, not
once per request.

Every signed request needs the key's secret and its operator (policies, wallet settings,
rates). Reading them costs three statements and a transaction, which on a replay is more
than everything else the request does (docs/benchmarks.md). So each worker keeps what it
read for ``ttl_seconds`` (``AUTH_CACHE_SECONDS``, default 5):

- a revoked key, a changed policy, wallet URL, secret, timeout or rate is seen by every
  worker within that time (and at once by the process that made the change, whose admin
  command calls ``forget``);
- an unknown key is never remembered, so a key works from the first request after it is
  created, and a flood of made-up key ids cannot push real ones out;
- ``0`` turns the cache off: every request reads the database, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lootbox.domain.records import Operator
from lootbox.ports import UnitOfWork

# (the key's secret, its operator)
Credentials = tuple[str, Operator]
CredentialLookup = Callable[[str], Credentials | None]

DEFAULT_MAX_KEYS = 4096


class CredentialCache:
    """A ``CredentialLookup`` that remembers active keys for ``ttl_seconds``. Thread-safe:
    two threads missing the same key both read it, and the later write wins (equal data)."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        ttl_seconds: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow_factory = uow_factory
        self._ttl_seconds = ttl_seconds
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Credentials]] = {}
        self._lock = threading.Lock()

    def __call__(self, key_id: str) -> Credentials | None:
        now = self._monotonic()
        entry = self._entries.get(key_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        with self._uow_factory() as uow:
            found = uow.operators.get_by_active_key(key_id)
        with self._lock:
            if found is None or self._ttl_seconds <= 0:
                self._entries.pop(key_id, None)  # revoked since it was remembered
                return found
            if key_id not in self._entries and len(self._entries) >= self._max_keys:
                # The oldest insertion goes: more live keys than this is not a real fleet.
                del self._entries[next(iter(self._entries))]
            self._entries[key_id] = (now + self._ttl_seconds, found)
        return found

    def forget(self) -> None:
        """Drop everything remembered: the next request of every key reads the database.
        The admin commands call it after a change (it reaches only their own process)."""
        with self._lock:
            self._entries.clear()
