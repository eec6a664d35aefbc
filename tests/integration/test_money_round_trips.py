"""What a first-time money request costs PostgreSQL, counted on the engine: the design
(docs/design.md, "Exactly-once money movement") is two transactions and at most 10 round
trips for a cashout or a cancel. A change that adds a statement, a pre-ping or a third
transaction to the hot path fails here, whatever it does to the benchmark."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from lootbox.domain.states import PurchaseMode
from lootbox.services.cancel import CancelRound, default_cancel_key
from lootbox.services.cashout import CashOut, default_cashout_key
from tests.fakes import ServiceHarness, box_doc, cancel_round, cash_out, prize_doc

PLAYER = "u_8431"


def round_trips(harness: ServiceHarness, request: Callable[[], Any]) -> Counter[str]:
    """What ``request`` sent PostgreSQL: statements, BEGINs, COMMITs and ROLLBACKs (each
    one round trip; the pool checks connections without one)."""
    counts: Counter[str] = Counter()

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    listeners: dict[str, Callable[..., None]] = {
        "before_cursor_execute": statement,
        "begin": lambda _conn: counts.update(["begin"]),
        "commit": lambda _conn: counts.update(["commit"]),
        "rollback": lambda _conn: counts.update(["rollback"]),
    }
    for name, listener in listeners.items():
        event.listen(harness.engine, name, listener)
    try:
        request()
    finally:
        for name, listener in listeners.items():
            event.remove(harness.engine, name, listener)
    counts["round trips"] = sum(counts.values())
    return counts


def test_a_first_time_cashout_is_two_transactions_and_at_most_ten_round_trips(
    harness: ServiceHarness,
) -> None:
    operator = harness.create_operator()
    versions = harness.import_catalog(
        operator.slug, box_doc("gold", prizes=[prize_doc("Ring", 3200)])
    )
    (won,) = harness.buy(operator, PLAYER, versions["gold"]).won_items
    item = won.inventory_item_id
    command = CashOut(PLAYER, item, None, default_cashout_key(item))
    authenticated = harness.authenticated(operator)

    counts = round_trips(harness, lambda: cash_out(harness.ctx, authenticated, command))

    assert (counts["begin"], counts["commit"], counts["rollback"]) == (2, 2, 0)
    assert counts["round trips"] <= 10, counts
    assert len(harness.wallet.applied_credits) == 1


def test_a_first_time_cancel_is_two_transactions_and_at_most_ten_round_trips(
    harness: ServiceHarness,
) -> None:
    operator = harness.create_operator()
    versions = harness.import_catalog(operator.slug, box_doc("gold", refundable=True))
    held = harness.buy(operator, PLAYER, versions["gold"], mode=PurchaseMode.PREPAY)
    command = CancelRound(PLAYER, held.public_id, default_cancel_key(held.public_id))
    authenticated = harness.authenticated(operator)

    counts = round_trips(harness, lambda: cancel_round(harness.ctx, authenticated, command))

    assert (counts["begin"], counts["commit"], counts["rollback"]) == (2, 2, 0)
    assert counts["round trips"] <= 10, counts
    assert len(harness.wallet.applied_credits) == 1
