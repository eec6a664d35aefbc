"""Exactly-once money movement, explored: a Hypothesis state machine (contract §7).

The real use cases (purchase, open, cash out, cancel, reconcile) run behind the real
``IdempotencyGuard`` (the real ``RedisIdempotencyStore`` on fakeredis, the durable records in
PostgreSQL, emptied and seeded again for each example) the way ``lootbox/api/idempotent.py`` calls
them: the fingerprint of the normalised request, ``guard.run(request, execute)``, any
``LootboxError`` a legal answer. The steps interleave purchases (open and prepay, fresh and
reused ``clientActionId``), opens, cashouts and cancels (default, fresh and borrowed keys,
now and then by the wrong player), exact retries of earlier requests, operator policy
changes, and the faults a deployment meets, all within the wallet contract (§6):

- the wallet refuses a key it has not applied, times out before applying, or applies and
  the answer is lost;
- the worker dies inside the wallet call (applied or not), either raising through the guard
  (which suspends its record) or killed outright (nothing after the call runs: the record
  stays in progress under its lease), or dies after the settle (which stored the answer)
  but before sending it;
- another request, or a reconciler pass, runs while a wallet call is in flight;
- Redis is flushed, down, or goes down mid-request;
- time passes the movement lease or every lease; a reconciler pass runs.

After every step the ledger, the items and rounds and the fake wallet's own record must
agree: at most one credit per item and per round and one debit per round; every accepted
row applied once with its key, amount and currency; every applied call backed by an
accepted (or still unknown, pending) row; item and round states matching the money; a 2xx
answer final and replayed identically; balances reconciling with the ledger. Every wallet
call is also checked as it is sent: recorded pending with that payload, under a live lease,
its subject in the internal pending state. At the end of every example (and sometimes
mid-way, ``later("until everything settles")``) the faults clear, every lease runs out and
one reconciler pass must leave nothing pending and every item and round in a final state.

CI runs a fixed, derandomized set of examples (about 20 s). A longer, random exploration::

    LOOTBOX_MONEY_EXAMPLES=2000 LOOTBOX_MONEY_STEPS=60 LOOTBOX_MONEY_RANDOM=1 \\
        pytest tests/unit/test_money_state_machine.py -q -p no:cacheprovider \\
        --hypothesis-show-statistics
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import fakeredis
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select, text

from lootbox.domain.errors import LootboxError
from lootbox.domain.records import Operator, WalletSettings
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus
from lootbox.idempotency.fingerprint import fingerprint
from lootbox.idempotency.guard import IdempotencyGuard
from lootbox.idempotency.redis_store import RedisIdempotencyStore
from lootbox.persistence.models import (
    InventoryItemRow,
    MoneyMovementRow,
    ReelRow,
    RoundRow,
)
from lootbox.ports import (
    Answer,
    IdempotencyRecord,
    KeyedRequest,
    StoreUnavailable,
    UnitOfWork,
    WalletMoneyCall,
    WalletOutcome,
    WalletOutcomeUnknown,
    WalletRefusal,
)
from lootbox.services.cancel import CancelRound, cancel_round, default_cancel_key
from lootbox.services.cashout import CashOut, cash_out, default_cashout_key
from lootbox.services.opening import OpenRound, default_open_key, open_round
from lootbox.services.purchase import Purchase, ReelPick, purchase, purchase_key
from lootbox.services.reconcile import reconcile_once
from tests.conftest import TABLES
from tests.fakes import CREDIT, DEBIT, FakeWallet, ServiceHarness, box_doc, prize_doc

EXAMPLES = int(os.environ.get("LOOTBOX_MONEY_EXAMPLES", "100"))
STEPS = int(os.environ.get("LOOTBOX_MONEY_STEPS", "30"))
RANDOM = os.environ.get("LOOTBOX_MONEY_RANDOM", "") not in ("", "0", "false")

PLAYERS = ("u_ann", "u_bob")
OPERATOR_CURRENCY = "EUR"
WALLET_CURRENCIES = ("EUR", "USD")
RATES = {"USD": "1.1042"}
STARTING_BALANCES = (400, 1_000, 5_000, 100_000)  # small ones make debits run out

# The production defaults (config/settings.py).
MOVEMENT_LEASE_SECONDS = 15.0
IDEMPOTENCY_LEASE_SECONDS = 30.0
IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600
PAST_EVERY_LEASE = max(MOVEMENT_LEASE_SECONDS, IDEMPOTENCY_LEASE_SECONDS) + 1

# Gold: refundable, one prize worth a cashback, one worth a little, one worth nothing.
GOLD = box_doc(
    "gold",
    price_minor=500,
    prizes=[
        prize_doc("Ring", 3200, "0.5"),
        prize_doc("Pin", 40, "0.3"),
        prize_doc("Sticker", 5, "0.2"),  # 10 % of 5 floors to 0: no cashback
    ],
)
SILVER = box_doc("silver", price_minor=300, refundable=False, prizes=[prize_doc("Coin", 900)])

PICK = st.integers(0, 63)  # an index into whatever the machine has seen, modulo its length
# Mostly what a player would do (their own item or round, one the request can act on, the
# default key), sometimes not.
WHO = st.sampled_from(("owner",) * 5 + ("stranger",))
LIKELY = st.sampled_from((True, True, True, False))
KEY = st.sampled_from(("default", "default", "default", "fresh", "fresh", "borrowed"))
WAITS = {
    "not at all": 0.0,
    "a second": 1.0,
    "past the movement lease": MOVEMENT_LEASE_SECONDS + 1,
    "past every lease": PAST_EVERY_LEASE,
    "until everything settles": PAST_EVERY_LEASE,
}
PLAYER = st.sampled_from(PLAYERS)
MODE = st.sampled_from(PurchaseMode)
CURRENCY = st.sampled_from((None, "EUR", "USD"))
BOXES = st.sampled_from((("gold",), ("gold",), ("gold", "gold"), ("silver",), ("gold", "silver")))
ACTIVE_ROUND = (RoundStatus.HELD, RoundStatus.REFUND_PENDING)
ACTIVE_ITEM = (ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING)
CALL_KINDS = ("debit", "cashback", "refund")
WALLET_FAULTS = (
    "refused",
    "timeout",
    "answer lost",
    "died",
    "died after apply",
    "killed",
    "killed after apply",
)
OTHER_FAULTS = (
    "killed before answer",
    "redis flushed",
    "redis down or back",
    "redis down during next wallet call",
)
# Operator policy changes between requests (cashback and rates are read "right now"; a
# held round's refund stays locked to what it was bought for).
POLICIES: dict[str, dict[str, Any]] = {
    "USD rate up": {"rates": {"USD": "1.2500"}},
    "USD rate back": {"rates": RATES},
    "cashback 25 %": {"cashback_bps": 2500},
    "cashback 10 %": {"cashback_bps": 1000},
    "cashback off": {"cashback_enabled": False},
    "cashback on": {"cashback_enabled": True},
    "refunds off": {"refunds_enabled": False},
    "refunds on": {"refunds_enabled": True},
}


class WorkerDied(BaseException):
    """The worker process died mid-request: nothing it would have done afterwards happens.
    A ``BaseException``, like the ``SystemExit`` of a killed worker: the reconciler's
    "one bad movement does not end the pass" handler must not survive it."""


# --- the world around the service ---------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """The session's PostgreSQL database with the operator and its catalog; each example
    empties it and seeds it again (the same ids: identities restart)."""

    database_url: str
    operator: Operator
    operator_id: int
    operator_slug: str
    gold: int
    silver: int


Step = Callable[[WalletMoneyCall], WalletOutcome]


def kind_of(call: WalletMoneyCall) -> str:
    return "debit" if call.type == DEBIT else call.reason  # debit, cashback or refund


class ScriptedWallet(FakeWallet):
    """``FakeWallet`` whose faults wait for the next call of a given kind (``None``: any),
    so that a fault meant for a cashback is not spent on the purchase before it. Every fault
    stays inside the wallet contract: a key the wallet holds is answered as before (the same
    key and payload is the same operation), never refused."""

    def __init__(self) -> None:
        super().__init__()
        self.before_send: Callable[[WalletMoneyCall], None] = lambda _call: None
        self.faults: list[tuple[str | None, Step]] = []

    def send(self, settings: WalletSettings, call: WalletMoneyCall) -> WalletOutcome:
        self.before_send(call)
        self.sent.append(call)
        self.settings_seen.append(settings)
        if self._hooks:
            self._hooks.popleft()(call)  # a request arriving while this call is in flight
        for index, (kind, step) in enumerate(self.faults):
            if kind in (None, kind_of(call)):
                del self.faults[index]
                return step(call)
        return self.apply(call)

    def holds(self, key: str) -> bool:
        return any(applied.idempotency_key == key for applied in self.applied)

    def script(self, fault: str, kind: str | None, on_death: Callable[[bool], None]) -> None:
        """``refused``, ``timeout`` (before the wallet saw the call), ``answer lost``
        (applied, then a read timeout), or the worker dying inside the call: ``died`` /
        ``killed``, ``... after apply``; ``on_death(killed)`` runs as it dies."""

        def step(call: WalletMoneyCall) -> WalletOutcome:
            if fault == "refused":
                if self.holds(call.idempotency_key):
                    return self.apply(call)  # the stored answer, moving nothing
                return WalletRefusal("LIMIT_EXCEEDED", "scripted refusal")
            if fault == "timeout":
                return WalletOutcomeUnknown("connect timeout")
            if fault == "answer lost":
                self.apply(call)
                return WalletOutcomeUnknown("read timeout")
            if fault.endswith("after apply"):
                self.apply(call)
            on_death(fault.startswith("killed"))
            raise WorkerDied(f"worker died during {call.idempotency_key}")

        self.faults.append((kind, step))

    def clear_faults(self) -> None:
        self.faults.clear()
        self._hooks.clear()


class SwitchableStore:
    """The real Redis store, unreachable while ``is_down()`` (Redis down, or the worker that
    would talk to it is dead)."""

    def __init__(self, inner: RedisIdempotencyStore, is_down: Callable[[], bool]) -> None:
        self.inner = inner
        self.is_down = is_down

    def _reachable(self) -> None:
        if self.is_down():
            raise StoreUnavailable("redis is down")

    def claim(
        self, operator_id: int, key: str, record: IdempotencyRecord, lease_seconds: float
    ) -> IdempotencyRecord | None:
        self._reachable()
        return self.inner.claim(operator_id, key, record, lease_seconds)

    def get(self, operator_id: int, key: str) -> IdempotencyRecord | None:
        self._reachable()
        return self.inner.get(operator_id, key)

    def complete(
        self, operator_id: int, key: str, record: IdempotencyRecord, ttl_seconds: int
    ) -> None:
        self._reachable()
        self.inner.complete(operator_id, key, record, ttl_seconds)

    def release(self, operator_id: int, key: str, request_id: str) -> None:
        self._reachable()
        self.inner.release(operator_id, key, request_id)


@dataclass
class FakeTime:
    """The guard's ``monotonic``/``sleep``: waiting for a busy key costs no real time."""

    now: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Call:
    """One S2S request as ``lootbox.api.s2s`` hands it to the guard: endpoint, key, the
    normalised request (the fingerprint's input) and the use case to run."""

    endpoint: str
    key: str
    request: dict[str, Any]
    run: Callable[[KeyedRequest, Callable[[Any], str]], Answer]


@dataclass(frozen=True)
class Owned:
    """An item (integer id) or a round (public id), its owner and its state."""

    ref: Any
    owner: str
    state: str


@dataclass
class Snapshot:
    movements: list[MoneyMovementRow]
    items: list[InventoryItemRow]
    rounds: list[RoundRow]
    reels: dict[int, int]  # round id -> number of reels


def encode(result: Any) -> bytes:
    return json.dumps(dataclasses.asdict(result), sort_keys=True, default=str).encode()


def signed(call: WalletMoneyCall) -> int:
    return call.amount_minor if call.type == CREDIT else -call.amount_minor


def same_money(call: WalletMoneyCall, row: MoneyMovementRow) -> bool:
    return (
        call.type == (DEBIT if row.kind == "debit" else CREDIT)
        and call.reason == row.reason
        and call.player_external_id == row.player_external_id
        and call.amount_minor == row.amount_minor
        and call.currency == row.currency
        and call.inventory_item_id == row.inventory_item_id
        and call.round_public_id == row.round_public_id
    )


# --- the machine --------------------------------------------------------------------------------


class MoneyMachine(RuleBasedStateMachine):
    seeded: ClassVar[Seeded]  # set by the ``seeded`` fixture below

    def __init__(self) -> None:
        super().__init__()
        self.wallet = ScriptedWallet()
        self.harness = ServiceHarness(
            self.seeded.database_url,
            wallet=self.wallet,
            movement_lease_seconds=MOVEMENT_LEASE_SECONDS,
        )
        assert seed(self.harness) == self.seeded
        self.clock = self.harness.clock
        self.wallet.before_send = self._sent_only_when_recorded
        self.redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        self.time = FakeTime()
        self.guard = IdempotencyGuard(
            SwitchableStore(
                RedisIdempotencyStore(self.redis), lambda: self.redis_down or self.dead
            ),
            self._guard_uow,
            self.clock,
            wait_seconds=0.1,
            lease_seconds=IDEMPOTENCY_LEASE_SECONDS,
            ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
            poll_seconds=0.05,
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
        )
        self.dead = False  # the current worker is gone: its guard can write nothing more
        self.redis_down = False
        self.die_before_answer = False
        self.serial = itertools.count(1)
        self.start_balance: dict[tuple[str, str], int] = {}
        self.calls: list[Call] = []  # every request sent, for exact retries
        self.keys: list[str] = []  # every key seen (requests and ledger), for borrowing
        self.actions: dict[str, list[str]] = {player: [] for player in PLAYERS}
        self.answers: dict[str, bytes] = {}  # the first 2xx body delivered per key
        self.items: list[Owned] = []
        self.rounds: list[Owned] = []
        # What the requests answered, for --hypothesis-show-statistics. Buffered: a request
        # may run on the reconciler's thread, and Hypothesis records events per thread.
        self.events: list[str] = []
        self.failures: list[str] = []  # checks that failed while a request ran

    def teardown(self) -> None:
        try:
            # Only when the steps passed: a failing example keeps its own error.
            if sys.exc_info()[0] is None:
                self.settle_everything()
        finally:
            self.harness.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _guard_uow(self) -> UnitOfWork:
        if self.dead:
            raise WorkerDied("the worker is gone: its guard writes nothing")
        return self.harness.uow()

    def _send(self, call: Call) -> None:
        """Send one request through the guard as the S2S view would, and check the answer."""
        self.calls.append(call)
        self.keys.append(call.key)
        request = KeyedRequest(
            operator_id=self.seeded.operator_id,
            key=call.key,
            endpoint=call.endpoint,
            fingerprint=fingerprint(call.endpoint, call.request),
            request_id=f"req-{next(self.serial)}",
        )

        def execute() -> Answer:
            answer = call.run(request, lambda result: encode(result).decode())
            with self._witness():
                # Invariant 4: a completed 2xx is final for its key (within the retention):
                # the database replays it when Redis no longer has it.
                if call.key in self.answers:
                    assert answer.replayed, f"{call.key} executed again after its 2xx"
            if self.die_before_answer:
                # The answer was stored with the settle; the worker dies before sending it.
                self.die_before_answer = False
                self.answers.setdefault(call.key, answer.body.encode())
                self.dead = True
                raise WorkerDied("killed before answering")
            return answer

        try:
            answer = self.guard.run(request, execute)
        except WorkerDied:
            self.events.append(f"{call.endpoint}: worker died")
            return
        except LootboxError as error:
            self.events.append(f"{call.endpoint}: {error.code}")
            return
        finally:
            self.dead = False
        self.events.append(f"{call.endpoint}: 200 {answer.outcome}")
        with self._witness():
            assert answer.status == 200
            first = self.answers.get(call.key)
            if first is None:
                assert answer.outcome == "fresh", f"{call.key} replayed an unstored answer"
                self.answers[call.key] = answer.body
            else:
                # Invariant 4: every later answer for the key is the first one, replayed.
                assert answer.outcome == "replay", f"{call.key} executed again after its 2xx"
                assert answer.body == first, f"replay of {call.key} differs from the first"

    @contextmanager
    def _witness(self) -> Iterator[None]:
        """Checks made while requests run may run on the reconciler's thread, whose pass
        logs an exception and carries on: keep every failure for the next invariant."""
        try:
            yield
        except AssertionError as failure:
            self.failures.append(str(failure) or repr(failure))
            raise

    def _reconcile(self) -> None:
        try:
            # One worker: the scripted faults then meet the movements in a fixed order.
            summary = reconcile_once(self.harness.ctx, concurrency=1)
        except WorkerDied:
            self.events.append("reconcile: reconciler died")
        else:
            self.events.append(f"reconcile: {'some due' if summary.examined else 'nothing due'}")
        finally:
            self.dead = False

    def _fresh_key(self) -> str:
        return f"key-{next(self.serial)}"

    def _key(self, choice: str, default: str, pick: int) -> str:
        if choice == "fresh" or (choice == "borrowed" and not self.keys):
            return self._fresh_key()
        if choice == "borrowed":
            return self.keys[pick % len(self.keys)]
        return default

    @staticmethod
    def _choose(pool: list[Owned], pick: int, likely: bool, active: tuple[str, ...]) -> Owned:
        """One of ``pool``; if ``likely``, one in an ``active`` state when there is one."""
        candidates = [o for o in pool if o.state in active] if likely else []
        candidates = candidates or pool
        return candidates[pick % len(candidates)]

    def _player(self, who: str, owner: str) -> str:
        return owner if who == "owner" else next(p for p in PLAYERS if p != owner)

    # --- requests ----------------------------------------------------------------------------

    def _purchase(
        self,
        player: str,
        action: str,
        mode: PurchaseMode,
        currency: str | None,
        boxes: tuple[str, ...],
    ) -> Call:
        versions = {"gold": self.seeded.gold, "silver": self.seeded.silver}
        reels = [(index, versions[box]) for index, box in enumerate(boxes)]
        operator = self.harness.authenticated(self.seeded.operator)
        command = Purchase(
            player_external_id=player,
            mode=mode,
            client_action_id=action,
            currency=currency,
            reels=tuple(ReelPick(index, version) for index, version in reels),
        )
        return Call(
            "purchase",
            purchase_key(player, action),
            {
                "playerExternalId": player,
                "gameKey": "mystery_box",
                "mode": str(mode),
                "clientActionId": action,
                "currency": currency or OPERATOR_CURRENCY,
                "reels": [list(reel) for reel in reels],
            },
            lambda request, render: purchase(self.harness.ctx, operator, command, request, render),
        )

    def _cashout(self, item: Owned, player: str, currency: str | None, key: str) -> Call:
        operator = self.harness.authenticated(self.seeded.operator)
        command = CashOut(player, item.ref, currency, key)
        return Call(
            "cashout",
            key,
            {
                "playerExternalId": player,
                "inventoryItemId": item.ref,
                "currency": currency or OPERATOR_CURRENCY,
            },
            lambda request, render: cash_out(self.harness.ctx, operator, command, request, render),
        )

    def _cancel(self, round_: Owned, player: str, key: str) -> Call:
        operator = self.harness.authenticated(self.seeded.operator)
        command = CancelRound(player, round_.ref, key)
        return Call(
            "cancel",
            key,
            {"playerExternalId": player, "roundPublicId": round_.ref},
            lambda request, render: cancel_round(
                self.harness.ctx, operator, command, request, render
            ),
        )

    def _open(self, round_: Owned, player: str, key: str) -> Call:
        operator = self.harness.authenticated(self.seeded.operator)
        command = OpenRound(player, round_.ref, key)
        return Call(
            "open",
            key,
            {"playerExternalId": player, "roundPublicId": round_.ref},
            lambda request, render: open_round(
                self.harness.ctx, operator, command, request, render
            ),
        )

    # --- rules: the start ---------------------------------------------------------------------

    @initialize(
        balances=st.lists(
            st.sampled_from(STARTING_BALANCES),
            min_size=len(PLAYERS) * len(WALLET_CURRENCIES),
            max_size=len(PLAYERS) * len(WALLET_CURRENCIES),
        ),
        draw_seed=st.integers(0, 2**16),
        first_purchases=st.lists(st.tuples(PLAYER, MODE, CURRENCY, BOXES), min_size=1, max_size=3),
    )
    def start(
        self,
        balances: list[int],
        draw_seed: int,
        first_purchases: list[tuple[str, PurchaseMode, str | None, tuple[str, ...]]],
    ) -> None:
        """Starting balances, the draws' seed, and a few purchases so that every example
        has rounds and items to work on."""
        pairs = itertools.product(PLAYERS, WALLET_CURRENCIES)
        for pair, balance in zip(pairs, balances, strict=True):
            self.wallet.set_balance(*pair, balance)
            self.start_balance[pair] = balance
        self.harness.ctx.random_bytes = random.Random(draw_seed).randbytes
        for player, mode, currency, boxes in first_purchases:
            self.buy(player, mode, currency, boxes, reuse_action=False, pick=0)

    # --- rules: requests ----------------------------------------------------------------------

    @rule(
        player=PLAYER,
        mode=MODE,
        currency=CURRENCY,
        boxes=BOXES,
        reuse_action=st.sampled_from((False, False, False, True)),
        pick=PICK,
    )
    def buy(
        self,
        player: str,
        mode: PurchaseMode,
        currency: str | None,
        boxes: tuple[str, ...],
        reuse_action: bool,
        pick: int,
    ) -> None:
        """A purchase under a fresh ``clientActionId``, or an earlier one of this player's
        (the same purchase again, or another one under its key)."""
        actions = self.actions[player]
        if reuse_action and actions:
            action = actions[pick % len(actions)]
        else:
            action = f"act-{next(self.serial)}"
            actions.append(action)
        self._send(self._purchase(player, action, mode, currency, boxes))

    @precondition(lambda self: bool(self.calls))
    @rule(pick=PICK)
    def retry(self, pick: int) -> None:
        """An earlier request again: the same key and the same body."""
        self._send(self.calls[pick % len(self.calls)])

    @precondition(lambda self: bool(self.rounds))
    @rule(pick=PICK, likely=LIKELY, who=WHO, key=KEY, key_pick=PICK)
    def open_box(self, pick: int, likely: bool, who: str, key: str, key_pick: int) -> None:
        round_ = self._choose(self.rounds, pick, likely, ACTIVE_ROUND)
        chosen = self._key(key, default_open_key(round_.ref), key_pick)
        self._send(self._open(round_, self._player(who, round_.owner), chosen))

    @precondition(lambda self: bool(self.items))
    @rule(
        pick=PICK,
        likely=LIKELY,
        who=WHO,
        currency=st.sampled_from((None, "EUR", "USD", None, "EUR", "USD", "JPY")),
        key=KEY,
        key_pick=PICK,
    )
    def cash_out_item(
        self, pick: int, likely: bool, who: str, currency: str | None, key: str, key_pick: int
    ) -> None:
        item = self._choose(self.items, pick, likely, ACTIVE_ITEM)
        chosen = self._key(key, default_cashout_key(item.ref), key_pick)
        self._send(self._cashout(item, self._player(who, item.owner), currency, chosen))

    @precondition(lambda self: bool(self.rounds))
    @rule(pick=PICK, likely=LIKELY, who=WHO, key=KEY, key_pick=PICK)
    def cancel(self, pick: int, likely: bool, who: str, key: str, key_pick: int) -> None:
        round_ = self._choose(self.rounds, pick, likely, ACTIVE_ROUND)
        chosen = self._key(key, default_cancel_key(round_.ref), key_pick)
        self._send(self._cancel(round_, self._player(who, round_.owner), chosen))

    # --- rules: faults ----------------------------------------------------------------------

    @rule(
        fault=st.sampled_from(WALLET_FAULTS + OTHER_FAULTS),
        kind=st.sampled_from((None, *CALL_KINDS)),
    )
    def fault(self, fault: str, kind: str | None) -> None:
        """What goes wrong next. The wallet faults meet the next wallet call of ``kind`` (or
        any), whoever makes it:

        - ``refused``: a refusal (of a key the wallet does not hold);
        - ``timeout``: a timeout before the wallet saw the call;
        - ``answer lost``: the wallet applies it, and the answer is lost;
        - ``died`` / ``died after apply``: the worker dies inside the call, the exception
          propagating through the guard (which suspends its record: money may have moved);
        - ``killed`` / ``killed after apply``: the same, but the process is gone, so the
          guard writes nothing more: its record stays in progress under its lease.

        The others:

        - ``killed before answer``: the next successful request dies after the settle
          that stored its answer, before sending it (and before Redis hears of it);
        - ``redis flushed``; ``redis down or back``; ``redis down during next wallet
          call`` (the guard cannot complete or release its Redis record: it stays in
          progress until its lease runs out).
        """
        if fault in WALLET_FAULTS:

            def on_death(killed: bool) -> None:
                self.dead = killed

            self.wallet.script(fault, kind, on_death)
        elif fault == "killed before answer":
            self.die_before_answer = True
        elif fault == "redis flushed":
            self.redis.flushall()
        elif fault == "redis down during next wallet call":
            self.wallet.during_next_send(lambda _call: setattr(self, "redis_down", True))
        else:
            assert fault == "redis down or back"
            self.redis_down = not self.redis_down

    @rule(change=st.sampled_from(tuple(POLICIES)))
    def operator_changes_policy(self, change: str) -> None:
        self.harness.update_operator(self.seeded.operator_slug, **POLICIES[change])

    @rule(
        action=st.sampled_from(("retry", "reconcile", "cashout", "cancel", "open")),
        pick=PICK,
    )
    def another_request_during_next_wallet_call(self, action: str, pick: int) -> None:
        """While the next wallet call is in flight (its lease live, no transaction open),
        another request or a reconciler pass runs."""

        def meanwhile(_call: WalletMoneyCall) -> None:
            if action == "reconcile":
                self._reconcile()
            elif action == "retry" and self.calls:
                self._send(self.calls[pick % len(self.calls)])
            elif action == "cashout" and self.items:
                item = self._choose(self.items, pick, True, ACTIVE_ITEM)
                self._send(self._cashout(item, item.owner, None, self._fresh_key()))
            elif action in ("cancel", "open") and self.rounds:
                round_ = self._choose(self.rounds, pick, True, ACTIVE_ROUND)
                build = self._cancel if action == "cancel" else self._open
                self._send(build(round_, round_.owner, self._fresh_key()))

        self.wallet.during_next_send(meanwhile)

    @rule(wait=st.sampled_from(tuple(WAITS)), reconciler_runs=st.booleans())
    def later(self, wait: str, reconciler_runs: bool) -> None:
        """Time passes (not at all, a second, past the movement lease, past every lease),
        then perhaps a reconciler pass runs. Or: every fault clears, every lease runs out
        and the reconciler catches up (``settle_everything``)."""
        if wait == "until everything settles":
            self.settle_everything()
            return
        self.clock.advance(WAITS[wait])
        if WAITS[wait] >= IDEMPOTENCY_LEASE_SECONDS:
            self._expire_redis_leases()
        if reconciler_runs:
            self._reconcile()

    def _expire_redis_leases(self) -> None:
        """fakeredis expires keys in real time; the test's clock is the service's. Between
        steps an in-progress Redis record belongs to a dead worker, claimed at or before
        the clock's previous reading, so its lease is over once the lease has passed."""
        for name in self.redis.keys("lootbox:idem:*"):
            raw = self.redis.get(name)
            if raw is not None and json.loads(raw).get("state") == "in_progress":
                self.redis.delete(name)

    def settle_everything(self) -> None:
        """Faults cleared, every lease over, one reconciler pass: nothing may stay pending
        and every item and round is in a final external state."""
        self.wallet.clear_faults()
        self.die_before_answer = False
        self.redis_down = False
        self.clock.advance(PAST_EVERY_LEASE)
        self._expire_redis_leases()
        summary = reconcile_once(self.harness.ctx, concurrency=1)
        snap = self._snapshot()
        pending = [m.idempotency_key for m in snap.movements if m.status == "pending"]
        assert pending == [], f"still pending after a clean reconciler pass: {pending}"
        assert summary.still_pending == 0
        for item in snap.items:
            assert item.state != ItemState.CASHBACK_PENDING, f"item {item.id} stuck"
        for round_ in snap.rounds:
            assert round_.status not in (RoundStatus.DEBIT_PENDING, RoundStatus.REFUND_PENDING), (
                f"round {round_.public_id} stuck in {round_.status}"
            )
        self._check(snap)

    # --- checked as every wallet call is sent --------------------------------------------------

    def _sent_only_when_recorded(self, call: WalletMoneyCall) -> None:
        """§7.2: the call is in the ledger, pending, with this payload, under a live lease,
        and its subject is in the matching internal pending state, before it is sent."""
        with self._witness(), self.harness.session_factory() as session:
            row = session.scalar(
                select(MoneyMovementRow).where(
                    MoneyMovementRow.operator_id == self.seeded.operator_id,
                    MoneyMovementRow.idempotency_key == call.idempotency_key,
                )
            )
            assert row is not None, f"{call.idempotency_key} sent without a ledger row"
            assert row.status == "pending", f"{call.idempotency_key} sent while {row.status}"
            assert same_money(call, row), f"{call} differs from its ledger row"
            assert row.lease_expires_at is not None
            assert row.lease_expires_at > self.clock.now(), "sent without a live lease"
            if row.inventory_item_id is not None:
                item = session.get(InventoryItemRow, row.inventory_item_id)
                assert item is not None
                assert item.state == ItemState.CASHBACK_PENDING
            else:
                round_ = session.get(RoundRow, row.round_id)
                assert round_ is not None
                expected = (
                    RoundStatus.DEBIT_PENDING if row.kind == "debit" else RoundStatus.REFUND_PENDING
                )
                assert round_.status == expected

    # --- checked after every step -------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        with self.harness.session_factory() as session:
            snap = Snapshot(
                movements=list(
                    session.scalars(select(MoneyMovementRow).order_by(MoneyMovementRow.id))
                ),
                items=list(session.scalars(select(InventoryItemRow).order_by(InventoryItemRow.id))),
                rounds=list(session.scalars(select(RoundRow).order_by(RoundRow.id))),
                reels={
                    round_id: count
                    for round_id, count in session.execute(
                        select(ReelRow.round_id, func.count()).group_by(ReelRow.round_id)
                    )
                },
            )
            session.expunge_all()
        return snap

    @invariant()
    def money_moves_exactly_once(self) -> None:
        for label in self.events:
            event(label)
        self.events.clear()
        snap = self._snapshot()
        self._check(snap)
        # What the next steps may act on: every item and round, and every key seen.
        self.items = [Owned(i.id, i.player_external_id, i.state) for i in snap.items]
        self.rounds = [Owned(r.public_id, r.player_external_id, r.status) for r in snap.rounds]
        known = set(self.keys)
        self.keys.extend(
            m.idempotency_key for m in snap.movements if m.idempotency_key not in known
        )

    def _check(self, snap: Snapshot) -> None:
        assert not self.failures, self.failures
        applied = self.wallet.applied
        applied_by_key = {call.idempotency_key: call for call in applied}
        assert len(applied_by_key) == len(applied), "the wallet applied a key twice"
        rows_by_key = {row.idempotency_key: row for row in snap.movements}

        # 1. At most one credit per item and per round, one debit per round.
        cashbacks = Counter(c.inventory_item_id for c in applied if c.reason == "cashback")
        refunds = Counter(c.round_public_id for c in applied if c.reason == "refund")
        debits = Counter(c.round_public_id for c in applied if c.type == DEBIT)
        for counter, what in ((cashbacks, "credits"), (refunds, "refunds"), (debits, "debits")):
            twice = {subject: n for subject, n in counter.items() if n > 1}
            assert not twice, f"more than one applied {what}: {twice}"

        # 2. Ledger rows and wallet operations match one to one.
        for row in snap.movements:
            call = applied_by_key.get(row.idempotency_key)
            if row.status == "accepted":
                assert call is not None, f"{row.idempotency_key} accepted but never applied"
            if row.status == "refused":
                assert call is None, f"{row.idempotency_key} refused but applied by the wallet"
            if call is not None:
                assert same_money(call, row), f"{call} differs from its ledger row"
        for call in applied:
            assert call.idempotency_key in rows_by_key, f"{call} applied with no ledger row"
        for call in self.wallet.sent:
            assert call.idempotency_key in rows_by_key, f"{call} sent with no ledger row"

        # 3. Subjects agree with the money.
        live_cashback = {
            row.inventory_item_id: row
            for row in snap.movements
            if row.reason == "cashback" and row.status != "refused"
        }
        live_refund = {
            row.round_id: row
            for row in snap.movements
            if row.reason == "refund" and row.status != "refused"
        }
        debit_rows = {row.round_id: row for row in snap.movements if row.kind == "debit"}
        items_per_round = Counter(item.round_id for item in snap.items)
        for item in snap.items:
            credited = cashbacks[item.id]
            live = live_cashback.get(item.id)
            where = f"item {item.id} ({item.state})"
            if item.state == ItemState.CASHED_BACK:
                assert credited == 1, f"{where}: {credited} applied cashback credits"
                assert live is not None and live.status == "accepted", where
            elif item.state == ItemState.CASHBACK_PENDING:
                assert live is not None and live.status == "pending", where
            else:
                assert credited == 0, f"{where}: credited but not cashed back"
                assert live is None, f"{where}: a live cashback {live.idempotency_key}"
        for round_ in snap.rounds:
            where = f"round {round_.public_id} ({round_.status})"
            debited, refunded = debits[round_.public_id], refunds[round_.public_id]
            debit, refund = debit_rows.get(round_.id), live_refund.get(round_.id)
            status = RoundStatus(round_.status)
            assert debit is not None, f"{where}: no debit row"
            if status is RoundStatus.VOIDED:
                assert debited == 0 and debit.status == "refused", f"{where}: money moved"
            elif status is RoundStatus.DEBIT_PENDING:
                assert debit.status == "pending", where
            else:
                assert debited == 1 and debit.status == "accepted", f"{where}: not debited once"
            if status is RoundStatus.REFUNDED:
                assert refunded == 1, f"{where}: {refunded} applied refunds"
                assert refund is not None and refund.status == "accepted", where
            elif status is RoundStatus.REFUND_PENDING:
                assert refund is not None and refund.status == "pending", where
            else:
                assert refunded == 0, f"{where}: refunded but not in refunded state"
                assert refund is None, f"{where}: a live refund {refund.idempotency_key}"
            if refund is not None:
                assert (refund.amount_minor, refund.currency) == (
                    round_.bet_minor,
                    round_.currency,
                ), f"{where}: refund is not the original amount and currency"
            assert (debit.amount_minor, debit.currency) == (round_.bet_minor, round_.currency)
            drawn = items_per_round[round_.id]
            expected_items = snap.reels.get(round_.id, 0)
            if status is RoundStatus.SETTLED:
                assert drawn == expected_items, f"{where}: {drawn} items"
            else:
                assert drawn == 0, f"{where}: items drawn without being settled"

        # 5. Balances: the wallet's movement is the ledger's (accepted, or pending but applied).
        nothing_pending = all(row.status != "pending" for row in snap.movements)
        pairs = {(c.player_external_id, c.currency) for c in applied} | set(self.start_balance)
        for player, currency in pairs:
            start = self.start_balance.get((player, currency), self.wallet.starting_balance)
            moved = self.wallet.balance(player, currency) - start
            applied_net = sum(
                signed(c)
                for c in applied
                if (c.player_external_id, c.currency) == (player, currency)
            )
            ledger_net = sum(
                row.amount_minor if row.kind == "credit" else -row.amount_minor
                for row in snap.movements
                if (row.player_external_id, row.currency) == (player, currency)
                and (
                    row.status == "accepted"
                    or (row.status == "pending" and row.idempotency_key in applied_by_key)
                )
            )
            assert moved == applied_net == ledger_net, (player, currency, moved, ledger_net)
            if nothing_pending:
                accepted_net = sum(
                    row.amount_minor if row.kind == "credit" else -row.amount_minor
                    for row in snap.movements
                    if (row.player_external_id, row.currency) == (player, currency)
                    and row.status == "accepted"
                )
                assert moved == accepted_net


# --- the test -----------------------------------------------------------------------------------


def seed(harness: ServiceHarness) -> Seeded:
    """Empty the database and seed it: the operator (EUR, USD at 1.1042, 10 % cashback)
    and its catalog."""
    with harness.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    operator = harness.create_operator("acme", currency=OPERATOR_CURRENCY, rates=RATES)
    versions = harness.import_catalog(operator.slug, GOLD, SILVER)
    return Seeded(
        harness.database_url,
        operator,
        operator.id,
        operator.slug,
        versions["gold"],
        versions["silver"],
    )


@pytest.fixture(scope="module", autouse=True)
def seeded(postgres_database: str) -> Iterator[Seeded]:
    harness = ServiceHarness(postgres_database)
    try:
        MoneyMachine.seeded = seed(harness)
        yield MoneyMachine.seeded
        with harness.engine.begin() as conn:  # leave it empty, as every test does
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    finally:
        harness.close()


MoneyMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
)
TestMoneyMovesExactlyOnceWhateverTheFaultsRetriesAndKeys = MoneyMachine.TestCase
