"""The steps every money use case shares, in the order it takes them.

A money request is two transactions around one wallet call:

(a) **claim and record**: claim the request's idempotency key (``claim_key``), lock the
    subject (item or round), decide, and write the movement already leased to this caller
    (``record_credit``/``record_debit``) or lease an earlier request's unanswered one
    (``lease``); one commit. A business rejection rolls the claim back with the rest.
(b) **the wallet call** (``send``), outside any transaction: no lock is held across it.
(c) **settle and answer** (``settling``): the fenced movement update and the subject's
    final state (``settle_credit``), and the stored answer (``answer``), or the claim given
    back (``release_key`` on a definite no, ``suspend_key`` on an unknown outcome); one
    commit.

The lock order is the same everywhere: idempotency row, then subject, then movement.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from lootbox.domain.errors import (
    IdempotencyKeyReused,
    KeyHeldElsewhere,
    OperationInProgress,
)
from lootbox.domain.money import format_rate
from lootbox.domain.records import (
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    Operator,
)
from lootbox.domain.states import ItemState, RoundStatus
from lootbox.ports import (
    Answer,
    KeyedRequest,
    UnitOfWork,
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


# --- (a) claim and record -----------------------------------------------------------------


def claim_key(ctx: ServiceContext, uow: UnitOfWork, request: KeyedRequest) -> int | Answer:
    """Claim the request's key in the database, first in the transaction: the claim's
    fencing token, or the stored answer of the same request, completed earlier.

    Raises ``IdempotencyKeyReused`` (the key is stored with another request) or
    ``KeyHeldElsewhere`` (a live request holds it). An in-progress claim whose lease ran
    out (its worker died, or its outcome was unknown) is taken over.
    """
    now = ctx.clock.now()
    claim = uow.idempotency.claim(
        operator_id=request.operator_id,
        key=request.key,
        endpoint=request.endpoint,
        fingerprint=request.fingerprint,
        request_id=request.request_id,
        now=now,
        lease_until=now + timedelta(seconds=ctx.idempotency_lease_seconds),
    )
    if claim.outcome == "claimed":
        return claim.lease_token
    if claim.outcome == "mismatch":
        raise IdempotencyKeyReused()
    if claim.outcome == "completed":
        assert claim.record is not None
        assert claim.record.status is not None and claim.record.body is not None
        return Answer(claim.record.status, claim.record.body, replayed=True)
    raise KeyHeldElsewhere()


def record_credit(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, new: NewMovement
) -> Leased:
    """Write a new cashback or refund credit, leased to this caller, and move its subject
    to pending with it (one statement); or re-arm this subject's refused credit under the
    same key (the wallet does not consume a refused key, so the retry may send it again).

    Raises ``IdempotencyKeyReused`` when the key already moved money for something else,
    ``OperationInProgress`` when a racing request recorded the subject's credit first.
    """
    now = ctx.clock.now()
    written = uow.ledger.record_credit(new, now, leased_until=_lease_until(ctx, operator, now))
    if written is not None:
        return Leased(operator, written, written.lease_token)
    existing = uow.ledger.get_by_key(new.operator_id, new.idempotency_key)
    if existing is None:
        raise OperationInProgress()  # the subject was taken, under another key
    if not (_same_subject(existing, new) and existing.status is MovementStatus.REFUSED):
        raise IdempotencyKeyReused("this idempotency key already moved money for another request")
    if not (uow.ledger.rearm(existing.id, new, now) and _to_pending(uow, new, now)):
        raise OperationInProgress()
    rearmed = uow.ledger.get(existing.id)
    assert rearmed is not None
    return lease(ctx, uow, operator, rearmed)


def _to_pending(uow: UnitOfWork, new: NewMovement, now: datetime) -> bool:
    """Move a re-armed credit's subject to pending, as ``record_credit`` does a new one's."""
    if new.reason is MovementReason.CASHBACK:
        assert new.inventory_item_id is not None
        pending = (ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING)
        return uow.items.transition(new.inventory_item_id, *pending, now)
    assert new.round_id is not None
    return uow.rounds.transition(new.round_id, RoundStatus.HELD, RoundStatus.REFUND_PENDING, now)


def record_debit(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, new: NewMovement
) -> Leased:
    """Write a new round's debit, leased to this caller (its key names the new round, so
    nothing can hold it yet)."""
    now = ctx.clock.now()
    written = uow.ledger.record(new, now, leased_until=_lease_until(ctx, operator, now))
    assert written is not None, "a fresh round's debit key cannot be taken"
    return Leased(operator, written, written.lease_token)


def _same_subject(movement: MoneyMovement, new: NewMovement) -> bool:
    return (movement.reason, movement.inventory_item_id, movement.round_id) == (
        new.reason,
        new.inventory_item_id,
        new.round_id,
    )


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


# --- (b) the wallet call -------------------------------------------------------------------


def send(ctx: ServiceContext, leased: Leased) -> WalletOutcome:
    """Send the movement's exact call (a re-send has the same key and amount)."""
    outcome = ctx.wallet.send(leased.operator.wallet, wallet_call(leased.movement))
    return _resend_answer(leased, outcome)


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


# --- (c) settle and answer -------------------------------------------------------------------


@contextmanager
def settling(
    ctx: ServiceContext, leased: Leased, request: KeyedRequest | None, token: int
) -> Iterator[UnitOfWork]:
    """The settle-and-answer transaction. If it fails (a dropped connection, an exhausted
    pool) after the wallet answered, the answer is lost with it and the movement is as
    unknown as after a timeout: its lease is freed and the key suspended in a fresh
    transaction, so the retry (or the reconciler) re-sends at once instead of waiting the
    leases out. Both writes are fenced: if the failed commit did land, they change nothing.
    If the database is really down this fails too, and the leases simply expire."""
    try:
        with ctx.uow_factory() as uow:
            yield uow
    except Exception:
        try:
            with ctx.uow_factory() as uow:
                now = ctx.clock.now()
                uow.ledger.release(leased.movement.id, leased.token, "settle failed", now)
                if request is not None:
                    suspend_key(ctx, uow, request, token)
                uow.commit()
        except Exception:  # never mask the settle's own error; the leases expire by themselves
            log.warning(
                "movement %s: settle failed and its lease could not be freed",
                leased.movement.id,
            )
        raise


def settle_credit(
    ctx: ServiceContext, uow: UnitOfWork, leased: Leased, outcome: WalletOutcome
) -> bool:
    """Record a credit's outcome and move its subject with it: accepted, the item is
    ``cashed_back`` or the round ``refunded``; refused, the subject is free again; unknown,
    the movement stays pending with its lease freed (the next attempt re-sends at once).
    ``False`` when this caller's lease was taken over: the newer holder sends the same key,
    gets the same answer and settles it."""
    now = ctx.clock.now()
    if isinstance(outcome, WalletOutcomeUnknown):
        uow.ledger.release(leased.movement.id, leased.token, outcome.reason, now)
        return False
    settled, moved = uow.ledger.settle_credit(leased.movement, leased.token, outcome, now)
    if settled and not moved:
        # Not raised: a rollback would only have the movement re-driven, and settled the
        # same way, for ever. The ledger row is the truth; this needs a human.
        log.error(
            "movement %s (%s) settled but its item/round was not in the pending state",
            leased.movement.id,
            leased.movement.idempotency_key,
        )
    return settled


def answer(
    ctx: ServiceContext, uow: UnitOfWork, request: KeyedRequest, token: int, body: str
) -> Answer:
    """Store the request's success under its claim, in the settle's transaction: the answer
    is there exactly when the money moved. (A claim taken over by a retry stores nothing:
    the retry stores the same answer.)"""
    now = ctx.clock.now()
    uow.idempotency.complete(
        operator_id=request.operator_id,
        key=request.key,
        lease_token=token,
        status=200,
        body=body,
        now=now,
        expires_at=now + timedelta(seconds=ctx.idempotency_ttl_seconds),
    )
    return Answer(200, body, replayed=False)


def release_key(uow: UnitOfWork, request: KeyedRequest, token: int) -> None:
    """Forget the claim: no money moved for this request, and the retry decides anew."""
    uow.idempotency.release(operator_id=request.operator_id, key=request.key, lease_token=token)


def suspend_key(ctx: ServiceContext, uow: UnitOfWork, request: KeyedRequest, token: int) -> None:
    """Free the claim but keep its fingerprint: money may have moved, so the next attempt
    with this key must be the same request."""
    uow.idempotency.suspend(
        operator_id=request.operator_id, key=request.key, lease_token=token, now=ctx.clock.now()
    )
