"""Cashout: a won, unresolved inventory item becomes wallet credit, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from lootbox.domain.cashback import CashbackPolicy, cashback_minor
from lootbox.domain.errors import (
    CashbackNotAvailable,
    IdempotencyKeyReused,
    InventoryItemNotFound,
    LootboxError,
    WalletUnavailable,
    refusal,
)
from lootbox.domain.records import (
    CashoutCandidate,
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    Operator,
)
from lootbox.domain.states import ItemState, external_item_state
from lootbox.ports import Answer, KeyedRequest, WalletAccepted, WalletRefusal
from lootbox.services import ledger
from lootbox.services.context import ServiceContext
from lootbox.services.fx import from_operator_currency, rate_for


@dataclass(frozen=True)
class CashOut:
    player_external_id: str
    inventory_item_id: int
    currency: str | None
    idempotency_key: str


@dataclass(frozen=True)
class CashoutResult:
    inventory_item_id: int
    state: str
    cashback_minor: int
    currency: str
    balance_after_minor: int | None


@dataclass(frozen=True)
class CashbackQuote:
    operator_amount_minor: int
    amount_minor: int
    currency: str
    rate: Decimal


def default_cashout_key(inventory_item_id: int) -> str:
    return f"cashback:inventory:{inventory_item_id}"


Render = Callable[[CashoutResult], str]


def cash_out(
    ctx: ServiceContext, operator: Operator, cmd: CashOut, request: KeyedRequest, render: Render
) -> Answer:
    """Credit the item's cashback once, then mark it ``cashed_back``; answer with
    ``render(result)``, stored under the request's key in the same transaction.

    Raises ``InventoryItemNotFound``, ``CashbackNotAvailable``, ``OperationInProgress``,
    ``IdempotencyKeyReused``, ``WalletRefused`` (item stays unresolved) or
    ``WalletUnavailable`` (outcome unknown: the credit stays pending and the next attempt
    on this item, whatever its key, re-sends it with the same key and amount).
    """
    # (a) Claim the key, lock the item, decide, record the credit (or lease the item's
    # unanswered one), in one transaction.
    with ctx.uow_factory() as uow:
        claim = ledger.claim_key(ctx, uow, request)
        if isinstance(claim, Answer):
            return claim  # this request was answered before
        candidate = uow.items.lock_for_cashout(operator.id, cmd.inventory_item_id)
        if candidate is None or candidate.item.player_external_id != cmd.player_external_id:
            raise InventoryItemNotFound()
        live = candidate.live_credit
        if live is not None and live.status is MovementStatus.ACCEPTED:
            # Its answer is no longer stored (purged, or settled by the reconciler after
            # an unknown outcome): the ledger still says what it was.
            if not _is_this_request(cmd, live):
                raise _already_done(cmd, live)
            body = render(_result(live, live.balance_after_minor))
            done = ledger.answer(ctx, uow, request, claim, body)
            uow.commit()
            return done
        if live is None:
            leased = ledger.record_credit(ctx, uow, operator, _new_credit(cmd, candidate, operator))
        else:
            leased = ledger.lease(ctx, uow, operator, live)  # an earlier, unanswered one
        uow.commit()

    # (b) The wallet, outside any transaction.
    outcome = ledger.send(ctx, leased)
    ours = _is_this_request(cmd, leased.movement)

    # (c) Settle the credit and the item, and answer, in one transaction.
    error: LootboxError | None = None
    with ledger.settling(ctx, leased, request, claim) as uow:
        ledger.settle_credit(ctx, uow, leased, outcome)
        if isinstance(outcome, WalletAccepted) and ours:
            body = render(_result(leased.movement, outcome.balance_after_minor))
            done = ledger.answer(ctx, uow, request, claim, body)
        elif isinstance(outcome, WalletAccepted):
            ledger.release_key(uow, request, claim)
            error = _already_done(cmd, leased.movement)
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
        # An earlier request's credit, refused: the item is free again, and this request
        # records its own credit on a second pass.
        return cash_out(ctx, operator, cmd, request, render)
    return done


def _is_this_request(cmd: CashOut, movement: MoneyMovement) -> bool:
    """The movement is this request's own credit: recorded under its key, in the currency
    it names (omitted: the operator currency)."""
    return movement.idempotency_key == cmd.idempotency_key and movement.currency == (
        cmd.currency or movement.operator_currency
    )


def _already_done(cmd: CashOut, movement: MoneyMovement) -> LootboxError:
    if movement.idempotency_key == cmd.idempotency_key:
        return IdempotencyKeyReused()  # the same key, asked for another currency
    return CashbackNotAvailable("the item is already cashed back")


def _new_credit(cmd: CashOut, candidate: CashoutCandidate, operator: Operator) -> NewMovement:
    item = candidate.item
    if item.state is not ItemState.UNRESOLVED:
        raise CashbackNotAvailable(f"the item is {external_item_state(item.state)}")
    quote = quote_cashback(
        operator,
        item.value_minor,
        CashbackPolicy(
            operator_enabled=operator.cashback_enabled,
            operator_bps=operator.cashback_bps,
            box_enabled=candidate.box_cashback_enabled,
            box_bps=candidate.box_cashback_bps,
            prize_bps=candidate.prize_cashback_bps,
        ),
        cmd.currency,
    )
    return NewMovement(
        operator_id=operator.id,
        idempotency_key=cmd.idempotency_key,
        kind=MovementKind.CREDIT,
        reason=MovementReason.CASHBACK,
        player_external_id=item.player_external_id,
        amount_minor=quote.amount_minor,
        currency=quote.currency,
        operator_amount_minor=quote.operator_amount_minor,
        operator_currency=operator.currency,
        rate=quote.rate,
        inventory_item_id=item.id,
    )


def quote_cashback(
    operator: Operator, value_minor: int, policy: CashbackPolicy, currency: str | None
) -> CashbackQuote:
    """What an item worth ``value_minor`` is worth as cashback right now, in the player's
    wallet currency (omitted: the operator's)."""
    bps = policy.effective_bps()
    if bps is None:
        raise CashbackNotAvailable("cashback is disabled or has no rule for this item")
    operator_amount = cashback_minor(value_minor, bps)
    target = currency or operator.currency
    rate = rate_for(operator, target)
    if rate is None:
        raise CashbackNotAvailable(f"no rate configured for {target}")
    amount = from_operator_currency(operator_amount, operator.currency, target, rate)
    if amount <= 0:
        raise CashbackNotAvailable("the item's cashback value is zero")
    return CashbackQuote(operator_amount, amount, target, rate)


def _result(movement: MoneyMovement, balance_after_minor: int | None) -> CashoutResult:
    assert movement.inventory_item_id is not None
    return CashoutResult(
        inventory_item_id=movement.inventory_item_id,
        state=str(ItemState.CASHED_BACK),
        cashback_minor=movement.amount_minor,
        currency=movement.currency,
        balance_after_minor=balance_after_minor,
    )
