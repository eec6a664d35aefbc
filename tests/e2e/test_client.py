"""The Python SDK (``lootbox.client``) against the real app over real HTTP, on both stacks.

The app of each ``World`` (tests/e2e/conftest.py: operator onboarded through the CLI, the
reference wallet over real HTTP) is served by werkzeug's threaded server on 127.0.0.1, and
the SDK talks to it exactly as an operator backend would. The reference wallet's own
transaction list is the witness of how much money moved; its fault injection makes the
wallet refuse or fail; a small TCP proxy of this file makes the network fail.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from lootbox.client import (
    USER_AGENT,
    AuthenticationError,
    BusinessRuleError,
    CashoutResult,
    ConflictError,
    Fairness,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    LootboxClient,
    NotFoundError,
    ReelPick,
    RetryPolicy,
    RevealedSeed,
    TransportError,
    UnavailableError,
    ValidationError,
    WalletRefusedError,
    load_snapshot,
    verify_draw,
)
from tests.e2e.conftest import (
    CATALOG,
    GOLD_CASHBACK_EUR,
    OTHER_PLAYER,
    PLAYER,
    RATES,
    STARTING_BALANCE,
    World,
)
from tests.processes import free_port, wait_until

HOST = "127.0.0.1"
IO_TIMEOUT = 5.0  # seconds: every socket operation of the proxy, every thread join
GOLD_PRICE = 500
GOLD_CASHBACK_USD = 347  # 320 EUR cents × 1.0842 = 346.944, half-up


# --- serving the app over real HTTP -------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@contextmanager
def serve_app(app: Flask) -> Iterator[str]:
    """The app on an ephemeral port of 127.0.0.1 (threaded, like ``flask run``); its URL."""
    server = make_server(HOST, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=IO_TIMEOUT)


@dataclass
class Sleeps:
    """An injected ``sleep`` that records each delay and really sleeps it (bounded)."""

    delays: list[float] = field(default_factory=list)
    real: bool = True

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.real:
            time.sleep(min(seconds, 3.0))


@dataclass
class Served:
    world: World
    url: str
    clients: list[LootboxClient] = field(default_factory=list)

    def client(
        self,
        *,
        url: str | None = None,
        key_id: str | None = None,
        secret: str | None = None,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> LootboxClient:
        """A client of this world's operator; quick retries unless told otherwise."""
        client = LootboxClient(
            url or self.url,
            key_id or self.world.operator.key_id,
            secret or self.world.operator.secret,
            retry=retry or RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
            **kwargs,
        )
        self.clients.append(client)
        return client

    def box(self, slug: str = "gold") -> int:
        return self.world.boxes[slug]


@pytest.fixture
def served(world: World) -> Iterator[Served]:
    with serve_app(world.app) as url:
        served = Served(world, url)
        try:
            yield served
        finally:
            for client in served.clients:
                client.close()


def buy_gold(client: LootboxClient, served: Served, action: str = "act-1") -> int:
    """Buy and open a gold box; the won item's inventory id."""
    bought = client.purchase(PLAYER, action, [ReelPick(0, served.box("gold"))])
    (item,) = bought.won_items
    return item.inventory_item_id


# --- the happy path ------------------------------------------------------------------------------


def test_a_purchase_then_a_cashout_with_the_default_key_credits_the_wallet_once(
    served: Served,
) -> None:
    sleeps = Sleeps()
    client = served.client(sleep=sleeps)

    bought = client.purchase(PLAYER, "act-happy", [ReelPick(0, served.box("gold"))])

    assert (bought.round.status, bought.round.mode) == ("settled", "open")
    assert (bought.round.bet_minor, bought.round.currency) == (GOLD_PRICE, "EUR")
    assert bought.round.public_id.startswith("r_")
    assert bought.round.created_at.tzinfo is not None
    (reel,) = bought.round.reels
    assert reel.prize is not None and reel.prize.name == "Gold Coin"
    (item,) = bought.won_items
    assert (item.name, item.value_minor, item.state) == ("Gold Coin", 400, "unresolved")
    assert item.cashback_minor == GOLD_CASHBACK_EUR
    assert bought.balance_after_minor == STARTING_BALANCE - GOLD_PRICE
    assert bought.raw["round"]["publicId"] == bought.round.public_id
    assert bought.request_id and not bought.replayed

    cashed = client.cashout(PLAYER, item.inventory_item_id, "USD")

    assert cashed == CashoutResult(
        inventory_item_id=item.inventory_item_id,
        state="cashed_back",
        cashback_minor=GOLD_CASHBACK_USD,
        currency="USD",
        balance_after_minor=STARTING_BALANCE + GOLD_CASHBACK_USD,
        raw={},
    )
    assert cashed.raw == {
        "item": {
            "inventoryItemId": item.inventory_item_id,
            "state": "cashed_back",
            "cashbackMinor": GOLD_CASHBACK_USD,
            "currency": "USD",
        },
        "balanceAfterMinor": STARTING_BALANCE + GOLD_CASHBACK_USD,
    }
    assert cashed.request_id and cashed.request_id != bought.request_id
    assert not cashed.replayed
    assert sleeps.delays == []
    (credit,) = served.world.wallet.credits()
    assert credit["idempotencyKey"] == f"cashback:inventory:{item.inventory_item_id}"
    assert (credit["amountMinor"], credit["currency"]) == (GOLD_CASHBACK_USD, "USD")
    assert credit["reference"] == {
        "operatorAmountMinor": GOLD_CASHBACK_EUR,
        "operatorCurrency": "EUR",
        "rate": RATES["USD"],
    }
    (debit,) = served.world.wallet.debits()
    assert debit["idempotencyKey"] == f"round:{bought.round.public_id}"


def test_repeating_a_cashout_and_a_purchase_replays_them_and_moves_no_more_money(
    served: Served,
) -> None:
    client = served.client()
    reels = [ReelPick(0, served.box("gold"))]
    bought = client.purchase(PLAYER, "act-replay", reels)
    item_id = bought.won_items[0].inventory_item_id
    first = client.cashout(PLAYER, item_id)

    again = client.cashout(PLAYER, item_id)
    bought_again = client.purchase(PLAYER, "act-replay", reels)

    assert again == first and again.raw == first.raw
    assert (first.replayed, again.replayed) == (False, True)
    assert again.request_id != first.request_id  # the replay is its own request
    assert bought_again == bought and bought_again.replayed
    assert len(served.world.wallet.credits()) == 1
    assert len(served.world.wallet.debits()) == 1


def test_a_held_round_is_cancelled_with_the_default_key_and_refunded_once(
    served: Served,
) -> None:
    client = served.client()
    held = client.purchase(PLAYER, "act-hold", [ReelPick(0, served.box("gold"))], mode="prepay")
    assert (held.round.status, held.won_items) == ("held", ())
    assert held.round.reels[0].prize is None

    cancelled = client.cancel(PLAYER, held.round.public_id)
    replay = client.cancel(PLAYER, held.round.public_id)

    assert (cancelled.round_public_id, cancelled.status) == (held.round.public_id, "refunded")
    assert (cancelled.refunded_minor, cancelled.currency) == (GOLD_PRICE, "EUR")
    assert cancelled.balance_after_minor == STARTING_BALANCE
    assert replay == cancelled and replay.replayed and not cancelled.replayed
    (credit,) = served.world.wallet.credits()
    assert credit["idempotencyKey"] == f"refund:round:{held.round.public_id}"
    assert credit["amountMinor"] == GOLD_PRICE


def test_a_held_round_is_opened_with_the_default_key_and_its_item_cashed_out(
    served: Served,
) -> None:
    client = served.client()
    held = client.purchase(PLAYER, "act-open", [served.box("gold")], mode="prepay")

    opened = client.open(PLAYER, held.round.public_id)
    replay = client.open(PLAYER, held.round.public_id)

    assert (opened.round.status, opened.round.mode) == ("settled", "prepay")
    (item,) = opened.won_items
    assert replay == opened and replay.replayed
    assert client.cashout(PLAYER, item.inventory_item_id).cashback_minor == GOLD_CASHBACK_EUR
    assert len(served.world.wallet.debits()) == 1
    assert len(served.world.wallet.credits()) == 1


def test_health_proves_the_key_and_sends_the_sdk_user_agent(served: Served) -> None:
    before = datetime.now(UTC)
    health = served.client().health()

    assert health.status == "ok" and set(health.raw) == {"status", "time"}
    assert health.time is not None and before <= health.time <= datetime.now(UTC)
    assert health.request_id
    assert USER_AGENT.startswith("lootbox-python-client/")


# --- typed errors ------------------------------------------------------------------------------


def expect(exc_type: type[Exception], call: Callable[[], object], *, code: str, status: int) -> Any:
    with pytest.raises(exc_type) as caught:
        call()
    error: Any = caught.value
    assert (error.code, error.status) == (code, status), (error.code, error.status, error)
    assert error.request_id, "every answer carries X-Request-Id"
    assert error.message and error.attempts == 1
    return error


def test_api_errors_raise_their_family_with_the_code_and_are_not_retried(
    served: Served,
) -> None:
    sleeps = Sleeps()
    client = served.client(sleep=sleeps)
    item_id = buy_gold(client, served, "act-errors")
    opened = client.purchase(PLAYER, "act-opened", [served.box("gold")])
    final_sale = client.purchase(PLAYER, "act-final", [served.box("final-sale")], mode="prepay")

    # 404
    expect(
        NotFoundError,
        lambda: client.cashout(PLAYER, 999_999),
        code="INVENTORY_ITEM_NOT_FOUND",
        status=404,
    )
    expect(
        NotFoundError,
        lambda: client.cashout("u_someone_else", item_id),
        code="INVENTORY_ITEM_NOT_FOUND",
        status=404,
    )
    expect(
        NotFoundError,
        lambda: client.cancel(PLAYER, "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"),
        code="ROUND_NOT_FOUND",
        status=404,
    )
    expect(
        NotFoundError,
        lambda: client.purchase(PLAYER, "act-unknown-box", [ReelPick(0, 987_654)]),
        code="UNKNOWN_BOX",
        status=404,
    )
    # 409
    expect(
        ConflictError,
        lambda: client.cancel(PLAYER, opened.round.public_id),
        code="ROUND_NOT_REFUNDABLE",
        status=409,
    )
    expect(
        ConflictError,
        lambda: client.open(PLAYER, opened.round.public_id),
        code="ROUND_NOT_HELD",
        status=409,
    )
    # 403 and 422 decided by the rules
    expect(
        BusinessRuleError,
        lambda: client.cancel(PLAYER, final_sale.round.public_id),
        code="REFUND_NOT_ALLOWED",
        status=403,
    )
    client.cashout(PLAYER, item_id)
    expect(
        BusinessRuleError,
        lambda: client.cashout(PLAYER, item_id, idempotency_key="another-key-same-item"),
        code="CASHBACK_NOT_AVAILABLE",
        status=422,
    )
    reused = expect(
        IdempotencyKeyReusedError,
        lambda: client.cashout(PLAYER, item_id, currency="USD"),
        code="IDEMPOTENCY_KEY_REUSED",
        status=422,
    )
    assert reused.retryable is False
    # 400 with the fields named
    invalid = expect(
        ValidationError,
        lambda: client.purchase(PLAYER, "has a space", [served.box("gold")]),
        code="VALIDATION_ERROR",
        status=400,
    )
    assert "clientActionId" in invalid.details["fields"]
    invalid = expect(
        ValidationError,
        lambda: client.cashout(PLAYER, item_id, currency="usd", idempotency_key="k-lower"),
        code="VALIDATION_ERROR",
        status=400,
    )
    assert "currency" in invalid.details["fields"]

    assert sleeps.delays == [], "no 4xx is ever retried"
    assert len(served.world.wallet.credits()) == 1


def test_authentication_errors_name_what_is_wrong(served: Served) -> None:
    wrong_secret = served.client(secret="not-the-secret")
    unknown_key = served.client(key_id="lk_unknown")
    slow_clock = served.client(clock=lambda: time.time() - 3600)

    expect(AuthenticationError, wrong_secret.health, code="INVALID_SIGNATURE", status=401)
    expect(AuthenticationError, unknown_key.health, code="INVALID_SIGNATURE", status=401)
    expect(AuthenticationError, slow_clock.health, code="TIMESTAMP_SKEW", status=401)
    expect(
        AuthenticationError,
        lambda: wrong_secret.cashout(PLAYER, 1),
        code="INVALID_SIGNATURE",
        status=401,
    )


def test_a_wallet_refusal_raises_wallet_refused_with_the_wallets_own_code(
    served: Served,
) -> None:
    client = served.client()
    wallet = served.world.wallet
    wallet.fault("refuse", code="INSUFFICIENT_FUNDS", times=1, types=["wallet.debit"])

    refused = expect(
        WalletRefusedError,
        lambda: client.purchase(PLAYER, "act-broke", [served.box("gold")]),
        code="INSUFFICIENT_FUNDS",
        status=422,
    )
    assert refused.retryable is False
    assert wallet.debits() == []

    item_id = buy_gold(client, served, "act-rich")
    wallet.block(PLAYER)
    expect(
        WalletRefusedError,
        lambda: client.cashout(PLAYER, item_id),
        code="PLAYER_BLOCKED",
        status=403,
    )
    wallet.unblock(PLAYER)
    # Not final: the same call (same key) succeeds once the wallet says yes.
    assert client.cashout(PLAYER, item_id).state == "cashed_back"
    assert len(wallet.credits()) == 1


# --- retries -------------------------------------------------------------------------------------


def test_a_cashout_is_retried_with_the_same_key_through_wallet_outages_and_credits_once(
    served: Served,
) -> None:
    sleeps = Sleeps()
    client = served.client(sleep=sleeps, random=lambda: 0.5)
    item_id = buy_gold(client, served)
    wallet = served.world.wallet
    wallet.fault("error", status=503, times=2, types=["wallet.credit"])
    calls_before = wallet.stats()["calls"]

    cashed = client.cashout(PLAYER, item_id)

    assert cashed.state == "cashed_back" and not cashed.replayed
    # Two 503 WALLET_UNAVAILABLE answers, each followed by half the backoff ceiling.
    assert sleeps.delays == [0.005, 0.01]
    assert wallet.stats()["calls"] - calls_before == 3  # the same credit, sent three times
    (credit,) = wallet.credits()
    assert credit["idempotencyKey"] == f"cashback:inventory:{item_id}"


def test_when_the_attempts_run_out_the_503_is_raised_and_a_later_call_credits_once(
    served: Served,
) -> None:
    sleeps = Sleeps()
    client = served.client(
        sleep=sleeps, retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    )
    item_id = buy_gold(client, served)
    wallet = served.world.wallet
    wallet.fault("error", status=500, types=["wallet.credit"])

    with pytest.raises(UnavailableError) as caught:
        client.cashout(PLAYER, item_id)

    error = caught.value
    assert error.retryable
    assert (error.code, error.status, error.attempts) == ("WALLET_UNAVAILABLE", 503, 3)
    assert len(sleeps.delays) == 2
    assert wallet.credits() == []
    wallet.clear_faults()

    cashed = client.cashout(PLAYER, item_id)

    assert cashed.cashback_minor == GOLD_CASHBACK_EUR
    assert len(wallet.credits()) == 1


@contextmanager
def a_cashout_in_the_wallet(
    served: Served, client: LootboxClient, item_id: int
) -> Iterator[Future[CashoutResult]]:
    """``client`` cashes ``item_id`` out in a thread, its wallet credit taking 1.5 s (the
    app waits up to 2 s); entered once that credit has reached the wallet."""
    wallet = served.world.wallet
    calls_before = wallet.stats()["calls"]
    wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(client.cashout, PLAYER, item_id)
        wait_until(lambda: wallet.stats()["calls"] > calls_before, what="the first credit")
        yield first


def test_a_duplicate_in_flight_gets_409_in_use_and_retries_after_retry_after(
    served: Served,
) -> None:
    setup = served.client()
    item_id = buy_gold(setup, served)
    wallet = served.world.wallet
    first_client = served.client(retry=RetryPolicy(max_attempts=1))
    sleeps = Sleeps()
    second_client = served.client(sleep=sleeps, random=lambda: 0.0)

    with a_cashout_in_the_wallet(served, first_client, item_id) as first:
        # Same default key while the first is in the wallet: the service waits 0.5 s,
        # answers 409 IDEMPOTENCY_KEY_IN_USE with Retry-After: 1, and the client's next
        # attempt, a second later, gets the stored answer.
        second = second_client.cashout(PLAYER, item_id)
        first_result = first.result(timeout=IO_TIMEOUT)

    # Retry-After is the floor of the (zero) jitter. One wait is the rule; a loaded
    # machine may need a second, never a shorter one.
    assert sleeps.delays and all(delay == 1.0 for delay in sleeps.delays), sleeps.delays
    assert second == first_result
    assert (first_result.replayed, second.replayed) == (False, True)
    assert len(wallet.credits()) == 1


def test_without_retries_a_duplicate_in_flight_raises_in_use_with_retry_after(
    served: Served,
) -> None:
    setup = served.client()
    item_id = buy_gold(setup, served)
    impatient = served.client(retry=RetryPolicy(max_attempts=1))

    with a_cashout_in_the_wallet(served, setup, item_id) as first:
        with pytest.raises(IdempotencyKeyInUseError) as caught:
            impatient.cashout(PLAYER, item_id)
        first.result(timeout=IO_TIMEOUT)

    error = caught.value
    assert (error.code, error.status, error.retry_after) == ("IDEMPOTENCY_KEY_IN_USE", 409, 1.0)
    assert isinstance(error, IdempotencyKeyInUseError) and error.retryable
    assert len(served.world.wallet.credits()) == 1


def test_a_read_timeout_is_retried_with_the_same_key_and_the_answer_replayed(
    served: Served,
) -> None:
    setup = served.client()
    item_id = buy_gold(setup, served)
    wallet = served.world.wallet
    wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    sleeps = Sleeps()
    client = served.client(read_timeout=1.0, sleep=sleeps, random=lambda: 0.0)

    cashed = client.cashout(PLAYER, item_id)

    # The first attempt timed out at 1 s while the wallet still held the credit; the
    # second found it running, waited, and got the stored answer.
    assert cashed.replayed and cashed.state == "cashed_back"
    assert sleeps.delays[0] == 0.0
    assert len(wallet.credits()) == 1


def test_a_closed_port_raises_transport_error_after_the_attempts(served: Served) -> None:
    sleeps = Sleeps(real=False)
    client = served.client(
        url=f"http://{HOST}:{free_port()}",
        sleep=sleeps,
        random=lambda: 1.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0),
    )

    with pytest.raises(TransportError) as caught:
        client.cashout(PLAYER, 1)

    error = caught.value
    assert error.attempts == 3
    assert isinstance(error.cause, requests.ConnectionError)
    assert error.__cause__ is error.cause
    assert error.request_id
    assert sleeps.delays == [0.1, 0.2]


# --- a network that fails: a proxy in front of the app -------------------------------------------


class FlakyProxy:
    """A TCP proxy on 127.0.0.1, one HTTP/1.1 request at a time, in front of ``upstream``.

    Each request it reads is recorded (``requests``) and then handled by the next action
    of ``plan`` (then ``pass``): ``reset`` aborts the client connection with a RST before
    the app sees anything; ``drop`` forwards the request, reads the app's whole answer
    and then resets the client connection (the app acted; the client cannot know);
    ``pass`` forwards and relays the answer.
    """

    def __init__(self, upstream_port: int, plan: list[str]) -> None:
        self.upstream_port = upstream_port
        self.plan = list(plan)
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=IO_TIMEOUT)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=IO_TIMEOUT)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT)
        with conn:
            while not self._stopping.is_set():
                try:
                    request = read_http_message(conn)
                except (OSError, ValueError):
                    return
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    action = self.plan.pop(0) if self.plan else "pass"
                if action == "reset":
                    reset(conn)
                    return
                answer = self._forward(request)
                if action == "drop":
                    reset(conn)
                    return
                conn.sendall(answer)

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection((HOST, self.upstream_port), timeout=IO_TIMEOUT) as up:
            up.sendall(request)
            answer = read_http_message(up)
        assert answer is not None, "the app closed the connection without an answer"
        return answer


def read_http_message(sock: socket.socket) -> bytes | None:
    """One HTTP/1.1 message (head and ``Content-Length`` body); ``None`` at a clean EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if data:
                raise ValueError("connection closed inside a message head")
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed inside a message body")
        body += chunk
    return head + b"\r\n\r\n" + body


def reset(conn: socket.socket) -> None:
    """Close with a RST (SO_LINGER on, 0 s): the peer sees 'connection reset by peer'."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        conn.close()


@contextmanager
def flaky_proxy(served: Served, plan: list[str]) -> Iterator[FlakyProxy]:
    port = int(served.url.rsplit(":", 1)[1])
    proxy = FlakyProxy(port, plan)
    try:
        yield proxy
    finally:
        proxy.close()


def split_request(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return request_line, headers, body


def test_a_connection_reset_before_the_app_saw_the_cashout_is_retried_with_the_same_bytes(
    served: Served,
) -> None:
    setup = served.client()
    item_id = buy_gold(setup, served)
    sleeps = Sleeps()

    with flaky_proxy(served, ["reset"]) as proxy:
        client = served.client(url=proxy.url, sleep=sleeps)
        cashed = client.cashout(PLAYER, item_id, "USD")

    assert cashed.state == "cashed_back" and not cashed.replayed
    assert len(sleeps.delays) == 1
    first, second = (split_request(raw) for raw in proxy.requests)
    assert first[0] == second[0] == "POST /api/s2s/cashout HTTP/1.1"
    assert first[2] == second[2], "every attempt sends the very same body bytes"
    assert b'"idempotencyKey":"cashback:inventory:' in first[2]
    for _, headers, _ in (first, second):
        assert headers["user-agent"] == USER_AGENT
        assert headers["content-type"] == "application/json"
        assert headers["x-key-id"] == served.world.operator.key_id
        assert {"x-timestamp", "x-signature", "x-request-id"} <= set(headers)
    assert first[1]["x-request-id"] != second[1]["x-request-id"]
    assert len(served.world.wallet.credits()) == 1


def test_a_cashout_whose_answer_the_network_lost_is_replayed_on_retry_and_credits_once(
    served: Served,
) -> None:
    setup = served.client()
    item_id = buy_gold(setup, served)
    sleeps = Sleeps()

    with flaky_proxy(served, ["drop"]) as proxy:
        client = served.client(url=proxy.url, sleep=sleeps)
        cashed = client.cashout(PLAYER, item_id)

    # The app cashed the item out on the first attempt; the client never heard it. The
    # retry carries the same key, so the service replays instead of paying again.
    assert cashed.replayed and cashed.cashback_minor == GOLD_CASHBACK_EUR
    assert len(proxy.requests) == 2
    assert len(served.world.wallet.credits()) == 1


def test_a_purchase_whose_answer_was_lost_is_bought_once(served: Served) -> None:
    with flaky_proxy(served, ["drop", "drop"]) as proxy:
        client = served.client(url=proxy.url, sleep=Sleeps())
        bought = client.purchase(PLAYER, "act-lost", [served.box("gold")])

    assert bought.replayed and len(proxy.requests) == 3
    assert len(served.world.wallet.debits()) == 1


# --- one client, many threads -----------------------------------------------------------------


def test_one_client_shared_by_threads_cashes_each_item_out_exactly_once(
    served: Served,
) -> None:
    client = served.client(retry=RetryPolicy(max_attempts=6, base_delay=0.05, max_delay=0.5))
    items = [buy_gold(client, served, f"act-thread-{n}") for n in range(3)]
    # Every item twice, concurrently: 6 calls, 3 credits.
    work = items * 2

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        results = list(pool.map(lambda item_id: client.cashout(PLAYER, item_id), work, timeout=30))

    by_item: dict[int, list[CashoutResult]] = {}
    for result in results:
        by_item.setdefault(result.inventory_item_id, []).append(result)
    assert sorted(by_item) == sorted(items)
    for pair in by_item.values():
        assert pair[0] == pair[1]
    credits = served.world.wallet.credits()
    assert sorted(credit["inventoryItemId"] for credit in credits) == sorted(items)


# --- reads: inventory and history, page by page ---------------------------------------------------


def require_read_endpoints(client: LootboxClient) -> None:
    for path, call in (
        ("/inventory", lambda: client.inventory(PLAYER, limit=1)),
        ("/history", lambda: client.history(PLAYER, limit=1)),
    ):
        try:
            call()
        except NotFoundError as exc:
            if exc.code == "NOT_FOUND":
                pytest.skip(f"GET /api/s2s{path} is not served by this build yet")
            raise


def test_iter_inventory_follows_the_cursor_through_every_page(served: Served) -> None:
    client = served.client()
    require_read_endpoints(client)
    bought = client.purchase(
        PLAYER, "act-three", [served.box("gold"), served.box("silver"), served.box("gold")]
    )
    assert len(bought.won_items) == 3
    cashed_id = bought.won_items[0].inventory_item_id
    client.cashout(PLAYER, cashed_id)

    first_page = client.inventory(PLAYER, state="all", limit=2)
    second_page = client.inventory(PLAYER, state="all", limit=2, cursor=first_page.cursor.next)
    back = client.inventory(PLAYER, state="all", limit=2, cursor=second_page.cursor.prev)
    everything = list(client.iter_inventory(PLAYER, state="all", page_size=2))
    both = list(client.iter_inventory(PLAYER, state=["unresolved", "cashed_back"]))
    unresolved = list(client.iter_inventory(PLAYER, page_size=1))
    cashed_back = list(client.iter_inventory(PLAYER, state="cashed_back"))

    assert len(first_page.items) == 2 and first_page.cursor.next is not None
    assert first_page.cursor.prev is None
    assert len(second_page.items) == 1 and second_page.cursor.next is None
    assert back == first_page
    assert sorted(i.id for i in everything) == sorted(w.inventory_item_id for w in bought.won_items)
    assert len({i.id for i in everything}) == 3
    assert both == everything
    assert {i.id for i in unresolved} == {w.inventory_item_id for w in bought.won_items[1:]}
    assert all(i.state == "unresolved" for i in unresolved)
    (cashed,) = cashed_back
    assert (cashed.id, cashed.state, cashed.cashback_minor) == (cashed_id, "cashed_back", None)
    assert cashed.won_at_round_public_id == bought.round.public_id
    assert (cashed.type, cashed.image_url, cashed.shippable) == ("digital", None, False)
    assert cashed.updated_at is not None and cashed.updated_at >= cashed.created_at


def test_iter_history_follows_the_cursor_newest_first_with_signed_amounts(
    served: Served,
) -> None:
    client = served.client()
    require_read_endpoints(client)
    item_id = buy_gold(client, served, "act-history-1")
    held = client.purchase(PLAYER, "act-history-2", [served.box("gold")], mode="prepay")
    client.cancel(PLAYER, held.round.public_id)
    client.cashout(PLAYER, item_id, "USD")

    entries = list(client.iter_history(PLAYER, page_size=1))
    cashbacks = list(client.iter_history(PLAYER, types=["cashback"]))

    assert len(entries) == 4
    assert [e.occurred_at for e in entries] == sorted(
        (e.occurred_at for e in entries), reverse=True
    )
    assert len({e.id for e in entries}) == 4
    (cashback,) = cashbacks
    assert cashback.type == "cashback" and cashback.status == "completed"
    assert (cashback.amount_minor, cashback.currency) == (GOLD_CASHBACK_USD, "USD")
    assert (cashback.operator_amount_minor, cashback.operator_currency) == (
        GOLD_CASHBACK_EUR,
        "EUR",
    )
    assert cashback.rate == Decimal(RATES["USD"])
    assert cashback.idempotency_key == f"cashback:inventory:{item_id}"
    assert cashback.inventory_item_id == item_id
    assert [(e.type, e.status, e.amount_minor, e.payout_minor) for e in entries[1:]] == [
        ("refund", "refunded", GOLD_PRICE, None),
        ("purchase", "refunded", -GOLD_PRICE, None),
        ("open", "settled", -GOLD_PRICE, 400),
    ]
    assert entries[1].idempotency_key == f"refund:round:{held.round.public_id}"


# --- the catalog ---------------------------------------------------------------------------------


def require_catalog_endpoints(client: LootboxClient) -> None:
    try:
        client.list_boxes(per_page=1)
    except NotFoundError as exc:
        if exc.code == "NOT_FOUND":
            pytest.skip("GET /api/s2s/boxes is not served by this build yet")
        raise


def box_ids(client: LootboxClient) -> dict[str, int]:
    return {box.slug: box.box_id for box in client.list_boxes().boxes}


def test_the_catalog_lists_boxes_and_shows_each_with_its_exact_odds(served: Served) -> None:
    client = served.client()
    require_catalog_endpoints(client)

    listed = client.list_boxes()
    ids = box_ids(client)
    mixed = client.get_box(ids["mixed"])
    live = client.get_box_version(ids["mixed"])

    assert [box.name for box in listed.boxes] == sorted(box.name for box in listed.boxes)
    assert listed.pagination.total == len(listed.boxes) == len(served.world.boxes)
    assert all(box.is_active and box.currency == "EUR" for box in listed.boxes)
    by_slug = {box.slug: box for box in listed.boxes}
    assert {slug: box.box_version_id for slug, box in by_slug.items()} == served.world.boxes
    assert (mixed.box_version_id, mixed.price_minor, mixed.currency) == (
        served.box("mixed"),
        100,
        "EUR",
    )
    assert [(p.name, p.odds) for p in mixed.prizes] == [
        ("Common Sticker", Decimal("0.7")),
        ("Rare Poster", Decimal("0.3")),
    ]
    assert all(type(p.odds) is Decimal for p in mixed.prizes)
    assert sum(p.odds for p in mixed.prizes) == 1
    assert mixed.snapshot_url.endswith(f"/{served.box('mixed')}/snapshot")
    assert (live.box_id, live.box_version_id, live.price_minor) == (
        ids["mixed"],
        served.box("mixed"),
        100,
    )
    # What get_box gives a purchase is bought as it is.
    bought = client.purchase(PLAYER, "act-catalog", [mixed.box_version_id])
    assert bought.round.bet_minor == mixed.price_minor


def test_the_catalog_filters_sorts_pages_and_converts(served: Served) -> None:
    client = served.client()
    require_catalog_endpoints(client)
    ids = box_ids(client)

    by_price = client.list_boxes(slug=["gold", "silver", "mixed"], sort="-price")
    second = client.list_boxes(per_page=2, page=2)
    named = client.list_boxes(name="Gold Box", is_active=True)
    exact = client.list_boxes(ids=[ids["silver"], ids["gold"]])
    gold_usd = client.get_box(ids["gold"], currency="USD")
    live_usd = client.get_box_version(ids["gold"], currency="USD")

    assert [box.slug for box in by_price.boxes] == ["gold", "silver", "mixed"]
    assert (second.pagination.page, second.pagination.per_page, len(second.boxes)) == (2, 2, 2)
    assert second.pagination.last_page == (len(served.world.boxes) + 1) // 2
    assert [box.slug for box in named.boxes] == ["gold"]
    assert sorted(box.slug for box in exact.boxes) == ["gold", "silver"]
    assert (gold_usd.price_minor, gold_usd.currency) == (542, "USD")  # 500 × 1.0842
    assert [(p.value_minor, p.currency) for p in gold_usd.prizes] == [(434, "USD")]
    assert (live_usd.price_minor, live_usd.currency) == (542, "USD")


def test_catalog_errors_raise_their_family(served: Served) -> None:
    client = served.client()
    require_catalog_endpoints(client)
    ids = box_ids(client)
    gold = next(b for b in CATALOG["boxes"] if b["slug"] == "gold")
    served.world.import_catalog({"boxes": [{**gold, "isActive": False}]})

    expect(NotFoundError, lambda: client.get_box(2**40), code="UNKNOWN_BOX", status=404)
    expect(
        NotFoundError,
        lambda: client.get_box_version(2**40),
        code="UNKNOWN_BOX",
        status=404,
    )
    expect(ConflictError, lambda: client.get_box(ids["gold"]), code="BOX_NOT_PLAYABLE", status=409)
    expect(
        BusinessRuleError,
        lambda: client.list_boxes(currency="GBP"),
        code="UNSUPPORTED_CURRENCY",
        status=422,
    )
    # A lobby notices the deactivation by asking for the box by id.
    assert "gold" not in box_ids(client)
    (gone,) = client.list_boxes(ids=[ids["gold"]]).boxes
    assert (gone.slug, gone.is_active) == ("gold", False)


# --- provably fair draws ----------------------------------------------------------------------


def test_every_prize_drawn_for_a_player_verifies_once_the_seeds_are_rotated(
    served: Served,
) -> None:
    client = served.client()
    mixed, gold = served.box("mixed"), served.box("gold")
    seeds = client.get_fairness(PLAYER)
    bought = client.purchase(PLAYER, "act-fair-1", [mixed, mixed, gold])
    held = client.purchase(PLAYER, "act-fair-2", [mixed], mode="prepay")
    opened = client.open(PLAYER, held.round.public_id)

    rotation = client.rotate_seeds(PLAYER, seeds.server_seed_hash, client_seed="my:lucky~seed!")
    again = client.rotate_seeds(PLAYER, seeds.server_seed_hash)

    assert (seeds.next_nonce, seeds.algorithm_key) == (0, "hmac_sha256_v1")
    committed = (seeds.server_seed_hash, seeds.client_seed)
    assert bought.round.fairness == Fairness(*committed, 0, "hmac_sha256_v1")
    assert held.round.fairness is None
    assert opened.round.fairness == Fairness(*committed, 1, "hmac_sha256_v1")
    revealed = rotation.revealed
    assert revealed == RevealedSeed(revealed.server_seed, *committed, last_nonce=1)
    assert hashlib.sha256(revealed.server_seed.encode()).hexdigest() == seeds.server_seed_hash
    assert rotation.current.server_seed_hash != seeds.server_seed_hash
    assert (rotation.current.client_seed, rotation.current.next_nonce) == ("my:lucky~seed!", 0)
    assert again == rotation, "a retry answers the same reveal and the pair current now"
    assert client.get_fairness(PLAYER) == rotation.current
    verified = 0
    for result in (bought, opened):
        fairness = result.round.fairness
        assert fairness is not None
        for reel in result.round.reels:
            snapshot = load_snapshot(
                f"{served.url}/fairness/box-version/{reel.box_version_id}/snapshot"
            )
            draw = verify_draw(
                revealed.server_seed,
                fairness.client_seed,
                fairness.nonce,
                reel.reel_index,
                snapshot,
                expected_server_seed_hash=fairness.server_seed_hash,
            )
            assert reel.prize is not None and draw.item_id == reel.prize.item_id, reel
            verified += 1
    assert verified == 4


def test_seed_errors_raise_their_family_and_rotate_nothing(served: Served) -> None:
    sleeps = Sleeps()
    client = served.client(sleep=sleeps)
    seeds = client.get_fairness(PLAYER)

    expect(
        NotFoundError,
        lambda: client.rotate_seeds(PLAYER, "0" * 64),
        code="SEED_PAIR_NOT_FOUND",
        status=404,
    )
    expect(
        NotFoundError,
        lambda: client.rotate_seeds(OTHER_PLAYER, seeds.server_seed_hash),
        code="SEED_PAIR_NOT_FOUND",
        status=404,
    )
    expect(
        BusinessRuleError,
        lambda: client.rotate_seeds(PLAYER, seeds.server_seed_hash, "two words"),
        code="INVALID_CLIENT_SEED",
        status=422,
    )
    invalid = expect(
        ValidationError,
        lambda: client.rotate_seeds(PLAYER, seeds.server_seed_hash.upper()),
        code="VALIDATION_ERROR",
        status=400,
    )

    assert "serverSeedHash" in invalid.details["fields"]
    assert client.get_fairness(PLAYER) == seeds, "nothing was rotated"
    assert sleeps.delays == [], "no 4xx is ever retried"


def test_a_rotation_whose_answer_was_lost_is_retried_and_rotates_once(served: Served) -> None:
    setup = served.client()
    seeds = setup.get_fairness(PLAYER)

    with flaky_proxy(served, ["drop"]) as proxy:
        client = served.client(url=proxy.url, sleep=Sleeps())
        rotation = client.rotate_seeds(PLAYER, seeds.server_seed_hash, "after-the-drop")

    # The first attempt rotated; the retry named the same pair and got its reveal again.
    assert len(proxy.requests) == 2
    assert rotation.revealed.server_seed_hash == seeds.server_seed_hash
    assert rotation.current.client_seed == "after-the-drop"
    assert setup.get_fairness(PLAYER) == rotation.current
    states = served.world.query(
        "SELECT state FROM seed_pairs WHERE player_external_id = :p", p=PLAYER
    )
    assert sorted(row.state for row in states) == ["current", "revealed"]


# --- tenancy --------------------------------------------------------------------------------------


def test_a_second_operator_cannot_cash_out_the_first_operators_item(served: Served) -> None:
    client = served.client()
    item_id = buy_gold(client, served)
    other = served.world.onboard()
    stranger = served.client(key_id=other.key_id, secret=other.secret)

    expect(
        NotFoundError,
        lambda: stranger.cashout(PLAYER, item_id),
        code="INVENTORY_ITEM_NOT_FOUND",
        status=404,
    )
    assert served.world.wallet.credits() == []
