"""What on-call needs to see of money in flight: every operation whose outcome is unknown,
how old it is, and how much money per currency hangs on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lootbox.domain.records import MoneyMovement, MovementKind, MovementPhase
from lootbox.ports import Clock, UnitOfWork


@dataclass(frozen=True)
class PendingOperation:
    movement: MoneyMovement
    operator_slug: str
    phase: MovementPhase
    age_seconds: float


@dataclass
class MoneyAtRisk:
    """Per currency: credits the players may or may not have got, debits they may or may
    not have paid (minor units), and how many operations."""

    credits_minor: int = 0
    debits_minor: int = 0
    operations: int = 0


@dataclass
class PendingReport:
    operations: list[PendingOperation] = field(default_factory=list)
    at_risk: dict[str, MoneyAtRisk] = field(default_factory=dict)
    truncated: bool = False

    @property
    def oldest_age_seconds(self) -> float | None:
        return max((op.age_seconds for op in self.operations), default=None)


def pending_operations(
    uow_factory: Callable[[], UnitOfWork], clock: Clock, *, limit: int = 1000
) -> PendingReport:
    """Oldest first, at most ``limit`` (``truncated`` says whether there were more)."""
    now = clock.now()
    report = PendingReport()
    with uow_factory() as uow:
        movements: list[MoneyMovement] = uow.ledger.pending(limit=limit + 1)
        slugs: dict[int, str] = {}
        for movement in movements[:limit]:
            if movement.operator_id not in slugs:
                operator = uow.operators.get(movement.operator_id)
                slugs[movement.operator_id] = operator.slug if operator else "?"
            report.operations.append(
                PendingOperation(
                    movement=movement,
                    operator_slug=slugs[movement.operator_id],
                    phase=movement.phase(now),
                    age_seconds=max(0.0, (now - movement.created_at).total_seconds()),
                )
            )
            risk = report.at_risk.setdefault(movement.currency, MoneyAtRisk())
            risk.operations += 1
            if movement.kind is MovementKind.CREDIT:
                risk.credits_minor += movement.amount_minor
            else:
                risk.debits_minor += movement.amount_minor
    report.truncated = len(movements) > limit
    return report
