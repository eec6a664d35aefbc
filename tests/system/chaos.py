"""Seeded, bounded chaos against the deployed shape, and the books it must balance (issue 3).

One run, on a stack of its own (gunicorn workers, a private redis-server, a fresh PostgreSQL
database, the reference wallet as its own process):

1. **set-up**, no faults: players buy boxes (atomic open: one unresolved item each) and
   pre-pay boxes (one held round each);
2. **chaos**: caller threads carry out intents (cash out every item; cancel, open, or
   race both on every held round; buy more boxes), each retrying after a 503, a 409
   ``IDEMPOTENCY_KEY_IN_USE`` or a dropped connection the way an operator's backend does,
   with the same key or a fresh key per retry, some intents twice at once. Meanwhile the
   wallet misbehaves on a stated share of calls (every fault mode), and a monkey thread
   SIGKILLs gunicorn workers, terminates the app's database connections, flushes Redis and
   stops it for a while;
3. **recovery**: faults cleared, Redis up, leases left to expire, then **one** reconcile
   pass (``flask --app app reconcile``, as the worker runs it);
4. **the books**, against the wallet's own record of what it applied: no item or round
   credited twice, no debit twice, nothing pending, every ``cashed_back`` item and
   ``refunded`` round matched by exactly one applied credit and no credit without one,
   every accepted ledger row matched by exactly one wallet transaction (key, type, amount,
   currency) and the reverse, and each wallet balance equal to what the ledger says.

Every choice comes from one ``random.Random(seed)``; thread timing is the only thing a
seed cannot fix, which is the point of running it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from tests.system.stack import (
    APP_ENV,
    STARTING_BALANCE,
    Response,
    SystemStack,
)

# The app's wallet budget in the stack is 1 s connect + 1 s read: 2.5 s is "too slow".
SLOW_MS = 2500
# An operator's backend gives up on one intent after this many tries (the reconciler, not
# the caller, is what finally settles what is left pending).
MAX_TRIES = 4
REDIS_OUTAGE_SECONDS = 2.0
# After the chaos: longer than any movement lease the stack hands out (MOVEMENT_LEASE_SECONDS).
LEASE_EXPIRY_WAIT = float(APP_ENV["MOVEMENT_LEASE_SECONDS"]) + 1.0


@dataclass(frozen=True)
class Profile:
    name: str
    items: int  # unresolved items to cash out
    rounds: int  # held rounds to cancel / open
    purchases: int  # new purchases made during the chaos
    callers: int  # concurrent caller threads
    fault_rate: float  # share of wallet calls each fault mode takes (stacked, first wins)
    worker_kills: int
    connection_cuts: int
    redis_flushes: int
    redis_outages: int
    event_interval: float  # seconds between two monkey events


PROFILES = {
    # The slice .ci/run runs on every change: every fault kind at least once, ~1 minute.
    "fast": Profile("fast", 80, 40, 30, 12, 0.03, 2, 2, 1, 1, 1.5),
    # The full run (docs/reliability.md), well under ten minutes on two cores.
    "full": Profile("full", 600, 300, 200, 16, 0.03, 8, 8, 4, 4, 3.0),
}

# Each mode takes ``fault_rate`` of the calls that reach it; the first that matches wins.
# ``duplicate`` comes first and takes half of what it can: it only ever matches a re-send of
# an applied key, which is rare, and it takes nothing from the others.
WALLET_FAULTS: dict[str, dict[str, Any]] = {
    "duplicate answer": {"mode": "duplicate", "rate": 0.5},
    "refusal": {"mode": "refuse", "code": "PLAYER_LIMIT_REACHED"},
    "5xx": {"mode": "error", "status": 503},
    "slow beyond the timeout": {"mode": "delay", "delayMs": SLOW_MS},
    "connection reset": {"mode": "reset"},
    "apply then drop": {"mode": "apply_then_drop"},
    "apply then time out": {"mode": "apply_then_delay", "delayMs": SLOW_MS},
}
FAULT_BUDGET = 1_000_000  # a fault's ``times``: what is left of it says how often it hit


@dataclass
class Intent:
    """What one operator backend wants done, and how it retries."""

    number: int
    kind: str  # cashout | cancel | open | purchase
    player: str
    target: Any  # item id, round public id, or clientActionId
    keys: str  # default (omitted) | same (one explicit key) | fresh (a new key per try)
    tries: int  # 1: a backend that gives up at once, leaving the rest to the reconciler
    twin: bool = False  # sent twice at once (same key unless keys == fresh)


@dataclass
class Outcome:
    intent: Intent
    answers: list[Response]

    @property
    def final(self) -> Response:
        return self.answers[-1]


@dataclass
class Figures:
    """What the run did and found; written to docs/reliability.md."""

    profile: str
    seed: int
    seconds: float = 0.0
    items: int = 0
    held_rounds: int = 0
    purchases_during_chaos: int = 0
    intents: int = 0
    requests: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    wallet_calls: dict[str, int] = field(default_factory=dict)
    wallet_faults: dict[str, int] = field(default_factory=dict)
    worker_kills: int = 0
    worker_kills_mid_request: int = 0
    connections_terminated: int = 0
    connections_terminated_mid_transaction: int = 0
    connection_cuts: int = 0
    redis_flushes: int = 0
    redis_outages: int = 0
    reconcile: dict[str, int] = field(default_factory=dict)
    credits_applied: int = 0
    debits_applied: int = 0
    doubles: int = 0
    losses: int = 0
    pending_after_reconcile: int = 0
    balance_mismatches: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


class Chaos:
    def __init__(self, stack: SystemStack, profile: Profile, seed: int) -> None:
        self.stack = stack
        self.profile = profile
        self.rng = random.Random(seed)
        self.figures = Figures(profile.name, seed)
        self._lock = threading.Lock()
        self._requests = 0
        self._chaos_over = threading.Event()

    # --- the run ------------------------------------------------------------------------

    def run(self) -> Figures:
        started = time.monotonic()
        items, rounds = self._set_up()
        intents = self._plan(items, rounds)
        self._inject_wallet_faults()
        monkey = threading.Thread(target=self._monkey, name="chaos-monkey", daemon=True)
        monkey.start()
        outcomes = self._carry_out(intents)
        monkey.join(timeout=120)
        assert not monkey.is_alive(), "the chaos monkey did not finish"
        self._recover()
        self.figures.seconds = round(time.monotonic() - started, 1)
        self._count_answers(outcomes)
        self._check_books(outcomes)
        return self.figures

    def _set_up(self) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
        players = [
            f"chaos-{uuid.uuid4().hex[:8]}-{n}" for n in range(max(8, self.profile.items // 8))
        ]
        jobs: list[Callable[[], Any]] = []
        for n in range(self.profile.items):
            player = players[n % len(players)]
            jobs.append(lambda p=player: (p, self.stack.won_item(p)))
        for n in range(self.profile.rounds):
            player = players[n % len(players)]
            jobs.append(lambda p=player: (p, self.stack.held_round(p)))
        with ThreadPoolExecutor(self.profile.callers) as pool:
            made = list(pool.map(lambda job: job(), jobs))
        items = [(p, int(t)) for p, t in made[: self.profile.items]]
        rounds = [(p, str(t)) for p, t in made[self.profile.items :]]
        self.figures.items, self.figures.held_rounds = len(items), len(rounds)
        self._players = players
        return items, rounds

    def _plan(self, items: list[tuple[str, int]], rounds: list[tuple[str, str]]) -> list[Intent]:
        rng = self.rng
        intents: list[Intent] = []

        def add(kind: str, player: str, target: Any) -> None:
            keys = rng.choices(["default", "same", "fresh"], weights=[5, 3, 2])[0]
            tries = 1 if rng.random() < 0.3 else MAX_TRIES
            twin = rng.random() < 0.2
            intents.append(Intent(len(intents), kind, player, target, keys, tries, twin))

        for player, item in items:
            add("cashout", player, item)
        for player, round_id in rounds:
            roll = rng.random()
            if roll < 0.45:
                add("cancel", player, round_id)
            elif roll < 0.8:
                add("open", player, round_id)
            else:  # a cancel and an open race for the same round
                add("cancel", player, round_id)
                add("open", player, round_id)
        for n in range(self.profile.purchases):
            player = rng.choice(self._players)
            add("purchase", player, f"chaos-buy-{uuid.uuid4().hex[:8]}-{n}")
        rng.shuffle(intents)
        self.figures.intents = len(intents)
        self.figures.purchases_during_chaos = self.profile.purchases
        return intents

    def _inject_wallet_faults(self) -> None:
        for n, spec in enumerate(WALLET_FAULTS.values()):
            self.stack.add_fault(
                {
                    "rate": self.profile.fault_rate,
                    **spec,
                    "seed": self.figures.seed * 100 + n,
                    "times": FAULT_BUDGET,
                }
            )

    # --- callers ------------------------------------------------------------------------

    def _carry_out(self, intents: list[Intent]) -> list[Outcome]:
        runs: list[Callable[[], Outcome]] = []
        for intent in intents:
            runs.append(lambda i=intent: self._attempt(i, 0))
            if intent.twin:
                runs.append(lambda i=intent: self._attempt(i, 1))
        with ThreadPoolExecutor(self.profile.callers) as pool:
            return list(pool.map(lambda run: run(), runs))

    def _attempt(self, intent: Intent, copy: int) -> Outcome:
        """One caller carrying out one intent: retry on 503 / in-use / a dropped
        connection, up to ``intent.tries`` times, with the intent's key strategy."""
        answers: list[Response] = []
        for attempt in range(intent.tries):
            key = self._key(intent, copy, attempt)
            answer = self._send(intent, key)
            answers.append(answer)
            if answer.status not in (0, 503) and answer.code != "IDEMPOTENCY_KEY_IN_USE":
                break
            retry_after = answer.headers.get("retry-after")
            time.sleep(min(float(retry_after), 1.0) if retry_after else 0.2 * (attempt + 1))
        return Outcome(intent, answers)

    @staticmethod
    def _key(intent: Intent, copy: int, attempt: int) -> str | None:
        if intent.kind == "purchase" or intent.keys == "default":
            return None  # purchase keys are the player's clientActionId
        if intent.keys == "same":
            return f"chaos-{intent.kind}-{intent.number}"
        return f"chaos-{intent.kind}-{intent.number}-{copy}-{attempt}"

    def _send(self, intent: Intent, key: str | None) -> Response:
        with self._lock:
            self._requests += 1
        try:
            if intent.kind == "cashout":
                return self.stack.cashout(intent.player, intent.target, key)
            if intent.kind == "cancel":
                return self.stack.cancel(intent.player, intent.target, key)
            if intent.kind == "open":
                return self.stack.open(intent.player, intent.target, key)
            return self.stack.purchase(intent.player, intent.target)
        except requests.RequestException as exc:
            # A worker killed mid-request: no answer at all. Status 0 stands for it.
            return Response(0, type(exc).__name__.encode(), {})

    # --- the monkey -----------------------------------------------------------------------

    def _monkey(self) -> None:
        p = self.profile
        events = (
            ["kill a worker"] * p.worker_kills
            + ["cut database connections"] * p.connection_cuts
            + ["flush redis"] * p.redis_flushes
            + ["stop redis"] * p.redis_outages
        )
        self.rng.shuffle(events)
        for event in events:
            time.sleep(p.event_interval)
            if event == "kill a worker":
                self._kill_a_worker()
            elif event == "cut database connections":
                self._cut_connections()
            elif event == "flush redis":
                with self.stack.redis.client() as client:
                    client.flushall()  # the stack's own redis-server
                self.figures.redis_flushes += 1
            else:
                self.stack.redis.stop()
                time.sleep(REDIS_OUTAGE_SECONDS)
                self.stack.redis.start()
                self.figures.redis_outages += 1

    def _cut_connections(self) -> None:
        """Terminate the app's database connections, trying for up to two seconds to
        catch some inside a statement or transaction (a request mid-flight), then all."""
        deadline = time.monotonic() + 2.0
        busy = 0
        while not busy and time.monotonic() < deadline:
            busy = self.stack.terminate_app_connections(busy_only=True)
        cut = self.stack.terminate_app_connections()
        self.figures.connections_terminated += cut + busy
        self.figures.connections_terminated_mid_transaction += busy
        self.figures.connection_cuts += 1

    def _kill_a_worker(self) -> None:
        """SIGKILL a worker, one that is serving a request if any is (polled for up to a
        second): the case where a request dies with its wallet call in the air."""
        deadline = time.monotonic() + 1.0
        busy = self.stack.busy_workers()
        while not busy and time.monotonic() < deadline:
            time.sleep(0.02)
            busy = self.stack.busy_workers()
        workers = sorted(busy or self.stack.worker_pids())
        if not workers:
            return
        os.kill(self.rng.choice(workers), signal.SIGKILL)
        self.figures.worker_kills += 1
        self.figures.worker_kills_mid_request += bool(busy)
        # gunicorn replaces it; wait, so that a later kill never takes the last one.
        self.stack.wait_for_workers(int(APP_ENV["WEB_CONCURRENCY"]))

    # --- recovery -----------------------------------------------------------------------

    def _recover(self) -> None:
        faults = requests.get(f"{self.stack.wallet_admin_url}/faults", timeout=10).json()
        names = list(WALLET_FAULTS)
        for n, fault in enumerate(faults["faults"]):
            self.figures.wallet_faults[names[n]] = FAULT_BUDGET - int(fault["times"])
        self.stack.clear_faults()
        self.stack.redis.start()
        self.stack.wait_for_workers(int(APP_ENV["WEB_CONCURRENCY"]))
        time.sleep(LEASE_EXPIRY_WAIT)
        self.figures.reconcile = self.stack.cli("reconcile")
        self.figures.wallet_calls = self.stack.wallet_stats()

    # --- the books ----------------------------------------------------------------------

    def _count_answers(self, outcomes: list[Outcome]) -> None:
        counts: Counter[str] = Counter()
        for outcome in outcomes:
            for answer in outcome.answers:
                label = "no answer" if answer.status == 0 else str(answer.status)
                if answer.code:
                    label += f" {answer.code}"
                counts[label] += 1
                self.figures.replays += answer.replayed
        self.figures.requests = self._requests
        self.figures.answers = dict(sorted(counts.items()))

    def _check_books(self, outcomes: list[Outcome]) -> None:
        f, stack = self.figures, self.stack
        problems = f.problems
        wallet = stack.wallet_transactions()
        credits = [t for t in wallet if t["type"] == "wallet.credit"]
        debits = [t for t in wallet if t["type"] == "wallet.debit"]
        f.credits_applied, f.debits_applied = len(credits), len(debits)

        # 1. Nothing twice, whatever the keys.
        per_subject = Counter(
            (t["reason"], t["inventoryItemId"] if t["reason"] == "cashback" else t["roundPublicId"])
            for t in credits
        ) + Counter(("debit", t["roundPublicId"]) for t in debits)
        for subject, times in per_subject.items():
            if times > 1:
                f.doubles += 1
                problems.append(f"{subject} applied {times} times by the wallet")

        # 2. Every operation final after one reconcile pass.
        pending = stack.query(
            "SELECT id, idempotency_key FROM money_movements WHERE status = 'pending'"
        )
        stuck_items = stack.query("SELECT id FROM inventory_items WHERE state = 'cashback_pending'")
        stuck_rounds = stack.query(
            "SELECT public_id FROM rounds WHERE status IN ('debit_pending', 'refund_pending')"
        )
        f.pending_after_reconcile = len(pending) + len(stuck_items) + len(stuck_rounds)
        if f.pending_after_reconcile:
            problems.append(f"still pending: {pending} {stuck_items} {stuck_rounds}")

        # 3. The ledger and the wallet: one accepted row per applied transaction, same key,
        #    type, amount and currency, both ways.
        accepted = {
            row.idempotency_key: row
            for row in stack.query(
                "SELECT idempotency_key, kind, amount_minor, currency, player_external_id"
                " FROM money_movements WHERE status = 'accepted'"
            )
        }
        applied = {t["idempotencyKey"]: t for t in wallet}
        for key, row in accepted.items():
            t = applied.get(key)
            if t is None or (t["type"], t["amountMinor"], t["currency"]) != (
                f"wallet.{row.kind}",
                row.amount_minor,
                row.currency,
            ):
                f.losses += 1
                problems.append(f"ledger row {key} has no matching wallet transaction: {t}")
        for key in applied.keys() - accepted.keys():
            f.losses += 1
            problems.append(f"wallet transaction {key} has no accepted ledger row")

        # 4. Final states match the wallet: cashed_back items and refunded rounds have
        #    exactly one applied credit, and no credit exists without one; debits likewise.
        cashed_back = {
            r.id for r in stack.query("SELECT id FROM inventory_items WHERE state = 'cashed_back'")
        }
        credited_items = {t["inventoryItemId"] for t in credits if t["reason"] == "cashback"}
        refunded = {
            r.public_id
            for r in stack.query("SELECT public_id FROM rounds WHERE status = 'refunded'")
        }
        refunded_in_wallet = {t["roundPublicId"] for t in credits if t["reason"] == "refund"}
        paid = {
            r.public_id
            for r in stack.query(
                "SELECT public_id FROM rounds WHERE status IN ('held', 'settled', 'refunded')"
            )
        }
        debited = {t["roundPublicId"] for t in debits}
        for name, ours, theirs in (
            ("cashed_back items vs cashback credits", cashed_back, credited_items),
            ("refunded rounds vs refund credits", refunded, refunded_in_wallet),
            ("paid rounds vs debits", paid, debited),
        ):
            if ours != theirs:
                f.losses += len(ours ^ theirs)
                problems.append(f"{name}: only ours {ours - theirs}, only wallet's {theirs - ours}")

        # 5. Each wallet balance is what the ledger says it should be.
        expected: dict[tuple[str, str], int] = defaultdict(lambda: STARTING_BALANCE)
        for row in accepted.values():
            sign = 1 if row.kind == "credit" else -1
            expected[(row.player_external_id, row.currency)] += sign * row.amount_minor
        balances = requests.get(f"{stack.wallet_admin_url}/balances", timeout=10).json()
        actual = {
            (b["playerExternalId"], b["currency"]): b["balanceMinor"] for b in balances["balances"]
        }
        for account in expected.keys() | actual.keys():
            if expected[account] != actual.get(account, STARTING_BALANCE):
                f.balance_mismatches += 1
                problems.append(
                    f"{account}: wallet {actual.get(account)}, ledger {expected[account]}"
                )

        # 6. What callers were told holds: a 200 is the final state it announced (with the
        #    wallet's one credit for a cashout), and one key's successes are byte-identical.
        bodies: dict[tuple[str, str], set[bytes]] = defaultdict(set)
        credit_by_item = {t["inventoryItemId"]: t for t in credits if t["reason"] == "cashback"}
        settled = {
            r.public_id
            for r in stack.query("SELECT public_id FROM rounds WHERE status = 'settled'")
        }
        for outcome in outcomes:
            intent = outcome.intent
            for n, answer in enumerate(outcome.answers):
                if answer.status == 200 and intent.keys != "fresh":
                    bodies[(intent.kind, f"{intent.target}:{self._key(intent, 0, n)}")].add(
                        answer.body
                    )
            final = outcome.final
            if final.status != 200:
                continue
            if intent.kind == "cashout":
                credit = credit_by_item.get(intent.target)
                if (
                    intent.target not in cashed_back
                    or credit is None
                    or (credit["amountMinor"] != final.json["item"]["cashbackMinor"])
                ):
                    problems.append(f"200 for item {intent.target} but the wallet has {credit}")
            elif intent.kind == "cancel" and intent.target not in refunded:
                problems.append(f"cancel of {intent.target} answered 200 but it is not refunded")
            elif intent.kind == "open" and intent.target not in settled:
                problems.append(f"open of {intent.target} answered 200 but it is not settled")
        for (kind, key), seen in bodies.items():
            if len(seen) > 1:
                problems.append(f"{kind} {key} answered {len(seen)} different successes")
