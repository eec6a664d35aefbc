"""Purchase (atomic open or pre-pay) and opening a held box."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lootbox.domain.draw import RandomSource, draw
from lootbox.domain.errors import (
    BoxNotPlayable,
    CashbackNotAvailable,
    CurrencyNotSupported,
    IdempotencyKeyReused,
    OperationInProgress,
    RoundNotFound,
    RoundNotHeld,
    UnknownBox,
    WalletRefused,
    WalletUnavailable,
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
from lootbox.domain.states import (
    PurchaseMode,
    RoundStatus,
    external_item_state,
    external_round_status,
)
from lootbox.ports import UnitOfWork, WalletAccepted, WalletOutcome, WalletRefusal
from lootbox.services.cancel import settle_refund
from lootbox.services.cashout import quote_cashback
from lootbox.services.context import ServiceContext
from lootbox.services.fx import from_operator_currency, rate_for
from lootbox.services.movements import Leased, SettleHook, lease, record, send_and_settle
from lootbox.services.public_ids import new_round_public_id


@dataclass(frozen=True)
class ReelPick:
    reel_index: int
    box_version_id: int


@dataclass(frozen=True)
class Purchase:
    operator: Operator  # as authenticated: read once per request, not again here
    player_external_id: str
    mode: PurchaseMode
    client_action_id: str
    currency: str | None
    reels: tuple[ReelPick, ...]


@dataclass(frozen=True)
class OpenRound:
    operator: Operator  # as authenticated: read once per request, not again here
    player_external_id: str
    round_public_id: str
    idempotency_key: str


@dataclass(frozen=True)
class PrizeView:
    item_id: int
    name: str
    value_minor: int
    currency: str


@dataclass(frozen=True)
class ReelView:
    reel_index: int
    box_version_id: int
    price_minor: int
    prize: PrizeView | None


@dataclass(frozen=True)
class WonItem:
    inventory_item_id: int
    item_id: int
    reel_index: int
    name: str
    value_minor: int
    currency: str
    cashback_minor: int | None
    state: str


@dataclass(frozen=True)
class RoundOutcome:
    public_id: str
    status: str
    mode: str
    bet_minor: int
    payout_minor: int | None
    currency: str
    reels: tuple[ReelView, ...]
    won_items: tuple[WonItem, ...]
    balance_after_minor: int | None
    created_at: datetime


def purchase_key(player_external_id: str, client_action_id: str) -> str:
    """The idempotency key of a purchase: the player's action, scoped to the player so two
    players' ``clientActionId`` values never collide. The player id is length-prefixed,
    because both ids may contain ``:`` (``acct:7`` + ``x`` vs ``acct`` + ``7:x``)."""
    return f"purchase:{len(player_external_id)}:{player_external_id}:{client_action_id}"


def default_open_key(round_public_id: str) -> str:
    return f"open:round:{round_public_id}"


def purchase(ctx: ServiceContext, cmd: Purchase) -> RoundOutcome:
    """One ``wallet.debit`` for the total of all reels, then the draw (``open``) or a held
    round (``prepay``). A refused debit voids the round; an unknown outcome leaves it
    pending and the player's retry of the same action re-sends the same debit."""
    step = _prepare(ctx, cmd)
    if isinstance(step, RoundOutcome):
        return step
    outcome = send_and_settle(ctx, step, settle_debit(ctx.rng))
    if isinstance(outcome, WalletRefusal):
        raise WalletRefused(outcome.code, outcome.message)
    if not isinstance(outcome, WalletAccepted):
        raise WalletUnavailable()
    round_id = step.movement.round_id
    assert round_id is not None
    with ctx.uow_factory() as uow:
        settled = uow.rounds.get(round_id)
        assert settled is not None
        if settled.status is RoundStatus.DEBIT_PENDING:
            # Our lease was taken over while the wallet answered, so our settle changed
            # nothing and the newer holder has not settled yet. An answer now would show
            # an unpaid round as the purchase's final result, and be stored as such.
            raise OperationInProgress()
        return describe_round(uow, step.operator, settled, outcome.balance_after_minor)


def _prepare(ctx: ServiceContext, cmd: Purchase) -> RoundOutcome | Leased:
    with ctx.uow_factory() as uow:
        operator = cmd.operator
        existing = uow.rounds.get_by_client_action(
            operator.id, cmd.player_external_id, cmd.client_action_id
        )
        if existing is not None:
            if not _same_purchase(existing, cmd, operator):
                raise IdempotencyKeyReused("this clientActionId was used for another purchase")
            debit = uow.ledger.debit_for_round(existing.id)
            assert debit is not None
            if existing.status is not RoundStatus.DEBIT_PENDING:
                return describe_round(uow, operator, existing, debit.balance_after_minor)
            leased = lease(ctx, uow, operator, debit)  # re-drive the unanswered debit
            uow.commit()
            return leased

        boxes = [_playable_box(uow, operator, pick) for pick in cmd.reels]
        operator_total = sum(box.price_minor for box in boxes)
        currency = cmd.currency or operator.currency
        rate, total = _convert(operator, operator_total, currency)
        now = ctx.clock.now()
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
                Reel(pick.reel_index, box.id, box.price_minor, None)
                for pick, box in zip(cmd.reels, boxes, strict=True)
            ],
            now=now,
        )
        if round_ is None:
            raise OperationInProgress()  # the same action is being purchased right now
        debit_leased = record(
            ctx,
            uow,
            operator,
            NewMovement(
                operator_id=operator.id,
                idempotency_key=f"round:{public_id}",
                kind=MovementKind.DEBIT,
                reason=MovementReason.OPEN
                if cmd.mode is PurchaseMode.OPEN
                else MovementReason.PREPAY,
                player_external_id=cmd.player_external_id,
                amount_minor=total,
                currency=currency,
                operator_amount_minor=operator_total,
                operator_currency=operator.currency,
                rate=rate,
                round_id=round_.id,
                round_public_id=public_id,
            ),
            now,
        )
        assert debit_leased is not None, "a fresh round's debit key cannot be taken"
        uow.commit()
        return debit_leased


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


def settle_debit(rng: RandomSource) -> SettleHook:
    """A debit's outcome moves its round: refused → ``voided``; accepted → ``held``
    (pre-pay) or drawn and ``settled`` (atomic open), with ``rng`` for the draw."""

    def settle(uow: UnitOfWork, leased: Leased, outcome: WalletOutcome, now: datetime) -> bool:
        round_id = leased.movement.round_id
        assert round_id is not None
        pending = RoundStatus.DEBIT_PENDING
        if not isinstance(outcome, WalletAccepted):
            return bool(uow.rounds.transition(round_id, pending, RoundStatus.VOIDED, now))
        if leased.movement.reason is MovementReason.PREPAY:
            return bool(uow.rounds.transition(round_id, pending, RoundStatus.HELD, now))
        round_ = uow.rounds.get(round_id)  # the draw needs its reels
        assert round_ is not None
        return draw_and_settle(uow, round_, pending, rng, now)

    return settle


def draw_and_settle(
    uow: UnitOfWork,
    round_: Round,
    from_status: RoundStatus,
    rng: RandomSource,
    now: datetime,
    open_key: str | None = None,
) -> bool:
    """Draw one prize per reel and mint the won items, if this caller settles the round.

    The conditional transition comes first, so only one caller ever draws; the unique
    (round, reel) index on items backs it up.
    """
    extra = {"open_idempotency_key": open_key} if open_key else {}
    if not uow.rounds.transition(round_.id, from_status, RoundStatus.SETTLED, now, **extra):
        return False
    won = []
    for reel in round_.reels:
        box = uow.catalog.get_box_version(round_.operator_id, reel.box_version_id)
        assert box is not None
        prize = draw([(p, p.odds) for p in box.prizes], rng)
        uow.rounds.set_prize(round_.id, reel.reel_index, prize.id)
        won.append(
            {
                "operator_id": round_.operator_id,
                "player_external_id": round_.player_external_id,
                "round_id": round_.id,
                "reel_index": reel.reel_index,
                "prize_id": prize.id,
                "box_version_id": box.id,
                "name": prize.name,
                "value_minor": prize.value_minor,
            }
        )
    uow.items.add_many(won, now)
    return True


def open_round(ctx: ServiceContext, cmd: OpenRound) -> RoundOutcome:
    """Open a held box: ``held`` → ``settled`` with a draw; no wallet call.

    A refund of this round whose outcome is unknown is re-sent first (same key, same
    amount): accepted, the round is refunded and cannot be opened; refused, it is held
    again and opens.
    """
    for _ in range(2):
        pending_refund = _open_or_lease_refund(ctx, cmd)
        if pending_refund is None:
            with ctx.uow_factory() as uow:
                opened = uow.rounds.get_by_public_id(cmd.operator.id, cmd.round_public_id)
                assert opened is not None
                return _describe_with_debit(uow, cmd.operator, opened)
        outcome = send_and_settle(ctx, pending_refund, settle_refund)
        if isinstance(outcome, WalletAccepted):
            raise RoundNotHeld("the round is refunded")
        if not isinstance(outcome, WalletRefusal):
            raise WalletUnavailable()
    raise OperationInProgress()


def _open_or_lease_refund(ctx: ServiceContext, cmd: OpenRound) -> Leased | None:
    """Open the round (or find it opened by this same key): ``None``. Or, if a refund of
    it is pending, lease that refund for re-sending."""
    with ctx.uow_factory() as uow:
        operator = cmd.operator
        round_ = uow.rounds.get_by_public_id(operator.id, cmd.round_public_id, for_update=True)
        if (
            round_ is None
            or round_.player_external_id != cmd.player_external_id
            or round_.status is RoundStatus.DEBIT_PENDING
        ):
            raise RoundNotFound()
        if (
            round_.status is RoundStatus.SETTLED
            and round_.open_idempotency_key == cmd.idempotency_key
        ):
            return None  # the same open, again
        if round_.status is RoundStatus.REFUND_PENDING:
            refund = uow.ledger.live_refund(round_.id)
            assert refund is not None, "refund_pending without a pending refund"
            leased = lease(ctx, uow, operator, refund)
            uow.commit()
            return leased
        if round_.status is not RoundStatus.HELD or not draw_and_settle(
            uow, round_, RoundStatus.HELD, ctx.rng, ctx.clock.now(), cmd.idempotency_key
        ):
            raise RoundNotHeld(f"the round is {external_round_status(round_.status)}")
        uow.commit()
        return None


def _describe_with_debit(uow: UnitOfWork, operator: Operator, round_: Round) -> RoundOutcome:
    debit = uow.ledger.debit_for_round(round_.id)
    return describe_round(uow, operator, round_, debit.balance_after_minor if debit else None)


def describe_round(
    uow: UnitOfWork, operator: Operator, round_: Round, balance_after_minor: int | None
) -> RoundOutcome:
    """The round as the caller sees it, rebuilt from the database (so a replay after a
    crash answers exactly what the first attempt would have)."""
    items = uow.items.for_round(round_.id)
    by_reel = {item.reel_index: item for item in items}
    reels = []
    for reel in round_.reels:
        item = by_reel.get(reel.reel_index)
        prize = (
            PrizeView(item.prize_id, item.name, item.value_minor, operator.currency)
            if item
            else None
        )
        reels.append(ReelView(reel.reel_index, reel.box_version_id, reel.price_minor, prize))
    won = tuple(
        WonItem(
            inventory_item_id=item.id,
            item_id=item.prize_id,
            reel_index=item.reel_index,
            name=item.name,
            value_minor=item.value_minor,
            currency=operator.currency,
            cashback_minor=_indicative_cashback(uow, operator, item),
            state=external_item_state(item.state),
        )
        for item in items
    )
    payout = None
    if round_.status is RoundStatus.SETTLED:
        payout = from_operator_currency(
            sum(i.value_minor for i in items), operator.currency, round_.currency, round_.rate
        )
    return RoundOutcome(
        public_id=round_.public_id,
        status=external_round_status(round_.status),
        mode=str(round_.mode),
        bet_minor=round_.bet_minor,
        payout_minor=payout,
        currency=round_.currency,
        reels=tuple(reels),
        won_items=won,
        balance_after_minor=balance_after_minor,
        created_at=round_.created_at,
    )


def _indicative_cashback(uow: UnitOfWork, operator: Operator, item) -> int | None:  # type: ignore[no-untyped-def]
    try:
        return quote_cashback(uow, operator, item, None).operator_amount_minor
    except CashbackNotAvailable:
        return None
