"""Is this process able to serve? The checks behind ``/readyz``, against the real adapters.

Each check is one cheap round trip with a short timeout (a pooled ``SELECT 1``, a Redis
``PING``), so a PaaS may poll it every few seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from lootbox.idempotency.availability import FastPathHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    database: bool
    redis: bool
    redis_reason: str | None = None  # why Redis does not answer, when it does not

    @property
    def ready(self) -> bool:
        """Only the database decides: Redis is an accelerator, and every request is
        served correctly without it (docs/reliability.md). Taking every instance out of
        rotation because Redis blinked would turn a slower service into no service."""
        return self.database


class ReadinessProbe:
    def __init__(self, engine: Engine, redis_client: Any) -> None:
        self._engine = engine
        self._redis = redis_client
        # Probes come every few seconds: say why Redis is down once, not on each of them.
        self._redis_health = FastPathHealth(
            log, down="readiness: redis unreachable", up="readiness: redis answers again"
        )

    def check(self) -> Readiness:
        database = self._database_answers()
        redis_down = self._why_redis_is_down()
        return Readiness(database=database, redis=redis_down is None, redis_reason=redis_down)

    def _database_answers(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.warning("readiness: database unreachable: %s", exc)
            return False

    def _why_redis_is_down(self) -> str | None:
        """``None`` when Redis answers the ``PING``, else why it does not."""
        try:
            self._redis.ping()  # True, or it raises
        except RedisError as exc:
            return self._redis_health.failed(exc)
        self._redis_health.succeeded()
        return None
