"""What purchase and open share about a round: the draw that settles it, and how the
caller sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lootbox.domain.cashback import CashbackPolicy
from lootbox.domain.errors import CashbackNotAvailable
from lootbox.domain.fairness import ALGORITHM, draw_position
from lootbox.domain.records import BoxVersion, InventoryItem, Operator, Round, RoundDraw
from lootbox.domain.states import RoundStatus, external_item_state, external_round_status
from lootbox.ports import UnitOfWork
from lootbox.services.cashout import quote_cashback
from lootbox.services.context import ServiceContext
from lootbox.services.fairness import draw_for
from lootbox.services.fx import from_operator_currency


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
class Fairness:
    """What a player needs to check a round's draw once the pair is revealed."""

    server_seed_hash: str
    client_seed: str
    nonce: int
    algorithm_key: str = ALGORITHM


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
    fairness: Fairness | None  # None until the round is drawn (held, voided)


Boxes = dict[int, BoxVersion]  # box versions already read in this request, by id
Drawn = dict[int, RoundDraw]  # what rounds this request drew were drawn with, by round id


def box_version(uow: UnitOfWork, operator_id: int, version_id: int, boxes: Boxes) -> BoxVersion:
    """The reel's box version: the one this request already read, else from the catalog
    (remembered in ``boxes`` for the next reel or item)."""
    if version_id not in boxes:
        found = uow.catalog.get_box_version(operator_id, version_id)
        assert found is not None, "a round's box versions are never deleted"
        boxes[version_id] = found
    return boxes[version_id]


def draw_and_settle(
    ctx: ServiceContext,
    uow: UnitOfWork,
    round_: Round,
    from_status: RoundStatus,
    now: datetime,
    open_key: str | None = None,
    boxes: Boxes | None = None,
    drawn: Drawn | None = None,
) -> bool:
    """Draw one prize per reel and mint the won items, if this caller settles the round.

    The conditional transition comes first, so only one caller ever draws (and takes a
    nonce); the unique (round, reel) index on items backs it up. Reel ``r`` draws from
    its box version's prizes in their published order with the player's current seed
    pair and the round's nonce (lootbox.domain.fairness).
    """
    boxes = {} if boxes is None else boxes
    extra = {"open_idempotency_key": open_key} if open_key else {}
    if not uow.rounds.transition(round_.id, from_status, RoundStatus.SETTLED, now, **extra):
        return False
    seeds = draw_for(ctx, uow, round_)
    if drawn is not None:
        drawn[round_.id] = seeds  # the answer names them without reading them back
    won = []
    for reel in round_.reels:
        box = box_version(uow, round_.operator_id, reel.box_version_id, boxes)
        odds = [p.odds for p in box.prizes]
        prize = box.prizes[
            draw_position(seeds.server_seed, seeds.client_seed, seeds.nonce, reel.reel_index, odds)
        ]
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


def describe_round(
    uow: UnitOfWork,
    operator: Operator,
    round_: Round,
    balance_after_minor: int | None,
    boxes: Boxes | None = None,
    drawn: Drawn | None = None,
) -> RoundOutcome:
    """The round as the caller sees it, rebuilt from the database (so a retry after a
    crash answers exactly what the first attempt would have)."""
    boxes = {} if boxes is None else boxes
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
            cashback_minor=_indicative_cashback(
                operator, item, box_version(uow, operator.id, item.box_version_id, boxes)
            ),
            state=external_item_state(item.state),
        )
        for item in items
    )
    payout = fairness = None
    if round_.status is RoundStatus.SETTLED:
        payout = from_operator_currency(
            sum(i.value_minor for i in items), operator.currency, round_.currency, round_.rate
        )
        seeds = (drawn or {}).get(round_.id) or uow.seed_pairs.of_round(round_.id)
        if seeds is not None:  # drawn before draws were provably fair: None
            fairness = Fairness(seeds.server_seed_hash, seeds.client_seed, seeds.nonce)
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
        fairness=fairness,
    )


def _indicative_cashback(operator: Operator, item: InventoryItem, box: BoxVersion) -> int | None:
    """What the item would cash out for now, in the operator currency."""
    prize = next((p for p in box.prizes if p.id == item.prize_id), None)
    policy = CashbackPolicy(
        operator_enabled=operator.cashback_enabled,
        operator_bps=operator.cashback_bps,
        box_enabled=box.cashback_enabled,
        box_bps=box.cashback_bps,
        prize_bps=prize.cashback_bps if prize else None,
    )
    try:
        return quote_cashback(operator, item.value_minor, policy, None).operator_amount_minor
    except CashbackNotAvailable:
        return None
