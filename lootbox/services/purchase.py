"""Purchase: one debit for a box (or several reels), then the draw (atomic open) or a held
round (pre-pay)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from lootbox.domain.errors import (
    BoxNotPlayable,
    CurrencyNotSupported,
    IdempotencyKeyReused,
    LootboxError,
    OperationInProgress,
    UnknownBox,
    WalletUnavailable,
    refusal,
)
from lootbox.domain.records import (
    BoxVersion,
    MovementKind,
    MovementReason,
    NewMovement,
    Operator,
    Reel,
    Round,
)
from lootbox.domain.states import PurchaseMode, RoundStatus
from lootbox.ports import (
    Answer,
    KeyedRequest,
    UnitOfWork,
    WalletAccepted,
    WalletOutcome,
    WalletOutcomeUnknown,
    WalletRefusal,
)
from lootbox.services import ledger
from lootbox.services.context import ServiceContext
from lootbox.services.fx import from_operator_currency, rate_for
from lootbox.services.public_ids import new_round_public_id
from lootbox.services.rounds import Boxes, Drawn, RoundOutcome, describe_round, draw_and_settle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReelPick:
    reel_index: int
    box_version_id: int


@dataclass(frozen=True)
class Purchase:
    player_external_id: str
    mode: PurchaseMode
    client_action_id: str
    currency: str | None
    reels: tuple[ReelPick, ...]

    @property
    def idempotency_key(self) -> str:
        return purchase_key(self.player_external_id, self.client_action_id)


def purchase_key(player_external_id: str, client_action_id: str) -> str:
    """The idempotency key of a purchase: the player's action, scoped to the player so two
    players' ``clientActionId`` values never collide. The player id is length-prefixed,
    because both ids may contain ``:`` (``acct:7`` + ``x`` vs ``acct`` + ``7:x``)."""
    return f"purchase:{len(player_external_id)}:{player_external_id}:{client_action_id}"


Render = Callable[[RoundOutcome], str]


def purchase(
    ctx: ServiceContext, operator: Operator, cmd: Purchase, request: KeyedRequest, render: Render
) -> Answer:
    """One ``wallet.debit`` for the total of all reels, then the draw (``open``) or a held
    round (``prepay``); answer with ``render(round)``, stored under the request's key in
    the same transaction. A refused debit voids the round; an unknown outcome leaves it
    pending and the player's retry of the same action re-sends the same debit."""
    # (a) Claim the key; record the round and its debit (or lease the action's unanswered
    # debit), in one transaction.
    with ctx.uow_factory() as uow:
        claim = ledger.claim_key(ctx, uow, request)
        if isinstance(claim, Answer):
            return claim  # this request was answered before
        existing = uow.rounds.get_by_client_action(
            operator.id, cmd.player_external_id, cmd.client_action_id
        )
        if existing is None:
            boxes = {pick.box_version_id: _playable_box(uow, operator, pick) for pick in cmd.reels}
            round_, leased = _record_round_and_debit(ctx, uow, operator, cmd, boxes)
        else:
            if not _same_purchase(existing, cmd, operator):
                raise IdempotencyKeyReused("this clientActionId was used for another purchase")
            debit = uow.ledger.debit_for_round(existing.id)
            assert debit is not None
            if existing.status is not RoundStatus.DEBIT_PENDING:
                # Paid earlier; its answer is no longer stored (purged, or settled by the
                # reconciler after an unknown outcome): the database still says what it was.
                paid = describe_round(uow, operator, existing, debit.balance_after_minor)
                done = ledger.answer(ctx, uow, request, claim, render(paid))
                uow.commit()
                return done
            leased = ledger.lease(ctx, uow, operator, debit)  # re-send the unanswered debit
            round_, boxes = existing, {}
        uow.commit()

    # (b) The wallet, outside any transaction.
    outcome = ledger.send(ctx, leased)

    # (c) Settle the debit and the round (drawing it, for an atomic open), and answer.
    error: LootboxError | None = None
    with ledger.settling(ctx, leased, request, claim) as uow:
        drawn: Drawn = {}
        status = settle_debit(ctx, uow, leased, outcome, round_, boxes, drawn)
        if isinstance(outcome, WalletAccepted):
            settled = (
                replace(round_, status=status)
                if status is not None
                else uow.rounds.get(round_.id)  # settled by the newer holder of the lease?
            )
            assert settled is not None
            if settled.status is RoundStatus.DEBIT_PENDING:
                # Our lease was taken over while the wallet answered, so our settle changed
                # nothing and the newer holder has not settled yet: answering now would
                # store an unpaid round as the purchase's result.
                ledger.suspend_key(ctx, uow, request, claim)
                error = OperationInProgress()
            else:
                paid = describe_round(
                    uow, operator, settled, outcome.balance_after_minor, boxes, drawn
                )
                body = render(paid)
                done = ledger.answer(ctx, uow, request, claim, body)
        elif isinstance(outcome, WalletRefusal):
            ledger.release_key(uow, request, claim)
            error = refusal(outcome.code, outcome.message)
        else:
            ledger.suspend_key(ctx, uow, request, claim)
            error = WalletUnavailable()
        uow.commit()
    if error is not None:
        raise error
    return done


def _record_round_and_debit(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, cmd: Purchase, boxes: Boxes
) -> tuple[Round, ledger.Leased]:
    operator_total = sum(boxes[pick.box_version_id].price_minor for pick in cmd.reels)
    currency = cmd.currency or operator.currency
    rate, total = _convert(operator, operator_total, currency)
    public_id = new_round_public_id()
    round_ = uow.rounds.add(
        public_id=public_id,
        operator_id=operator.id,
        player_external_id=cmd.player_external_id,
        mode=cmd.mode,
        client_action_id=cmd.client_action_id,
        currency=currency,
        bet_minor=total,
        operator_amount_minor=operator_total,
        rate=rate,
        reels=[
            Reel(pick.reel_index, pick.box_version_id, boxes[pick.box_version_id].price_minor, None)
            for pick in cmd.reels
        ],
        now=ctx.clock.now(),
    )
    if round_ is None:
        raise OperationInProgress()  # the same action is being purchased right now
    return round_, ledger.record_debit(
        ctx,
        uow,
        operator,
        NewMovement(
            operator_id=operator.id,
            idempotency_key=f"round:{public_id}",
            kind=MovementKind.DEBIT,
            reason=MovementReason.OPEN if cmd.mode is PurchaseMode.OPEN else MovementReason.PREPAY,
            player_external_id=cmd.player_external_id,
            amount_minor=total,
            currency=currency,
            operator_amount_minor=operator_total,
            operator_currency=operator.currency,
            rate=rate,
            round_id=round_.id,
            round_public_id=public_id,
        ),
    )


def _same_purchase(round_: Round, cmd: Purchase, operator: Operator) -> bool:
    return (
        round_.mode is cmd.mode
        and round_.currency == (cmd.currency or operator.currency)
        and [(r.reel_index, r.box_version_id) for r in round_.reels]
        == sorted((pick.reel_index, pick.box_version_id) for pick in cmd.reels)
    )


def _playable_box(uow: UnitOfWork, operator: Operator, pick: ReelPick) -> BoxVersion:
    box = uow.catalog.get_box_version(operator.id, pick.box_version_id)
    if box is None:
        raise UnknownBox(f"box version {pick.box_version_id} does not exist")
    if not box.active:
        raise BoxNotPlayable(f"box version {pick.box_version_id} is superseded or inactive")
    return box


def _convert(operator: Operator, amount_minor: int, currency: str) -> tuple[Decimal, int]:
    rate = rate_for(operator, currency)
    if rate is None:
        raise CurrencyNotSupported(f"no rate configured for {currency}")
    converted = from_operator_currency(amount_minor, operator.currency, currency, rate)
    if converted <= 0:
        raise CurrencyNotSupported(f"the price converts to nothing in {currency}")
    return rate, converted


def settle_debit(
    ctx: ServiceContext,
    uow: UnitOfWork,
    leased: ledger.Leased,
    outcome: WalletOutcome,
    round_: Round | None = None,
    boxes: Boxes | None = None,
    drawn: Drawn | None = None,
) -> RoundStatus | None:
    """Record a debit's outcome and move its round: refused → ``voided``; accepted →
    ``held`` (pre-pay) or drawn and ``settled`` (atomic open); unknown, the debit stays
    pending with its lease freed. The round's new status, or ``None`` when this caller
    settled nothing (an unknown outcome, or its lease was taken over). ``round_`` and
    ``boxes``: what the request already read of them, not read again; ``drawn`` gets
    what the round was drawn with."""
    now = ctx.clock.now()
    movement, token = leased.movement, leased.token
    round_id = movement.round_id
    assert round_id is not None
    if isinstance(outcome, WalletOutcomeUnknown):
        uow.ledger.release(movement.id, token, outcome.reason, now)
        return None
    pending = RoundStatus.DEBIT_PENDING
    if isinstance(outcome, WalletRefusal):
        if not uow.ledger.mark_refused(movement.id, token, outcome.code, outcome.message, now):
            return None
        status = RoundStatus.VOIDED
        moved = uow.rounds.transition(round_id, pending, status, now)
    elif not uow.ledger.mark_accepted(
        movement.id, token, outcome.balance_after_minor, outcome.provider_txn_ref, now
    ):
        return None
    elif movement.reason is MovementReason.PREPAY:
        status = RoundStatus.HELD
        moved = uow.rounds.transition(round_id, pending, status, now)
    else:
        status = RoundStatus.SETTLED
        drawn_round = round_ or uow.rounds.get(round_id)  # the draw needs its reels
        assert drawn_round is not None
        moved = draw_and_settle(ctx, uow, drawn_round, pending, now, boxes=boxes, drawn=drawn)
    if not moved:
        # Not raised: a rollback would only have the debit re-driven, and settled the same
        # way, for ever. The ledger row is the truth; this needs a human.
        log.error("debit %s settled but its round was not debit_pending", movement.id)
    return status
