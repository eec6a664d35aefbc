"""Open: a held (pre-paid) round is drawn and settled; no money moves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from lootbox.domain.errors import (
    LootboxError,
    RoundNotFound,
    RoundNotHeld,
    WalletUnavailable,
)
from lootbox.domain.records import Operator, Round
from lootbox.domain.states import RoundStatus, external_round_status
from lootbox.ports import Answer, KeyedRequest, UnitOfWork, WalletAccepted, WalletRefusal
from lootbox.services import ledger
from lootbox.services.context import ServiceContext
from lootbox.services.rounds import Boxes, Drawn, RoundOutcome, describe_round, draw_and_settle


@dataclass(frozen=True)
class OpenRound:
    player_external_id: str
    round_public_id: str
    idempotency_key: str


def default_open_key(round_public_id: str) -> str:
    return f"open:round:{round_public_id}"


Render = Callable[[RoundOutcome], str]


def open_round(
    ctx: ServiceContext,
    operator: Operator,
    cmd: OpenRound,
    request: KeyedRequest,
    render: Render,
) -> Answer:
    """Open a held box: ``held`` → ``settled`` with a draw, and the answer stored, in one
    transaction; no wallet call.

    A refund of this round whose outcome is unknown is re-sent first (same key, same
    amount): accepted, the round is refunded and cannot be opened; refused, it is held
    again and opens.
    """
    with ctx.uow_factory() as uow:
        claim = ledger.claim_key(ctx, uow, request)
        if isinstance(claim, Answer):
            return claim  # this request was answered before
        round_ = uow.rounds.get_by_public_id(operator.id, cmd.round_public_id, for_update=True)
        if (
            round_ is None
            or round_.player_external_id != cmd.player_external_id
            or round_.status is RoundStatus.DEBIT_PENDING
        ):
            raise RoundNotFound()
        if round_.status is RoundStatus.REFUND_PENDING:
            refund = uow.ledger.live_refund(round_.id)
            assert refund is not None, "refund_pending without a pending refund"
            pending_refund = ledger.lease(ctx, uow, operator, refund)
            uow.commit()
        else:
            # What the draw reads and draws with, for the answer too.
            boxes: Boxes = {}
            drawn: Drawn = {}
            opened_now = round_.status is RoundStatus.HELD and draw_and_settle(
                ctx,
                uow,
                round_,
                RoundStatus.HELD,
                ctx.clock.now(),
                cmd.idempotency_key,
                boxes,
                drawn,
            )
            # The same open again, its answer no longer stored (purged): rebuilt.
            opened_before = (
                round_.status is RoundStatus.SETTLED
                and round_.open_idempotency_key == cmd.idempotency_key
            )
            if not (opened_now or opened_before):
                raise RoundNotHeld(f"the round is {external_round_status(round_.status)}")
            settled = replace(
                round_, status=RoundStatus.SETTLED, open_idempotency_key=cmd.idempotency_key
            )
            opened = _opened(uow, operator, settled, boxes, drawn)
            done = ledger.answer(ctx, uow, request, claim, render(opened))
            uow.commit()
            return done

    # The round's unanswered refund, re-sent and settled before anything else.
    outcome = ledger.send(ctx, pending_refund)
    error: LootboxError | None = None
    with ledger.settling(ctx, pending_refund, request, claim) as uow:
        ledger.settle_credit(ctx, uow, pending_refund, outcome)
        if isinstance(outcome, WalletAccepted):
            ledger.release_key(uow, request, claim)
            error = RoundNotHeld("the round is refunded")
        elif isinstance(outcome, WalletRefusal):
            ledger.release_key(uow, request, claim)  # held again: opened on a second pass
        else:
            ledger.suspend_key(ctx, uow, request, claim)
            error = WalletUnavailable()
        uow.commit()
    if error is not None:
        raise error
    return open_round(ctx, operator, cmd, request, render)


def _opened(
    uow: UnitOfWork, operator: Operator, round_: Round, boxes: Boxes, drawn: Drawn
) -> RoundOutcome:
    """The settled round as the caller sees it (its prizes are its items, read by
    ``describe_round``; the round row itself is not read again)."""
    debit = uow.ledger.debit_for_round(round_.id)
    balance = debit.balance_after_minor if debit else None
    return describe_round(uow, operator, round_, balance, boxes, drawn)
