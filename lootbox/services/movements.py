"""Driving one recorded money movement through the wallet, and settling its outcome.

Every movement is written (pending, with its key) and leased in one transaction before the
wallet is called, and settled in another after. The wallet call itself runs outside any
transaction, so no row lock is held across the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from lootbox.domain.errors import (
    IdempotencyKeyReused,
    LootboxError,
    OperationInProgress,
    WalletRefused,
    WalletUnavailable,
)
from lootbox.domain.money import format_rate
from lootbox.domain.records import (
    MoneyMovement,
    MovementKind,
    MovementStatus,
    NewMovement,
    Operator,
)
from lootbox.ports import (
    UnitOfWork,
    WalletAccepted,
    WalletMoneyCall,
    WalletOutcome,
    WalletOutcomeUnknown,
    WalletRefusal,
)
from lootbox.services.context import ServiceContext

log = logging.getLogger(__name__)

# What a wallet answers for a key it already holds another payload under (contract section
# 6 wants it to replay the same payload's answer instead; some wallets do not).
DUPLICATE_TRANSACTION = "DUPLICATE_TRANSACTION"


@dataclass(frozen=True)
class Leased:
    """A pending movement this caller holds the lease on (fencing ``token``), as leased:
    ``movement.attempts`` counts the send about to be made."""

    operator: Operator
    movement: MoneyMovement
    token: int


def lease(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, movement: MoneyMovement
) -> Leased:
    """Take the movement's lease for longer than this operator's wallet call can take, so
    no second attempt re-sends while the first is still waiting for its answer."""
    now = ctx.clock.now()
    until = _lease_until(ctx, operator, now)
    token = uow.ledger.claim(movement.id, now, until)
    if token is None:
        raise OperationInProgress(retry_after_seconds=_seconds_left(ctx, movement))
    leased = replace(
        movement, lease_token=token, lease_expires_at=until, attempts=movement.attempts + 1
    )
    return Leased(operator, leased, token)


def _lease_until(ctx: ServiceContext, operator: Operator, now: datetime) -> datetime:
    return now + timedelta(seconds=lease_seconds(ctx, operator))


def lease_seconds(ctx: ServiceContext, operator: Operator) -> float:
    """The operator's wallet call budget (connect + read) plus the headroom the service's
    own lease leaves above the default budget (``MOVEMENT_LEASE_SECONDS`` is validated to
    exceed it): time for the settle transaction after the call, the same for every
    operator, whatever its timeouts."""
    default_budget = ctx.wallet_connect_timeout_seconds + ctx.wallet_read_timeout_seconds
    headroom = ctx.movement_lease_seconds - default_budget
    return sum(
        operator.wallet.timeouts(
            ctx.wallet_connect_timeout_seconds, ctx.wallet_read_timeout_seconds
        )
    ) + max(headroom, 0.0)


def _seconds_left(ctx: ServiceContext, movement: MoneyMovement) -> int:
    if movement.lease_expires_at is None:
        return 1
    left = (movement.lease_expires_at - ctx.clock.now()).total_seconds()
    return max(1, int(left) + 1)


def wallet_call(movement: MoneyMovement) -> WalletMoneyCall:
    """The exact call a movement stands for: re-drives send the same key and amount."""
    return WalletMoneyCall(
        type="wallet.debit" if movement.kind is MovementKind.DEBIT else "wallet.credit",
        idempotency_key=movement.idempotency_key,
        player_external_id=movement.player_external_id,
        amount_minor=movement.amount_minor,
        currency=movement.currency,
        reason=str(movement.reason),
        round_public_id=movement.round_public_id,
        inventory_item_id=movement.inventory_item_id,
        reference=(
            {
                "operatorAmountMinor": movement.operator_amount_minor,
                "operatorCurrency": movement.operator_currency,
                "rate": format_rate(movement.rate),
            }
            if movement.kind is MovementKind.CREDIT
            else None
        ),
    )


# Moves the item or round to match the outcome; ``False`` if it was not in the state the
# pending movement implies (which the record-and-lease transaction rules out).
SettleHook = Callable[[UnitOfWork, Leased, WalletOutcome, datetime], bool]


def send_and_settle(ctx: ServiceContext, leased: Leased, on_settle: SettleHook) -> WalletOutcome:
    """Call the wallet, then record the outcome and let ``on_settle`` move the subject
    (item or round) in the same transaction as the ledger row."""
    outcome = _resend_answer(
        leased, ctx.wallet.send(leased.operator.wallet, wallet_call(leased.movement))
    )
    try:
        _settle(ctx, leased, outcome, on_settle)
    except Exception:
        _release_after_failed_settle(ctx, leased)
        raise
    return outcome


def _settle(
    ctx: ServiceContext, leased: Leased, outcome: WalletOutcome, on_settle: SettleHook
) -> None:
    with ctx.uow_factory() as uow:
        now = ctx.clock.now()
        m, token = leased.movement, leased.token
        if isinstance(outcome, WalletAccepted):
            settled = uow.ledger.mark_accepted(
                m.id, token, outcome.balance_after_minor, outcome.provider_txn_ref, now
            )
        elif isinstance(outcome, WalletRefusal):
            settled = uow.ledger.mark_refused(m.id, token, outcome.code, outcome.message, now)
        else:
            uow.ledger.release(m.id, token, outcome.reason, now)
            settled = False
        # A late finisher whose lease was taken over settles nothing: the newer holder
        # sends the same key and gets the same answer, and settles it.
        if settled and not on_settle(uow, leased, outcome, now):
            # Not raised: a rollback would only have the movement re-driven, and settled
            # the same way, for ever. The ledger row is the truth; this needs a human.
            log.error(
                "movement %s (%s) settled but its item/round was not in the pending state",
                m.id,
                m.idempotency_key,
            )
        uow.commit()


def _release_after_failed_settle(ctx: ServiceContext, leased: Leased) -> None:
    """The settle transaction failed (a serialization failure, a dropped connection, an
    exhausted pool) after the wallet answered: the answer is lost with it, so the movement
    is as unknown as after a timeout. Free the lease in a fresh transaction, so the
    caller's retry (or the reconciler) re-sends at once instead of waiting the lease out;
    if the database is really down this fails too, and the lease simply expires. Fenced
    like any settle: if the failed commit did land, the row is no longer pending and
    nothing changes."""
    try:
        with ctx.uow_factory() as uow:
            uow.ledger.release(leased.movement.id, leased.token, "settle failed", ctx.clock.now())
            uow.commit()
    except Exception:  # never mask the settle's own error; the lease expires by itself
        log.warning(
            "movement %s: settle failed and its lease could not be freed", leased.movement.id
        )


def _resend_answer(leased: Leased, outcome: WalletOutcome) -> WalletOutcome:
    """A wallet that answers a re-send with ``DUPLICATE_TRANSACTION`` holds *some*
    operation under this key, and does not say whose. It may be ours, applied and its answer
    lost (a wallet that does not replay), or another system's that happens to share the key
    in that wallet, while ours never arrived (a connect failure). Booking it as applied
    could record money that never moved; as refused, free the item for a second credit. So
    it stays what it is, unknown: pending, re-sent by the next attempt and the reconciler,
    and visible to on-call until the wallet gives a definite answer. On a first send it is
    an ordinary refusal: nothing of ours can be there yet."""
    if (
        isinstance(outcome, WalletRefusal)
        and outcome.code == DUPLICATE_TRANSACTION
        and leased.movement.attempts > 1  # this send is not the first
    ):
        log.warning(
            "wallet answered DUPLICATE_TRANSACTION to re-sent key %r: outcome still unknown",
            leased.movement.idempotency_key,
        )
        return WalletOutcomeUnknown(
            "the wallet answered DUPLICATE_TRANSACTION to a re-send: it holds an operation "
            "under this key but did not replay its answer"
        )
    return outcome


def record(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, new: NewMovement, now: datetime
) -> Leased | None:
    """Write a new pending movement under the request's key, leased to this caller, or
    re-arm this subject's refused movement with that key (the wallet does not consume a
    refused key, so the retry may send it again). ``None`` when a racing request won;
    ``IdempotencyKeyReused`` when the key already moved money for something else.

    The INSERT comes first: it is the common case, and the unique indexes arbitrate a
    race anyway; the key is looked up only when the INSERT found it (or the subject)
    taken."""
    written = uow.ledger.record(new, now, leased_until=_lease_until(ctx, operator, now))
    if written is not None:
        return Leased(operator, written, written.lease_token)
    existing = uow.ledger.get_by_key(new.operator_id, new.idempotency_key)
    if existing is None:
        return None  # the subject was taken, under another key, by a racing request
    same_subject = (existing.reason, existing.inventory_item_id, existing.round_id) == (
        new.reason,
        new.inventory_item_id,
        new.round_id,
    )
    if not (same_subject and existing.status is MovementStatus.REFUSED):
        raise IdempotencyKeyReused("this idempotency key already moved money for another request")
    if not uow.ledger.rearm(existing.id, new, now):
        return None
    rearmed = uow.ledger.get(existing.id)
    assert rearmed is not None
    return lease(ctx, uow, operator, rearmed)


Result = TypeVar("Result")


def drive_credit(
    ctx: ServiceContext,
    idempotency_key: str,
    prepare: Callable[[], Result | Leased],
    settle: SettleHook,
    result: Callable[[MoneyMovement, int | None], Result],
    already_done: Callable[[], LootboxError],
    matches: Callable[[MoneyMovement], bool] = lambda _movement: True,
) -> Result:
    """Drive a credit (cashback or refund) to one definite answer for this request.

    ``prepare`` returns an earlier result for the same key, or a leased movement: this
    request's own, or an earlier request's pending one, which is re-sent first with its own
    key and amount. If that earlier credit was refused, the subject is free again and one
    more pass records this request's credit. ``matches`` says whether a movement under
    this request's key is the operation this request asks for (a key reused for another
    request still re-drives the original first, then answers IDEMPOTENCY_KEY_REUSED).
    """
    for _ in range(2):
        step = prepare()
        if not isinstance(step, Leased):
            return step
        outcome = send_and_settle(ctx, step, settle)
        same_key = step.movement.idempotency_key == idempotency_key
        ours = same_key and matches(step.movement)
        if isinstance(outcome, WalletAccepted):
            if ours:
                return result(step.movement, outcome.balance_after_minor)
            raise IdempotencyKeyReused() if same_key else already_done()
        if isinstance(outcome, WalletRefusal):
            if ours:
                raise WalletRefused(outcome.code, outcome.message)
            continue
        raise WalletUnavailable()
    raise OperationInProgress()
