"""The reference wallet's bookkeeping: balances, idempotent money operations, faults.

Pure Python, no Flask and no I/O, so it can be read (and unit-tested) as the model of what
an operator's wallet must do for contract section 6:

- everything is kept per operator (the caller whose secret signed the call): balances,
  keys and blocked players of one operator are invisible to every other, so two operators
  may use the same player id or the same key without touching each other;
- balances are integer minor units per ``(playerExternalId, currency)``; never floats;
- a money call is identified by its ``idempotencyKey``: the same key with the same payload
  is the *same operation* and gets the stored answer again without moving money twice;
  the same key with another payload is refused (``DUPLICATE_TRANSACTION``);
- a refused call stores nothing, so its key is not consumed and a later call with the same
  key is evaluated afresh (after a top-up the same debit can succeed);
- a debit never takes a balance below zero (``INSUFFICIENT_FUNDS``) and a blocked player
  can do nothing (``PLAYER_BLOCKED``).

One ``threading.Lock`` guards all state. The check-then-apply of a money call happens
entirely under it, which is what makes "at most once per key" true under concurrent
retries. Nothing here sleeps; the HTTP layer sleeps for delay faults outside the lock.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeGuard

DEBIT = "wallet.debit"
CREDIT = "wallet.credit"
BALANCE = "wallet.balance"
MONEY_TYPES = frozenset({DEBIT, CREDIT})
CALL_TYPES = frozenset({DEBIT, CREDIT, BALANCE})

INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
PLAYER_BLOCKED = "PLAYER_BLOCKED"
DUPLICATE_TRANSACTION = "DUPLICATE_TRANSACTION"

_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_TEXT = 256
# A fault must not be able to park a server thread for ever; two minutes covers every
# client timeout we configure.
MAX_FAULT_DELAY_MS = 120_000


def plain_secret_operator(position: int) -> str:
    """The operator name of the ``position``-th (from 1) secret of a list of secrets."""
    return f"secret-{position}"


# The operator of the first plain secret, so of a one-secret wallet: what calls and admin
# methods of the ledger mean when they name none.
DEFAULT_OPERATOR = plain_secret_operator(1)


class InvalidCall(ValueError):
    """A request body (or an admin request) that does not follow the contract's shape."""


# --- the calls -------------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyCall:
    """A validated ``wallet.debit`` / ``wallet.credit``.

    ``body`` is the whole JSON object as received: its canonical form is what "the same
    payload" means for a repeated key, so fields this wallet does not know still count.
    """

    type: str
    idempotency_key: str
    player_external_id: str
    amount_minor: int
    currency: str
    reason: str
    round_public_id: str | None
    inventory_item_id: int | None
    reference: dict[str, Any] | None
    body: Mapping[str, Any]
    operator: str = DEFAULT_OPERATOR

    @property
    def fingerprint(self) -> str:
        return canonical_json(self.body)


@dataclass(frozen=True)
class BalanceQuery:
    type: str
    player_external_id: str
    currency: str
    operator: str = DEFAULT_OPERATOR


WalletCall: TypeAlias = MoneyCall | BalanceQuery


def canonical_json(value: Any) -> str:
    """Key order and whitespace do not make two payloads different; values do."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidCall(f"{name} must be a non-empty string")
    if len(value) > _MAX_TEXT:
        raise InvalidCall(f"{name} must be at most {_MAX_TEXT} characters")
    return value


def _optional_text(body: Mapping[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else _text(body, name)


def _currency(body: Mapping[str, Any]) -> str:
    value = body.get("currency")
    # fullmatch, not match + "$": "$" would also accept "EUR\n".
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InvalidCall("currency must be three upper-case letters (ISO 4217)")
    return value


def _strict_int(value: Any) -> TypeGuard[int]:
    # bool is a subclass of int in Python; True is not an amount.
    return isinstance(value, int) and not isinstance(value, bool)


def parse_call(body: Any, operator: str = DEFAULT_OPERATOR) -> WalletCall:
    """Validate a decoded JSON body against contract section 6; raise ``InvalidCall``.
    ``operator``: whose call it is (the one whose secret signed it)."""
    if not isinstance(body, dict):
        raise InvalidCall("the body must be a JSON object")
    call_type = body.get("type")
    if call_type not in CALL_TYPES:
        raise InvalidCall(f"type must be one of {sorted(CALL_TYPES)}")
    player = _text(body, "playerExternalId")
    currency = _currency(body)
    if call_type == BALANCE:
        return BalanceQuery(
            type=call_type, player_external_id=player, currency=currency, operator=operator
        )

    key = _text(body, "idempotencyKey")
    reason = _text(body, "reason")
    amount = body.get("amountMinor")
    if not _strict_int(amount) or amount <= 0:
        raise InvalidCall("amountMinor must be an integer number of minor units > 0")
    round_public_id = _optional_text(body, "roundPublicId")
    inventory_item_id = body.get("inventoryItemId")
    if inventory_item_id is not None and not _strict_int(inventory_item_id):
        raise InvalidCall("inventoryItemId must be an integer")
    reference = body.get("reference")
    if reference is not None and not isinstance(reference, dict):
        raise InvalidCall("reference must be a JSON object")
    return MoneyCall(
        type=call_type,
        idempotency_key=key,
        player_external_id=player,
        amount_minor=amount,
        currency=currency,
        reason=reason,
        round_public_id=round_public_id,
        inventory_item_id=inventory_item_id,
        reference=reference,
        body=body,
        operator=operator,
    )


# --- outcomes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """One applied money operation, with the answer that was given for it."""

    operator: str
    idempotency_key: str
    type: str
    player_external_id: str
    amount_minor: int
    currency: str
    reason: str
    round_public_id: str | None
    inventory_item_id: int | None
    reference: dict[str, Any] | None
    provider_txn_ref: str
    balance_after_minor: int
    applied_at: str
    fingerprint: str

    def answer(self) -> dict[str, Any]:
        return {
            "accepted": True,
            "balanceAfterMinor": self.balance_after_minor,
            "providerTxnRef": self.provider_txn_ref,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "idempotencyKey": self.idempotency_key,
            "type": self.type,
            "playerExternalId": self.player_external_id,
            "amountMinor": self.amount_minor,
            "currency": self.currency,
            "reason": self.reason,
            "roundPublicId": self.round_public_id,
            "inventoryItemId": self.inventory_item_id,
            "reference": self.reference,
            "providerTxnRef": self.provider_txn_ref,
            "balanceAfterMinor": self.balance_after_minor,
            "appliedAt": self.applied_at,
        }


@dataclass(frozen=True)
class Applied:
    transaction: Transaction


@dataclass(frozen=True)
class Replayed:
    """The key was seen with the same payload: the stored answer, nothing moved."""

    transaction: Transaction


@dataclass(frozen=True)
class Refused:
    code: str
    message: str

    def answer(self) -> dict[str, Any]:
        return {"accepted": False, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class BalanceRead:
    balance_minor: int
    currency: str

    def answer(self) -> dict[str, Any]:
        return {
            "accepted": True,
            "balanceAfterMinor": self.balance_minor,
            "currency": self.currency,
        }


MoneyOutcome: TypeAlias = Applied | Replayed | Refused
BalanceOutcome: TypeAlias = BalanceRead | Refused


# --- faults ----------------------------------------------------------------------------

FAULT_MODES: frozenset[str] = frozenset(
    {"refuse", "error", "delay", "apply_then_drop", "apply_then_delay", "reset", "duplicate"}
)
# A wallet that does not replay: it answers a repeat of an applied key with this refusal.
DUPLICATE_FAULT = "duplicate"
REFUSE_FAULT = "refuse"
DUPLICATE_FAULT_MESSAGE = (
    "idempotency key was already used (injected duplicate fault: this wallet does not replay)"
)


@dataclass
class Fault:
    """A run-time switch that makes matching calls misbehave (see the app docstring).

    ``times`` is how many more calls it affects (``None``: until cleared); ``types``
    limits it to some call types; ``rate`` makes it affect only that share of matching
    calls, drawn from a generator seeded with ``seed`` so a failing run can be repeated.

    A ``duplicate`` fault matches only replays (a money call whose key was already applied
    with the same payload); any other call passes it by as if it were not there. It always
    answers ``DUPLICATE_TRANSACTION`` (HTTP 409), so it takes no ``code`` or ``status``,
    and only money calls can be replays, so its ``types`` exclude ``wallet.balance``.
    """

    id: int
    mode: str
    code: str = "WALLET_REFUSED"
    message: str = "refused by an injected fault"
    status: int = 503
    delay_ms: int = 6000
    times: int | None = None
    types: frozenset[str] | None = None
    rate: float | None = None
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_json(cls, fault_id: int, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise InvalidCall("a fault must be a JSON object")
        mode = spec.get("mode")
        if mode not in FAULT_MODES:
            raise InvalidCall(f"mode must be one of {sorted(FAULT_MODES)}")
        fault = cls(id=fault_id, mode=mode)
        if mode == DUPLICATE_FAULT:
            if "code" in spec or "status" in spec:
                raise InvalidCall(
                    "a duplicate fault always answers 409 DUPLICATE_TRANSACTION; "
                    "it takes no code or status"
                )
            fault.code = DUPLICATE_TRANSACTION
            fault.status = 409
            fault.message = DUPLICATE_FAULT_MESSAGE
        if "code" in spec:
            # Any string is allowed on purpose: a code outside [A-Z0-9_]{1,64} is how one
            # tests that the client maps it to WALLET_REFUSED.
            if not isinstance(spec["code"], str) or not spec["code"]:
                raise InvalidCall("code must be a non-empty string")
            fault.code = spec["code"]
        if "message" in spec:
            if not isinstance(spec["message"], str):
                raise InvalidCall("message must be a string")
            fault.message = spec["message"]
        if "status" in spec:
            status = spec["status"]
            if not _strict_int(status) or not 200 <= status <= 599:
                raise InvalidCall("status must be an HTTP status between 200 and 599")
            fault.status = status
        if "delayMs" in spec:
            delay = spec["delayMs"]
            if not _strict_int(delay) or not 0 <= delay <= MAX_FAULT_DELAY_MS:
                raise InvalidCall(f"delayMs must be an integer between 0 and {MAX_FAULT_DELAY_MS}")
            fault.delay_ms = delay
        times = spec.get("times")
        if times is not None and (not _strict_int(times) or times < 1):
            raise InvalidCall("times must be an integer >= 1, or null for until cleared")
        fault.times = times
        types = spec.get("types")
        if types is not None:
            if not isinstance(types, list) or not types or not set(types) <= CALL_TYPES:
                raise InvalidCall(f"types must be a non-empty list drawn from {sorted(CALL_TYPES)}")
            fault.types = frozenset(types)
            if mode == DUPLICATE_FAULT and not fault.types <= MONEY_TYPES:
                raise InvalidCall(
                    "a duplicate fault acts only on money calls: types must be drawn from "
                    f"{sorted(MONEY_TYPES)}"
                )
        rate = spec.get("rate")
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
                raise InvalidCall("rate must be a number in (0, 1]")
            fault.rate = float(rate)
        seed = spec.get("seed")
        if seed is not None and not _strict_int(seed):
            raise InvalidCall("seed must be an integer")
        fault.seed = seed
        fault._rng = random.Random(seed)
        return fault

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "delayMs": self.delay_ms,
            "times": self.times,
            "types": sorted(self.types) if self.types is not None else None,
            "rate": self.rate,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class FaultHit:
    """What the HTTP layer needs to act out one fault on one call."""

    fault_id: int
    mode: str
    code: str
    message: str
    status: int
    delay_ms: int


# --- the ledger ------------------------------------------------------------------------

STAT_NAMES = ("calls", "applied", "replayed", "refused", "faulted")


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Ledger:
    """In-memory, thread-safe wallet state. All public methods take the one lock."""

    def __init__(
        self, starting_balance_minor: int = 100_000, clock: Callable[[], str] = _utc_now_iso
    ) -> None:
        if not _strict_int(starting_balance_minor) or starting_balance_minor < 0:
            raise ValueError("starting_balance_minor must be an int >= 0")
        self._lock = threading.Lock()
        self._starting_balance = starting_balance_minor
        self._clock = clock
        # Never reset, so a providerTxnRef is unique for the life of the process even
        # across /_admin/reset: a client that kept an old ref cannot confuse it with a new
        # operation.
        self._txn_numbers = itertools.count(1)
        self._fault_ids = itertools.count(1)
        # Every key starts with the operator: nothing of one operator is found under another.
        self._balances: dict[tuple[str, str, str], int] = {}  # (operator, player, currency)
        self._by_key: dict[tuple[str, str], Transaction] = {}  # (operator, idempotency key)
        self._transactions: list[Transaction] = []
        self._blocked: set[tuple[str, str]] = set()  # (operator, player)
        self._faults: list[Fault] = []
        self._stats = dict.fromkeys(STAT_NAMES, 0)

    @property
    def starting_balance_minor(self) -> int:
        return self._starting_balance

    # --- the RPC ---

    def apply(self, call: MoneyCall) -> MoneyOutcome:
        """Apply a debit or credit at most once per idempotency key."""
        with self._lock:
            outcome = self._apply_locked(call)
            self._stats[_stat_for(outcome)] += 1
            return outcome

    def _apply_locked(self, call: MoneyCall) -> MoneyOutcome:
        # The key is looked up before anything else: a repeat of an applied operation
        # must get its original answer even if the player was blocked or drained since.
        previous = self._by_key.get((call.operator, call.idempotency_key))
        if previous is not None:
            if previous.fingerprint == call.fingerprint:
                return Replayed(previous)
            return Refused(
                DUPLICATE_TRANSACTION,
                f"idempotency key {call.idempotency_key!r} was already used for another payload",
            )
        if (call.operator, call.player_external_id) in self._blocked:
            return Refused(PLAYER_BLOCKED, f"player {call.player_external_id!r} is blocked")
        account = (call.operator, call.player_external_id, call.currency)
        balance = self._balances.get(account, self._starting_balance)
        if call.type == DEBIT:
            if balance < call.amount_minor:
                # Refusals are not stored: the key stays free for a later attempt.
                return Refused(
                    INSUFFICIENT_FUNDS,
                    f"balance {balance} {call.currency} is below {call.amount_minor}",
                )
            balance -= call.amount_minor
        else:
            balance += call.amount_minor
        self._balances[account] = balance
        transaction = Transaction(
            operator=call.operator,
            idempotency_key=call.idempotency_key,
            type=call.type,
            player_external_id=call.player_external_id,
            amount_minor=call.amount_minor,
            currency=call.currency,
            reason=call.reason,
            round_public_id=call.round_public_id,
            inventory_item_id=call.inventory_item_id,
            reference=call.reference,
            provider_txn_ref=f"rw_{next(self._txn_numbers)}",
            balance_after_minor=balance,
            applied_at=self._clock(),
            fingerprint=call.fingerprint,
        )
        self._by_key[(call.operator, call.idempotency_key)] = transaction
        self._transactions.append(transaction)
        return Applied(transaction)

    def balance(self, query: BalanceQuery) -> BalanceOutcome:
        with self._lock:
            if (query.operator, query.player_external_id) in self._blocked:
                self._stats["refused"] += 1
                return Refused(PLAYER_BLOCKED, f"player {query.player_external_id!r} is blocked")
            account = (query.operator, query.player_external_id, query.currency)
            # Lazily opened, so the account shows in the admin listing after a look.
            balance = self._balances.setdefault(account, self._starting_balance)
            return BalanceRead(balance, query.currency)

    # --- faults ---

    def add_fault(self, spec: Any) -> dict[str, Any]:
        """Validate and append a fault (the first match wins); raises ``InvalidCall``.
        Returns the fault as listed by ``faults()``."""
        with self._lock:
            fault = Fault.from_json(next(self._fault_ids), spec)
            self._faults.append(fault)
            return fault.to_json()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, call: WalletCall | str) -> FaultHit | None:
        """The first fault that affects this call, using up one of its ``times``.

        ``call`` may be just a call type (then a ``duplicate`` fault, which needs the key
        and payload, never matches). A ``duplicate`` fault matches only a replay of an
        applied key, and a ``refuse`` fault never does; a call a fault does not match
        passes it by without using up its ``times``, drawing from its ``rate`` or
        counting as faulted. Whether the key was applied is checked under the same lock
        that takes the fault, so a ``duplicate`` hit means the key *was* applied:
        answering the refusal instead of the stored answer moves nothing.
        """
        call_type = call if isinstance(call, str) else call.type
        with self._lock:
            for fault in self._faults:
                if fault.types is not None and call_type not in fault.types:
                    continue
                if fault.mode == DUPLICATE_FAULT and not self._is_replay_locked(call):
                    continue
                # A wallet keeps its answer for an applied key (contract section 6): a
                # repeat is never refused, whatever a new call would be told. Refusing
                # it would be a wallet no client can be correct against.
                if fault.mode == REFUSE_FAULT and self._is_replay_locked(call):
                    continue
                if fault.rate is not None and fault._rng.random() >= fault.rate:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                self._stats["faulted"] += 1
                return FaultHit(
                    fault_id=fault.id,
                    mode=fault.mode,
                    code=fault.code,
                    message=fault.message,
                    status=fault.status,
                    delay_ms=fault.delay_ms,
                )
            return None

    def is_replay(self, call: WalletCall) -> bool:
        """Whether ``call`` repeats an applied operation (same operator, key and payload):
        handling it again can only answer the stored answer, never move money."""
        with self._lock:
            return self._is_replay_locked(call)

    def _is_replay_locked(self, call: WalletCall | str) -> bool:
        if not isinstance(call, MoneyCall):
            return False
        previous = self._by_key.get((call.operator, call.idempotency_key))
        return previous is not None and previous.fingerprint == call.fingerprint

    # --- statistics ---

    def count(self, stat: str) -> None:
        """Count an event decided outside the ledger (a call, a refusal at the door)."""
        if stat not in self._stats:
            raise ValueError(f"unknown stat {stat!r}")
        with self._lock:
            self._stats[stat] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    # --- administration ---

    # The listings take an optional operator (``None``: every operator, each row naming
    # its own); what acts on one player always names the operator it acts for.

    def transactions(self, operator: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                transaction.to_json()
                for transaction in self._transactions
                if operator is None or transaction.operator == operator
            ]

    def balances(self, operator: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "operator": owner,
                    "playerExternalId": player,
                    "currency": currency,
                    "balanceMinor": balance,
                }
                for (owner, player, currency), balance in sorted(self._balances.items())
                if operator is None or owner == operator
            ]

    def set_balance(
        self,
        player_external_id: str,
        currency: str,
        balance_minor: int,
        operator: str = DEFAULT_OPERATOR,
    ) -> None:
        if not _strict_int(balance_minor):
            raise InvalidCall("balanceMinor must be an integer")
        with self._lock:
            self._balances[(operator, player_external_id, currency)] = balance_minor

    def block(self, player_external_id: str, operator: str = DEFAULT_OPERATOR) -> None:
        with self._lock:
            self._blocked.add((operator, player_external_id))

    def unblock(self, player_external_id: str, operator: str = DEFAULT_OPERATOR) -> None:
        with self._lock:
            self._blocked.discard((operator, player_external_id))

    def blocked(self, operator: str = DEFAULT_OPERATOR) -> list[str]:
        with self._lock:
            return sorted(player for owner, player in self._blocked if owner == operator)

    def reset(self) -> None:
        """Forget balances, transactions, blocks, faults and statistics."""
        with self._lock:
            self._balances.clear()
            self._by_key.clear()
            self._transactions.clear()
            self._blocked.clear()
            self._faults.clear()
            self._stats = dict.fromkeys(STAT_NAMES, 0)


def _stat_for(outcome: MoneyOutcome) -> str:
    if isinstance(outcome, Applied):
        return "applied"
    if isinstance(outcome, Replayed):
        return "replayed"
    return "refused"


def parse_balance_update(body: Any) -> tuple[str, str, int]:
    """The body of ``PUT /_admin/balances``; raises ``InvalidCall``."""
    if not isinstance(body, dict):
        raise InvalidCall("the body must be a JSON object")
    player = _text(body, "playerExternalId")
    currency = _currency(body)
    balance = body.get("balanceMinor")
    if not _strict_int(balance):
        raise InvalidCall("balanceMinor must be an integer number of minor units")
    return player, currency, balance
