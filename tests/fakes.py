"""Hand-written fakes for our own ports, and a small harness around the real unit of work.

``FakeWallet`` keeps the operator wallet's rules of contract section 6 (balances per player
and currency, idempotent by key, a refused key not consumed) and lets a test script what
the next calls answer: a timeout before the wallet saw the call, a refusal, or a timeout
*after* the wallet applied it (the case that makes exactly-once hard).

``ServiceHarness`` wires a ``ServiceContext`` around ``SqlAlchemyUnitOfWork`` on a real
(SQLite) database, with a fixed clock and a seeded random source, and seeds operators and
catalogs through the same use cases the CLI uses.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from lootbox.domain.records import InventoryItem, Operator, Round, WalletSettings
from lootbox.domain.states import PurchaseMode
from lootbox.idempotency.fingerprint import fingerprint
from lootbox.persistence.database import (
    SqlAlchemyUnitOfWork,
    make_engine,
    make_session_factory,
)
from lootbox.persistence.models import MoneyMovementRow
from lootbox.ports import (
    Answer,
    KeyedRequest,
    UnitOfWork,
    WalletAccepted,
    WalletMoneyCall,
    WalletOutcome,
    WalletOutcomeUnknown,
    WalletRefusal,
)
from lootbox.services import cancel as cancel_service
from lootbox.services import cashout as cashout_service
from lootbox.services import catalog as catalog_service
from lootbox.services import onboarding, opening
from lootbox.services import purchase as purchase_service
from lootbox.services.cancel import CancelResult, CancelRound
from lootbox.services.cashout import CashOut, CashoutResult
from lootbox.services.context import ServiceContext
from lootbox.services.opening import OpenRound
from lootbox.services.purchase import Purchase, ReelPick, purchase_key
from lootbox.services.rounds import RoundOutcome

DEBIT = "wallet.debit"
DEBIT_KIND = "debit"
CREDIT = "wallet.credit"


class WorkerDied(BaseException):
    """The worker running a request is gone: nothing after this point runs (not even the
    use case's own clean-up, as for a killed process)."""


# --- clock ---------------------------------------------------------------------------------


class FixedClock:
    """A clock that only moves when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


# --- wallet ---------------------------------------------------------------------------------

Step = Callable[[WalletMoneyCall], WalletOutcome]


class FakeWallet:
    """The ``Wallet`` port with a real wallet's semantics, in memory.

    - ``balances`` per ``(player, currency)``, starting at ``starting_balance``;
    - the same key with the same call gets the stored answer and moves nothing again;
      the same key with another payload is refused ``DUPLICATE_TRANSACTION``;
    - a refused call stores nothing, so its key is not consumed;
    - ``sent`` records every call received, ``applied`` every call that moved money.

    Scripted answers (``fail_next``, ``refuse_next``, ``apply_then_unknown``) are used in
    order, one per call, before the normal rules apply again.
    """

    def __init__(self, starting_balance: int = 100_000) -> None:
        self.starting_balance = starting_balance
        self.balances: dict[tuple[str, str], int] = {}
        self.blocked: set[str] = set()
        self.sent: list[WalletMoneyCall] = []
        self.applied: list[WalletMoneyCall] = []
        self.settings_seen: list[WalletSettings] = []
        self._answers: dict[str, tuple[dict[str, Any], WalletAccepted]] = {}
        self._script: deque[Step] = deque()
        self._hooks: deque[Callable[[WalletMoneyCall], None]] = deque()
        self._refs = itertools.count(1)

    # scripting

    _die_next = False

    def fail_next(self, outcome: WalletOutcome | None = None, times: int = 1) -> None:
        """Answer the next ``times`` calls with ``outcome`` without applying them (by default
        a timeout before the wallet saw the call)."""
        answer = outcome or WalletOutcomeUnknown("connect timeout")
        self.then(lambda _call: answer, times)

    def refuse_next(self, code: str, message: str = "refused by the fake", times: int = 1) -> None:
        self.fail_next(WalletRefusal(code, message), times)

    def apply_then_unknown(self, reason: str = "read timeout", times: int = 1) -> None:
        """Apply the next call(s) for real, then lose the answer (a timeout after apply)."""

        def step(call: WalletMoneyCall) -> WalletOutcome:
            self.apply(call)
            return WalletOutcomeUnknown(reason)

        self.then(step, times)

    def then(self, step: Step, times: int = 1) -> None:
        """Answer the next ``times`` calls with ``step`` (after what is already scripted)."""
        self._script.extend([step] * times)

    def during_next_send(self, hook: Callable[[WalletMoneyCall], None]) -> None:
        """Run ``hook`` while the next call is in flight (before it is answered): a
        concurrent request arriving meanwhile."""
        self._hooks.append(hook)

    def block(self, player: str) -> None:
        self.blocked.add(player)

    # the port

    def die_before_next_send(self) -> None:
        """The worker making the next call dies just before sending it (``WorkerDied``):
        its movement is recorded and leased, and nothing reaches the wallet."""
        self._die_next = True

    def send(self, settings: WalletSettings, call: WalletMoneyCall) -> WalletOutcome:
        if self._die_next:
            self._die_next = False
            raise WorkerDied("the worker died before sending its wallet call")
        self.sent.append(call)
        self.settings_seen.append(settings)
        if self._hooks:
            self._hooks.popleft()(call)
        if self._script:
            return self._script.popleft()(call)
        return self.apply(call)

    # reads

    def balance(self, player: str, currency: str) -> int:
        return self.balances.get((player, currency), self.starting_balance)

    def set_balance(self, player: str, currency: str, amount_minor: int) -> None:
        self.balances[(player, currency)] = amount_minor

    @property
    def sent_credits(self) -> list[WalletMoneyCall]:
        return [c for c in self.sent if c.type == CREDIT]

    @property
    def applied_credits(self) -> list[WalletMoneyCall]:
        return [c for c in self.applied if c.type == CREDIT]

    @property
    def sent_debits(self) -> list[WalletMoneyCall]:
        return [c for c in self.sent if c.type == DEBIT]

    @property
    def applied_debits(self) -> list[WalletMoneyCall]:
        return [c for c in self.applied if c.type == DEBIT]

    # the rules

    def apply(self, call: WalletMoneyCall) -> WalletOutcome:
        """Answer ``call`` by the wallet's own rules (what an unscripted call gets); for
        scripted steps that apply a call and then misbehave."""
        body = call.to_body()
        stored = self._answers.get(call.idempotency_key)
        if stored is not None:
            stored_body, answer = stored
            if stored_body == body:
                return answer
            return WalletRefusal("DUPLICATE_TRANSACTION", "key reused with another payload")
        if call.player_external_id in self.blocked:
            return WalletRefusal("PLAYER_BLOCKED", "player is blocked")
        if call.amount_minor <= 0:
            return WalletRefusal("INVALID_AMOUNT", "amount must be positive")
        wallet_key = (call.player_external_id, call.currency)
        balance = self.balance(*wallet_key)
        if call.type == DEBIT:
            if balance < call.amount_minor:
                return WalletRefusal("INSUFFICIENT_FUNDS", "not enough money")
            balance -= call.amount_minor
        else:
            balance += call.amount_minor
        self.balances[wallet_key] = balance
        self.applied.append(call)
        answer = WalletAccepted(balance, f"fake-{next(self._refs)}")
        self._answers[call.idempotency_key] = (body, answer)
        return answer


# --- catalog documents -----------------------------------------------------------------------


def prize_doc(
    name: str, value_minor: int, odds: Any = "1", cashback_bps: int | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "valueMinor": value_minor, "odds": odds}
    if cashback_bps is not None:
        doc["cashbackBps"] = cashback_bps
    return doc


def box_doc(
    slug: str,
    *,
    price_minor: int = 500,
    prizes: Iterable[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A catalog box; ``fields`` are extra JSON fields (``refundable``, ``cashbackBps`` …)."""
    return {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "priceMinor": price_minor,
        "prizes": list(prizes) if prizes is not None else [prize_doc("Ring", 3200)],
        **fields,
    }


# --- the harness ------------------------------------------------------------------------------


@dataclass
class ServiceHarness:
    """A ``ServiceContext`` on a real database, with a fake wallet, a fixed clock and a
    seeded random source. ``close()`` disposes the engine."""

    database_url: str
    wallet: FakeWallet = field(default_factory=FakeWallet)
    clock: FixedClock = field(default_factory=FixedClock)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    movement_lease_seconds: float = 15.0

    def __post_init__(self) -> None:
        self.engine = make_engine(self.database_url)
        self.session_factory = make_session_factory(self.engine)
        self.ctx = ServiceContext(
            uow_factory=self.uow,
            wallet=self.wallet,
            clock=self.clock,  # type: ignore[arg-type]
            movement_lease_seconds=self.movement_lease_seconds,
            # A claim that outlives its wallet call, by no more: a test that waits out the
            # movement's lease finds the request's claim free as well.
            idempotency_lease_seconds=self.movement_lease_seconds,
            random_bytes=self.rng.randbytes,
        )

    def uow(self) -> UnitOfWork:
        # The port's ``__exit__(*exc)`` does not match the adapter's three-argument form
        # for mypy, though they are the same at run time.
        return SqlAlchemyUnitOfWork(self.session_factory)  # type: ignore[return-value]

    def close(self) -> None:
        self.engine.dispose()

    def authenticated(self, operator: Operator) -> Operator:
        """The operator as authentication reads it for a request now, with the policies and
        rates in force: what the S2S views put into every command."""
        with self.uow() as uow:
            current = uow.operators.get(operator.id)
        assert current is not None
        return current

    # seeding

    def create_operator(
        self,
        slug: str = "acme",
        *,
        currency: str = "EUR",
        rates: Mapping[str, str] | None = None,
        cashback_bps: int | None = 1000,
        refunds_enabled: bool = True,
        cashback_enabled: bool = True,
    ) -> Operator:
        operator, _key = onboarding.create_operator(
            self.uow,
            self.clock,
            slug=slug,
            currency=currency,
            wallet_url=f"https://wallet.{slug}.example/rpc",
            wallet_secret=f"{slug}-wallet-secret",
            rates={
                code: Decimal(rate)
                for code, rate in (rates if rates is not None else {"USD": "1.1042"}).items()
            },
            cashback_bps=cashback_bps,
            refunds_enabled=refunds_enabled,
            cashback_enabled=cashback_enabled,
        )
        return operator

    def update_operator(
        self, slug: str, *, rates: Mapping[str, str] | None = None, **policies: Any
    ) -> Operator:
        return onboarding.update_operator(
            self.uow,
            self.clock,
            slug,
            rates={code: Decimal(rate) for code, rate in (rates or {}).items()},
            **policies,
        )

    def import_catalog(self, operator_slug: str, *boxes: dict[str, Any]) -> dict[str, int]:
        """Publish the boxes; returns ``{box slug: box version id}``."""
        published = catalog_service.import_catalog(
            self.uow, self.clock, operator_slug, {"boxes": list(boxes)}
        )
        return {p.slug: p.box_version_id for p in published}

    def buy(
        self,
        operator: Operator,
        player: str,
        *box_version_ids: int,
        mode: PurchaseMode = PurchaseMode.OPEN,
        client_action_id: str | None = None,
        currency: str | None = None,
    ) -> RoundOutcome:
        """A purchase through the real use case (one debit on the fake wallet)."""
        return purchase(
            self.ctx,
            self.authenticated(operator),
            Purchase(
                player_external_id=player,
                mode=mode,
                client_action_id=client_action_id or f"act-{next(_action_ids)}",
                currency=currency,
                reels=tuple(ReelPick(i, v) for i, v in enumerate(box_version_ids)),
            ),
        )

    # reads, for assertions

    def item(self, operator_id: int, item_id: int) -> InventoryItem:
        with self.uow() as uow:
            found = uow.items.get(operator_id, item_id)
        assert found is not None
        return found

    def round(self, operator_id: int, public_id: str) -> Round:
        with self.uow() as uow:
            found = uow.rounds.get_by_public_id(operator_id, public_id)
        assert found is not None
        return found

    def movements(self) -> list[MoneyMovementRow]:
        """Every ledger row, oldest first (detached snapshots)."""
        with self.session_factory() as session:
            rows = list(session.scalars(select(MoneyMovementRow).order_by(MoneyMovementRow.id)))
            session.expunge_all()
            return rows

    def debited_rounds(self) -> list[str]:
        """Public ids of the rounds with a debit in the ledger (voided ones too), oldest first."""
        return [
            m.round_public_id
            for m in self.movements()
            if m.round_public_id and m.kind == DEBIT_KIND
        ]


_action_ids = itertools.count(1)


# --- the use cases as a service test calls them -------------------------------------------------
#
# The use cases claim the request's key in the database and answer with the body their
# ``render`` makes of the result (the API renders JSON). These call them as the API would,
# rendering the result's ``repr`` and remembering the result per body, so that a test reads
# the result back: the fresh one, or the one an earlier attempt stored and the database
# replays. Each command's key is its ``idempotency_key`` (a purchase's, its action's), and
# its fingerprint the command's fields, currency defaulted, as the API normalises them.

_RESULTS: dict[str, Any] = {}


def _render(result: Any) -> str:
    body = repr(result)
    _RESULTS[body] = result
    return body


def keyed_request(
    endpoint: str, key: str, operator: Operator, command: Any, request_id: str = "req"
) -> KeyedRequest:
    fields = asdict(command)
    fields.pop("idempotency_key", None)
    if "currency" in fields:
        fields["currency"] = fields["currency"] or operator.currency
    return KeyedRequest(
        operator_id=operator.id,
        key=key,
        endpoint=endpoint,
        fingerprint=fingerprint(endpoint, {k: repr(v) for k, v in fields.items()}),
        request_id=request_id,
    )


def _result(answer: Answer) -> Any:
    return _RESULTS[answer.body]


def cash_out(ctx: ServiceContext, operator: Operator, cmd: CashOut) -> CashoutResult:
    request = keyed_request("cashout", cmd.idempotency_key, operator, cmd)
    answer = cashout_service.cash_out(ctx, operator, cmd, request, _render)
    result: CashoutResult = _result(answer)
    return result


def cancel_round(ctx: ServiceContext, operator: Operator, cmd: CancelRound) -> CancelResult:
    request = keyed_request("cancel", cmd.idempotency_key, operator, cmd)
    answer = cancel_service.cancel_round(ctx, operator, cmd, request, _render)
    result: CancelResult = _result(answer)
    return result


def purchase(ctx: ServiceContext, operator: Operator, cmd: Purchase) -> RoundOutcome:
    key = purchase_key(cmd.player_external_id, cmd.client_action_id)
    request = keyed_request("purchase", key, operator, cmd)
    answer = purchase_service.purchase(ctx, operator, cmd, request, _render)
    result: RoundOutcome = _result(answer)
    return result


def open_round(ctx: ServiceContext, operator: Operator, cmd: OpenRound) -> RoundOutcome:
    request = keyed_request("open", cmd.idempotency_key, operator, cmd)
    answer = opening.open_round(ctx, operator, cmd, request, _render)
    result: RoundOutcome = _result(answer)
    return result
