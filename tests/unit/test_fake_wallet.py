"""The fake wallet keeps the wallet contract (§6), so service tests against it mean something."""

from __future__ import annotations

from lootbox.domain.records import WalletSettings
from lootbox.ports import WalletAccepted, WalletMoneyCall, WalletOutcomeUnknown, WalletRefusal
from tests.fakes import FakeWallet

SETTINGS = WalletSettings(url="https://wallet.example/rpc", secret="s")


def debit(key: str, amount: int, player: str = "u_1") -> WalletMoneyCall:
    return WalletMoneyCall(
        "wallet.debit", key, player, amount, "EUR", "open", round_public_id="r_1"
    )


def credit(key: str, amount: int, player: str = "u_1") -> WalletMoneyCall:
    return WalletMoneyCall("wallet.credit", key, player, amount, "EUR", "cashback")


def test_debits_and_credits_move_the_players_balance() -> None:
    wallet = FakeWallet(starting_balance=1000)
    assert wallet.send(SETTINGS, debit("d1", 300)) == WalletAccepted(700, "fake-1")
    assert wallet.send(SETTINGS, credit("c1", 50)) == WalletAccepted(750, "fake-2")
    assert wallet.balance("u_1", "EUR") == 750
    assert wallet.balance("u_2", "EUR") == 1000
    assert wallet.balance("u_1", "USD") == 1000


def test_the_same_key_and_call_is_answered_again_without_moving_money() -> None:
    wallet = FakeWallet(starting_balance=1000)
    first = wallet.send(SETTINGS, credit("c1", 50))
    assert wallet.send(SETTINGS, credit("c1", 50)) == first
    assert wallet.balance("u_1", "EUR") == 1050
    assert len(wallet.applied) == 1
    assert len(wallet.sent) == 2


def test_the_same_key_with_another_payload_is_refused() -> None:
    wallet = FakeWallet()
    wallet.send(SETTINGS, credit("c1", 50))
    answer = wallet.send(SETTINGS, credit("c1", 51))
    assert isinstance(answer, WalletRefusal)
    assert answer.code == "DUPLICATE_TRANSACTION"
    assert len(wallet.applied) == 1


def test_a_refused_key_is_not_consumed() -> None:
    wallet = FakeWallet(starting_balance=100)
    refused = wallet.send(SETTINGS, debit("d1", 500))
    assert isinstance(refused, WalletRefusal)
    assert refused.code == "INSUFFICIENT_FUNDS"
    wallet.set_balance("u_1", "EUR", 600)
    assert wallet.send(SETTINGS, debit("d1", 500)) == WalletAccepted(100, "fake-1")


def test_a_blocked_player_is_refused() -> None:
    wallet = FakeWallet()
    wallet.block("u_1")
    answer = wallet.send(SETTINGS, credit("c1", 50))
    assert isinstance(answer, WalletRefusal)
    assert answer.code == "PLAYER_BLOCKED"
    assert wallet.applied == []


def test_scripted_failures_are_used_once_each_in_order() -> None:
    wallet = FakeWallet(starting_balance=1000)
    wallet.fail_next(WalletOutcomeUnknown("timeout"), times=2)
    wallet.refuse_next("LIMIT_EXCEEDED")
    assert wallet.send(SETTINGS, credit("c1", 50)) == WalletOutcomeUnknown("timeout")
    assert wallet.send(SETTINGS, credit("c1", 50)) == WalletOutcomeUnknown("timeout")
    refusal = wallet.send(SETTINGS, credit("c1", 50))
    assert isinstance(refusal, WalletRefusal)
    assert refusal.code == "LIMIT_EXCEEDED"
    assert wallet.applied == []
    assert isinstance(wallet.send(SETTINGS, credit("c1", 50)), WalletAccepted)
    assert len(wallet.sent) == 4


def test_apply_then_unknown_moves_money_but_loses_the_answer() -> None:
    wallet = FakeWallet(starting_balance=1000)
    wallet.apply_then_unknown()
    assert isinstance(wallet.send(SETTINGS, credit("c1", 50)), WalletOutcomeUnknown)
    assert wallet.balance("u_1", "EUR") == 1050
    # The retry with the same key gets the stored answer, not a second credit.
    assert wallet.send(SETTINGS, credit("c1", 50)) == WalletAccepted(1050, "fake-1")
    assert len(wallet.applied_credits) == 1


def test_a_hook_runs_while_the_call_is_in_flight() -> None:
    wallet = FakeWallet()
    seen: list[str] = []
    wallet.during_next_send(lambda call: seen.append(call.idempotency_key))
    wallet.send(SETTINGS, credit("c1", 50))
    wallet.send(SETTINGS, credit("c2", 50))
    assert seen == ["c1"]
