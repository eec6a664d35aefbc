"""Gauges ``/metrics`` computes when it is scraped, in the worker that answers.

They describe shared state (the ledger, Redis), not this process, so they are computed
once per scrape and never written to the multiprocess files, where every worker's copy
would be summed. Each costs one round trip: one aggregate query over the pending
movements (the ``status`` index; a handful of rows back, one per currency and kind,
however many are pending), and one Redis ``PING``.

A scrape always succeeds: a database or Redis that does not answer is reported as
``lootbox_database_up 0`` / ``lootbox_redis_up 0``, not as a failed scrape, because a
scrape that fails exactly when something is down hides what is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from lootbox.persistence.models import MoneyMovementRow

log = logging.getLogger(__name__)


class PendingMoneyCollector:
    """``lootbox_pending_operations``, ``lootbox_pending_operation_oldest_age_seconds``,
    ``lootbox_money_at_risk_minor{currency,kind}`` and ``lootbox_database_up``.

    The same figures as ``flask --app app ops pending`` (count, oldest age, money at risk
    per currency), without listing the rows."""

    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._now = now

    def collect(self) -> Iterator[Metric]:
        m = MoneyMovementRow
        query = (
            select(
                m.currency, m.kind, func.count(), func.sum(m.amount_minor), func.min(m.created_at)
            )
            .where(m.status == "pending")
            .group_by(m.currency, m.kind)
        )
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            log.warning("metrics: the pending-operations query failed: %s", exc)
            yield _up("lootbox_database_up", "The database answered the scrape's query.", False)
            return
        now = self._now()
        count = sum(int(row[2]) for row in rows)
        oldest = min((row[4] for row in rows if row[4] is not None), default=None)
        at_risk = GaugeMetricFamily(
            "lootbox_money_at_risk_minor",
            "Money in pending operations (wallet outcome unknown or call in flight), in"
            " minor units, by currency and kind (credit, debit).",
            labels=["currency", "kind"],
        )
        for currency, kind, _count, amount, _oldest in rows:
            at_risk.add_metric([str(currency), str(kind)], int(amount or 0))
        yield _up("lootbox_database_up", "The database answered the scrape's query.", True)
        yield GaugeMetricFamily(
            "lootbox_pending_operations",
            "Money operations whose wallet outcome is not known yet (in flight or unknown).",
            value=count,
        )
        yield GaugeMetricFamily(
            "lootbox_pending_operation_oldest_age_seconds",
            "Age of the oldest pending money operation (0 when there is none).",
            value=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
        )
        yield at_risk


class RedisUpCollector:
    """``lootbox_redis_up``: whether Redis answers a ``PING`` now. Redis down does not
    fail requests (the database guard takes over) but makes them slower and the database
    busier, so it is alerted on by itself."""

    def __init__(self, ping: Callable[[], bool]) -> None:
        self._ping = ping

    def collect(self) -> Iterator[Metric]:
        try:
            up = bool(self._ping())
        except Exception as exc:  # any client failure means "not answering"
            log.warning("metrics: redis did not answer PING: %s", exc)
            up = False
        yield _up("lootbox_redis_up", "Redis answered a PING during the scrape.", up)


def _up(name: str, documentation: str, up: bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=1 if up else 0)
