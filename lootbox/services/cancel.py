"""Cancel: refund a held (pre-paid, unopened) box for its original amount, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lootbox.domain.errors import (
    LootboxError,
    RefundNotAllowed,
    RoundNotFound,
    RoundNotRefundable,
    WalletUnavailable,
    refusal,
)
from lootbox.domain.records import (
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    Operator,
    RefundCandidate,
)
from lootbox.domain.states import RoundStatus, external_round_status
from lootbox.ports import Answer, KeyedRequest, WalletAccepted, WalletRefusal
from lootbox.services import ledger
from lootbox.services.context import ServiceContext


@dataclass(frozen=True)
class CancelRound:
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


Render = Callable[[CancelResult], str]


def cancel_round(
    ctx: ServiceContext,
    operator: Operator,
    cmd: CancelRound,
    request: KeyedRequest,
    render: Render,
) -> Answer:
    """Credit a held round's original amount and currency once, then mark it ``refunded``;
    answer with ``render(result)``, stored under the request's key in the same
    transaction.

    Raises ``RoundNotFound``, ``RoundNotRefundable``, ``RefundNotAllowed``,
    ``OperationInProgress``, ``IdempotencyKeyReused``, ``WalletRefused`` (round stays
    held) or ``WalletUnavailable`` (the refund stays pending and is re-sent with the same
    key and amount by the next attempt on this round).
    """
    # (a) Claim the key, lock the round, decide, record the refund (or lease the round's
    # unanswered one), in one transaction.
    with ctx.uow_factory() as uow:
        claim = ledger.claim_key(ctx, uow, request)
        if isinstance(claim, Answer):
            return claim  # this request was answered before
        candidate = uow.rounds.lock_for_refund(operator.id, cmd.round_public_id)
        if (
            candidate is None
            or candidate.round.player_external_id != cmd.player_external_id
            or candidate.round.status is RoundStatus.DEBIT_PENDING  # never given to the caller
        ):
            raise RoundNotFound()
        live = candidate.live_refund
        if live is not None and live.status is MovementStatus.ACCEPTED:
            # Its answer is no longer stored (purged, or settled by the reconciler after
            # an unknown outcome): the ledger still says what it was.
            if live.idempotency_key != cmd.idempotency_key:
                raise RoundNotRefundable("the round is already refunded")
            done = ledger.answer(
                ctx, uow, request, claim, render(_result(live, live.balance_after_minor))
            )
            uow.commit()
            return done
        if live is None:
            leased = ledger.record_credit(ctx, uow, operator, _new_refund(operator, cmd, candidate))
        else:
            leased = ledger.lease(ctx, uow, operator, live)  # an earlier, unanswered one
        uow.commit()

    # (b) The wallet, outside any transaction.
    outcome = ledger.send(ctx, leased)
    ours = leased.movement.idempotency_key == cmd.idempotency_key

    # (c) Settle the refund and the round, and answer, in one transaction.
    error: LootboxError | None = None
    with ledger.settling(ctx, leased, request, claim) as uow:
        ledger.settle_credit(ctx, uow, leased, outcome)
        if isinstance(outcome, WalletAccepted) and ours:
            body = render(_result(leased.movement, outcome.balance_after_minor))
            done = ledger.answer(ctx, uow, request, claim, body)
        elif isinstance(outcome, WalletAccepted):
            ledger.release_key(uow, request, claim)
            error = RoundNotRefundable("the round was refunded by an earlier request")
        elif isinstance(outcome, WalletRefusal):
            ledger.release_key(uow, request, claim)
            error = refusal(outcome.code, outcome.message) if ours else None
        else:
            ledger.suspend_key(ctx, uow, request, claim)
            error = WalletUnavailable()
        uow.commit()
    if error is not None:
        raise error
    if isinstance(outcome, WalletRefusal):
        # An earlier request's refund, refused: the round is held again, and this request
        # records its own refund on a second pass.
        return cancel_round(ctx, operator, cmd, request, render)
    return done


def _new_refund(operator: Operator, cmd: CancelRound, candidate: RefundCandidate) -> NewMovement:
    round_ = candidate.round
    if round_.status is not RoundStatus.HELD:
        raise RoundNotRefundable(f"the round is {external_round_status(round_.status)}")
    if not (operator.refunds_enabled and candidate.all_boxes_refundable):
        raise RefundNotAllowed()
    # A held round is locked to the currency and amount it was bought in.
    return NewMovement(
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


def _result(movement: MoneyMovement, balance_after_minor: int | None) -> CancelResult:
    assert movement.round_public_id is not None
    return CancelResult(
        round_public_id=movement.round_public_id,
        status=str(RoundStatus.REFUNDED),
        refunded_minor=movement.amount_minor,
        currency=movement.currency,
        balance_after_minor=balance_after_minor,
    )
