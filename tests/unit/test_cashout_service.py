"""cash_out: a won, unresolved item becomes wallet credit exactly once (contract §5, §7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from lootbox.domain.errors import (
    CashbackNotAvailable,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InventoryItemNotFound,
    WalletRefused,
    WalletUnavailable,
)
from lootbox.domain.records import Operator
from lootbox.domain.states import ItemState
from lootbox.ports import WalletMoneyCall
from lootbox.services.cashout import CashOut, CashoutResult, default_cashout_key
from tests.fakes import ServiceHarness, WorkerDied, box_doc, cash_out, prize_doc

PLAYER = "u_8431"
START = 100_000
PRICE = 500


@dataclass
class Won:
    harness: ServiceHarness
    operator: Operator
    item_id: int

    def cash_out(self, currency: str | None = None, key: str | None = None) -> CashoutResult:
        return cash_out(
            self.harness.ctx, self.harness.authenticated(self.operator), self.command(currency, key)
        )

    def command(self, currency: str | None = None, key: str | None = None) -> CashOut:
        return CashOut(
            player_external_id=PLAYER,
            inventory_item_id=self.item_id,
            currency=currency,
            idempotency_key=key or default_cashout_key(self.item_id),
        )

    @property
    def state(self) -> ItemState:
        return self.harness.item(self.operator.id, self.item_id).state

    @property
    def credits(self) -> list[WalletMoneyCall]:
        return self.harness.wallet.applied_credits


def win(
    harness: ServiceHarness,
    box: dict[str, Any] | None = None,
    **operator_options: Any,
) -> Won:
    """An operator (EUR, 10 % default cashback, USD and JPY rates) and a player who won one
    3200-cent prize from a one-prize box."""
    operator = harness.create_operator(
        rates={"USD": "1.1042", "JPY": "162.37"},
        **operator_options,
    )
    versions = harness.import_catalog(operator.slug, box or box_doc("gold", price_minor=PRICE))
    outcome = harness.buy(operator, PLAYER, next(iter(versions.values())))
    (item,) = outcome.won_items
    return Won(harness, operator, item.inventory_item_id)


# --- the happy paths -------------------------------------------------------------------------


def test_cashout_credits_the_cashback_in_the_operator_currency(harness: ServiceHarness) -> None:
    won = win(harness)

    result = won.cash_out()

    assert result == CashoutResult(
        inventory_item_id=won.item_id,
        state="cashed_back",
        cashback_minor=320,
        currency="EUR",
        balance_after_minor=START - PRICE + 320,
    )
    (credit,) = won.credits
    assert credit.to_body() == {
        "type": "wallet.credit",
        "idempotencyKey": f"cashback:inventory:{won.item_id}",
        "playerExternalId": PLAYER,
        "amountMinor": 320,
        "currency": "EUR",
        "reason": "cashback",
        "inventoryItemId": won.item_id,
        "reference": {"operatorAmountMinor": 320, "operatorCurrency": "EUR", "rate": "1"},
    }
    assert won.state is ItemState.CASHED_BACK


def test_cashout_in_the_operator_currency_named_explicitly_is_not_converted(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    assert won.cash_out(currency="EUR").cashback_minor == 320
    assert won.credits[0].reference == {
        "operatorAmountMinor": 320,
        "operatorCurrency": "EUR",
        "rate": "1",
    }


def test_cashout_in_another_currency_converts_at_the_operators_rate(
    harness: ServiceHarness,
) -> None:
    won = win(harness)

    result = won.cash_out(currency="USD")

    # 320 EUR cents x 1.1042 = 353.344 -> 353 USD cents (the contract's example).
    assert (result.cashback_minor, result.currency) == (353, "USD")
    (credit,) = won.credits
    assert (credit.amount_minor, credit.currency) == (353, "USD")
    assert credit.reference == {
        "operatorAmountMinor": 320,
        "operatorCurrency": "EUR",
        "rate": "1.1042",
    }
    assert harness.wallet.balance(PLAYER, "USD") == START + 353
    assert result.balance_after_minor == START + 353


def test_cashout_into_a_currency_without_minor_units_rounds_to_whole_units(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    # 3.20 EUR x 162.37 = 519.584 JPY -> 520.
    assert won.cash_out(currency="JPY").cashback_minor == 520


def test_the_default_key_names_the_inventory_item() -> None:
    assert default_cashout_key(88) == "cashback:inventory:88"


def test_the_cashback_floor_is_taken_in_the_operator_currency_before_converting(
    harness: ServiceHarness,
) -> None:
    # 3209 x 10 % = 320.9 -> 320 EUR cents first; then 320 x 1.1042 = 353.3 -> 353.
    # (Converting first would give 3543.4 x 10 % = 354.)
    won = win(harness, box_doc("gold", prizes=[prize_doc("Odd ring", 3209)]))
    assert won.cash_out(currency="USD").cashback_minor == 353


def test_the_cashback_rule_is_read_at_cashout_time(harness: ServiceHarness) -> None:
    won = win(harness)
    harness.update_operator("acme", cashback_bps=2500)
    assert won.cash_out().cashback_minor == 800


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (
            box_doc("gold", cashbackBps=1500, prizes=[prize_doc("Ring", 3200, cashback_bps=2500)]),
            800,
        ),
        (box_doc("gold", cashbackBps=1500), 480),
        (box_doc("gold"), 320),
    ],
    ids=["prize-rule", "box-rule", "operator-default"],
)
def test_the_most_specific_cashback_rule_applies(
    harness: ServiceHarness, box: dict[str, Any], expected: int
) -> None:
    assert win(harness, box).cash_out().cashback_minor == expected


# --- not found ---------------------------------------------------------------------------------


def test_an_unknown_item_is_not_found(harness: ServiceHarness) -> None:
    won = win(harness)
    with pytest.raises(InventoryItemNotFound):
        cash_out(harness.ctx, won.operator, CashOut(PLAYER, 999, None, "k"))
    assert harness.wallet.sent_credits == []


def test_another_players_item_is_not_found(harness: ServiceHarness) -> None:
    won = win(harness)
    with pytest.raises(InventoryItemNotFound):
        cash_out(harness.ctx, won.operator, CashOut("u_other", won.item_id, None, "k"))
    assert harness.wallet.sent_credits == []
    assert won.state is ItemState.UNRESOLVED


def test_another_operators_item_is_not_found(harness: ServiceHarness) -> None:
    won = win(harness)
    rival = harness.create_operator("rival")
    with pytest.raises(InventoryItemNotFound):
        cash_out(harness.ctx, rival, CashOut(PLAYER, won.item_id, None, "k"))
    assert harness.wallet.sent_credits == []


# --- repeats ------------------------------------------------------------------------------------


def test_the_same_cashout_again_returns_the_same_result_without_a_second_credit(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    first = won.cash_out(currency="USD")

    assert won.cash_out(currency="USD") == first
    assert len(harness.wallet.sent_credits) == 1
    assert len(won.credits) == 1


def test_a_new_key_for_an_item_already_cashed_back_is_not_available(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    won.cash_out()
    with pytest.raises(CashbackNotAvailable):
        won.cash_out(key="another-key")
    assert len(harness.wallet.sent_credits) == 1


def test_a_key_that_already_moved_money_for_another_item_is_refused(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    second = harness.buy(won.operator, PLAYER, 1).won_items[0].inventory_item_id
    won.cash_out(key="shared-key")

    with pytest.raises(IdempotencyKeyReused):
        cash_out(harness.ctx, won.operator, CashOut(PLAYER, second, None, "shared-key"))
    assert len(harness.wallet.sent_credits) == 1
    assert harness.item(won.operator.id, second).state is ItemState.UNRESOLVED


# --- not available ----------------------------------------------------------------------------


def test_a_currency_without_a_rate_is_not_available_and_records_nothing(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    with pytest.raises(CashbackNotAvailable):
        won.cash_out(currency="GBP")
    assert harness.wallet.sent_credits == []
    assert won.state is ItemState.UNRESOLVED
    # Nothing was recorded, so the player can still cash out in a supported currency.
    assert won.cash_out(currency="EUR").cashback_minor == 320


def test_cashback_disabled_for_the_operator_is_not_available(harness: ServiceHarness) -> None:
    won = win(harness, cashback_enabled=False)
    with pytest.raises(CashbackNotAvailable):
        won.cash_out()
    assert harness.wallet.sent_credits == []


def test_cashback_disabled_for_the_box_is_not_available(harness: ServiceHarness) -> None:
    won = win(harness, box_doc("gold", cashbackEnabled=False))
    with pytest.raises(CashbackNotAvailable):
        won.cash_out()
    assert harness.wallet.sent_credits == []


def test_no_cashback_rule_anywhere_is_not_available(harness: ServiceHarness) -> None:
    won = win(harness, cashback_bps=None)
    with pytest.raises(CashbackNotAvailable):
        won.cash_out()


def test_a_cashback_worth_nothing_is_not_available(harness: ServiceHarness) -> None:
    won = win(harness, box_doc("gold", prizes=[prize_doc("Sticker", 9)]))  # 0.9 floors to 0
    with pytest.raises(CashbackNotAvailable):
        won.cash_out()
    assert harness.wallet.sent_credits == []


# --- wallet refusals ----------------------------------------------------------------------------


def test_a_refused_credit_leaves_the_item_unresolved_and_the_same_key_can_retry(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    harness.wallet.refuse_next("LIMIT_EXCEEDED", "daily limit")

    with pytest.raises(WalletRefused) as refused:
        won.cash_out()
    assert refused.value.code == "LIMIT_EXCEEDED"
    assert won.state is ItemState.UNRESOLVED

    result = won.cash_out()
    assert result.state == "cashed_back"
    assert won.state is ItemState.CASHED_BACK  # the re-armed credit moved the item too
    assert len(won.credits) == 1
    assert [c.idempotency_key for c in harness.wallet.sent_credits] == [
        default_cashout_key(won.item_id)
    ] * 2


def test_a_blocked_player_gets_the_wallets_code(harness: ServiceHarness) -> None:
    won = win(harness)
    harness.wallet.block(PLAYER)
    with pytest.raises(WalletRefused) as refused:
        won.cash_out()
    assert refused.value.code == "PLAYER_BLOCKED"
    assert won.state is ItemState.UNRESOLVED


def test_a_refused_key_may_be_retried_in_another_currency(harness: ServiceHarness) -> None:
    won = win(harness)
    harness.wallet.refuse_next("CURRENCY_CLOSED")
    with pytest.raises(WalletRefused):
        won.cash_out(currency="EUR", key="k1")

    assert won.cash_out(currency="USD", key="k1").cashback_minor == 353
    (credit,) = won.credits
    assert (credit.idempotency_key, credit.amount_minor, credit.currency) == ("k1", 353, "USD")


def test_after_a_refusal_another_key_may_cash_out(harness: ServiceHarness) -> None:
    won = win(harness)
    harness.wallet.refuse_next("LIMIT_EXCEEDED")
    with pytest.raises(WalletRefused):
        won.cash_out(key="k1")

    assert won.cash_out(key="k2").state == "cashed_back"
    assert [c.idempotency_key for c in won.credits] == ["k2"]


# --- unknown outcomes ---------------------------------------------------------------------------


def test_retry_after_wallet_timeout_credits_once(harness: ServiceHarness) -> None:
    won = win(harness)
    harness.wallet.apply_then_unknown()

    with pytest.raises(WalletUnavailable):
        won.cash_out(currency="USD")
    assert won.state is ItemState.CASHBACK_PENDING  # shown to callers as unresolved
    assert len(won.credits) == 1  # the wallet did apply it

    result = won.cash_out(currency="USD")
    assert (result.state, result.cashback_minor, result.currency) == ("cashed_back", 353, "USD")
    assert result.balance_after_minor == START + 353
    assert len(won.credits) == 1
    assert won.state is ItemState.CASHED_BACK


def test_a_new_key_after_a_timeout_re_drives_the_original_credit_and_is_not_available(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    harness.wallet.apply_then_unknown()
    with pytest.raises(WalletUnavailable):
        won.cash_out(currency="USD", key="first-key")

    with pytest.raises(CashbackNotAvailable):
        won.cash_out(currency="EUR", key="second-key")

    first, second = harness.wallet.sent_credits
    assert second == first  # same key, amount, currency and reference
    assert (second.idempotency_key, second.amount_minor, second.currency) == (
        "first-key",
        353,
        "USD",
    )
    assert len(won.credits) == 1
    assert won.state is ItemState.CASHED_BACK
    # The original request, retried, gets its success.
    assert won.cash_out(currency="USD", key="first-key").cashback_minor == 353
    assert len(harness.wallet.sent_credits) == 2


def test_a_new_key_after_an_unapplied_timeout_still_credits_under_the_original_key(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    harness.wallet.fail_next()  # the call never reached the wallet
    with pytest.raises(WalletUnavailable):
        won.cash_out(key="first-key")
    assert won.credits == []

    with pytest.raises(CashbackNotAvailable):
        won.cash_out(key="second-key")
    assert [c.idempotency_key for c in won.credits] == ["first-key"]


def test_a_new_key_may_cash_out_when_the_pending_credit_turns_out_refused(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        won.cash_out(key="first-key")
    harness.wallet.refuse_next("LIMIT_EXCEEDED")  # the re-drive of first-key is refused

    result = won.cash_out(key="second-key")

    assert result.state == "cashed_back"
    assert [c.idempotency_key for c in harness.wallet.sent_credits] == [
        "first-key",
        "first-key",
        "second-key",
    ]
    assert [c.idempotency_key for c in won.credits] == ["second-key"]


def test_the_ledger_records_one_accepted_credit_per_wallet_operation(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    harness.wallet.apply_then_unknown()
    with pytest.raises(WalletUnavailable):
        won.cash_out(key="first-key")
    won.cash_out(key="first-key")

    credits = [m for m in harness.movements() if m.kind == "credit"]
    assert [(m.idempotency_key, m.status, m.amount_minor) for m in credits] == [
        ("first-key", "accepted", 320)
    ]
    assert credits[0].attempts == 2


# --- concurrency ------------------------------------------------------------------------------


def test_a_second_request_while_the_credit_is_in_flight_is_told_to_retry(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    during: list[IdempotencyKeyInUse] = []

    def concurrent_attempts(_call: WalletMoneyCall) -> None:
        for key in (default_cashout_key(won.item_id), "other-key"):
            with pytest.raises(IdempotencyKeyInUse) as in_progress:
                won.cash_out(key=key)
            during.append(in_progress.value)

    harness.wallet.during_next_send(concurrent_attempts)
    result = won.cash_out()

    assert len(during) == 2
    assert all(e.code == "IDEMPOTENCY_KEY_IN_USE" for e in during)
    assert result.state == "cashed_back"
    assert len(harness.wallet.sent_credits) == 1


def test_a_held_lease_blocks_until_it_expires_then_the_credit_is_re_driven(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    # A worker recorded and leased the credit, then died before calling the wallet.
    harness.wallet.die_before_next_send()
    with pytest.raises(WorkerDied):
        won.cash_out()

    with pytest.raises(IdempotencyKeyInUse) as in_progress:
        won.cash_out()
    assert in_progress.value.retry_after_seconds >= 1
    assert harness.wallet.sent_credits == []

    harness.clock.advance(harness.movement_lease_seconds + 1)
    assert won.cash_out().state == "cashed_back"
    assert len(won.credits) == 1


def test_a_late_answer_after_a_lease_takeover_credits_once(harness: ServiceHarness) -> None:
    won = win(harness)
    results: list[CashoutResult] = []

    def stall_past_the_lease(_call: WalletMoneyCall) -> None:
        harness.clock.advance(harness.movement_lease_seconds + 1)
        results.append(won.cash_out())  # takes the lease over and re-sends the same key

    harness.wallet.during_next_send(stall_past_the_lease)
    results.append(won.cash_out())  # its answer arrives after the takeover settled it

    assert results[0] == results[1]
    assert len(harness.wallet.sent_credits) == 2
    assert len(won.credits) == 1
    assert won.state is ItemState.CASHED_BACK


def test_a_retried_key_with_another_currency_after_a_timeout_is_refused(
    harness: ServiceHarness,
) -> None:
    won = win(harness)
    harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        won.cash_out(currency="USD", key="k1")

    with pytest.raises(IdempotencyKeyReused):
        won.cash_out(currency="EUR", key="k1")  # answered: 353 USD, "cashed_back"


def test_a_settle_that_finds_the_item_moved_says_so_in_the_log(
    harness: ServiceHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Cannot happen while the record-and-lease transaction holds the line; if it ever
    does, the ledger keeps the wallet's truth and the log names the movement."""
    won = win(harness)

    def someone_moves_the_item(_call: WalletMoneyCall) -> None:
        with harness.uow() as uow:
            uow.items.transition(
                won.item_id, ItemState.CASHBACK_PENDING, ItemState.UNRESOLVED, harness.clock.now()
            )
            uow.commit()

    harness.wallet.during_next_send(someone_moves_the_item)
    won.cash_out()

    assert "settled but its item/round was not in the pending state" in caplog.text
    (credit,) = [m for m in harness.movements() if m.kind == "credit"]
    assert credit.status == "accepted"
