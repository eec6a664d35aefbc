"""The reference wallet's rules without HTTP: ``lootbox.refwallet.ledger``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lootbox.refwallet.ledger import (
    DEFAULT_OPERATOR,
    Applied,
    BalanceQuery,
    BalanceRead,
    InvalidCall,
    Ledger,
    MoneyCall,
    Refused,
    Replayed,
    parse_call,
)
from lootbox.refwallet.replay import ReplayCacheFull, SeenSignatures, SignedCall


def debit(key: str, amount: int, player: str = "u_1", **extra: Any) -> MoneyCall:
    return debit_for(DEFAULT_OPERATOR, key, amount, player, **extra)


def debit_for(operator: str, key: str, amount: int, player: str = "u_1", **extra: Any) -> MoneyCall:
    body = {
        "type": "wallet.debit",
        "idempotencyKey": key,
        "playerExternalId": player,
        "amountMinor": amount,
        "currency": "EUR",
        "reason": "open",
        **extra,
    }
    call = parse_call(body, operator)
    assert isinstance(call, MoneyCall)
    return call


def credit(key: str, amount: int, player: str = "u_1") -> MoneyCall:
    call = parse_call(
        {
            "type": "wallet.credit",
            "idempotencyKey": key,
            "playerExternalId": player,
            "amountMinor": amount,
            "currency": "EUR",
            "reason": "refund",
        }
    )
    assert isinstance(call, MoneyCall)
    return call


def balance_of(ledger: Ledger, player: str = "u_1") -> int:
    read = ledger.balance(BalanceQuery("wallet.balance", player, "EUR"))
    assert isinstance(read, BalanceRead)
    return read.balance_minor


def test_parse_call_reads_every_contract_field() -> None:
    call = debit("round:r_1", 500, roundPublicId="r_1", inventoryItemId=88, reference={"a": 1})

    assert call.idempotency_key == "round:r_1"
    assert call.amount_minor == 500
    assert call.round_public_id == "r_1"
    assert call.inventory_item_id == 88
    assert call.reference == {"a": 1}


@pytest.mark.parametrize(
    "changes",
    [
        {"amountMinor": 1.0},
        {"amountMinor": False},
        {"amountMinor": 0},
        {"currency": "EUR\n"},
        {"idempotencyKey": ""},
        {"playerExternalId": None},
        {"reason": "x" * 257},
        {"roundPublicId": 5},
        {"type": None},
    ],
)
def test_parse_call_refuses_what_the_contract_does_not_allow(changes: dict[str, Any]) -> None:
    body = {
        "type": "wallet.debit",
        "idempotencyKey": "k",
        "playerExternalId": "u_1",
        "amountMinor": 1,
        "currency": "EUR",
        "reason": "open",
        **changes,
    }

    with pytest.raises(InvalidCall):
        parse_call(body)


def test_a_new_account_starts_at_the_starting_balance() -> None:
    assert balance_of(Ledger(starting_balance_minor=777)) == 777


def test_debit_and_credit_move_the_balance_and_number_the_refs() -> None:
    ledger = Ledger(starting_balance_minor=1_000)

    first = ledger.apply(debit("k1", 300))
    second = ledger.apply(credit("k2", 50))

    assert isinstance(first, Applied)
    assert isinstance(second, Applied)
    assert first.transaction.balance_after_minor == 700
    assert second.transaction.balance_after_minor == 750
    assert [first.transaction.provider_txn_ref, second.transaction.provider_txn_ref] == [
        "rw_1",
        "rw_2",
    ]


def test_a_repeated_key_with_the_same_payload_replays_without_moving_money() -> None:
    ledger = Ledger(starting_balance_minor=1_000)
    applied = ledger.apply(debit("k1", 300))

    replay = ledger.apply(debit("k1", 300))

    assert isinstance(replay, Replayed)
    assert isinstance(applied, Applied)
    assert replay.transaction == applied.transaction
    assert balance_of(ledger) == 700
    assert len(ledger.transactions()) == 1


def test_a_repeated_key_with_another_payload_is_a_duplicate() -> None:
    ledger = Ledger(starting_balance_minor=1_000)
    ledger.apply(debit("k1", 300))

    outcome = ledger.apply(debit("k1", 300, roundPublicId="r_other"))

    assert isinstance(outcome, Refused)
    assert outcome.code == "DUPLICATE_TRANSACTION"
    assert balance_of(ledger) == 700


def test_a_refused_key_stays_free() -> None:
    ledger = Ledger(starting_balance_minor=100)

    refused = ledger.apply(debit("k1", 300))
    ledger.set_balance("u_1", "EUR", 1_000)
    accepted = ledger.apply(debit("k1", 300))

    assert isinstance(refused, Refused)
    assert refused.code == "INSUFFICIENT_FUNDS"
    assert isinstance(accepted, Applied)
    assert accepted.transaction.balance_after_minor == 700


def test_a_replay_wins_over_a_later_block() -> None:
    ledger = Ledger()
    ledger.apply(debit("k1", 300))
    ledger.block("u_1")

    assert isinstance(ledger.apply(debit("k1", 300)), Replayed)
    blocked = ledger.apply(debit("k2", 300))
    assert isinstance(blocked, Refused)
    assert blocked.code == "PLAYER_BLOCKED"


def test_provider_refs_stay_unique_across_a_reset() -> None:
    ledger = Ledger()
    ledger.apply(debit("k1", 1))
    ledger.reset()

    outcome = ledger.apply(debit("k1", 1))

    assert isinstance(outcome, Applied)
    assert outcome.transaction.provider_txn_ref == "rw_2"


def test_take_fault_honours_types_times_and_order() -> None:
    ledger = Ledger()
    ledger.add_fault({"mode": "refuse", "code": "A", "types": ["wallet.credit"], "times": 1})
    ledger.add_fault({"mode": "error", "times": 2})

    hits = [ledger.take_fault(t) for t in ["wallet.debit", "wallet.credit", "wallet.credit"]]

    assert [(h.mode, h.code) if h else None for h in hits] == [
        ("error", "WALLET_REFUSED"),
        ("refuse", "A"),
        ("error", "WALLET_REFUSED"),
    ]
    assert ledger.take_fault("wallet.debit") is None
    assert ledger.faults() == []
    assert ledger.stats()["faulted"] == 3


def test_a_seeded_rate_draws_the_same_calls_every_time() -> None:
    def draws() -> list[bool]:
        ledger = Ledger()
        ledger.add_fault({"mode": "error", "rate": 0.3, "seed": 42})
        return [ledger.take_fault("wallet.debit") is not None for _ in range(50)]

    first = draws()

    assert first == draws()
    assert 0 < sum(first) < 50


def test_concurrent_debits_neither_overdraw_nor_double_apply() -> None:
    ledger = Ledger(starting_balance_minor=10_000)
    barrier = threading.Barrier(20)

    def worker(n: int) -> None:
        barrier.wait(timeout=5)
        # Every key is sent five times: only the first may move money.
        for _ in range(5):
            ledger.apply(debit(f"k{n}", 1_000))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(ledger.transactions()) == 10
    assert balance_of(ledger) == 0
    assert ledger.stats()["applied"] == 10
    assert ledger.stats()["replayed"] == 40
    assert ledger.stats()["refused"] == 50


def test_a_reset_fault_is_taken_like_any_other() -> None:
    ledger = Ledger()
    ledger.add_fault({"mode": "reset", "times": 1, "types": ["wallet.credit"]})

    assert ledger.take_fault(debit("k1", 1)) is None
    hit = ledger.take_fault(credit("k2", 1))

    assert hit is not None and hit.mode == "reset"
    assert ledger.faults() == []
    assert ledger.stats()["faulted"] == 1


def test_a_duplicate_fault_matches_only_a_replay_of_an_applied_key() -> None:
    ledger = Ledger()
    listed = ledger.add_fault({"mode": "duplicate", "times": 1})
    assert (listed["code"], listed["status"]) == ("DUPLICATE_TRANSACTION", 409)

    # Not applied yet, only a type (no key to look up), another payload, a refused key:
    assert ledger.take_fault(debit("k1", 100)) is None
    ledger.apply(debit("k1", 100))
    assert ledger.take_fault("wallet.debit") is None
    assert ledger.take_fault(debit("k1", 999)) is None
    assert isinstance(ledger.apply(debit("k-big", 10**9)), Refused)
    assert ledger.take_fault(debit("k-big", 10**9)) is None
    assert ledger.faults()[0]["times"] == 1
    assert ledger.stats()["faulted"] == 0

    hit = ledger.take_fault(debit("k1", 100))

    assert hit is not None
    assert (hit.mode, hit.code, hit.status) == ("duplicate", "DUPLICATE_TRANSACTION", 409)
    assert hit.message
    assert ledger.faults() == []
    assert ledger.stats()["faulted"] == 1
    # Taking the fault moves nothing; the operation is still applied exactly once.
    assert len(ledger.transactions()) == 1
    assert isinstance(ledger.apply(debit("k1", 100)), Replayed)


def test_a_call_that_is_no_replay_falls_through_to_the_next_fault() -> None:
    ledger = Ledger()
    ledger.add_fault({"mode": "duplicate"})
    ledger.add_fault({"mode": "error", "times": 1})
    ledger.apply(debit("k1", 100))

    first = ledger.take_fault(debit("k2", 100))
    replay = ledger.take_fault(debit("k1", 100))

    assert first is not None and first.mode == "error"
    assert replay is not None and replay.mode == "duplicate"


def test_calls_that_are_no_replays_do_not_draw_from_a_duplicate_faults_rate() -> None:
    def replay_hits(interleave: bool) -> list[bool]:
        ledger = Ledger()
        ledger.apply(debit("k1", 100))
        ledger.add_fault({"mode": "duplicate", "rate": 0.5, "seed": 3})
        hits = []
        for n in range(30):
            if interleave:
                assert ledger.take_fault(debit(f"fresh-{n}", 1)) is None
            hits.append(ledger.take_fault(debit("k1", 100)) is not None)
        return hits

    pattern = replay_hits(interleave=False)

    assert pattern == replay_hits(interleave=True)
    assert 0 < sum(pattern) < 30


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "duplicate", "code": "DUPLICATE_TRANSACTION"},
        {"mode": "duplicate", "code": "OTHER"},
        {"mode": "duplicate", "status": 409},
        {"mode": "duplicate", "types": ["wallet.balance"]},
        {"mode": "duplicate", "types": ["wallet.credit", "wallet.balance"]},
        {"mode": "reset", "times": 0},
        {"mode": "reset", "types": "wallet.debit"},
        {"mode": "Reset"},
    ],
)
def test_invalid_reset_and_duplicate_faults_are_refused(spec: dict[str, Any]) -> None:
    ledger = Ledger()

    with pytest.raises(InvalidCall):
        ledger.add_fault(spec)

    assert ledger.faults() == []


def test_a_duplicate_faults_message_can_be_chosen() -> None:
    ledger = Ledger()
    ledger.add_fault({"mode": "duplicate", "message": "no replays here"})
    ledger.apply(credit("c1", 5))

    hit = ledger.take_fault(credit("c1", 5))

    assert hit is not None and hit.message == "no replays here"


def test_a_refuse_fault_never_refuses_a_replay_of_an_applied_key() -> None:
    """A refusal must mean "not applied": a client that takes it at its word (frees the
    item) would otherwise credit twice. The replay passes the fault by, using up nothing."""
    ledger = Ledger()
    ledger.apply(debit("k1", 300))
    ledger.add_fault({"mode": "refuse", "code": "PLAYER_BLOCKED", "times": 1})

    assert ledger.take_fault(debit("k1", 300)) is None
    hit = ledger.take_fault(debit("k2", 300))
    assert hit is not None and hit.code == "PLAYER_BLOCKED"


# --- operators ---------------------------------------------------------------------------


def test_two_operators_with_the_same_key_and_player_are_two_operations_on_two_accounts() -> None:
    ledger = Ledger(starting_balance_minor=1_000)

    first = ledger.apply(debit_for("casino-a", "k1", 300))
    second = ledger.apply(debit_for("casino-b", "k1", 300))

    assert isinstance(first, Applied)
    assert isinstance(second, Applied)
    assert first.transaction.balance_after_minor == second.transaction.balance_after_minor == 700
    assert [t["operator"] for t in ledger.transactions("casino-b")] == ["casino-b"]
    assert len(ledger.transactions()) == 2


def test_a_player_blocked_at_one_operator_is_not_blocked_at_another() -> None:
    ledger = Ledger()
    ledger.block("u_1", "casino-a")

    blocked = ledger.apply(debit_for("casino-a", "k1", 1))
    elsewhere = ledger.apply(debit_for("casino-b", "k1", 1))

    assert isinstance(blocked, Refused) and blocked.code == "PLAYER_BLOCKED"
    assert isinstance(elsewhere, Applied)
    assert ledger.blocked("casino-a") == ["u_1"]
    assert ledger.blocked("casino-b") == []


def test_a_balance_set_for_one_operator_stays_with_it() -> None:
    ledger = Ledger(starting_balance_minor=1_000)
    ledger.set_balance("u_1", "EUR", 5, "casino-a")

    refused = ledger.apply(debit_for("casino-a", "k1", 10))
    applied = ledger.apply(debit_for("casino-b", "k1", 10))

    assert isinstance(refused, Refused) and refused.code == "INSUFFICIENT_FUNDS"
    assert isinstance(applied, Applied) and applied.transaction.balance_after_minor == 990
    assert [row["operator"] for row in ledger.balances("casino-a")] == ["casino-a"]


def test_a_call_that_names_no_operator_is_the_first_plain_secrets() -> None:
    assert debit("k1", 1).operator == "secret-1"


# --- seen signatures ---------------------------------------------------------------------


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SIGNED = SignedCall(operator="secret-1", timestamp=1_000, signature="ab" * 32)


def test_a_signature_is_new_once_per_operator() -> None:
    seen = SeenSignatures(300, clock=ManualClock(1_000))

    assert seen.first_use(SIGNED) is True
    assert seen.first_use(SIGNED) is False
    assert seen.first_use(SignedCall("secret-2", SIGNED.timestamp, SIGNED.signature)) is True


def test_a_signature_is_remembered_until_its_timestamp_leaves_the_window() -> None:
    clock = ManualClock(1_000)
    seen = SeenSignatures(300, clock=clock)
    seen.first_use(SIGNED)

    clock.now = 1_300  # the last second the wallet accepts the timestamp
    assert seen.first_use(SIGNED) is False
    clock.now = 1_300.5  # from here the timestamp is refused as too old
    assert seen.first_use(SignedCall("secret-1", 1_300, "cd" * 32)) is True

    assert len(seen) == 1


def test_a_full_cache_refuses_new_signatures_but_still_knows_the_old_ones() -> None:
    clock = ManualClock(1_000)
    seen = SeenSignatures(300, capacity=1, clock=clock)
    seen.first_use(SIGNED)
    other = SignedCall("secret-1", 1_000, "cd" * 32)

    with pytest.raises(ReplayCacheFull):
        seen.first_use(other)
    assert seen.first_use(SIGNED) is False

    clock.now = 1_301
    assert seen.first_use(SignedCall("secret-1", 1_301, "ef" * 32)) is True


def test_a_forgotten_signature_is_new_again() -> None:
    seen = SeenSignatures(300, clock=ManualClock(1_000))
    seen.first_use(SIGNED)

    seen.forget(SIGNED)

    assert seen.first_use(SIGNED) is True


def test_of_many_threads_with_one_signature_exactly_one_uses_it_first() -> None:
    seen = SeenSignatures(300, clock=ManualClock(1_000))
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def use() -> None:
        barrier.wait(timeout=5)
        results.append(seen.first_use(SIGNED))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert sorted(results) == [False] * 7 + [True]
