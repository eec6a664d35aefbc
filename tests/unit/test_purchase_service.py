"""purchase and open_round: how rounds and items come to exist (contract §5, §7)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lootbox.domain.errors import (
    BoxNotPlayable,
    CurrencyNotSupported,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    OperationInProgress,
    RoundNotFound,
    RoundNotHeld,
    UnknownBox,
    WalletRefused,
    WalletUnavailable,
)
from lootbox.domain.records import Operator
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus
from lootbox.ports import WalletMoneyCall
from lootbox.services.opening import OpenRound, default_open_key
from lootbox.services.purchase import Purchase, ReelPick, purchase_key
from lootbox.services.rounds import RoundOutcome
from tests.fakes import ServiceHarness, box_doc, open_round, prize_doc, purchase

PLAYER = "u_8431"
START = 100_000
GOLD = box_doc("gold", price_minor=500, prizes=[prize_doc("Ring", 3200)])
SILVER = box_doc("silver", price_minor=300, prizes=[prize_doc("Coin", 150, cashback_bps=2000)])
MIXED = box_doc(
    "mixed",
    price_minor=200,
    prizes=[prize_doc("Hat", 100, odds="0.5"), prize_doc("Scarf", 400, odds="0.5")],
)


@dataclass
class Shop:
    harness: ServiceHarness
    operator: Operator
    versions: dict[str, int]

    def buy(
        self,
        *slugs: str,
        mode: PurchaseMode = PurchaseMode.OPEN,
        action: str = "act-1",
        currency: str | None = None,
        player: str = PLAYER,
    ) -> RoundOutcome:
        return purchase(
            self.harness.ctx,
            self.harness.authenticated(self.operator),
            self.command(*slugs, mode=mode, action=action, currency=currency, player=player),
        )

    def command(
        self,
        *slugs: str,
        mode: PurchaseMode = PurchaseMode.OPEN,
        action: str = "act-1",
        currency: str | None = None,
        player: str = PLAYER,
    ) -> Purchase:
        return Purchase(
            player_external_id=player,
            mode=mode,
            client_action_id=action,
            currency=currency,
            reels=tuple(ReelPick(i, self.versions.get(s, 999)) for i, s in enumerate(slugs)),
        )

    def open(self, public_id: str, key: str | None = None, player: str = PLAYER) -> RoundOutcome:
        return open_round(
            self.harness.ctx,
            self.harness.authenticated(self.operator),
            OpenRound(
                player,
                public_id,
                key or default_open_key(public_id),
            ),
        )

    def status(self, public_id: str) -> RoundStatus:
        return self.harness.round(self.operator.id, public_id).status

    @property
    def debits(self) -> list[WalletMoneyCall]:
        return self.harness.wallet.applied_debits


@pytest.fixture
def shop(harness: ServiceHarness) -> Shop:
    operator = harness.create_operator(rates={"USD": "1.1042"})
    return Shop(harness, operator, harness.import_catalog(operator.slug, GOLD, SILVER, MIXED))


# --- atomic open ------------------------------------------------------------------------------


def test_an_atomic_open_debits_once_for_all_reels_and_settles(shop: Shop) -> None:
    outcome = shop.buy("gold", "silver")

    (debit,) = shop.debits
    assert debit.to_body() == {
        "type": "wallet.debit",
        "idempotencyKey": f"round:{outcome.public_id}",
        "playerExternalId": PLAYER,
        "amountMinor": 800,
        "currency": "EUR",
        "reason": "open",
        "roundPublicId": outcome.public_id,
    }
    assert (outcome.status, outcome.mode, outcome.bet_minor, outcome.currency) == (
        "settled",
        "open",
        800,
        "EUR",
    )
    assert outcome.payout_minor == 3200 + 150
    assert outcome.balance_after_minor == START - 800
    assert [(r.reel_index, r.price_minor, r.prize and r.prize.name) for r in outcome.reels] == [
        (0, 500, "Ring"),
        (1, 300, "Coin"),
    ]
    assert [
        (w.name, w.value_minor, w.currency, w.cashback_minor, w.state) for w in outcome.won_items
    ] == [
        ("Ring", 3200, "EUR", 320, "unresolved"),  # operator default 10 %
        ("Coin", 150, "EUR", 30, "unresolved"),  # the prize's own 20 %
    ]
    assert shop.status(outcome.public_id) is RoundStatus.SETTLED
    for won in outcome.won_items:
        assert shop.harness.item(shop.operator.id, won.inventory_item_id).state is (
            ItemState.UNRESOLVED
        )


def test_the_debit_is_sent_before_anything_is_drawn(shop: Shop) -> None:
    seen: list[tuple[RoundStatus, int]] = []

    def inspect(call: WalletMoneyCall) -> None:
        assert call.round_public_id is not None
        round_ = shop.harness.round(shop.operator.id, call.round_public_id)
        seen.append((round_.status, sum(r.prize_id is not None for r in round_.reels)))

    shop.harness.wallet.during_next_send(inspect)
    shop.buy("gold")
    assert seen == [(RoundStatus.DEBIT_PENDING, 0)]


def test_an_atomic_open_in_another_currency_converts_price_and_payout(shop: Shop) -> None:
    outcome = shop.buy("gold", "silver", currency="USD")

    # 800 x 1.1042 = 883.36 -> 883; payout 3350 x 1.1042 = 3699.07 -> 3699.
    assert (outcome.bet_minor, outcome.payout_minor, outcome.currency) == (883, 3699, "USD")
    (debit,) = shop.debits
    assert (debit.amount_minor, debit.currency) == (883, "USD")
    # Won items are valued in the operator currency.
    assert {w.currency for w in outcome.won_items} == {"EUR"}


def test_a_drawn_prize_always_comes_from_its_box(shop: Shop) -> None:
    names = {shop.buy("mixed", action=f"act-{n}").won_items[0].name for n in range(12)}
    assert names <= {"Hat", "Scarf"}
    assert len(names) == 2  # a fair 50/50 box shows both prizes in 12 seeded draws


def test_the_same_action_again_returns_the_same_round_without_a_second_debit(
    shop: Shop,
) -> None:
    first = shop.buy("gold")
    assert shop.buy("gold") == first
    assert len(shop.harness.wallet.sent_debits) == 1


def test_the_same_action_id_of_two_players_makes_two_rounds(shop: Shop) -> None:
    mine = shop.buy("gold", action="same")
    theirs = shop.buy("gold", action="same", player="u_other")
    assert mine.public_id != theirs.public_id
    assert len(shop.debits) == 2


def test_the_purchase_key_is_scoped_to_the_player() -> None:
    assert purchase_key("u_1", "a-1") == "purchase:3:u_1:a-1"
    assert purchase_key("acct:7", "x") != purchase_key("acct", "7:x")
    assert purchase_key("u_1", "a-1") != purchase_key("u_2", "a-1")


# --- prepay and open ----------------------------------------------------------------------------


def test_a_prepay_purchase_holds_the_round_without_drawing(shop: Shop) -> None:
    outcome = shop.buy("gold", mode=PurchaseMode.PREPAY)

    assert (outcome.status, outcome.mode, outcome.payout_minor) == ("held", "prepay", None)
    assert outcome.won_items == ()
    assert all(r.prize is None for r in outcome.reels)
    (debit,) = shop.debits
    assert (debit.reason, debit.amount_minor) == ("prepay", 500)


def test_opening_a_held_round_settles_it_with_items_and_no_wallet_call(shop: Shop) -> None:
    held = shop.buy("gold", "silver", mode=PurchaseMode.PREPAY)
    sent_before = len(shop.harness.wallet.sent)

    opened = shop.open(held.public_id)

    assert (opened.status, opened.payout_minor) == ("settled", 3350)
    assert [w.name for w in opened.won_items] == ["Ring", "Coin"]
    assert {w.state for w in opened.won_items} == {"unresolved"}
    assert opened.balance_after_minor == START - 800
    assert len(shop.harness.wallet.sent) == sent_before
    round_ = shop.harness.round(shop.operator.id, held.public_id)
    assert (round_.status, round_.open_idempotency_key) == (
        RoundStatus.SETTLED,
        default_open_key(held.public_id),
    )


def test_the_same_open_again_returns_the_same_result(shop: Shop) -> None:
    held = shop.buy("gold", mode=PurchaseMode.PREPAY)
    first = shop.open(held.public_id, key="open-1")
    assert shop.open(held.public_id, key="open-1") == first
    with shop.harness.uow() as uow:
        round_ = uow.rounds.get_by_public_id(shop.operator.id, held.public_id)
        assert round_ is not None
        assert len(uow.items.for_round(round_.id)) == 1


def test_another_key_on_an_opened_round_is_not_held(shop: Shop) -> None:
    held = shop.buy("gold", mode=PurchaseMode.PREPAY)
    shop.open(held.public_id, key="open-1")
    with pytest.raises(RoundNotHeld):
        shop.open(held.public_id, key="open-2")


def test_an_atomic_round_cannot_be_opened(shop: Shop) -> None:
    settled = shop.buy("gold")
    with pytest.raises(RoundNotHeld):
        shop.open(settled.public_id)


def test_opening_an_unknown_or_foreign_round_is_not_found(shop: Shop) -> None:
    held = shop.buy("gold", mode=PurchaseMode.PREPAY)
    rival = shop.harness.create_operator("rival")
    with pytest.raises(RoundNotFound):
        shop.open("r_nope")
    with pytest.raises(RoundNotFound):
        shop.open(held.public_id, player="u_other")
    with pytest.raises(RoundNotFound):
        open_round(shop.harness.ctx, rival, OpenRound(PLAYER, held.public_id, "k"))
    assert shop.status(held.public_id) is RoundStatus.HELD


def test_a_round_whose_debit_is_unanswered_cannot_be_opened(shop: Shop) -> None:
    shop.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        shop.buy("gold", mode=PurchaseMode.PREPAY)
    (public_id,) = shop.harness.debited_rounds()
    with pytest.raises(RoundNotFound):
        shop.open(public_id)


# --- refused and unknown debits -----------------------------------------------------------------


def test_a_refused_debit_voids_the_round_and_the_action_can_be_retried(shop: Shop) -> None:
    shop.harness.wallet.set_balance(PLAYER, "EUR", 100)

    with pytest.raises(WalletRefused) as refused:
        shop.buy("gold")
    assert refused.value.code == "INSUFFICIENT_FUNDS"
    (voided,) = shop.harness.debited_rounds()
    assert shop.status(voided) is RoundStatus.VOIDED
    assert shop.debits == []

    shop.harness.wallet.set_balance(PLAYER, "EUR", 1000)
    outcome = shop.buy("gold")

    assert outcome.public_id != voided
    assert outcome.status == "settled"
    assert [d.idempotency_key for d in shop.debits] == [f"round:{outcome.public_id}"]
    assert shop.harness.wallet.balance(PLAYER, "EUR") == 500


def test_a_blocked_player_gets_the_wallets_code(shop: Shop) -> None:
    shop.harness.wallet.block(PLAYER)
    with pytest.raises(WalletRefused) as refused:
        shop.buy("gold", mode=PurchaseMode.PREPAY)
    assert refused.value.code == "PLAYER_BLOCKED"


def test_retry_after_debit_timeout_debits_once_and_settles(shop: Shop) -> None:
    shop.harness.wallet.apply_then_unknown()
    with pytest.raises(WalletUnavailable):
        shop.buy("gold")
    (public_id,) = shop.harness.debited_rounds()
    assert shop.status(public_id) is RoundStatus.DEBIT_PENDING

    outcome = shop.buy("gold")

    assert (outcome.public_id, outcome.status) == (public_id, "settled")
    assert [d.idempotency_key for d in shop.harness.wallet.sent_debits] == [
        f"round:{public_id}"
    ] * 2
    assert len(shop.debits) == 1
    assert outcome.balance_after_minor == START - 500
    assert len(outcome.won_items) == 1


def test_retry_after_an_unapplied_debit_timeout_debits_once(shop: Shop) -> None:
    shop.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        shop.buy("gold", mode=PurchaseMode.PREPAY)

    outcome = shop.buy("gold", mode=PurchaseMode.PREPAY)

    assert outcome.status == "held"
    assert len(shop.debits) == 1
    assert len(shop.harness.wallet.sent_debits) == 2


def test_a_pending_debit_refused_on_retry_voids_the_round(shop: Shop) -> None:
    shop.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        shop.buy("gold")
    shop.harness.wallet.refuse_next("INSUFFICIENT_FUNDS")
    with pytest.raises(WalletRefused):
        shop.buy("gold")
    (public_id,) = shop.harness.debited_rounds()
    assert shop.status(public_id) is RoundStatus.VOIDED
    assert shop.debits == []


def test_the_same_action_while_its_debit_is_in_flight_is_told_to_retry(shop: Shop) -> None:
    def concurrent_retry(_call: WalletMoneyCall) -> None:
        with pytest.raises(IdempotencyKeyInUse):
            shop.buy("gold")

    shop.harness.wallet.during_next_send(concurrent_retry)
    assert shop.buy("gold").status == "settled"
    assert len(shop.harness.wallet.sent_debits) == 1


def test_a_debit_whose_lease_was_taken_over_is_not_answered_as_an_unpaid_round(
    shop: Shop,
) -> None:
    """The wallet answers after the lease ran out and another attempt claimed the debit
    but has not settled it: the first caller's settle is fenced out, and it must not
    answer 200 with a round still ``debit_pending`` (the guard would replay that)."""

    def stall_and_get_taken_over(call: WalletMoneyCall) -> None:
        shop.harness.clock.advance(shop.harness.movement_lease_seconds + 1)
        with shop.harness.uow() as uow:
            debit = uow.ledger.get_by_key(shop.operator.id, call.idempotency_key)
            assert uow.ledger.claim(debit.id, shop.harness.clock.now(), shop.harness.clock.now())
            uow.commit()

    shop.harness.wallet.during_next_send(stall_and_get_taken_over)
    with pytest.raises(OperationInProgress):
        shop.buy("gold", action="act-stalled")
    (public_id,) = shop.harness.debited_rounds()
    assert shop.status(public_id) is RoundStatus.DEBIT_PENDING

    # The retry of the same action re-drives the debit (the wallet replays it) and settles.
    assert shop.buy("gold", action="act-stalled").status == "settled"
    assert len(shop.debits) == 1


def test_a_reused_action_id_with_other_reels_is_refused(shop: Shop) -> None:
    shop.harness.wallet.fail_next()
    with pytest.raises(WalletUnavailable):
        shop.buy("gold")
    with pytest.raises(IdempotencyKeyReused):
        shop.buy("silver")


# --- rejected before any wallet call -----------------------------------------------------------


def test_an_unknown_box_version_is_rejected_before_any_debit(shop: Shop) -> None:
    with pytest.raises(UnknownBox):
        shop.buy("gold", "no-such-box")
    assert shop.harness.wallet.sent == []
    assert shop.harness.movements() == []


def test_another_operators_box_is_unknown(shop: Shop) -> None:
    rival = shop.harness.create_operator("rival")
    theirs = shop.harness.import_catalog(rival.slug, box_doc("theirs"))["theirs"]
    with pytest.raises(UnknownBox):
        purchase(
            shop.harness.ctx,
            shop.operator,
            Purchase(PLAYER, PurchaseMode.OPEN, "a", None, (ReelPick(0, theirs),)),
        )
    assert shop.harness.wallet.sent == []


def test_a_superseded_box_version_is_not_playable(shop: Shop) -> None:
    old = shop.versions["gold"]
    new = shop.harness.import_catalog("acme", {**GOLD, "priceMinor": 600})["gold"]
    assert new != old

    with pytest.raises(BoxNotPlayable):
        shop.buy("gold")  # still names the old version
    assert shop.harness.wallet.sent == []

    shop.versions["gold"] = new
    assert shop.buy("gold").bet_minor == 600


def test_a_currency_without_a_rate_is_not_supported(shop: Shop) -> None:
    with pytest.raises(CurrencyNotSupported):
        shop.buy("gold", currency="GBP")
    assert shop.harness.wallet.sent == []
    assert shop.harness.movements() == []
