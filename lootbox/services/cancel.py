"""Cancel: refund a held (pre-paid, unopened) box for its original amount, exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lootbox.domain.errors import (
    OperationInProgress,
    RefundNotAllowed,
    RoundNotFound,
    RoundNotRefundable,
)
from lootbox.domain.records import (
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    Operator,
    Round,
)
from lootbox.domain.states import RoundStatus, external_round_status
from lootbox.ports import UnitOfWork, WalletAccepted, WalletOutcome
from lootbox.services.context import ServiceContext
from lootbox.services.movements import Leased, drive_credit, lease, record


@dataclass(frozen=True)
class CancelRound:
    operator: Operator  # as authenticated: read once per request, not again here
    player_external_id: str
    round_public_id: str
    idempotency_key: str


@dataclass(frozen=True)
class CancelResult:
    round_public_id: str
    status: str
    refunded_minor: int
    currency: str
    balance_after_minor: int | None


def default_cancel_key(round_public_id: str) -> str:
    return f"refund:round:{round_public_id}"


def cancel_round(ctx: ServiceContext, cmd: CancelRound) -> CancelResult:
    """Credit a held round's original amount and currency once, then mark it ``refunded``.

    Raises ``RoundNotFound``, ``RoundNotRefundable``, ``RefundNotAllowed``,
    ``OperationInProgress``, ``IdempotencyKeyReused``, ``WalletRefused`` (round stays
    held) or ``WalletUnavailable`` (the refund stays pending and is re-sent with the same
    key and amount by the next attempt on this round).
    """
    return drive_credit(
        ctx,
        cmd.idempotency_key,
        lambda: _prepare(ctx, cmd),
        settle_refund,
        _result,
        lambda: RoundNotRefundable("the round was refunded by an earlier request"),
    )


def _prepare(ctx: ServiceContext, cmd: CancelRound) -> CancelResult | Leased:
    with ctx.uow_factory() as uow:
        operator = cmd.operator
        round_ = uow.rounds.get_by_public_id(operator.id, cmd.round_public_id, for_update=True)
        if (
            round_ is None
            or round_.player_external_id != cmd.player_external_id
            or round_.status is RoundStatus.DEBIT_PENDING  # not a round the caller was given
        ):
            raise RoundNotFound()
        live = uow.ledger.live_refund(round_.id)
        if live is not None and live.status is MovementStatus.ACCEPTED:
            if live.idempotency_key == cmd.idempotency_key:
                return _result(live, live.balance_after_minor)
            raise RoundNotRefundable("the round is already refunded")
        if live is None:
            leased = _record_refund(ctx, uow, operator, round_, cmd)
        else:
            leased = lease(ctx, uow, operator, live)  # an earlier refund, unanswered
        uow.commit()
        return leased


def _record_refund(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, round_: Round, cmd: CancelRound
) -> Leased:
    if round_.status is not RoundStatus.HELD:
        raise RoundNotRefundable(f"the round is {external_round_status(round_.status)}")
    boxes = [uow.catalog.get_box_version(operator.id, r.box_version_id) for r in round_.reels]
    if not operator.refunds_enabled or any(box is None or not box.refundable for box in boxes):
        raise RefundNotAllowed()
    now = ctx.clock.now()
    # A held round is locked to the currency and amount it was bought in.
    new = NewMovement(
        operator_id=operator.id,
        idempotency_key=cmd.idempotency_key,
        kind=MovementKind.CREDIT,
        reason=MovementReason.REFUND,
        player_external_id=round_.player_external_id,
        amount_minor=round_.bet_minor,
        currency=round_.currency,
        operator_amount_minor=round_.operator_amount_minor,
        operator_currency=operator.currency,
        rate=round_.rate,
        round_id=round_.id,
        round_public_id=round_.public_id,
    )
    leased = record(ctx, uow, operator, new, now)
    if leased is None or not uow.rounds.transition(
        round_.id, RoundStatus.HELD, RoundStatus.REFUND_PENDING, now
    ):
        raise OperationInProgress()
    return leased


def settle_refund(uow: UnitOfWork, leased: Leased, outcome: WalletOutcome, now: datetime) -> bool:
    """A refund's outcome moves the round: accepted → ``refunded``, refused → ``held``."""
    round_id = leased.movement.round_id
    assert round_id is not None
    target = RoundStatus.REFUNDED if isinstance(outcome, WalletAccepted) else RoundStatus.HELD
    return bool(uow.rounds.transition(round_id, RoundStatus.REFUND_PENDING, target, now))


def _result(movement: MoneyMovement, balance_after_minor: int | None) -> CancelResult:
    assert movement.round_public_id is not None
    return CancelResult(
        round_public_id=movement.round_public_id,
        status=str(RoundStatus.REFUNDED),
        refunded_minor=movement.amount_minor,
        currency=movement.currency,
        balance_after_minor=balance_after_minor,
    )
