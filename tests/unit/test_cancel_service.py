"""cancel_round: a held (pre-paid, unopened) box is refunded exactly once (contract §5, §7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from lootbox.domain.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    OperationInProgress,
    RefundNotAllowed,
    RoundNotFound,
    RoundNotHeld,
    RoundNotRefundable,
    WalletRefused,
    WalletUnavailable,
)
from lootbox.domain.records import Operator
from lootbox.domain.states import PurchaseMode, RoundStatus
from lootbox.ports import WalletMoneyCall
from lootbox.services.cancel import CancelResult, CancelRound, default_cancel_key
from lootbox.services.cashout import CashOut
from lootbox.services.opening import OpenRound, default_open_key
from lootbox.services.rounds import RoundOutcome
from tests.fakes import ServiceHarness, WorkerDied, box_doc, cancel_round, cash_out, open_round

PLAYER = "u_8431"
START = 100_000


@dataclass
class Held:
    harness: ServiceHarness
    operator: Operator
    public_id: str
    versions: dict[str, int]

    def cancel(self, key: str | None = None, player: str = PLAYER) -> CancelResult:
        return cancel_round(
            self.harness.ctx, self.harness.authenticated(self.operator), self.command(key, player)
        )

    def command(self, key: str | None = None, player: str = PLAYER) -> CancelRound:
        return CancelRound(
            player_external_id=player,
            round_public_id=self.public_id,
            idempotency_key=key or default_cancel_key(self.public_id),
        )

    def open(self, key: str | None = None) -> RoundOutcome:
        return open_round(
            self.harness.ctx,
            self.harness.authenticated(self.operator),
            OpenRound(
                PLAYER,
                self.public_id,
                key or default_open_key(self.public_id),
            ),
        )

    @property
    def status(self) -> RoundStatus:
        return self.harness.round(self.operator.id, self.public_id).status

    @property
    def refunds(self) -> list[WalletMoneyCall]:
        return self.harness.wallet.applied_credits


def hold(
    harness: ServiceHarness,
    *boxes: dict[str, Any],
    currency: str | None = None,
    **operator_options: Any,
) -> Held:
    """A player who pre-paid one box of each of ``boxes`` (default: one 500-cent box)."""
    operator = harness.create_operator(**operator_options)
    versions = harness.import_catalog(operator.slug, *(boxes or (box_doc("gold"),)))
    outcome = harness.buy(
        operator, PLAYER, *versions.values(), mode=PurchaseMode.PREPAY, currency=currency
    )
    assert outcome.status == "held"
    return Held(harness, operator, outcome.public_id, versions)


# --- the happy paths -----------------------------------------------------------------------------


def test_cancel_refunds_the_held_round_once(harness: ServiceHarness) -> None:
    held = hold(harness)

    result = held.cancel()

    assert result == CancelResult(
        round_public_id=held.public_id,
        status="refunded",
        refunded_minor=500,
        currency="EUR",
        balance_after_minor=START,
    )
    (refund,) = held.refunds
    assert refund.to_body() == {
        "type": "wallet.credit",
        "idempotencyKey": f"refund:round:{held.public_id}",
        "playerExternalId": PLAYER,
        "amountMinor": 500,
        "currency": "EUR",
        "reason": "refund",
        "roundPublicId": held.public_id,
        "reference": {"operatorAmountMinor": 500, "operatorCurrency": "EUR", "rate": "1"},
    }
    assert held.status is RoundStatus.REFUNDED


def test_the_default_key_names_the_round() -> None:
    assert default_cancel_key("r_01J") == "refund:round:r_01J"


def test_a_several_reel_round_is_refunded_in_one_credit_for_the_total(
    harness: ServiceHarness,
) -> None:
    held = hold(harness, box_doc("gold", price_minor=500), box_doc("silver", price_minor=300))
    assert held.cancel().refunded_minor == 800
    assert [c.amount_minor for c in held.refunds] == [800]


def test_the_refund_uses_the_original_currency_and_amount_after_the_rate_changed(
    harness: ServiceHarness,
) -> None:
    held = hold(harness, currency="USD")  # 500 EUR cents x 1.1042 = 552.1 -> 552 USD cents
    harness.update_operator("acme", rates={"USD": "1.5"})

    result = held.cancel()

    assert (result.refunded_minor, result.currency) == (552, "USD")
    (refund,) = held.refunds
    assert (refund.amount_minor, refund.currency) == (552, "USD")
    assert refund.reference == {
        "operatorAmountMinor": 500,
        "operatorCurrency": "EUR",
        "rate": "1.1042",
    }
    assert harness.wallet.balance(PLAYER, "USD") == START


def test_the_same_cancel_again_returns_the_same_result_without_a_second_credit(
    harness: ServiceHarness,
) -> None:
    held = hold(harness)
    first = held.cancel()
    assert held.cancel() == first
    assert len(harness.wallet.sent_credits) == 1


def test_a_new_key_for_a_refunded_round_is_not_refundable(harness: ServiceHarness) -> None:
    held = hold(harness)
    held.cancel()
    with pytest.raises(RoundNotRefundable):
        held.cancel(key="another-key")
    assert len(harness.wallet.sent_credits) == 1


def test_a_refunded_round_cannot_be_opened(harness: ServiceHarness) -> None:
    held = hold(harness)
    held.cancel()
    with pytest.raises(RoundNotHeld):
        held.open()


def test_a_key_that_already_moved_money_elsewhere_is_refused(harness: ServiceHarness) -> None:
    held = hold(harness)
    won = harness.buy(held.operator, PLAYER, held.versions["gold"]).won_items[0]
    cash_out(harness.ctx, held.operator, CashOut(PLAYER, won.inventory_item_id, None, "k"))

    with pytest.raises(IdempotencyKeyReused):
        held.cancel(key="k")
    assert held.status is RoundStatus.HELD
    assert len(harness.wallet.sent_credits) == 1


# --- not refundable / not found / not allowed ----------------------------------------------------


def test_an_atomic_round_is_not_refundable(harness: ServiceHarness) -> None:
    held = hold(harness)
    atomic = harness.buy(held.operator, PLAYER, held.versions["gold"])
    with pytest.raises(RoundNotRefundable):
        cancel_round(
            harness.ctx,
            held.operator,
            CancelRound(PLAYER, atomic.public_id, default_cancel_key(atomic.public_id)),
        )
    assert harness.wallet.sent_credits == []


def test_an_opened_round_is_not_refundable(harness: ServiceHarness) -> None:
    held = hold(harness)
    held.open()
    with pytest.raises(RoundNotRefundable):
        held.cancel()
    assert harness.wallet.sent_credits == []


def test_a_voided_round_is_not_refundable(harness: ServiceHarness) -> None:
    operator = harness.create_operator()
    versions = harness.import_catalog(operator.slug, box_doc("gold"))
    harness.wallet.refuse_next("INSUFFICIENT_FUNDS")
    with pytest.raises(WalletRefused):
        harness.buy(operator, PLAYER, versions["gold"], mode=PurchaseMode.PREPAY)
    (voided,) = harness.debited_rounds()
    assert harness.round(operator.id, voided).status is RoundStatus.VOIDED

    with pytest.raises(RoundNotRefundable):
        cancel_round(harness.ctx, operator, CancelRound(PLAYER, voided, "refund-k"))
    assert harness.wallet.sent_credits == []


def test_an_unknown_round_is_not_found(harness: ServiceHarness) -> None:
    held = hold(harness)
    with pytest.raises(RoundNotFound):
        cancel_round(harness.ctx, held.operator, CancelRound(PLAYER, "r_nope", "k"))


def test_another_players_round_is_not_found(harness: ServiceHarness) -> None:
    held = hold(harness)
    with pytest.raises(RoundNotFound):
        held.cancel(player="u_other")
    assert held.status is RoundStatus.HELD
    assert harness.wallet.sent_credits == []


def test_another_operators_round_is_not_found(harness: ServiceHarness) -> None:
    held = hold(harness)
    rival = harness.create_operator("rival")
    with pytest.raises(RoundNotFound):
        cancel_round(harness.ctx, rival, CancelRound(PLAYER, held.public_id, "k"))


def test_a_round_whose_debit_is_unanswered_is_not_found(harness: ServiceHarness) -> None:
    operator = harness.create_operator()
    versions = harness.import_catalog(operator.slug, box_doc("gold"))
    harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        harness.buy(operator, PLAYER, versions["gold"], mode=PurchaseMode.PREPAY)
    (pending,) = harness.debited_rounds()

    with pytest.raises(RoundNotFound):
        cancel_round(harness.ctx, operator, CancelRound(PLAYER, pending, "k"))
    assert harness.wallet.sent_credits == []


def test_an_operator_without_refunds_does_not_allow_them(harness: ServiceHarness) -> None:
    held = hold(harness, refunds_enabled=False)
    with pytest.raises(RefundNotAllowed):
        held.cancel()
    assert held.status is RoundStatus.HELD
    assert harness.wallet.sent_credits == []


def test_a_box_that_is_not_refundable_does_not_allow_it(harness: ServiceHarness) -> None:
    held = hold(harness, box_doc("gold"), box_doc("final-sale", refundable=False))
    with pytest.raises(RefundNotAllowed):
        held.cancel()
    assert held.status is RoundStatus.HELD
    assert harness.wallet.sent_credits == []


# --- wallet refusals and unknown outcomes ---------------------------------------------------------


def test_a_refused_refund_leaves_the_round_held_and_the_same_key_can_retry(
    harness: ServiceHarness,
) -> None:
    held = hold(harness)
    harness.wallet.refuse_next("ACCOUNT_CLOSED")

    with pytest.raises(WalletRefused) as refused:
        held.cancel()
    assert refused.value.code == "ACCOUNT_CLOSED"
    assert held.status is RoundStatus.HELD

    assert held.cancel().status == "refunded"
    assert held.status is RoundStatus.REFUNDED  # the re-armed refund moved the round too
    assert len(held.refunds) == 1
    assert {c.idempotency_key for c in harness.wallet.sent_credits} == {
        default_cancel_key(held.public_id)
    }


def test_retry_after_refund_timeout_credits_once(harness: ServiceHarness) -> None:
    held = hold(harness)
    harness.wallet.apply_then_unknown()

    with pytest.raises(WalletUnavailable):
        held.cancel()
    assert held.status is RoundStatus.REFUND_PENDING  # shown to callers as held

    result = held.cancel()
    assert (result.status, result.refunded_minor, result.balance_after_minor) == (
        "refunded",
        500,
        START,
    )
    assert len(held.refunds) == 1
    assert held.status is RoundStatus.REFUNDED


def test_a_new_key_after_a_refund_timeout_re_drives_the_original_refund(
    harness: ServiceHarness,
) -> None:
    held = hold(harness)
    harness.wallet.apply_then_unknown()
    with pytest.raises(WalletUnavailable):
        held.cancel(key="first-key")

    with pytest.raises(RoundNotRefundable):
        held.cancel(key="second-key")

    first, second = harness.wallet.sent_credits
    assert second == first
    assert (second.idempotency_key, second.amount_minor) == ("first-key", 500)
    assert len(held.refunds) == 1
    assert held.status is RoundStatus.REFUNDED


def test_a_pending_refund_that_turns_out_refused_frees_the_round_for_a_new_key(
    harness: ServiceHarness,
) -> None:
    held = hold(harness)
    harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        held.cancel(key="first-key")
    harness.wallet.refuse_next("ACCOUNT_CLOSED")

    assert held.cancel(key="second-key").status == "refunded"
    assert [c.idempotency_key for c in held.refunds] == ["second-key"]


def test_a_round_whose_refund_is_in_flight_cannot_be_opened_or_cancelled_again(
    harness: ServiceHarness,
) -> None:
    held = hold(harness)
    seen: list[str] = []

    def concurrent_attempts(_call: WalletMoneyCall) -> None:
        with pytest.raises(OperationInProgress):
            held.open()
        seen.append("open")
        with pytest.raises(OperationInProgress):
            held.cancel(key="other-key")
        seen.append("cancel")

    harness.wallet.during_next_send(concurrent_attempts)
    assert held.cancel().status == "refunded"
    assert seen == ["open", "cancel"]
    assert len(harness.wallet.sent_credits) == 1


def test_a_held_refund_lease_blocks_until_it_expires(harness: ServiceHarness) -> None:
    held = hold(harness)
    harness.wallet.die_before_next_send()  # recorded and leased, never sent: a dead worker
    with pytest.raises(WorkerDied):
        held.cancel()

    with pytest.raises(IdempotencyKeyInUse):
        held.cancel()
    harness.clock.advance(harness.movement_lease_seconds + 1)
    assert held.cancel().status == "refunded"
    assert len(held.refunds) == 1


def test_opening_a_round_whose_refund_timed_out_re_drives_the_refund_first(
    harness: ServiceHarness,
) -> None:
    held = hold(harness)
    harness.wallet.fail_next()  # the refund never reached the wallet
    with pytest.raises(WalletUnavailable):
        held.cancel()
    harness.wallet.refuse_next("ACCOUNT_CLOSED")  # the re-drive gets a definite no

    outcome = held.open()

    assert [c.idempotency_key for c in harness.wallet.sent_credits] == [
        default_cancel_key(held.public_id)
    ] * 2
    assert outcome.status == "settled"
