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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    database: bool
    redis: bool

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

    def check(self) -> Readiness:
        return Readiness(database=self._database_answers(), redis=self._redis_answers())

    def _database_answers(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.warning("readiness: database unreachable: %s", exc)
            return False

    def _redis_answers(self) -> bool:
        try:
            return bool(self._redis.ping())
        except RedisError as exc:
            log.warning("readiness: redis unreachable: %s", exc)
            return False
