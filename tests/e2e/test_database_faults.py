"""Database failure modes, injected for real into this session's own PostgreSQL database:
a serialization failure (SQLSTATE 40001, raised by a trigger) or a dropped connection
(``pg_terminate_backend`` of the app's backends) at a chosen point of a request.

What a caller must see, whatever the point: a 503 ``SERVICE_UNAVAILABLE`` in the JSON error
envelope (never a 500 or HTML); nothing half-written in the database; the wallet's own
record showing at most one application; and, once the fault is gone, the retry with the
same key succeeding with exactly one wallet operation, then replayed byte-for-byte.

Points after the wallet call leave the movement *pending*. The failed settle frees its lease
in a fresh transaction, so the retry re-drives at once; were the database still failing, the
retry would get ``409 IDEMPOTENCY_KEY_IN_USE`` with an honest ``Retry-After`` until the lease
ran out, which the caller here honours. The worlds use short wallet timeouts and leases so
that any such wait stays around a second.

PostgreSQL only (triggers, ``pg_terminate_backend``): skipped, or failed under
``LOOTBOX_REQUIRE_SERVICES``, where PostgreSQL or Redis cannot be reached.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from lootbox.persistence.database import normalize_database_url
from lootbox.services.context import ServiceContext
from lootbox.services.purchase import purchase_key
from lootbox.services.reconcile import reconcile_once
from tests.e2e.conftest import (
    GOLD_CASHBACK_EUR,
    PLAYER,
    Reply,
    StackConfig,
    World,
    WorldFactory,
)
from tests.e2e.db_faults import (
    ConnectionKiller,
    HookedWallet,
    SerializationFaults,
    drop_connection_at,
    ledger_inconsistencies,
    statement_matches,
)
from tests.processes import wait_until
from tests.services import postgres_url, redis_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

GOLD_PRICE = 500
# Every wait in this file is bounded by this; the leases below are far shorter.
RETRY_DEADLINE_SECONDS = 8.0
FAST_LEASES: dict[str, Any] = {
    "wallet_connect_timeout_seconds": 0.5,
    "wallet_read_timeout_seconds": 1.0,
    "movement_lease_seconds": 1.6,
    "idempotency_lease_seconds": 1.5,
}


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> StackConfig:
    """PostgreSQL and real Redis only (overrides the e2e two-stack parametrization)."""
    database_url = request.getfixturevalue("postgres_db")  # skips/fails if unreachable
    return StackConfig("postgresql-redis", str(database_url), redis_url())


@pytest.fixture
def world(make_world: WorldFactory) -> World:
    return make_world(**FAST_LEASES)


@pytest.fixture
def killer(stack: StackConfig) -> Iterator[ConnectionKiller]:
    terminator = ConnectionKiller(stack.database_url)
    try:
        yield terminator
    finally:
        terminator.close()


# --- requests and what the user checks ----------------------------------------------------

Endpoint = Literal["cashout", "cancel", "open", "purchase"]
# Where the fault strikes: before any money call, after the wallet applied the operation
# (the settle step), after the business commit (storing the idempotent answer), or in a
# use case that calls no wallet at all.
Moment = Literal["before_wallet", "after_wallet", "no_wallet"]


@dataclass(frozen=True)
class Call:
    endpoint: Endpoint
    body: dict[str, Any]
    key: str  # the request's idempotency key

    @property
    def path(self) -> str:
        return f"/api/s2s/{self.endpoint}"


def prepare(world: World, endpoint: Endpoint) -> Call:
    """A request on ``endpoint`` that succeeds when nothing fails."""
    if endpoint == "cashout":
        item_id = world.win_item("gold")["inventoryItemId"]
        body = {"playerExternalId": PLAYER, "inventoryItemId": item_id}
        return Call(endpoint, body, f"cashback:inventory:{item_id}")
    if endpoint in ("cancel", "open"):
        public_id = world.hold_round("gold")
        body = {"playerExternalId": PLAYER, "roundPublicId": public_id}
        prefix = "refund" if endpoint == "cancel" else "open"
        return Call(endpoint, body, f"{prefix}:round:{public_id}")
    body = world.purchase_body("gold")
    return Call(endpoint, body, purchase_key(PLAYER, body["clientActionId"]))


def send(world: World, call: Call) -> Reply:
    return world.api.post(call.path, call.body)


def assert_service_unavailable(reply: Reply) -> None:
    assert reply.status == 503, (reply.status, reply.data[:300])
    assert reply.code == "SERVICE_UNAVAILABLE", reply.data  # .code checks the envelope
    assert not reply.replayed


def retry_honouring_retry_after(world: World, call: Call) -> tuple[Reply, list[Reply]]:
    """Retry as a well-behaved caller does: on 409 IDEMPOTENCY_KEY_IN_USE, wait the
    Retry-After it was given and try again. The final answer and the 409s on the way."""
    deadline = time.monotonic() + RETRY_DEADLINE_SECONDS
    waits: list[Reply] = []
    while True:
        reply = send(world, call)
        if reply.status != 409:
            return reply, waits
        assert reply.code == "IDEMPOTENCY_KEY_IN_USE", reply.data
        retry_after = int(reply.headers["Retry-After"])
        assert 1 <= retry_after <= 5, retry_after
        waits.append(reply)
        assert time.monotonic() + retry_after < deadline, f"still in use after {len(waits)}"
        time.sleep(retry_after)


def wallet_mark(world: World) -> int:
    return len(world.wallet.transactions())


def applied_since(world: World, mark: int) -> list[dict[str, Any]]:
    """The wallet's own record of what it applied since ``mark``."""
    return world.wallet.transactions()[mark:]


def assert_consistent(world: World) -> None:
    problems = ledger_inconsistencies(world.query, world.wallet.transactions())
    assert not problems, problems


def assert_success(world: World, call: Call, reply: Reply, applied: list[dict[str, Any]]) -> None:
    """The 200 the caller was owed, and the one wallet operation behind it."""
    assert reply.status == 200, (reply.status, reply.data[:300])
    doc = reply.json
    if call.endpoint == "cashout":
        item_id = call.body["inventoryItemId"]
        assert doc["item"] == {
            "inventoryItemId": item_id,
            "state": "cashed_back",
            "cashbackMinor": GOLD_CASHBACK_EUR,
            "currency": "EUR",
        }
        (credit,) = applied
        assert (credit["type"], credit["idempotencyKey"], credit["amountMinor"]) == (
            "wallet.credit",
            call.key,
            GOLD_CASHBACK_EUR,
        )
        assert doc["balanceAfterMinor"] == credit["balanceAfterMinor"]
    elif call.endpoint == "cancel":
        assert doc["round"]["status"] == "refunded"
        assert doc["round"]["refundedMinor"] == GOLD_PRICE
        (credit,) = applied
        assert (credit["type"], credit["idempotencyKey"], credit["amountMinor"]) == (
            "wallet.credit",
            call.key,
            GOLD_PRICE,
        )
        assert doc["balanceAfterMinor"] == credit["balanceAfterMinor"]
    elif call.endpoint == "open":
        assert doc["round"]["status"] == "settled"
        assert [item["state"] for item in doc["wonItems"]] == ["unresolved"]
        assert applied == []
    else:
        assert doc["round"]["status"] == "settled"
        assert [item["state"] for item in doc["wonItems"]] == ["unresolved"]
        (debit,) = applied
        assert (debit["type"], debit["idempotencyKey"], debit["amountMinor"]) == (
            "wallet.debit",
            f"round:{doc['round']['publicId']}",
            GOLD_PRICE,
        )


def assert_replayed(world: World, call: Call, first: Reply) -> None:
    before = world.wallet.transactions()
    replay = send(world, call)
    assert replay.status == 200
    assert replay.replayed
    assert replay.data == first.data
    assert world.wallet.transactions() == before


def run_fault(
    world: World,
    call: Call,
    moment: Moment,
    fault: Callable[[], AbstractContextManager[Any]],
    lift: Callable[[], None] = lambda: None,
) -> None:
    """The whole story: the request fails at ``moment`` with 503 and nothing half-written,
    the wallet applied at most the one operation, and once ``lift`` removed the fault the
    retry succeeds with exactly one application and then replays byte-for-byte."""
    mark = wallet_mark(world)
    with fault():
        failed = send(world, call)
    assert_service_unavailable(failed)
    assert_consistent(world)
    during = applied_since(world, mark)
    assert len(during) == (1 if moment == "after_wallet" else 0), during

    lift()
    retried, waits = retry_honouring_retry_after(world, call)

    if moment in ("before_wallet", "no_wallet"):
        # Nothing was leased or claimed: the very next attempt runs.
        assert waits == []
    assert_success(world, call, retried, applied_since(world, mark))
    if during:  # the operation applied during the failure is the one, not a second
        assert applied_since(world, mark) == during
    assert not retried.replayed  # the first success; the 503 stored nothing to replay
    assert_replayed(world, call, retried)
    assert_consistent(world)


# --- serialization failures -------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    id: str
    endpoint: Endpoint
    moment: Moment
    table: str
    operation: Literal["INSERT", "UPDATE"]
    when: str | None = None


SETTLE_ACCEPTED = "OLD.status = 'pending' AND NEW.status = 'accepted'"

SERIALIZATION_POINTS = [
    Point("cashout_claim_key", "cashout", "before_wallet", "idempotency_records", "INSERT"),
    Point(
        "cashout_record_credit",
        "cashout",
        "before_wallet",
        "money_movements",
        "INSERT",
        "NEW.reason = 'cashback'",
    ),
    Point(
        "cashout_reserve_item",
        "cashout",
        "before_wallet",
        "inventory_items",
        "UPDATE",
        "NEW.state = 'cashback_pending'",
    ),
    Point(
        "cashout_settle_ledger",
        "cashout",
        "after_wallet",
        "money_movements",
        "UPDATE",
        SETTLE_ACCEPTED,
    ),
    Point(
        "cashout_settle_item",
        "cashout",
        "after_wallet",
        "inventory_items",
        "UPDATE",
        "NEW.state = 'cashed_back'",
    ),
    Point(
        "cashout_store_answer",
        "cashout",
        "after_wallet",  # in the settle's transaction now: there is no later commit
        "idempotency_records",
        "UPDATE",
        "NEW.state = 'completed'",
    ),
    Point("purchase_insert_round", "purchase", "before_wallet", "rounds", "INSERT"),
    Point(
        "purchase_record_debit",
        "purchase",
        "before_wallet",
        "money_movements",
        "INSERT",
        "NEW.kind = 'debit'",
    ),
    Point(
        "purchase_settle_ledger",
        "purchase",
        "after_wallet",
        "money_movements",
        "UPDATE",
        SETTLE_ACCEPTED,
    ),
    Point("purchase_draw_items", "purchase", "after_wallet", "inventory_items", "INSERT"),
    Point(
        "cancel_reserve_round",
        "cancel",
        "before_wallet",
        "rounds",
        "UPDATE",
        "NEW.status = 'refund_pending'",
    ),
    Point(
        "cancel_settle_round",
        "cancel",
        "after_wallet",
        "rounds",
        "UPDATE",
        "NEW.status = 'refunded'",
    ),
    Point("open_draw_items", "open", "no_wallet", "inventory_items", "INSERT"),
]


@pytest.mark.parametrize("point", SERIALIZATION_POINTS, ids=lambda p: p.id)
def test_a_serialization_failure_answers_503_writes_nothing_half_and_the_retry_succeeds(
    world: World, faults: SerializationFaults, point: Point
) -> None:
    call = prepare(world, point.endpoint)

    @contextmanager
    def serialization_failure() -> Iterator[None]:
        faults.arm(point.id, table=point.table, operation=point.operation, when=point.when)
        yield
        assert faults.hits(point.id) == 1  # the trigger fired, once, for this request

    run_fault(
        world, call, point.moment, serialization_failure, lift=lambda: faults.disarm(point.id)
    )
    assert faults.hits(point.id) == 1  # disarmed: the retry went through untouched


def test_while_a_settle_failed_the_credit_is_pending_and_no_other_key_credits_again(
    world: World, faults: SerializationFaults
) -> None:
    """Between the 503 and the retry: the credit is pending (the wallet has it), the item is
    not cashed back, and a request with another key re-drives that same credit instead of
    sending a second one."""
    call = prepare(world, "cashout")
    item_id = call.body["inventoryItemId"]
    faults.arm("settle", table="money_movements", operation="UPDATE", when=SETTLE_ACCEPTED)
    assert_service_unavailable(send(world, call))
    assert subject_rows(world, call) == [("pending", "cashback_pending")]
    faults.disarm("settle")
    other = Call("cashout", {**call.body, "idempotencyKey": "another-key"}, "another-key")

    answer, waits = retry_honouring_retry_after(world, other)

    # The failed settle freed its lease in a fresh transaction: no waiting it out.
    assert waits == []
    assert answer.status == 422 and answer.code == "CASHBACK_NOT_AVAILABLE", answer.data
    (credit,) = world.wallet.credits(inventoryItemId=item_id)
    assert credit["idempotencyKey"] == call.key
    assert subject_rows(world, call) == [("accepted", "cashed_back")]
    assert_consistent(world)
    # The original key now gets its answer from the ledger.
    retried = send(world, call)
    assert_success(world, call, retried, world.wallet.credits(inventoryItemId=item_id))
    assert_replayed(world, call, retried)


# --- dropped connections --------------------------------------------------------------------


def test_connections_dropped_while_idle_are_replaced_before_the_next_request_uses_them(
    world: World, killer: ConnectionKiller
) -> None:
    """Every backend of the app's pool is terminated between requests. ``pool_pre_ping``
    tests each connection on checkout and replaces a dead one before any statement runs,
    so the next request never notices: 200, one credit."""
    call = prepare(world, "cashout")
    mark = wallet_mark(world)
    terminated = killer.terminate_others()
    assert terminated, "the app's pool held no connection to drop"

    reply = send(world, call)

    assert_success(world, call, reply, applied_since(world, mark))
    assert_replayed(world, call, reply)
    assert_consistent(world)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("endpoint", ["cashout", "cancel", "purchase"])
def test_connections_dropped_around_the_wallet_call_are_replaced_and_money_moves_once(
    world: World, killer: ConnectionKiller, endpoint: Endpoint, when: str
) -> None:
    """The app's backends are terminated from inside the wallet call (before or after the
    wallet applied it), between the lease transaction and the settle transaction. No
    connection is checked out across the call, so the settle transaction checks out a dead
    one, the pre-ping replaces it, and the request completes: 200, exactly one operation."""
    call = prepare(world, endpoint)
    services: ServiceContext = world.app.extensions["lootbox"].services
    terminated: list[int] = []
    states: list[str] = []

    def drop(_call: Any) -> None:
        states.extend(killer.states())
        terminated.extend(killer.terminate_others())

    real = services.wallet
    hooked = HookedWallet(real, **{when: drop})
    services.wallet = hooked
    mark = wallet_mark(world)
    try:
        reply = send(world, call)
    finally:
        services.wallet = real

    assert len(hooked.calls) == 1
    assert terminated, "no connection was dropped"
    # Nothing is held open across the network: every app connection was idle in the pool.
    assert states and set(states) == {"idle"}, states
    assert_success(world, call, reply, applied_since(world, mark))
    assert_replayed(world, call, reply)
    assert_consistent(world)


@dataclass(frozen=True)
class DropPoint:
    id: str
    endpoint: Endpoint
    moment: Moment
    statement: str  # the statement the connection dies at (or after, with at_commit)
    values: tuple[Any, ...] = ()
    at_commit: bool = False


# Points inside a transaction, after its first statement (the first one is retried on a
# fresh connection: FIRST_STATEMENT_POINTS). The record and the settle are one statement
# each (a CTE moving the movement and its subject together), and the answer is stored in
# the settle's transaction, so there is no longer a drop point "after the business commit,
# before the answer is stored".
DROP_POINTS = [
    DropPoint("cashout_lock_item", "cashout", "before_wallet", "SELECT inventory_items.id"),
    DropPoint("cashout_record_credit", "cashout", "before_wallet", "WITH recorded AS"),
    DropPoint(
        "cashout_store_answer",
        "cashout",
        "after_wallet",
        "UPDATE idempotency_records",
        ("completed",),
    ),
    DropPoint(
        "cashout_settle_commit",
        "cashout",
        "after_wallet",
        "WITH settled AS",
        ("cashed_back",),
        at_commit=True,
    ),
    DropPoint("purchase_draw_items", "purchase", "after_wallet", "INSERT INTO inventory_items"),
    DropPoint(
        "cancel_settle_commit",
        "cancel",
        "after_wallet",
        "WITH settled AS",
        ("refunded",),
        at_commit=True,
    ),
]


@pytest.mark.parametrize("point", DROP_POINTS, ids=lambda p: p.id)
def test_a_connection_dropped_mid_transaction_answers_503_and_the_retry_succeeds(
    world: World, killer: ConnectionKiller, point: DropPoint
) -> None:
    """The app's backend is terminated while it holds the connection inside a transaction,
    just before a chosen statement (or that transaction's COMMIT). Past the first statement
    nothing can replace the connection: the transaction is lost, the request answers 503."""
    call = prepare(world, point.endpoint)
    engine = world.app.extensions["lootbox"].engine
    drops: list[Any] = []

    @contextmanager
    def dropped_connection() -> Iterator[None]:
        with drop_connection_at(
            engine,
            killer,
            statement_matches(point.statement, *point.values),
            at_commit=point.at_commit,
        ) as record:
            yield
        drops.append(record)
        assert len(record.fired_at) == 1, record
        assert record.terminated, record

    run_fault(world, call, point.moment, dropped_connection)
    assert len(drops) == 1


# A transaction's first statement: the claim's (before the wallet call) and the settle's
# (after it).
FIRST_STATEMENT_POINTS = [
    DropPoint("cashout_claim_key", "cashout", "before_wallet", "INSERT INTO idempotency_records"),
    DropPoint("cashout_settle", "cashout", "after_wallet", "WITH settled AS", ("cashed_back",)),
    DropPoint("cancel_settle", "cancel", "after_wallet", "WITH settled AS", ("refunded",)),
    DropPoint("purchase_settle_debit", "purchase", "after_wallet", "UPDATE money_movements"),
]


@pytest.mark.parametrize("point", FIRST_STATEMENT_POINTS, ids=lambda p: p.id)
def test_a_connection_dropped_at_a_transactions_first_statement_is_replaced_and_it_succeeds(
    world: World, killer: ConnectionKiller, point: DropPoint
) -> None:
    """The backend is terminated just before a transaction's first statement, while the
    app holds the connection (the pool's check at checkout saw it alive). Nothing of the
    transaction has happened, so that statement runs again on a fresh connection: the
    request succeeds, the wallet applied it once."""
    call = prepare(world, point.endpoint)
    engine = world.app.extensions["lootbox"].engine
    mark = wallet_mark(world)
    with drop_connection_at(
        engine, killer, statement_matches(point.statement, *point.values)
    ) as record:
        reply = send(world, call)
    assert len(record.fired_at) == 1, record
    assert record.terminated, record
    assert_success(world, call, reply, applied_since(world, mark))
    assert_replayed(world, call, reply)
    assert_consistent(world)


# --- the reconciler ------------------------------------------------------------------------


def wait_until_due(services: ServiceContext, count: int) -> None:
    """Until ``count`` pending movements' leases have run out (bounded)."""

    def due() -> bool:
        with services.uow_factory() as uow:
            return bool(uow.ledger.count_due_for_redrive(services.clock.now()) >= count)

    wait_until(due, RETRY_DEADLINE_SECONDS, f"{count} movements due")


def subject_rows(world: World, call: Call) -> list[tuple[Any, ...]]:
    """(movement status, subject state) of the operation ``call`` asked for."""
    if call.endpoint == "cashout":
        sql = (
            "SELECT m.status, i.state FROM money_movements m"
            " JOIN inventory_items i ON i.id = m.inventory_item_id WHERE i.id = :subject"
        )
        subject = call.body["inventoryItemId"]
    elif call.endpoint == "cancel":
        sql = (
            "SELECT m.status, r.status FROM money_movements m JOIN rounds r ON r.id = m.round_id"
            " WHERE m.reason = 'refund' AND r.public_id = :subject"
        )
        subject = call.body["roundPublicId"]
    else:
        sql = (
            "SELECT m.status, r.status FROM money_movements m JOIN rounds r ON r.id = m.round_id"
            " WHERE m.kind = 'debit' AND r.client_action_id = :subject"
        )
        subject = call.body["clientActionId"]
    return [tuple(row) for row in world.query(sql, subject=subject)]


PENDING = {
    "cashout": ("pending", "cashback_pending"),
    "cancel": ("pending", "refund_pending"),
    "purchase": ("pending", "debit_pending"),
}
DONE = {
    "cashout": ("accepted", "cashed_back"),
    "cancel": ("accepted", "refunded"),
    "purchase": ("accepted", "settled"),
}


def fail_the_settle(world: World, faults: SerializationFaults, endpoint: Endpoint) -> Call:
    """A request whose wallet operation was applied but whose settle transaction hit a
    serialization failure: 503, the movement left pending. The fault stays armed."""
    call = prepare(world, endpoint)
    faults.arm("settle", table="money_movements", operation="UPDATE", when=SETTLE_ACCEPTED)
    assert_service_unavailable(send(world, call))
    assert subject_rows(world, call) == [PENDING[endpoint]]
    assert len(world.wallet.transactions(idempotencyKey=wallet_key(world, call))) == 1
    assert_consistent(world)
    return call


def wallet_key(world: World, call: Call) -> str:
    if call.endpoint == "purchase":
        (row,) = world.query(
            "SELECT public_id FROM rounds WHERE client_action_id = :c",
            c=call.body["clientActionId"],
        )
        return f"round:{row.public_id}"
    return call.key


@pytest.mark.parametrize("endpoint", ["cashout", "cancel", "purchase"])
def test_one_reconcile_pass_completes_what_a_settle_failure_left_pending(
    world: World, faults: SerializationFaults, endpoint: Endpoint
) -> None:
    call = fail_the_settle(world, faults, endpoint)
    faults.disarm("settle")
    services: ServiceContext = world.app.extensions["lootbox"].services
    wait_until_due(services, 1)
    before = world.wallet.transactions()

    summary = reconcile_once(services)

    assert summary.to_json() == {"examined": 1, "completed": 1, "refused": 0, "stillPending": 0}
    assert subject_rows(world, call) == [DONE[endpoint]]
    # Re-sent with the same key: the wallet answered from its record, applied nothing new.
    assert world.wallet.transactions() == before
    assert_consistent(world)

    # The caller's retry gets what it was owed, from the ledger, then replays it.
    retried = send(world, call)
    assert retried.status == 200, retried.data
    assert_success(world, call, retried, world.wallet.transactions(**_of_subject(call, retried)))
    assert world.wallet.transactions() == before
    assert_replayed(world, call, retried)


def _of_subject(call: Call, reply: Reply) -> dict[str, Any]:
    if call.endpoint == "cashout":
        return {"inventoryItemId": call.body["inventoryItemId"]}
    if call.endpoint == "cancel":
        return {"roundPublicId": call.body["roundPublicId"], "type": "wallet.credit"}
    return {"roundPublicId": reply.json["round"]["publicId"]}


def test_a_reconcile_pass_during_the_outage_moves_no_money_and_the_next_one_completes(
    world: World, faults: SerializationFaults
) -> None:
    call = fail_the_settle(world, faults, "cashout")
    services: ServiceContext = world.app.extensions["lootbox"].services
    wait_until_due(services, 1)

    # The settle fails again: that movement stays pending, and the pass goes on.
    during = reconcile_once(services)

    assert during.to_json() == {"examined": 1, "completed": 0, "refused": 0, "stillPending": 1}
    assert faults.hits("settle") == 2
    assert subject_rows(world, call) == [PENDING["cashout"]]
    assert len(world.wallet.credits(inventoryItemId=call.body["inventoryItemId"])) == 1
    assert_consistent(world)

    faults.disarm("settle")
    wait_until_due(services, 1)  # freed by the failed settle; waiting is a no-op then
    summary = reconcile_once(services)

    assert summary.to_json() == {"examined": 1, "completed": 1, "refused": 0, "stillPending": 0}
    assert subject_rows(world, call) == [DONE["cashout"]]
    retried = send(world, call)
    assert_success(
        world, call, retried, world.wallet.credits(inventoryItemId=call.body["inventoryItemId"])
    )
    assert_replayed(world, call, retried)
    assert_consistent(world)


def test_the_fault_harness_leaves_nothing_behind(stack: StackConfig, world: World) -> None:
    """A trigger leaked into the session's database would break every later test."""
    injected = SerializationFaults(stack.database_url)
    injected.arm("probe", table="rounds", operation="INSERT")
    assert world.query("SELECT 1 FROM pg_trigger WHERE tgname LIKE 'lootbox_test_fault_%'")

    injected.remove()

    assert not world.query("SELECT 1 FROM pg_trigger WHERE tgname LIKE 'lootbox_test_fault_%'")
    assert not world.query("SELECT 1 FROM pg_proc WHERE proname = 'lootbox_test_fault'")
    assert not world.query("SELECT 1 FROM pg_class WHERE relname LIKE 'lootbox_test_fault%'")
    assert world.win_item()["state"] == "unresolved"


def test_the_connection_killer_terminates_only_this_databases_backends(
    stack: StackConfig, killer: ConnectionKiller
) -> None:
    """The harness must never reach past the test's own database: a bystander connection
    to another database (a scratch one made for this check) survives, ours does not."""
    admin_url = make_url(normalize_database_url(postgres_url()))
    scratch = f"lootbox_t_{uuid.uuid4().hex[:10]}_bystander"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
    bystander_engine = create_engine(admin_url.set(database=scratch), poolclass=NullPool)
    victim_engine = create_engine(normalize_database_url(stack.database_url), poolclass=NullPool)
    try:
        with bystander_engine.connect() as bystander, victim_engine.connect() as victim:
            bystander_pid = bystander.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            victim_pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar()

            terminated = killer.terminate_others()

            assert victim_pid in terminated
            assert bystander_pid not in terminated
            assert bystander.exec_driver_sql("SELECT 1").scalar() == 1
            with pytest.raises(DBAPIError):
                victim.exec_driver_sql("SELECT 1")
    finally:
        bystander_engine.dispose()
        victim_engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.dispose()
