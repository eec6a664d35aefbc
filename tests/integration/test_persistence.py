"""The database, not Python, holds the money invariants: run on SQLite and PostgreSQL.

Every test here talks to a real, migrated database (the ``database_url`` fixture runs each
test on both) through the repositories of ``lootbox.persistence`` or plain SQL, and checks
what the schema itself refuses: a second live credit for one item or round, a second debit
for one round, a reused (operator, key), an impossible state or amount, a stale lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from lootbox.domain.records import (
    BoxSpec,
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    PrizeSpec,
    Reel,
)
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus
from lootbox.persistence import statements as hot
from lootbox.persistence.database import (
    SqlAlchemyUnitOfWork,
    make_engine,
    make_session_factory,
)
from lootbox.persistence.models import MoneyMovementRow, OperatorRow, RoundRow
from lootbox.persistence.repositories import new_movement_row

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
LEASE = timedelta(seconds=15)
PLAYER = "u_8431"

UowFactory = Callable[[], SqlAlchemyUnitOfWork]


@dataclass(frozen=True)
class World:
    """What the tests need to exist: two operators, a box, rounds and items."""

    operator_id: int
    other_operator_id: int
    box_version_id: int
    prize_id: int
    settled_round_id: int
    settled_round_public_id: str
    held_round_id: int
    held_round_public_id: str
    item_id: int
    second_item_id: int


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def uow(engine: Engine) -> UowFactory:
    session_factory = make_session_factory(engine)
    return lambda: SqlAlchemyUnitOfWork(session_factory)


@pytest.fixture
def world(uow: UowFactory) -> World:
    with uow() as tx:
        operator = tx.operators.add(
            slug="acme",
            currency="EUR",
            wallet_url="http://127.0.0.1:1/wallet",
            wallet_secret="s3cret",
            refunds_enabled=True,
            cashback_enabled=True,
            cashback_bps=5000,
            now=NOW,
        )
        other = tx.operators.add(
            slug="other",
            currency="EUR",
            wallet_url="http://127.0.0.1:1/wallet",
            wallet_secret="s3cret",
            refunds_enabled=True,
            cashback_enabled=True,
            cashback_bps=None,
            now=NOW,
        )
        assert operator is not None and other is not None
        spec = BoxSpec(
            slug="gold",
            name="Gold box",
            price_minor=500,
            refundable=True,
            cashback_enabled=True,
            cashback_bps=None,
            prizes=(PrizeSpec("Coin", 700, Decimal(1), None),),
        )
        _, version_id, created = tx.catalog.publish(operator.id, spec, "hash-1", NOW)
        assert created
        box = tx.catalog.get_box_version(operator.id, version_id)
        assert box is not None
        prize_id = box.prizes[0].id

        settled = _add_round(tx, operator.id, version_id, PurchaseMode.OPEN, "act-1", reels=2)
        assert tx.rounds.transition(settled.id, RoundStatus.DEBIT_PENDING, RoundStatus.SETTLED, NOW)
        tx.items.add_many(
            [
                {
                    "operator_id": operator.id,
                    "player_external_id": PLAYER,
                    "round_id": settled.id,
                    "reel_index": reel,
                    "prize_id": prize_id,
                    "box_version_id": version_id,
                    "name": "Coin",
                    "value_minor": 700,
                }
                for reel in (0, 1)
            ],
            NOW,
        )
        items = tx.items.for_round(settled.id)
        held = _add_round(tx, operator.id, version_id, PurchaseMode.PREPAY, "act-2")
        assert tx.rounds.transition(held.id, RoundStatus.DEBIT_PENDING, RoundStatus.HELD, NOW)
        tx.commit()
    return World(
        operator_id=operator.id,
        other_operator_id=other.id,
        box_version_id=version_id,
        prize_id=prize_id,
        settled_round_id=settled.id,
        settled_round_public_id=settled.public_id,
        held_round_id=held.id,
        held_round_public_id=held.public_id,
        item_id=items[0].id,
        second_item_id=items[1].id,
    )


def _add_round(
    tx: SqlAlchemyUnitOfWork,
    operator_id: int,
    box_version_id: int,
    mode: PurchaseMode,
    client_action_id: str,
    *,
    reels: int = 1,
    player: str = PLAYER,
) -> Any:
    round_ = tx.rounds.add(
        public_id=f"r_{client_action_id}_{player}",
        operator_id=operator_id,
        player_external_id=player,
        mode=mode,
        client_action_id=client_action_id,
        currency="EUR",
        bet_minor=500 * reels,
        operator_amount_minor=500 * reels,
        rate=Decimal(1),
        reels=[Reel(i, box_version_id, 500, None) for i in range(reels)],
        now=NOW,
    )
    return round_


def cashback(world: World, key: str, *, item_id: int | None = None, **changes: Any) -> NewMovement:
    movement = NewMovement(
        operator_id=world.operator_id,
        idempotency_key=key,
        kind=MovementKind.CREDIT,
        reason=MovementReason.CASHBACK,
        player_external_id=PLAYER,
        amount_minor=350,
        currency="EUR",
        operator_amount_minor=350,
        operator_currency="EUR",
        rate=Decimal(1),
        inventory_item_id=item_id if item_id is not None else world.item_id,
    )
    return replace(movement, **changes)


def refund(world: World, key: str, **changes: Any) -> NewMovement:
    movement = NewMovement(
        operator_id=world.operator_id,
        idempotency_key=key,
        kind=MovementKind.CREDIT,
        reason=MovementReason.REFUND,
        player_external_id=PLAYER,
        amount_minor=500,
        currency="EUR",
        operator_amount_minor=500,
        operator_currency="EUR",
        rate=Decimal(1),
        round_id=world.held_round_id,
        round_public_id=world.held_round_public_id,
    )
    return replace(movement, **changes)


def debit(world: World, key: str, **changes: Any) -> NewMovement:
    movement = NewMovement(
        operator_id=world.operator_id,
        idempotency_key=key,
        kind=MovementKind.DEBIT,
        reason=MovementReason.PREPAY,
        player_external_id=PLAYER,
        amount_minor=500,
        currency="EUR",
        operator_amount_minor=500,
        operator_currency="EUR",
        rate=Decimal(1),
        round_id=world.held_round_id,
        round_public_id=world.held_round_public_id,
    )
    return replace(movement, **changes)


def record(uow: UowFactory, new: NewMovement) -> int | None:
    """Record in a transaction of its own; the new movement's id, or ``None``."""
    with uow() as tx:
        movement = tx.ledger.record(new, NOW)
        tx.commit()
    return movement.id if movement is not None else None


def settle_refused(uow: UowFactory, movement_id: int) -> None:
    with uow() as tx:
        token = tx.ledger.claim(movement_id, NOW, NOW + LEASE)
        assert token is not None
        assert tx.ledger.mark_refused(movement_id, token, "INSUFFICIENT_FUNDS", "no", NOW)
        tx.commit()


def settle_accepted(uow: UowFactory, movement_id: int) -> None:
    with uow() as tx:
        token = tx.ledger.claim(movement_id, NOW, NOW + LEASE)
        assert token is not None
        assert tx.ledger.mark_accepted(movement_id, token, 1234, "rw_1", NOW)
        tx.commit()


def movement_row(new: NewMovement, **overrides: Any) -> dict[str, Any]:
    """The columns of a pending movement, for inserts that bypass the repository."""
    return new_movement_row(new, NOW) | overrides


def plain_insert(engine: Engine, row: dict[str, Any]) -> None:
    """A plain INSERT without ON CONFLICT: the database must raise, not skip."""
    with engine.begin() as conn:
        conn.execute(insert(MoneyMovementRow).values(**row))


def count_movements(engine: Engine, **where: Any) -> int:
    criteria = [getattr(MoneyMovementRow, name) == value for name, value in where.items()]
    with engine.connect() as conn:
        return len(conn.execute(select(MoneyMovementRow.id).where(*criteria)).all())


# --- at most one live credit per item ---------------------------------------------------------


def test_second_live_cashback_for_an_item_is_refused_even_with_another_key(
    uow: UowFactory, world: World, engine: Engine
) -> None:
    assert record(uow, cashback(world, "cashback:inventory:1")) is not None

    assert record(uow, cashback(world, "another-key")) is None
    with pytest.raises(IntegrityError):
        plain_insert(engine, movement_row(cashback(world, "third-key")))
    assert count_movements(engine, inventory_item_id=world.item_id) == 1


def test_an_accepted_cashback_still_blocks_a_new_one(
    uow: UowFactory, world: World, engine: Engine
) -> None:
    first = record(uow, cashback(world, "k1"))
    assert first is not None
    settle_accepted(uow, first)

    assert record(uow, cashback(world, "k2")) is None
    with pytest.raises(IntegrityError):
        plain_insert(engine, movement_row(cashback(world, "k3")))


def test_a_refused_cashback_does_not_block_a_new_one(uow: UowFactory, world: World) -> None:
    first = record(uow, cashback(world, "k1"))
    assert first is not None
    settle_refused(uow, first)

    second = record(uow, cashback(world, "k2"))
    assert second is not None
    # ... and that one is live again, so a third is refused.
    assert record(uow, cashback(world, "k3")) is None


def test_another_item_has_its_own_cashback(uow: UowFactory, world: World) -> None:
    assert record(uow, cashback(world, "k1")) is not None
    assert record(uow, cashback(world, "k2", item_id=world.second_item_id)) is not None


def test_racing_writers_record_exactly_one_cashback_per_item(
    uow: UowFactory, world: World, engine: Engine
) -> None:
    writers = 8
    barrier = threading.Barrier(writers, timeout=10)

    def write(n: int) -> int | None:
        barrier.wait()
        return record(uow, cashback(world, f"race-{n}"))

    with ThreadPoolExecutor(writers) as pool:
        ids = list(pool.map(write, range(writers), timeout=30))

    assert len([i for i in ids if i is not None]) == 1
    assert count_movements(engine, inventory_item_id=world.item_id) == 1


# --- rounds: one live refund, one debit -------------------------------------------------------


def test_one_live_refund_per_round_whatever_the_key(
    uow: UowFactory, world: World, engine: Engine
) -> None:
    first = record(uow, refund(world, "refund:round:1"))
    assert first is not None

    assert record(uow, refund(world, "another-key")) is None
    with pytest.raises(IntegrityError):
        plain_insert(engine, movement_row(refund(world, "third-key")))

    settle_refused(uow, first)
    assert record(uow, refund(world, "after-refusal")) is not None


def test_one_debit_per_round_whatever_the_key_or_status(
    uow: UowFactory, world: World, engine: Engine
) -> None:
    first = record(uow, debit(world, "round:1"))
    assert first is not None
    assert record(uow, debit(world, "round:2")) is None

    # Unlike credits, even a refused debit keeps the round: a retry is a new round.
    settle_refused(uow, first)
    assert record(uow, debit(world, "round:3")) is None
    with pytest.raises(IntegrityError):
        plain_insert(engine, movement_row(debit(world, "round:4", reason=MovementReason.OPEN)))
    assert count_movements(engine, round_id=world.held_round_id, kind="debit") == 1


def test_one_live_round_per_client_action_and_a_voided_one_frees_it(
    uow: UowFactory, world: World
) -> None:
    with uow() as tx:
        first = _add_round(tx, world.operator_id, world.box_version_id, PurchaseMode.OPEN, "a9")
        assert first is not None
        duplicate = tx.rounds.add(
            public_id="r_dup",
            operator_id=world.operator_id,
            player_external_id=PLAYER,
            mode=PurchaseMode.OPEN,
            client_action_id="a9",
            currency="EUR",
            bet_minor=500,
            operator_amount_minor=500,
            rate=Decimal(1),
            reels=[Reel(0, world.box_version_id, 500, None)],
            now=NOW,
        )
        assert duplicate is None
        # Another player's action id is their own.
        other = _add_round(
            tx, world.operator_id, world.box_version_id, PurchaseMode.OPEN, "a9", player="u_2"
        )
        assert other is not None
        assert tx.rounds.transition(first.id, RoundStatus.DEBIT_PENDING, RoundStatus.VOIDED, NOW)
        again = tx.rounds.add(
            public_id="r_again",
            operator_id=world.operator_id,
            player_external_id=PLAYER,
            mode=PurchaseMode.OPEN,
            client_action_id="a9",
            currency="EUR",
            bet_minor=500,
            operator_amount_minor=500,
            rate=Decimal(1),
            reels=[Reel(0, world.box_version_id, 500, None)],
            now=NOW,
        )
        assert again is not None
        tx.commit()


# --- (operator, key) --------------------------------------------------------------------------


def test_operator_and_key_are_unique(uow: UowFactory, world: World, engine: Engine) -> None:
    assert record(uow, cashback(world, "shared-key")) is not None

    # Same key, another subject of the same operator: refused.
    assert record(uow, cashback(world, "shared-key", item_id=world.second_item_id)) is None
    assert record(uow, refund(world, "shared-key")) is None
    with pytest.raises(IntegrityError):
        plain_insert(
            engine, movement_row(cashback(world, "shared-key", item_id=world.second_item_id))
        )

    # Keys are scoped per operator: another operator may use the same one.
    assert record(uow, refund(world, "shared-key", operator_id=world.other_operator_id))


def test_get_by_key_is_scoped_per_operator(uow: UowFactory, world: World) -> None:
    movement_id = record(uow, cashback(world, "k"))
    with uow() as tx:
        found = tx.ledger.get_by_key(world.operator_id, "k")
        assert found is not None and found.id == movement_id
        assert found.status is MovementStatus.PENDING
        assert found.amount_minor == 350 and found.rate == Decimal(1)
        assert tx.ledger.get_by_key(world.other_operator_id, "k") is None


# --- conditional transitions ------------------------------------------------------------------


def test_item_transition_happens_once(uow: UowFactory, world: World) -> None:
    with uow() as tx:
        assert tx.items.transition(
            world.item_id, ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING, NOW
        )
        assert not tx.items.transition(
            world.item_id, ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING, NOW
        )
        tx.commit()
    with uow() as tx:
        assert not tx.items.transition(
            world.item_id, ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING, NOW
        )
        assert tx.items.transition(
            world.item_id, ItemState.CASHBACK_PENDING, ItemState.CASHED_BACK, NOW
        )
        tx.commit()
    with uow() as tx:
        item = tx.items.get(world.operator_id, world.item_id)
        assert item is not None and item.state is ItemState.CASHED_BACK
        # The item of another operator is not visible under this one.
        assert tx.items.get(world.other_operator_id, world.item_id) is None


def test_racing_item_transitions_succeed_exactly_once(uow: UowFactory, world: World) -> None:
    racers = 8
    barrier = threading.Barrier(racers, timeout=10)

    def move(_: int) -> bool:
        barrier.wait()
        with uow() as tx:
            moved = tx.items.transition(
                world.item_id, ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING, NOW
            )
            tx.commit()
        return bool(moved)

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(move, range(racers), timeout=30))
    assert results.count(True) == 1


def test_round_transition_happens_once(uow: UowFactory, world: World) -> None:
    with uow() as tx:
        assert tx.rounds.transition(
            world.held_round_id, RoundStatus.HELD, RoundStatus.REFUND_PENDING, NOW
        )
        tx.commit()
    with uow() as tx:
        assert not tx.rounds.transition(
            world.held_round_id, RoundStatus.HELD, RoundStatus.REFUND_PENDING, NOW
        )
        # A held box whose refund is in flight cannot be opened either.
        assert not tx.rounds.transition(
            world.held_round_id, RoundStatus.HELD, RoundStatus.SETTLED, NOW
        )
        assert tx.rounds.transition(
            world.held_round_id, RoundStatus.REFUND_PENDING, RoundStatus.REFUNDED, NOW
        )
        tx.commit()
    with uow() as tx:
        round_ = tx.rounds.get_by_public_id(world.operator_id, world.held_round_public_id)
        assert round_ is not None and round_.status is RoundStatus.REFUNDED
        assert tx.rounds.get_by_public_id(world.other_operator_id, round_.public_id) is None


# --- leases and fencing -----------------------------------------------------------------------


def test_a_movement_recorded_leased_is_what_the_database_holds_and_is_fenced_like_a_claim(
    uow: UowFactory, world: World
) -> None:
    """``record(..., leased_until=)`` saves the INSERT-then-claim pair one statement: the
    movement it returns (built, not read back) must be the row, and the lease must hold
    off a second claim exactly as a claim's would."""
    new = cashback(world, "k", rate=Decimal("1.10420"))
    with uow() as tx:
        written = tx.ledger.record(new, NOW, leased_until=NOW + LEASE)
        tx.commit()
    assert written is not None
    assert (written.lease_token, written.attempts) == (1, 1)

    with uow() as tx:
        assert tx.ledger.get(written.id) == written
        assert tx.ledger.claim(written.id, NOW + LEASE / 2, NOW + LEASE * 2) is None
        assert tx.ledger.claim(written.id, NOW + LEASE, NOW + LEASE * 2) == 2
        assert not tx.ledger.mark_accepted(written.id, 1, 100, "rw_stale", NOW + LEASE)
        tx.commit()


def test_claim_leases_a_pending_movement_once_until_it_expires(
    uow: UowFactory, world: World
) -> None:
    movement_id = record(uow, cashback(world, "k"))
    assert movement_id is not None
    lease_until = NOW + LEASE
    with uow() as tx:
        first = tx.ledger.claim(movement_id, NOW, lease_until)
        tx.commit()
    assert first == 1

    with uow() as tx:
        assert tx.ledger.claim(movement_id, NOW + timedelta(seconds=1), NOW + LEASE * 2) is None
        # One microsecond before expiry is still before expiry.
        just_before = lease_until - timedelta(microseconds=1)
        assert tx.ledger.claim(movement_id, just_before, just_before + LEASE) is None
        second = tx.ledger.claim(movement_id, lease_until, lease_until + LEASE)
        tx.commit()
    assert second == first + 1

    with uow() as tx:
        # The holder whose lease was taken over cannot settle: its token is stale.
        assert not tx.ledger.mark_accepted(movement_id, first, 100, "rw_stale", lease_until)
        assert not tx.ledger.mark_refused(movement_id, first, "NOPE", "stale", lease_until)
        assert not tx.ledger.release(movement_id, first, "stale", lease_until)
        assert tx.ledger.mark_accepted(movement_id, second, 100, "rw_1", lease_until)
        tx.commit()

    with uow() as tx:
        movement = tx.ledger.get(movement_id)
        assert movement is not None
        assert movement.status is MovementStatus.ACCEPTED
        assert movement.provider_txn_ref == "rw_1" and movement.balance_after_minor == 100
        assert movement.attempts == 2 and movement.lease_token == second
        assert movement.lease_expires_at is None
        # Settled: nothing can lease or settle it again.
        later = lease_until + LEASE * 10
        assert tx.ledger.claim(movement_id, later, later + LEASE) is None
        assert not tx.ledger.mark_refused(movement_id, second, "NOPE", "late", later)


def test_release_frees_the_lease_at_once_and_keeps_the_movement_pending(
    uow: UowFactory, world: World
) -> None:
    movement_id = record(uow, refund(world, "refund:round:x"))
    assert movement_id is not None
    with uow() as tx:
        token = tx.ledger.claim(movement_id, NOW, NOW + LEASE)
        assert token is not None
        assert tx.ledger.release(movement_id, token, "read timeout", NOW)
        tx.commit()
    with uow() as tx:
        movement = tx.ledger.get(movement_id)
        assert movement is not None and movement.status is MovementStatus.PENDING
        assert tx.ledger.live_refund(world.held_round_id) == movement
        retaken = tx.ledger.claim(movement_id, NOW, NOW + LEASE)
        tx.commit()
    assert retaken == token + 1


def _live_cashback(tx: Any, world: World) -> MoneyMovement | None:
    candidate = tx.items.lock_for_cashout(world.operator_id, world.item_id)
    assert candidate is not None
    return candidate.live_credit  # type: ignore[no-any-return]


def test_only_a_refused_movement_can_be_rearmed(uow: UowFactory, world: World) -> None:
    movement_id = record(uow, cashback(world, "k"))
    assert movement_id is not None
    with uow() as tx:
        assert not tx.ledger.rearm(movement_id, cashback(world, "k", amount_minor=999), NOW)
        tx.commit()
    settle_refused(uow, movement_id)
    with uow() as tx:
        assert _live_cashback(tx, world) is None
        assert tx.ledger.rearm(movement_id, cashback(world, "k", amount_minor=999), NOW)
        tx.commit()
    with uow() as tx:
        movement = tx.ledger.get(movement_id)
        assert movement is not None
        assert movement.status is MovementStatus.PENDING and movement.amount_minor == 999
        assert movement.refusal_code is None
        assert _live_cashback(tx, world) == movement


def test_rearming_is_refused_by_the_database_while_another_credit_is_live(
    uow: UowFactory, world: World
) -> None:
    refused = record(uow, cashback(world, "k1"))
    assert refused is not None
    settle_refused(uow, refused)
    assert record(uow, cashback(world, "k2")) is not None

    with pytest.raises(IntegrityError), uow() as tx:
        tx.ledger.rearm(refused, cashback(world, "k1"), NOW)
        tx.commit()


# --- CHECK constraints ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"status": "bogus"}, id="status-bogus"),
        pytest.param({"amount_minor": 0}, id="amount-zero"),
        pytest.param({"amount_minor": -5}, id="amount-negative"),
        pytest.param({"operator_amount_minor": 0}, id="operator-amount-zero"),
        pytest.param({"kind": "transfer"}, id="kind-bogus"),
        pytest.param({"reason": "bonus"}, id="reason-bogus"),
        pytest.param({"kind": "debit"}, id="cashback-as-debit"),
        pytest.param({"inventory_item_id": None}, id="cashback-without-item"),
    ],
)
def test_check_constraints_reject_impossible_movements(
    world: World, engine: Engine, overrides: dict[str, Any]
) -> None:
    with pytest.raises(IntegrityError):
        plain_insert(engine, movement_row(cashback(world, "k"), **overrides))
    assert count_movements(engine) == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("status", "bogus"), ("amount_minor", 0), ("operator_amount_minor", -1)],
)
def test_check_constraints_reject_updates_to_impossible_movements(
    uow: UowFactory, world: World, engine: Engine, column: str, value: Any
) -> None:
    movement_id = record(uow, cashback(world, "k"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            update(MoneyMovementRow)
            .where(MoneyMovementRow.id == movement_id)
            .values({column: value})
        )


@pytest.mark.parametrize("status", ["held", "refund_pending", "refunded"])
def test_an_atomic_round_can_never_be_held_or_refunded(
    world: World, engine: Engine, status: str
) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            update(RoundRow).where(RoundRow.id == world.settled_round_id).values(status=status)
        )
    with engine.connect() as conn:
        stored = conn.scalar(select(RoundRow.status).where(RoundRow.id == world.settled_round_id))
    assert stored == "settled"


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("UPDATE rounds SET status = 'bogus' WHERE id = :id", id="round-status"),
        pytest.param("UPDATE rounds SET bet_minor = 0 WHERE id = :id", id="round-bet-zero"),
        pytest.param("UPDATE rounds SET mode = 'later' WHERE id = :id", id="round-mode"),
        pytest.param(
            "UPDATE inventory_items SET state = 'bogus' WHERE round_id = :id", id="item-state"
        ),
    ],
)
def test_check_constraints_reject_bad_round_and_item_states(
    world: World, engine: Engine, sql: str
) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(sql), {"id": world.settled_round_id})


def test_one_prize_per_reel(world: World, engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO inventory_items (operator_id, player_external_id, round_id,"
                " reel_index, prize_id, box_version_id, name, value_minor, state,"
                " created_at, updated_at) SELECT operator_id, player_external_id, round_id,"
                " reel_index, prize_id, box_version_id, name, value_minor, 'unresolved',"
                " created_at, updated_at FROM inventory_items WHERE id = :id"
            ),
            {"id": world.item_id},
        )


@pytest.mark.parametrize("status", ["active", "inactive"])
def test_one_current_version_per_box(world: World, engine: Engine, status: str) -> None:
    """A box has one version that is not superseded, active or deactivated."""
    with pytest.raises(IntegrityError, match="uq_box_versions_one_current"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO box_versions (box_id, version, name, price_minor, refundable,"
                " cashback_enabled, content_hash, status, created_at)"
                " SELECT box_id, version + 1, name, price_minor, refundable,"
                " cashback_enabled, 'other', :status, created_at"
                " FROM box_versions WHERE id = :id"
            ),
            {"id": world.box_version_id, "status": status},
        )


def test_a_prize_type_is_one_the_catalog_knows(world: World, engine: Engine) -> None:
    with pytest.raises(IntegrityError, match="ck_prizes_type"), engine.begin() as conn:
        conn.execute(text("UPDATE prizes SET type = 'cash'"))


# --- durable idempotency records --------------------------------------------------------------


def idem_claim(
    uow: UowFactory,
    world: World,
    *,
    key: str = "idem-1",
    fingerprint: str = "fp-1",
    request_id: str = "req-1",
    now: datetime = NOW,
    operator_id: int | None = None,
) -> Any:
    with uow() as tx:
        claim = tx.idempotency.claim(
            operator_id=operator_id if operator_id is not None else world.operator_id,
            key=key,
            endpoint="cashout",
            fingerprint=fingerprint,
            request_id=request_id,
            now=now,
            lease_until=now + LEASE,
        )
        tx.commit()
    return claim


def idem_complete(uow: UowFactory, world: World, token: int, *, key: str = "idem-1") -> bool:
    with uow() as tx:
        done = tx.idempotency.complete(
            operator_id=world.operator_id,
            key=key,
            lease_token=token,
            status=200,
            body='{"ok":"G\\u00fcl"}',
            now=NOW,
            expires_at=NOW + timedelta(days=7),
        )
        tx.commit()
    return bool(done)


def test_idempotency_record_claim_complete_and_replay(uow: UowFactory, world: World) -> None:
    first = idem_claim(uow, world)
    assert first.outcome == "claimed" and first.lease_token == 1

    busy = idem_claim(uow, world, request_id="req-2")
    assert busy.outcome == "in_progress"
    assert busy.record is not None and busy.record.request_id == "req-1"

    assert not idem_complete(uow, world, token=7)  # not the holder's token
    assert idem_complete(uow, world, token=1)
    assert not idem_complete(uow, world, token=1)  # completed once only

    done = idem_claim(uow, world, request_id="req-3", now=NOW + LEASE * 100)
    assert done.outcome == "completed"
    assert done.record is not None
    assert done.record.status == 200 and done.record.body == '{"ok":"G\\u00fcl"}'
    assert done.record.request_id == "req-1"


def test_idempotency_record_mismatch_wins_over_everything(uow: UowFactory, world: World) -> None:
    assert idem_claim(uow, world).outcome == "claimed"
    assert idem_claim(uow, world, fingerprint="fp-other").outcome == "mismatch"
    assert idem_complete(uow, world, token=1)
    mismatch = idem_claim(uow, world, fingerprint="fp-other", now=NOW + LEASE * 2)
    assert mismatch.outcome == "mismatch"
    assert mismatch.record is not None and mismatch.record.fingerprint == "fp-1"


def test_idempotency_keys_are_scoped_per_operator(uow: UowFactory, world: World) -> None:
    assert idem_claim(uow, world).outcome == "claimed"
    other = idem_claim(uow, world, operator_id=world.other_operator_id, fingerprint="fp-x")
    assert other.outcome == "claimed"


def test_idempotency_release_forgets_only_the_holders_attempt(
    uow: UowFactory, world: World
) -> None:
    assert idem_claim(uow, world).outcome == "claimed"
    with uow() as tx:
        tx.idempotency.release(operator_id=world.operator_id, key="idem-1", lease_token=9)
        tx.commit()
    assert idem_claim(uow, world, request_id="req-2").outcome == "in_progress"

    with uow() as tx:
        tx.idempotency.release(operator_id=world.operator_id, key="idem-1", lease_token=1)
        tx.commit()
    with uow() as tx:
        assert tx.idempotency.describe(world.operator_id, "idem-1") is None
    again = idem_claim(uow, world, request_id="req-3", fingerprint="fp-2")
    assert again.outcome == "claimed" and again.lease_token == 1

    # A completed record is never released.
    assert idem_complete(uow, world, token=1)
    with uow() as tx:
        tx.idempotency.release(operator_id=world.operator_id, key="idem-1", lease_token=1)
        tx.commit()
    assert idem_claim(uow, world, fingerprint="fp-2").outcome == "completed"


def stored_token(uow: UowFactory, world: World, key: str = "idem-1") -> tuple[int, str]:
    with uow() as tx:
        row = tx.session.execute(
            text(
                "SELECT lease_token, request_id FROM idempotency_records"
                " WHERE operator_id = :op AND idempotency_key = :key"
            ),
            {"op": world.operator_id, "key": key},
        ).one()
    return int(row[0]), str(row[1])


def test_idempotency_lease_takeover_fences_the_dead_holder(uow: UowFactory, world: World) -> None:
    assert idem_claim(uow, world).outcome == "claimed"
    just_before = NOW + LEASE - timedelta(microseconds=1)
    assert idem_claim(uow, world, request_id="req-2", now=just_before).outcome == "in_progress"

    taken = idem_claim(uow, world, request_id="req-2", now=NOW + LEASE)
    assert taken.outcome == "claimed"
    assert stored_token(uow, world) == (2, "req-2")
    with uow() as tx:
        record_ = tx.idempotency.describe(world.operator_id, "idem-1").record
        assert record_ is not None and record_.state == "in_progress"

    # The first holder woke up: it can neither complete nor release the key.
    assert not idem_complete(uow, world, token=1)
    with uow() as tx:
        tx.idempotency.release(operator_id=world.operator_id, key="idem-1", lease_token=1)
        tx.commit()
    assert idem_claim(uow, world, request_id="req-3", now=NOW + LEASE).outcome == "in_progress"
    assert stored_token(uow, world) == (2, "req-2")


def test_idempotency_lease_takeover_returns_the_token_it_stored(
    uow: UowFactory, world: World
) -> None:
    """Regression: the token used to be read back after the ORM had synchronised the row,
    handing out stored+1, so the new holder could neither complete nor release the key."""
    assert idem_claim(uow, world).outcome == "claimed"
    taken = idem_claim(uow, world, request_id="req-2", now=NOW + LEASE)
    assert taken.outcome == "claimed"

    assert taken.lease_token == stored_token(uow, world)[0]
    # What the guard does with the token: store the answer so that it replays for ever.
    assert idem_complete(uow, world, token=taken.lease_token)
    assert idem_claim(uow, world, request_id="req-3").outcome == "completed"


def test_racing_idempotency_claims_have_exactly_one_winner(uow: UowFactory, world: World) -> None:
    racers = 8
    barrier = threading.Barrier(racers, timeout=10)

    def claim(n: int) -> str:
        barrier.wait()
        return str(idem_claim(uow, world, request_id=f"req-{n}").outcome)

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(claim, range(racers), timeout=30))
    assert sorted(outcomes) == ["claimed"] + ["in_progress"] * (racers - 1)


# --- UtcDateTime ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(datetime(2026, 7, 1, 23, 59, 59, 999999, tzinfo=UTC), id="utc"),
        pytest.param(
            datetime(2026, 1, 1, 2, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            id="plus-0530",
        ),
        pytest.param(
            datetime(2025, 12, 31, 20, 0, 0, tzinfo=timezone(timedelta(hours=-8))), id="minus-08"
        ),
    ],
)
def test_utc_datetime_round_trips_aware_datetimes_as_utc(
    uow: UowFactory, world: World, engine: Engine, moment: datetime
) -> None:
    with uow() as tx:
        tx.session.execute(
            update(OperatorRow).where(OperatorRow.id == world.operator_id).values(created_at=moment)
        )
        tx.commit()
    with uow() as tx:
        loaded = tx.session.scalar(
            select(OperatorRow.created_at).where(OperatorRow.id == world.operator_id)
        )
    assert loaded == moment
    assert loaded.tzinfo is UTC
    assert loaded.utcoffset() == timedelta(0)

    # Stored as the same UTC instant, so SQL comparisons agree.
    with engine.connect() as conn:
        raw = conn.scalar(
            text("SELECT created_at FROM operators WHERE id = :id"), {"id": world.operator_id}
        )
    utc = moment.astimezone(UTC)
    assert raw == utc


def test_utc_datetime_refuses_naive_datetimes(uow: UowFactory, world: World) -> None:
    naive = datetime(2026, 1, 1, 12, 0, 0)  # naive on purpose
    with pytest.raises(StatementError, match="timezone-aware"), uow() as tx:
        tx.session.execute(
            update(OperatorRow).where(OperatorRow.id == world.operator_id).values(created_at=naive)
        )


def test_lease_expiry_compares_instants_not_wall_clock_text(uow: UowFactory, world: World) -> None:
    """A lease written with one UTC offset and checked with another compares as instants."""
    movement_id = record(uow, cashback(world, "k"))
    assert movement_id is not None
    tokyo = timezone(timedelta(hours=9))
    with uow() as tx:
        assert tx.ledger.claim(movement_id, NOW, (NOW + LEASE).astimezone(tokyo)) == 1
        tx.commit()
    with uow() as tx:
        # 10:00 in Tokyo-time text sorts after the UTC text, but is earlier than expiry.
        assert tx.ledger.claim(movement_id, (NOW + LEASE / 2).astimezone(tokyo), NOW) is None
        assert tx.ledger.claim(movement_id, (NOW + LEASE).astimezone(tokyo), NOW + LEASE * 2) == 2
        tx.commit()


# --- the hot path's plans ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "params", "index"),
    [
        (
            "ITEM_FOR_CASHOUT",
            {"%(item_id)s": "$1", "%(operator_id)s": "$1"},
            "uq_money_movements_live_item_credit",
        ),
        (
            "ROUND_FOR_CANCEL",
            {"%(operator_id)s": "$1", "%(public_id)s": "'r'"},
            "uq_money_movements_live_round_credit",
        ),
        ("LIVE_REFUND", {"%(subject_id)s": "$1"}, "uq_money_movements_live_round_credit"),
    ],
)
def test_the_live_credit_reads_use_their_partial_index_even_in_a_generic_plan(
    postgres_db: str, statement: str, params: dict[str, str], index: str
) -> None:
    """psycopg prepares a statement after five runs and PostgreSQL may then switch to a
    generic plan, built without the parameters' values. The live-credit reads keep the
    partial index's predicate as literals so that even that plan can use the index: with
    a million movements, the alternative is a scan."""
    engine = make_engine(postgres_db)  # generic plans are PostgreSQL's
    compiled = getattr(hot, statement).compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    sql = str(compiled)
    for placeholder, value in params.items():
        sql = sql.replace(placeholder, value)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table would scan anyway
        conn.exec_driver_sql(f"PREPARE live_credit(bigint) AS {sql}")
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN EXECUTE live_credit(1)"))
        conn.exec_driver_sql("DEALLOCATE live_credit")
    engine.dispose()
    assert index in plan, plan
