"""``HttpWallet`` against a real HTTP server on 127.0.0.1.

The server is a scripted WSGI app under werkzeug's threaded server: each test programs
the answers (status, body, delay, or a dropped connection) and reads back every request
exactly as it arrived (headers, raw body, raw request target, client port).

Werkzeug's development server closes the connection after every response, so the
keep-alive test uses a small ``http.server`` HTTP/1.1 server instead, which keeps it open.

The last section runs the client against the real reference wallet (``serve_wallet``) and
its injected faults, which fail the way a real wallet does (a TCP reset, an applied key
answered ``DUPLICATE_TRANSACTION``) rather than the way a script says.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from lootbox.domain.records import WalletSettings
from lootbox.ports import WalletAccepted, WalletMoneyCall, WalletOutcomeUnknown, WalletRefusal
from lootbox.refwallet import serve_wallet
from lootbox.refwallet.server import RunningWallet as RunningRefWallet
from lootbox.signing import signature_matches
from lootbox.wallet import HttpWallet

SECRET = "whsec_operator-outbound-secret-7f3a"
NOW = 1_700_000_000
ACCEPTED = {"accepted": True, "balanceAfterMinor": 11820, "providerTxnRef": "ptx-88"}

CREDIT = WalletMoneyCall(
    type="wallet.credit",
    idempotency_key="cashback:inventory:88",
    player_external_id="u_8431",
    amount_minor=353,
    currency="USD",
    reason="cashback",
    inventory_item_id=88,
    reference={"operatorAmountMinor": 320, "operatorCurrency": "EUR", "rate": "1.1042"},
)
DEBIT = WalletMoneyCall(
    type="wallet.debit",
    idempotency_key="round:r_01J00000000000000000000000",
    player_external_id="u_8431",
    amount_minor=500,
    currency="EUR",
    reason="open",
    round_public_id="r_01J00000000000000000000000",
)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


# --- the scripted wallet -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = json.dumps(ACCEPTED).encode()
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    delay: float = 0.0  # seconds to sleep before answering
    drop: bool = False  # close the connection instead of answering
    drop_after_bytes: int | None = None  # send headers and this much body, then drop


def reply_json(status: int, document: Any, **kwargs: Any) -> Reply:
    return Reply(status=status, body=json.dumps(document).encode(), **kwargs)


@dataclass(frozen=True)
class Received:
    method: str
    raw_target: str  # the request target exactly as sent, e.g. "/wallet?tenant=acme"
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_port: int

    @property
    def raw_path(self) -> str:
        return self.raw_target.split("?", 1)[0]


@dataclass
class ScriptedWallet:
    """A WSGI app answering with the programmed replies in order, then ``default``."""

    default: Reply = field(default_factory=Reply)
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        with self.lock:
            self.received.append(
                Received(
                    method=environ["REQUEST_METHOD"],
                    raw_target=environ["RAW_URI"],
                    headers=headers,
                    body=body,
                    client_port=int(environ["REMOTE_PORT"]),
                )
            )
            reply = self.replies.popleft() if self.replies else self.default

        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            drop_connection(environ)
            # Werkzeug then fails to write this on the shut socket (BrokenPipeError), which
            # it treats as a client that went away: nothing reaches the client.
            start_response("500 DROPPED", [("Content-Length", "0")])
            return []
        if reply.drop_after_bytes is not None:
            return self._partial(environ, start_response, reply)
        start_response(
            f"{reply.status} SCRIPTED",
            [*reply.headers, ("Content-Length", str(len(reply.body)))],
        )
        return [reply.body]

    @staticmethod
    def _partial(
        environ: dict[str, Any], start_response: StartResponse, reply: Reply
    ) -> Iterator[bytes]:
        # Promise the whole body, send only part of it, then hang up.
        start_response(
            f"{reply.status} SCRIPTED",
            [*reply.headers, ("Content-Length", str(len(reply.body)))],
        )
        yield reply.body[: reply.drop_after_bytes]
        drop_connection(environ)


def drop_connection(environ: dict[str, Any]) -> None:
    # Shut down (FIN both ways) rather than close: werkzeug's buffered writer still holds
    # the socket, and its later write then fails with BrokenPipeError, which it ignores.
    environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)


@dataclass
class RunningWallet:
    app: ScriptedWallet
    base_url: str

    def settings(self, path: str = "/wallet", **overrides: Any) -> WalletSettings:
        return WalletSettings(url=self.base_url + path, secret=SECRET, **overrides)


@pytest.fixture
def wallet_server() -> Iterator[RunningWallet]:
    app = ScriptedWallet()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield RunningWallet(app=app, base_url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def wallet() -> Iterator[HttpWallet]:
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0, clock=lambda: NOW)
    try:
        yield client
    finally:
        client.close()


def compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


# --- what goes on the wire ---------------------------------------------------------------


@pytest.mark.parametrize("call", [CREDIT, DEBIT], ids=["credit", "debit"])
def test_sends_the_exact_body_with_its_idempotency_key_and_no_key_id(
    wallet: HttpWallet, wallet_server: RunningWallet, call: WalletMoneyCall
) -> None:
    outcome = wallet.send(wallet_server.settings(), call)

    assert outcome == WalletAccepted(balance_after_minor=11820, provider_txn_ref="ptx-88")
    [request] = wallet_server.app.received
    assert request.method == "POST"
    assert request.body == compact(call.to_body())
    assert json.loads(request.body) == call.to_body()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["idempotency-key"] == json.loads(request.body)["idempotencyKey"]
    assert request.headers["idempotency-key"] == call.idempotency_key
    assert "x-key-id" not in request.headers
    assert request.headers["x-timestamp"] == str(NOW)


@pytest.mark.parametrize(
    ("suffix", "signed_path"),
    [
        ("/wallet", "/wallet"),
        ("/operators/acme/v2/wallet/rpc", "/operators/acme/v2/wallet/rpc"),
        ("/wallet?tenant=acme&region=eu", "/wallet"),
        ("", "/"),
    ],
    ids=["plain", "path-prefix", "with-query", "no-path"],
)
def test_signature_verifies_over_the_raw_body_and_the_url_path(
    wallet: HttpWallet, wallet_server: RunningWallet, suffix: str, signed_path: str
) -> None:
    wallet.send(wallet_server.settings(suffix), CREDIT)

    [request] = wallet_server.app.received
    assert request.raw_path == signed_path
    timestamp, signature = request.headers["x-timestamp"], request.headers["x-signature"]
    assert signature_matches(SECRET, timestamp, "POST", signed_path, request.body, signature)
    # And it is really bound to the secret, the path and the body:
    assert not signature_matches("other", timestamp, "POST", signed_path, request.body, signature)
    assert not signature_matches(SECRET, timestamp, "POST", "/other", request.body, signature)
    assert not signature_matches(SECRET, timestamp, "POST", signed_path, b"{}", signature)


def test_balance_call_is_signed_without_an_idempotency_key(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    balance = wallet.balance(wallet_server.settings(), "u_8431", "EUR")

    assert balance == 11820
    [request] = wallet_server.app.received
    assert request.body == compact(
        {"type": "wallet.balance", "playerExternalId": "u_8431", "currency": "EUR"}
    )
    assert "idempotency-key" not in request.headers
    assert signature_matches(
        SECRET,
        request.headers["x-timestamp"],
        "POST",
        "/wallet",
        request.body,
        request.headers["x-signature"],
    )


def test_balance_is_none_when_the_wallet_fails(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    wallet_server.app.script(reply_json(503, ACCEPTED))
    assert wallet.balance(wallet_server.settings(), "u_8431", "EUR") is None


# --- definite answers ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 422, 402])
def test_a_refusal_maps_to_wallet_refusal(
    wallet: HttpWallet, wallet_server: RunningWallet, status: int
) -> None:
    wallet_server.app.script(
        reply_json(status, {"accepted": False, "code": "INSUFFICIENT_FUNDS", "message": "Low"})
    )
    assert wallet.send(wallet_server.settings(), DEBIT) == WalletRefusal(
        "INSUFFICIENT_FUNDS", "Low"
    )


def test_player_blocked_passes_and_a_lowercase_code_does_not(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    wallet_server.app.script(
        reply_json(403, {"accepted": False, "code": "PLAYER_BLOCKED", "message": "Blocked"}),
        reply_json(422, {"accepted": False, "code": "insufficient_funds", "message": "Low"}),
    )
    assert wallet.send(wallet_server.settings(), DEBIT) == WalletRefusal(
        "PLAYER_BLOCKED", "Blocked"
    )
    assert wallet.send(wallet_server.settings(), DEBIT) == WalletRefusal("WALLET_REFUSED", "Low")


# --- unknown outcomes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (reply_json(500, ACCEPTED), "HTTP 500"),
        (reply_json(503, {"accepted": False, "code": "X"}), "HTTP 503"),
        (Reply(502, b"<html>Bad Gateway</html>", (("Content-Type", "text/html"),)), "HTTP 502"),
        (Reply(200, b"<html>OK</html>", (("Content-Type", "text/html"),)), "not JSON"),
        (Reply(200, b""), "not JSON"),
        (Reply(404, b"Not Found", (("Content-Type", "text/plain"),)), "not JSON"),
        (reply_json(200, {"ok": True}), "no boolean 'accepted'"),
        (reply_json(200, [ACCEPTED]), "not an object"),
        (reply_json(409, ACCEPTED), "HTTP 409 with 'accepted: true'"),
        (Reply(200, b" " * 70_000), "larger than"),
    ],
    ids=[
        "500",
        "503-refusal-body",
        "502-html",
        "200-html",
        "200-empty",
        "404-text",
        "no-accepted",
        "json-array",
        "4xx-accepted",
        "oversized",
    ],
)
def test_unintelligible_or_failed_answers_are_unknown(
    wallet: HttpWallet, wallet_server: RunningWallet, reply: Reply, reason: str
) -> None:
    wallet_server.app.script(reply)
    outcome = wallet.send(wallet_server.settings(), CREDIT)
    assert isinstance(outcome, WalletOutcomeUnknown)
    assert reason in outcome.reason
    assert len(wallet_server.app.received) == 1, "an unknown outcome is never retried here"


@pytest.mark.parametrize("status", [302, 307])
def test_redirects_are_not_followed(
    wallet: HttpWallet, wallet_server: RunningWallet, status: int
) -> None:
    wallet_server.app.script(
        Reply(status, b"", (("Location", wallet_server.base_url + "/elsewhere"),))
    )
    outcome = wallet.send(wallet_server.settings(), CREDIT)

    assert outcome == WalletOutcomeUnknown(f"HTTP {status} redirect (redirects are not followed)")
    assert [request.raw_path for request in wallet_server.app.received] == ["/wallet"]


def test_read_timeout_is_unknown_in_bounded_time(wallet_server: RunningWallet) -> None:
    wallet_server.app.script(Reply(delay=1.0))
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=0.2)
    try:
        started = time.monotonic()
        outcome = client.send(wallet_server.settings(), CREDIT)
        elapsed = time.monotonic() - started
    finally:
        client.close()

    assert outcome == WalletOutcomeUnknown("read timeout after 0.2s")
    assert elapsed < 0.9
    assert len(wallet_server.app.received) == 1


def test_a_shorter_per_operator_read_timeout_is_honoured(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    wallet_server.app.script(Reply(delay=1.0))
    started = time.monotonic()
    outcome = wallet.send(wallet_server.settings(read_timeout_seconds=0.2), CREDIT)
    elapsed = time.monotonic() - started

    assert outcome == WalletOutcomeUnknown("read timeout after 0.2s")
    assert elapsed < 0.9  # the client default (3 s) would have waited for the answer


def test_a_longer_per_operator_read_timeout_is_honoured(wallet_server: RunningWallet) -> None:
    wallet_server.app.script(Reply(delay=0.5))
    client = HttpWallet(read_timeout_seconds=0.2)
    try:
        outcome = client.send(wallet_server.settings(read_timeout_seconds=3.0), CREDIT)
    finally:
        client.close()

    assert outcome == WalletAccepted(balance_after_minor=11820, provider_txn_ref="ptx-88")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_unknown(wallet: HttpWallet) -> None:
    settings = WalletSettings(url=f"http://127.0.0.1:{closed_port()}/wallet", secret=SECRET)
    started = time.monotonic()
    outcome = wallet.send(settings, CREDIT)

    assert outcome == WalletOutcomeUnknown("connection error: Connection refused")
    assert time.monotonic() - started < 2.0


def test_a_connection_dropped_without_an_answer_is_unknown_and_not_retried(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    wallet_server.app.script(Reply(drop=True))
    outcome = wallet.send(wallet_server.settings(), CREDIT)

    assert isinstance(outcome, WalletOutcomeUnknown)
    assert outcome.reason.startswith("connection error: ")
    assert len(wallet_server.app.received) == 1


def test_a_connection_dropped_mid_body_is_unknown(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    wallet_server.app.script(replace_body(Reply(drop_after_bytes=10)))
    outcome = wallet.send(wallet_server.settings(), CREDIT)

    assert isinstance(outcome, WalletOutcomeUnknown)
    assert outcome.reason.startswith("HTTP 200, then connection error: ")
    assert len(wallet_server.app.received) == 1


def replace_body(reply: Reply) -> Reply:
    return Reply(
        status=reply.status,
        body=json.dumps({**ACCEPTED, "padding": "x" * 200}).encode(),
        drop_after_bytes=reply.drop_after_bytes,
    )


def test_the_next_call_after_a_drop_succeeds(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    wallet_server.app.script(Reply(drop=True))
    assert isinstance(wallet.send(wallet_server.settings(), CREDIT), WalletOutcomeUnknown)
    assert isinstance(wallet.send(wallet_server.settings(), CREDIT), WalletAccepted)


# --- connections ---------------------------------------------------------------------------


class KeepAliveWallet(BaseHTTPRequestHandler):
    """An HTTP/1.1 wallet that keeps connections open, recording each request's client port."""

    protocol_version = "HTTP/1.1"
    client_ports: list[int]  # set on the per-test subclass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.client_ports.append(self.client_address[1])
        body = json.dumps(ACCEPTED).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def keep_alive_server() -> Iterator[tuple[str, list[int]]]:
    ports: list[int] = []
    handler = type("Handler", (KeepAliveWallet,), {"client_ports": ports})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/wallet", ports
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_sequential_calls_reuse_one_kept_alive_connection(
    wallet: HttpWallet, keep_alive_server: tuple[str, list[int]]
) -> None:
    url, client_ports = keep_alive_server
    settings = WalletSettings(url=url, secret=SECRET)

    outcomes = [wallet.send(settings, CREDIT), wallet.send(settings, DEBIT)]
    assert wallet.balance(settings, "u_8431", "EUR") == 11820

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes)
    assert len(client_ports) == 3
    assert len(set(client_ports)) == 1, f"expected one connection, saw ports {client_ports}"


def test_a_wallet_that_closes_connections_gets_a_fresh_one_each_call(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    # Werkzeug's server answers with "Connection: close": the client must notice and
    # reconnect, and this also shows that the port comparison above can tell the difference.
    outcomes = [wallet.send(wallet_server.settings(), CREDIT) for _ in range(2)]

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes)
    ports = [request.client_port for request in wallet_server.app.received]
    assert len(ports) == 2
    assert ports[0] != ports[1]


def test_cookies_set_by_a_wallet_are_never_sent_back(
    wallet: HttpWallet, wallet_server: RunningWallet
) -> None:
    # One client serves every operator; a wallet's cookie must not follow later calls.
    wallet_server.app.script(
        Reply(headers=(("Content-Type", "application/json"), ("Set-Cookie", "sid=abc; Path=/")))
    )
    wallet.send(wallet_server.settings(), CREDIT)
    wallet.send(wallet_server.settings(), CREDIT)

    assert [request.headers.get("cookie") for request in wallet_server.app.received] == [
        None,
        None,
    ]


# --- logging -------------------------------------------------------------------------------


def test_each_call_is_logged_without_secret_or_signature(
    wallet: HttpWallet, wallet_server: RunningWallet, caplog: pytest.LogCaptureFixture
) -> None:
    wallet_server.app.script(
        reply_json(422, {"accepted": False, "code": "INSUFFICIENT_FUNDS"}),
        reply_json(503, {}),
    )
    caplog.set_level(logging.INFO, logger="lootbox.wallet")

    for _ in range(3):
        wallet.send(wallet_server.settings(), DEBIT)

    records = [record for record in caplog.records if record.name == "lootbox.wallet"]
    assert [record.levelno for record in records] == [logging.INFO] * 3
    messages = [record.getMessage() for record in records]
    assert all("type=wallet.debit" in message for message in messages)
    assert all(f"key={DEBIT.idempotency_key}" in message for message in messages)
    assert all("latency_ms=" in message for message in messages)
    assert "outcome=refused status=422" in messages[0]
    assert "outcome=unknown status=503" in messages[1]
    assert "outcome=accepted status=200" in messages[2]

    signatures = {request.headers["x-signature"] for request in wallet_server.app.received}
    for record in records:
        text = record.getMessage() + repr(record.__dict__)
        assert SECRET not in text
        assert not any(signature in text for signature in signatures)


# --- against the reference wallet ----------------------------------------------------------

REF_SECRET = "refwallet-secret-for-the-client-tests"
REF_STARTING = 10_000
HTTP_TIMEOUT = 5


class RefWallet:
    """The reference wallet with its admin API, and the client pointed at it."""

    def __init__(self, running: RunningRefWallet) -> None:
        self.running = running
        self.settings = WalletSettings(url=running.url, secret=REF_SECRET)
        self.session = requests.Session()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(
            method, f"{self.running.admin_url}{path}", json=body, timeout=HTTP_TIMEOUT
        )
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()

    def fault(self, mode: str, **spec: Any) -> None:
        self.admin("POST", "/faults", {"mode": mode, **spec})

    def transactions(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "/transactions")["transactions"])

    def balance(self, player: str, currency: str) -> int | None:
        for row in self.admin("GET", "/balances")["balances"]:
            if (row["playerExternalId"], row["currency"]) == (player, currency):
                return int(row["balanceMinor"])
        return None


@pytest.fixture
def ref_wallet() -> Iterator[RefWallet]:
    with serve_wallet([REF_SECRET], starting_balance_minor=REF_STARTING) as running:
        wallet = RefWallet(running)
        try:
            yield wallet
        finally:
            wallet.session.close()


@pytest.fixture
def live_client() -> Iterator[HttpWallet]:
    # The real clock: the reference wallet refuses a timestamp 300 s off its own.
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0)
    try:
        yield client
    finally:
        client.close()


def test_the_reference_wallet_accepts_and_replays_the_clients_calls(
    live_client: HttpWallet, ref_wallet: RefWallet
) -> None:
    first = live_client.send(ref_wallet.settings, CREDIT)
    again = live_client.send(ref_wallet.settings, CREDIT)

    assert first == WalletAccepted(balance_after_minor=REF_STARTING + 353, provider_txn_ref="rw_1")
    assert again == first
    assert len(ref_wallet.transactions()) == 1


@pytest.mark.parametrize("call", [CREDIT, DEBIT], ids=["credit", "debit"])
def test_a_reset_connection_is_an_unknown_outcome_and_nothing_was_applied(
    live_client: HttpWallet, ref_wallet: RefWallet, call: WalletMoneyCall
) -> None:
    ref_wallet.fault("reset", times=1)

    started = time.monotonic()
    outcome = live_client.send(ref_wallet.settings, call)

    assert outcome == WalletOutcomeUnknown("connection error: Connection reset by peer")
    assert time.monotonic() - started < 2.0
    assert ref_wallet.transactions() == []
    assert ref_wallet.balance(call.player_external_id, call.currency) is None
    assert ref_wallet.admin("GET", "/stats")["calls"] == 1, "an unknown outcome is not retried"
    # The re-drive with the same key is the first application.
    assert isinstance(live_client.send(ref_wallet.settings, call), WalletAccepted)
    assert [t["idempotencyKey"] for t in ref_wallet.transactions()] == [call.idempotency_key]


def test_an_answer_dropped_after_applying_is_an_unknown_outcome_though_applied(
    live_client: HttpWallet, ref_wallet: RefWallet
) -> None:
    # The contrast to a reset: same classification, but the money did move.
    ref_wallet.fault("apply_then_drop", times=1)

    outcome = live_client.send(ref_wallet.settings, CREDIT)

    assert isinstance(outcome, WalletOutcomeUnknown)
    assert outcome.reason.startswith("connection error: ")
    assert len(ref_wallet.transactions()) == 1


def test_a_wallet_that_does_not_replay_refuses_a_resent_key_as_duplicate(
    live_client: HttpWallet, ref_wallet: RefWallet
) -> None:
    applied = live_client.send(ref_wallet.settings, CREDIT)
    assert isinstance(applied, WalletAccepted)
    ref_wallet.fault("duplicate", times=1, message="already booked")

    resent = live_client.send(ref_wallet.settings, CREDIT)

    # The client reports the refusal as it is; taking it as "applied" when the key was
    # sent before is the service's decision (services.ledger), not the transport's.
    assert resent == WalletRefusal("DUPLICATE_TRANSACTION", "already booked")
    assert len(ref_wallet.transactions()) == 1
    assert ref_wallet.balance("u_8431", "USD") == REF_STARTING + 353


def test_a_duplicate_fault_does_not_touch_a_first_send(
    live_client: HttpWallet, ref_wallet: RefWallet
) -> None:
    ref_wallet.fault("duplicate")

    outcome = live_client.send(ref_wallet.settings, DEBIT)

    assert outcome == WalletAccepted(
        balance_after_minor=REF_STARTING - 500, provider_txn_ref="rw_1"
    )
    assert isinstance(live_client.send(ref_wallet.settings, DEBIT), WalletRefusal)
    assert len(ref_wallet.transactions()) == 1


@dataclass
class FrozenClock:
    """Wall-clock seconds that only move when the client sleeps."""

    now: float = field(default_factory=lambda: float(int(time.time())))
    sleeps: list[float] = field(default_factory=list)
    sleeping_moves_time: bool = True

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.sleeping_moves_time:
            self.now += seconds


def test_a_call_sent_again_in_the_same_second_is_signed_again_in_the_next(
    ref_wallet: RefWallet,
) -> None:
    # The reference wallet refuses a signature it has seen; the same call in the same
    # second has the same signature. The client waits for the next second and re-signs.
    clock = FrozenClock()
    client = HttpWallet(clock=lambda: clock.now, sleep=clock.sleep)
    too_big = dataclasses.replace(DEBIT, amount_minor=REF_STARTING + 1)
    try:
        first = client.send(ref_wallet.settings, too_big)
        again = client.send(ref_wallet.settings, too_big)
    finally:
        client.close()

    assert first == again
    assert isinstance(again, WalletRefusal) and again.code == "INSUFFICIENT_FUNDS"
    assert clock.sleeps == [1.0]
    assert ref_wallet.admin("GET", "/stats")["calls"] == 3  # the replayed copy decided nothing


def test_a_signature_refused_as_replayed_twice_is_an_unknown_outcome(
    ref_wallet: RefWallet,
) -> None:
    # Never a refusal of the operation: a wallet may refuse a copy of a call it applied.
    clock = FrozenClock(sleeping_moves_time=False)
    client = HttpWallet(clock=lambda: clock.now, sleep=clock.sleep)
    too_big = dataclasses.replace(DEBIT, amount_minor=REF_STARTING + 1)
    try:
        client.send(ref_wallet.settings, too_big)
        outcome = client.send(ref_wallet.settings, too_big)
    finally:
        client.close()

    assert outcome == WalletOutcomeUnknown("the wallet refused our signature as replayed")
