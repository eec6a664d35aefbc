"""reconcile_once: every money movement left with an unknown outcome is re-sent with its own
key and amount until the wallet answers, then settled like its use case would (issue 3)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lootbox.domain.errors import CashbackNotAvailable, WalletRefused, WalletUnavailable
from lootbox.domain.records import MovementPhase, Operator
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus
from lootbox.ports import WalletMoneyCall, WalletOutcome, WalletRefusal
from lootbox.services.cancel import CancelRound, default_cancel_key
from lootbox.services.cashout import CashOut, CashoutResult, default_cashout_key
from lootbox.services.ledger import lease_seconds
from lootbox.services.reconcile import ReconcileSummary, reconcile_once
from tests import fakes
from tests.fakes import ServiceHarness, box_doc, cancel_round, cash_out

PLAYER = "u_8431"
PRICE = 500
CASHBACK = 320  # 10 % of the 3200-cent ring
LEASE = 15.0


class WorkerDied(Exception):
    """The process running the request died while the wallet call was on the wire."""


@dataclass
class World:
    harness: ServiceHarness
    operator: Operator
    box_version_id: int

    def won_item(self) -> int:
        (item,) = self.harness.buy(self.operator, PLAYER, self.box_version_id).won_items
        return item.inventory_item_id

    def held_round(self) -> str:
        outcome = self.harness.buy(
            self.operator, PLAYER, self.box_version_id, mode=PurchaseMode.PREPAY
        )
        return outcome.public_id

    def cash_out(self, item_id: int, key: str | None = None) -> CashoutResult:
        return cash_out(
            self.harness.ctx,
            self.operator,
            CashOut(PLAYER, item_id, None, key or default_cashout_key(item_id)),
        )

    def pending_cashout(self, *, applied: bool) -> int:
        """A won item whose cashout ended in an unknown outcome: the wallet applied the
        credit and the answer was lost (``applied``), or the call never arrived."""
        item = self.won_item()
        if applied:
            self.harness.wallet.apply_then_unknown()
        else:
            self.harness.wallet.fail_next()
        with pytest.raises(WalletUnavailable):
            self.cash_out(item)
        return item

    def cancel(self, public_id: str) -> None:
        cancel_round(
            self.harness.ctx,
            self.operator,
            CancelRound(PLAYER, public_id, default_cancel_key(public_id)),
        )

    def item_state(self, item_id: int) -> ItemState:
        return self.harness.item(self.operator.id, item_id).state

    def round_status(self, public_id: str) -> RoundStatus:
        return self.harness.round(self.operator.id, public_id).status

    def reconcile(self) -> ReconcileSummary:
        return reconcile_once(self.harness.ctx)


@pytest.fixture
def world(postgres_db: str) -> Iterator[World]:
    harness = ServiceHarness(postgres_db, movement_lease_seconds=LEASE)
    operator = harness.create_operator()
    versions = harness.import_catalog(
        operator.slug, box_doc("gold", price_minor=PRICE, refundable=True)
    )
    yield World(harness, operator, versions["gold"])
    harness.close()


def credits_for(world: World, item_id: int) -> list[WalletMoneyCall]:
    return [c for c in world.harness.wallet.applied_credits if c.inventory_item_id == item_id]


# --- cashback ----------------------------------------------------------------------------------


def test_a_credit_applied_before_its_answer_was_lost_is_completed_without_a_second_credit(
    world: World,
) -> None:
    item = world.pending_cashout(applied=True)

    summary = world.reconcile()

    assert summary.to_json() == {"examined": 1, "completed": 1, "refused": 0, "stillPending": 0}
    assert world.item_state(item) is ItemState.CASHED_BACK
    (credit,) = credits_for(world, item)
    assert (credit.idempotency_key, credit.amount_minor) == (default_cashout_key(item), CASHBACK)
    # The re-send carried the same key and the same body as the first send.
    sent = [c for c in world.harness.wallet.sent_credits if c.inventory_item_id == item]
    assert len(sent) == 2 and sent[0] == sent[1]


def test_a_credit_the_wallet_never_saw_is_sent_and_settled(world: World) -> None:
    item = world.pending_cashout(applied=False)
    assert credits_for(world, item) == []

    assert world.reconcile().completed == 1
    assert world.item_state(item) is ItemState.CASHED_BACK
    assert len(credits_for(world, item)) == 1


def test_the_callers_retry_after_reconciliation_gets_the_result_without_a_wallet_call(
    world: World,
) -> None:
    item = world.pending_cashout(applied=True)
    world.reconcile()
    sent_before = len(world.harness.wallet.sent)

    result = world.cash_out(item)

    assert (result.state, result.cashback_minor, result.currency) == ("cashed_back", 320, "EUR")
    assert len(world.harness.wallet.sent) == sent_before


def test_a_refused_re_send_frees_the_item_and_is_counted_refused(world: World) -> None:
    item = world.pending_cashout(applied=False)
    world.harness.wallet.refuse_next("PLAYER_BLOCKED")

    summary = world.reconcile()

    assert summary.to_json() == {"examined": 1, "completed": 0, "refused": 1, "stillPending": 0}
    assert world.item_state(item) is ItemState.UNRESOLVED
    assert credits_for(world, item) == []
    # The player may try again: the refused key is re-armed and sent once more.
    assert world.cash_out(item).state == "cashed_back"
    assert len(credits_for(world, item)) == 1


def test_an_unknown_outcome_stays_pending_for_the_next_pass(world: World) -> None:
    item = world.won_item()
    world.harness.wallet.fail_next(times=3)
    with pytest.raises(WalletUnavailable):
        world.cash_out(item)

    first, second, third = world.reconcile(), world.reconcile(), world.reconcile()

    assert first.to_json() == {"examined": 1, "completed": 0, "refused": 0, "stillPending": 1}
    assert second.still_pending == 1
    assert third.completed == 1
    (movement,) = [m for m in world.harness.movements() if m.inventory_item_id == item]
    assert (movement.status, movement.attempts) == ("accepted", 4)
    assert len(credits_for(world, item)) == 1


def test_a_movement_in_flight_is_left_to_its_caller_until_the_lease_expires(
    world: World,
) -> None:
    item = world.won_item()
    # A worker recorded and leased the credit, then died before its wallet call finished.
    world.harness.wallet.die_before_next_send()
    with pytest.raises(fakes.WorkerDied):
        cash_out(
            world.harness.ctx,
            world.operator,
            CashOut(PLAYER, item, None, default_cashout_key(item)),
        )
    with world.harness.uow() as uow:
        leased = uow.ledger.get(world.harness.movements()[-1].id)
    # As leased: the row says its wallet call is under way, so nobody else sends it.
    assert leased is not None
    assert leased.phase(world.harness.clock.now()) is MovementPhase.IN_FLIGHT

    assert world.reconcile().examined == 0
    assert world.harness.wallet.sent_credits == []

    world.harness.clock.advance(LEASE + 5.1)
    assert world.reconcile().completed == 1
    assert world.item_state(item) is ItemState.CASHED_BACK
    assert len(credits_for(world, item)) == 1


def test_a_worker_killed_mid_call_is_recovered_once_its_lease_expires(world: World) -> None:
    item = world.won_item()

    def die_after_applying(call: WalletMoneyCall) -> None:
        world.harness.wallet.apply(call)
        raise WorkerDied

    world.harness.wallet.during_next_send(die_after_applying)
    with pytest.raises(WorkerDied):
        world.cash_out(item)
    (movement,) = [m for m in world.harness.movements() if m.inventory_item_id == item]
    assert movement.status == "pending"

    assert world.reconcile().examined == 0  # its lease still covers the dead call
    world.harness.clock.advance(LEASE + 5.1)
    assert world.reconcile().completed == 1
    assert world.item_state(item) is ItemState.CASHED_BACK
    assert len(credits_for(world, item)) == 1


def test_a_late_finisher_whose_lease_was_taken_over_changes_nothing(world: World) -> None:
    item = world.won_item()
    passes: list[ReconcileSummary] = []

    def stall_past_the_lease(_call: WalletMoneyCall) -> None:
        # The first call hangs past its lease; the reconciler takes over meanwhile.
        world.harness.clock.advance(LEASE + 5.1)
        passes.append(world.reconcile())

    world.harness.wallet.during_next_send(stall_past_the_lease)
    result = world.cash_out(item)

    assert passes[0].completed == 1
    assert result.state == "cashed_back"
    assert world.item_state(item) is ItemState.CASHED_BACK
    (movement,) = [m for m in world.harness.movements() if m.inventory_item_id == item]
    assert (movement.status, movement.lease_token) == ("accepted", 2)
    assert len(credits_for(world, item)) == 1


def test_a_duplicate_transaction_answer_to_a_re_send_leaves_the_outcome_unknown(
    world: World,
) -> None:
    item = world.pending_cashout(applied=True)
    # A wallet that does not replay: it refuses the key it holds, without saying whose.
    world.harness.wallet.refuse_next("DUPLICATE_TRANSACTION")

    assert world.reconcile().still_pending == 1
    assert world.item_state(item) is ItemState.CASHBACK_PENDING
    # A fresh key cannot credit the item again meanwhile.
    with pytest.raises(CashbackNotAvailable):
        world.cash_out(item, key="another-key")
    # Once the wallet replays its answer, the credit is booked, once.
    assert world.reconcile().to_json()["completed"] == 0  # the fresh key's request did it
    assert world.item_state(item) is ItemState.CASHED_BACK
    assert len(credits_for(world, item)) == 1


def test_a_duplicate_transaction_answer_to_a_first_send_is_a_refusal(world: World) -> None:
    item = world.won_item()
    world.harness.wallet.refuse_next("DUPLICATE_TRANSACTION")

    with pytest.raises(WalletRefused) as refused:
        world.cash_out(item)

    assert refused.value.code == "DUPLICATE_TRANSACTION"
    assert world.item_state(item) is ItemState.UNRESOLVED


# --- refunds and debits ------------------------------------------------------------------------


def test_a_pending_refund_is_completed_and_the_round_refunded(world: World) -> None:
    public_id = world.held_round()
    world.harness.wallet.apply_then_unknown()
    with pytest.raises(WalletUnavailable):
        world.cancel(public_id)
    assert world.round_status(public_id) is RoundStatus.REFUND_PENDING

    assert world.reconcile().completed == 1
    assert world.round_status(public_id) is RoundStatus.REFUNDED
    refunds = [c for c in world.harness.wallet.applied_credits if c.round_public_id == public_id]
    assert [(c.idempotency_key, c.amount_minor) for c in refunds] == [
        (default_cancel_key(public_id), PRICE)
    ]


def test_a_refused_refund_puts_the_round_back_on_hold(world: World) -> None:
    public_id = world.held_round()
    world.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        world.cancel(public_id)
    world.harness.wallet.refuse_next("PLAYER_BLOCKED")

    assert world.reconcile().refused == 1
    assert world.round_status(public_id) is RoundStatus.HELD


@pytest.mark.parametrize(
    ("mode", "settled_as"),
    [(PurchaseMode.OPEN, RoundStatus.SETTLED), (PurchaseMode.PREPAY, RoundStatus.HELD)],
)
def test_a_debit_with_an_unknown_outcome_is_driven_to_accepted_and_the_round_proceeds(
    world: World, mode: PurchaseMode, settled_as: RoundStatus
) -> None:
    world.harness.wallet.apply_then_unknown()
    with pytest.raises(WalletUnavailable):
        world.harness.buy(world.operator, PLAYER, world.box_version_id, mode=mode)
    (public_id,) = world.harness.debited_rounds()
    assert world.round_status(public_id) is RoundStatus.DEBIT_PENDING

    assert world.reconcile().completed == 1

    round_ = world.harness.round(world.operator.id, public_id)
    assert round_.status is settled_as
    with world.harness.uow() as uow:
        items = uow.items.for_round(round_.id)
    assert len(items) == (1 if mode is PurchaseMode.OPEN else 0)
    assert len(world.harness.wallet.applied_debits) == 1


def test_a_refused_debit_voids_the_round(world: World) -> None:
    world.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        world.harness.buy(world.operator, PLAYER, world.box_version_id)
    world.harness.wallet.refuse_next("INSUFFICIENT_FUNDS")

    assert world.reconcile().refused == 1
    (public_id,) = world.harness.debited_rounds()
    assert world.round_status(public_id) is RoundStatus.VOIDED
    assert world.harness.wallet.applied_debits == []


# --- a pass over many --------------------------------------------------------------------------


def test_one_pass_settles_every_kind_and_the_counts_add_up(world: World) -> None:
    items = [world.won_item() for _ in range(6)]
    rounds = [world.held_round() for _ in range(3)]
    for item in items:
        world.harness.wallet.apply_then_unknown()
        with pytest.raises(WalletUnavailable):
            world.cash_out(item)
    for public_id in rounds:
        world.harness.wallet.fail_next()
        with pytest.raises(WalletUnavailable):
            world.cancel(public_id)
    answers: list[WalletOutcome] = [WalletRefusal("PLAYER_BLOCKED", "no")]

    def refuse_one_refund(call: WalletMoneyCall) -> WalletOutcome:
        return (
            answers.pop()
            if call.reason == "refund" and answers
            else world.harness.wallet.apply(call)
        )

    world.harness.wallet.then(refuse_one_refund, times=9)

    summary = world.reconcile()

    assert summary.to_json() == {"examined": 9, "completed": 8, "refused": 1, "stillPending": 0}
    assert summary.due == 9
    assert {world.item_state(i) for i in items} == {ItemState.CASHED_BACK}
    statuses = sorted(str(world.round_status(r)) for r in rounds)
    assert statuses == ["held", "refunded", "refunded"]
    assert all(len(credits_for(world, i)) == 1 for i in items)
    assert world.reconcile().examined == 0


def test_a_pass_with_nothing_pending_examines_nothing(world: World) -> None:
    world.won_item()
    assert world.reconcile().to_json() == {
        "examined": 0,
        "completed": 0,
        "refused": 0,
        "stillPending": 0,
    }


def test_an_accepted_answer_is_what_completes_a_movement(world: World) -> None:
    """Guard against a reconciler that counts without settling: the ledger row is final."""
    item = world.pending_cashout(applied=False)
    world.reconcile()
    (movement,) = [m for m in world.harness.movements() if m.inventory_item_id == item]
    assert movement.status == "accepted"
    assert movement.provider_txn_ref is not None
    assert [c.idempotency_key for c in world.harness.wallet.applied_credits] == [
        movement.idempotency_key
    ]


def test_one_failing_movement_does_not_end_the_pass_for_the_others(world: World) -> None:
    first, second = world.won_item(), world.won_item()
    world.harness.wallet.fail_next(times=2)
    for item in (first, second):
        with pytest.raises(WalletUnavailable):
            world.cash_out(item)

    def explode(_call: WalletMoneyCall) -> None:
        raise RuntimeError("a bug in one movement's path")

    world.harness.wallet.during_next_send(explode)
    summary = reconcile_once(world.harness.ctx, concurrency=1)

    assert summary.to_json() == {"examined": 2, "completed": 1, "refused": 0, "stillPending": 1}
    assert world.item_state(first) is ItemState.CASHBACK_PENDING
    assert world.item_state(second) is ItemState.CASHED_BACK
    # It failed mid-call, like a crash: its lease runs out, then the next pass takes it.
    assert world.reconcile().examined == 0
    world.harness.clock.advance(LEASE + 5.1)
    assert world.reconcile().completed == 1


def test_a_pass_stops_calling_a_wallet_that_keeps_failing(world: World) -> None:
    other = world.harness.create_operator("other-brand")
    other_box = world.harness.import_catalog(other.slug, box_doc("gold", price_minor=PRICE))
    items = [world.won_item() for _ in range(5)]
    world.harness.wallet.fail_next(times=5)
    for item in items:
        with pytest.raises(WalletUnavailable):
            world.cash_out(item)
    (other_item,) = world.harness.buy(other, PLAYER, other_box["gold"]).won_items
    world.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        cash_out(
            world.harness.ctx,
            other,
            CashOut(PLAYER, other_item.inventory_item_id, None, "other-key"),
        )
    sent_before = len(world.harness.wallet.sent)
    world.harness.wallet.fail_next(times=3)  # the first operator's wallet is still down

    summary = reconcile_once(world.harness.ctx, concurrency=1)

    # Three unknown answers in a row, then the rest of that operator's movements wait for
    # the next pass; the other operator's is still re-driven.
    assert len(world.harness.wallet.sent) - sent_before == 4
    assert summary.to_json() == {"examined": 6, "completed": 1, "refused": 0, "stillPending": 5}
    assert world.reconcile().completed == 5


def test_a_stopped_pass_leaves_what_it_has_not_started(world: World) -> None:
    item = world.pending_cashout(applied=False)
    stop = threading.Event()
    stop.set()

    assert reconcile_once(world.harness.ctx, stop=stop).examined == 0
    assert world.item_state(item) is ItemState.CASHBACK_PENDING
    assert world.reconcile().completed == 1


def test_an_operator_with_slower_wallet_timeouts_gets_the_same_settle_headroom(
    world: World,
) -> None:
    """The service lease (15 s) leaves 8 s above the default 2 + 5 s budget; an operator
    whose wallet may take 10 + 20 s gets its budget plus the same 8 s."""
    slow = world.harness.update_operator(
        world.operator.slug, wallet_connect_timeout_seconds=10, wallet_read_timeout_seconds=20
    )

    assert lease_seconds(world.harness.ctx, world.operator) == LEASE
    assert lease_seconds(world.harness.ctx, slow) == 10 + 20 + (LEASE - 2 - 5)
    item = world.won_item()
    # A worker that died mid-call: the reconciler must wait out the operator's longer lease.
    world.harness.wallet.die_before_next_send()
    with pytest.raises(fakes.WorkerDied):
        cash_out(world.harness.ctx, slow, CashOut(PLAYER, item, None, default_cashout_key(item)))
    world.harness.clock.advance(LEASE + 1)
    assert world.reconcile().examined == 0
    world.harness.clock.advance(30 + 8 - LEASE)
    assert world.reconcile().completed == 1
