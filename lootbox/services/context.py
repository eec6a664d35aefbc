"""What every use case needs, wired once by the composition root."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lootbox.ports import Clock, UnitOfWork, Wallet


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class ServiceContext:
    uow_factory: Callable[[], UnitOfWork]
    wallet: Wallet
    clock: Clock = field(default_factory=SystemClock)
    # How long a claimed money operation may stay in flight before another attempt may
    # re-drive it (at least; ``movements.lease`` stretches it past an operator's timeouts).
    movement_lease_seconds: float = 15.0
    # How long a request's claim on its idempotency key lasts before a retry may take it
    # over, and how long its stored answer is kept (IDEMPOTENCY_LEASE/TTL_SECONDS).
    idempotency_lease_seconds: float = 30.0
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    # Where new seed pairs come from (lootbox.services.fairness); tests pass a seeded one.
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    # The service-wide wallet timeouts, for operators that override only one of the two.
    wallet_connect_timeout_seconds: float = 2.0
    wallet_read_timeout_seconds: float = 5.0
