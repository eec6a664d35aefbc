"""Cashout: a won, unresolved inventory item becomes wallet credit, exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lootbox.domain.cashback import CashbackPolicy, cashback_minor
from lootbox.domain.errors import (
    CashbackNotAvailable,
    IdempotencyKeyReused,
    InventoryItemNotFound,
    OperationInProgress,
)
from lootbox.domain.records import (
    InventoryItem,
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    Operator,
)
from lootbox.domain.states import ItemState, external_item_state
from lootbox.ports import UnitOfWork, WalletAccepted, WalletOutcome
from lootbox.services.context import ServiceContext
from lootbox.services.fx import from_operator_currency, rate_for
from lootbox.services.movements import Leased, drive_credit, lease, record


@dataclass(frozen=True)
class CashOut:
    operator: Operator  # as authenticated: read once per request, not again here
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


def cash_out(ctx: ServiceContext, cmd: CashOut) -> CashoutResult:
    """Credit the item's cashback once, then mark it ``cashed_back``.

    Raises ``InventoryItemNotFound``, ``CashbackNotAvailable``, ``OperationInProgress``,
    ``IdempotencyKeyReused``, ``WalletRefused`` (item stays unresolved) or
    ``WalletUnavailable`` (outcome unknown: the credit stays pending and the next attempt
    on this item, whatever its key, re-sends it with the same key and amount).
    """
    return drive_credit(
        ctx,
        cmd.idempotency_key,
        lambda: _prepare(ctx, cmd),
        settle_cashback,
        _result,
        lambda: CashbackNotAvailable("the item was cashed back by an earlier request"),
        matches=lambda movement: _asks_for(cmd, movement),
    )


def _asks_for(cmd: CashOut, movement: MoneyMovement) -> bool:
    """The movement under this request's key credits the currency the request names
    (omitted: the operator currency), so it is this request's operation."""
    return movement.currency == (cmd.currency or movement.operator_currency)


def _prepare(ctx: ServiceContext, cmd: CashOut) -> CashoutResult | Leased:
    with ctx.uow_factory() as uow:
        operator = cmd.operator
        item = uow.items.get(operator.id, cmd.inventory_item_id, for_update=True)
        if item is None or item.player_external_id != cmd.player_external_id:
            raise InventoryItemNotFound()
        live: MoneyMovement | None = uow.ledger.live_cashback(item.id)
        if live is not None and live.status is MovementStatus.ACCEPTED:
            if live.idempotency_key == cmd.idempotency_key:
                if not _asks_for(cmd, live):
                    raise IdempotencyKeyReused()
                return _result(live, live.balance_after_minor)  # the same request, again
            raise CashbackNotAvailable("the item is already cashed back")
        if live is None:
            leased = _record_credit(ctx, uow, operator, item, cmd)
        else:
            leased = lease(ctx, uow, operator, live)  # an earlier credit, unanswered
        uow.commit()
        return leased


def _record_credit(
    ctx: ServiceContext, uow: UnitOfWork, operator: Operator, item: InventoryItem, cmd: CashOut
) -> Leased:
    if item.state is not ItemState.UNRESOLVED:
        raise CashbackNotAvailable(f"the item is {external_item_state(item.state)}")
    quote = quote_cashback(uow, operator, item, cmd.currency)
    now = ctx.clock.now()
    new = NewMovement(
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
    leased = record(ctx, uow, operator, new, now)
    if leased is None or not uow.items.transition(
        item.id, ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING, now
    ):
        raise OperationInProgress()  # a racing request recorded its credit first
    return leased


def quote_cashback(
    uow: UnitOfWork, operator: Operator, item: InventoryItem, currency: str | None
) -> CashbackQuote:
    """What the item is worth as cashback right now, in the player's wallet currency."""
    box = uow.catalog.get_box_version(operator.id, item.box_version_id)
    prize = next((p for p in box.prizes if p.id == item.prize_id), None) if box else None
    bps = CashbackPolicy(
        operator_enabled=operator.cashback_enabled,
        operator_bps=operator.cashback_bps,
        box_enabled=box.cashback_enabled if box else True,
        box_bps=box.cashback_bps if box else None,
        prize_bps=prize.cashback_bps if prize else None,
    ).effective_bps()
    if bps is None:
        raise CashbackNotAvailable("cashback is disabled or has no rule for this item")
    operator_amount = cashback_minor(item.value_minor, bps)
    target = currency or operator.currency
    rate = rate_for(operator, target)
    if rate is None:
        raise CashbackNotAvailable(f"no rate configured for {target}")
    amount = from_operator_currency(operator_amount, operator.currency, target, rate)
    if amount <= 0:
        raise CashbackNotAvailable("the item's cashback value is zero")
    return CashbackQuote(operator_amount, amount, target, rate)


def settle_cashback(uow: UnitOfWork, leased: Leased, outcome: WalletOutcome, now: datetime) -> bool:
    """A cashback's outcome moves the item: accepted → ``cashed_back``, refused →
    ``unresolved`` (the player may try again)."""
    item_id = leased.movement.inventory_item_id
    assert item_id is not None
    target = ItemState.CASHED_BACK if isinstance(outcome, WalletAccepted) else ItemState.UNRESOLVED
    return bool(uow.items.transition(item_id, ItemState.CASHBACK_PENDING, target, now))


def _result(movement: MoneyMovement, balance_after_minor: int | None) -> CashoutResult:
    assert movement.inventory_item_id is not None
    return CashoutResult(
        inventory_item_id=movement.inventory_item_id,
        state=str(ItemState.CASHED_BACK),
        cashback_minor=movement.amount_minor,
        currency=movement.currency,
        balance_after_minor=balance_after_minor,
    )
