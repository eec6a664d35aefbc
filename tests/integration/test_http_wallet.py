"""``HttpWallet`` against a real HTTP server on 127.0.0.1.

The server is a scripted WSGI app under werkzeug's threaded server: each test programs
the answers (status, body, delay, or a dropped connection) and reads back every request
exactly as it arrived (headers, raw body, raw request target, client port).

Werkzeug's development server closes the connection after every response, so the
connection tests use a small ``http.server`` HTTP/1.1 server instead, which keeps it open
(over TLS too), and which also serves as a forward proxy. They show that a call without
a proxy reuses its wallet host's connection, builds nothing of its own and never looks at
the environment again after the client is built, and that a proxy configured at start-up
is used, with ``NO_PROXY`` honoured.

The last section runs the client against the real reference wallet (``serve_wallet``) and
its injected faults, which fail the way a real wallet does (a TCP reset, an applied key
answered ``DUPLICATE_TRANSACTION``) rather than the way a script says.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import requests.adapters
import urllib3
import urllib3.connection
from werkzeug.serving import make_server

from lootbox.domain.records import WalletSettings
from lootbox.ports import WalletAccepted, WalletMoneyCall, WalletOutcomeUnknown, WalletRefusal
from lootbox.refwallet import serve_wallet
from lootbox.refwallet.server import RunningWallet as RunningRefWallet
from lootbox.signing import signature_matches
from lootbox.wallet import HttpWallet
from lootbox.wallet.http import MAX_RESPONSE_BYTES
from tests.redis_server import TlsFiles, make_self_signed_certificate

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


def test_a_wallet_that_accepts_no_connection_is_a_connect_timeout(wallet: HttpWallet) -> None:
    # A listener that never accepts, its one-place queue taken: the kernel drops the
    # client's SYN, as a host that does not answer would.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        queued = [socket.create_connection(("127.0.0.1", port), timeout=1.0)]
        settings = WalletSettings(
            url=f"http://127.0.0.1:{port}/wallet", secret=SECRET, connect_timeout_seconds=0.3
        )
        try:
            started = time.monotonic()
            outcome = wallet.send(settings, CREDIT)
            elapsed = time.monotonic() - started
        finally:
            for connection in queued:
                connection.close()

    assert outcome == WalletOutcomeUnknown("connect timeout after 0.3s")
    assert elapsed < 2.0


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


@dataclass(frozen=True)
class Seen:
    client_port: int
    target: str  # the request line's target: "/wallet", or an absolute URL when proxied


class KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: TlsFiles | None) -> None:
        super().__init__(("127.0.0.1", 0), KeepAliveWallet)
        self.seen: list[Seen] = []
        self.bodies: deque[bytes] = deque()  # scripted answers, then ACCEPTED
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert, tls.key)
            self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def base_url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def settings(self, path: str = "/wallet") -> WalletSettings:
        return WalletSettings(url=self.base_url + path, secret=SECRET)

    @property
    def client_ports(self) -> list[int]:
        return [seen.client_port for seen in self.seen]


class KeepAliveWallet(BaseHTTPRequestHandler):
    """An HTTP/1.1 wallet (or forward proxy) that keeps connections open and records each
    request's client port and target."""

    protocol_version = "HTTP/1.1"
    server: KeepAliveServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(Seen(self.client_address[1], self.path))
        bodies = self.server.bodies
        body = bodies.popleft() if bodies else json.dumps(ACCEPTED).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def keep_alive() -> Iterator[Callable[..., KeepAliveServer]]:
    """Starts keep-alive wallets (``tls=`` for https); each is stopped after the test."""
    servers: list[tuple[KeepAliveServer, threading.Thread]] = []

    def start(tls: TlsFiles | None = None) -> KeepAliveServer:
        server = KeepAliveServer(tls)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        servers.append((server, thread))
        return server

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


@pytest.fixture
def keep_alive_server(keep_alive: Callable[..., KeepAliveServer]) -> KeepAliveServer:
    return keep_alive()


def test_sequential_calls_reuse_one_kept_alive_connection(
    wallet: HttpWallet, keep_alive_server: KeepAliveServer
) -> None:
    settings = keep_alive_server.settings()

    outcomes = [wallet.send(settings, CREDIT), wallet.send(settings, DEBIT)]
    assert wallet.balance(settings, "u_8431", "EUR") == 11820

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes)
    ports = keep_alive_server.client_ports
    assert len(ports) == 3
    assert len(set(ports)) == 1, f"expected one connection, saw ports {ports}"


def test_calls_alternating_between_two_wallets_keep_one_connection_to_each(
    wallet: HttpWallet, keep_alive: Callable[..., KeepAliveServer]
) -> None:
    first, second = keep_alive(), keep_alive()

    for _ in range(3):
        assert isinstance(wallet.send(first.settings(), CREDIT), WalletAccepted)
        assert isinstance(wallet.send(second.settings(), CREDIT), WalletAccepted)

    assert len(first.client_ports) == len(second.client_ports) == 3
    assert len(set(first.client_ports)) == 1, first.client_ports
    assert len(set(second.client_ports)) == 1, second.client_ports


def test_operators_on_one_wallet_host_share_its_connection(
    wallet: HttpWallet, keep_alive_server: KeepAliveServer
) -> None:
    # One pool per wallet host, not per wallet URL.
    for path in ("/operators/acme/wallet", "/operators/zeta/wallet?region=eu", "/wallet"):
        assert isinstance(wallet.send(keep_alive_server.settings(path), CREDIT), WalletAccepted)

    assert [seen.target for seen in keep_alive_server.seen] == [
        "/operators/acme/wallet",
        "/operators/zeta/wallet?region=eu",
        "/wallet",
    ]
    assert len(set(keep_alive_server.client_ports)) == 1, keep_alive_server.client_ports


def test_an_answer_too_large_to_read_closes_its_connection_and_the_next_call_reconnects(
    wallet: HttpWallet, keep_alive_server: KeepAliveServer
) -> None:
    # The unread rest of the body must never be taken for the next call's answer.
    keep_alive_server.bodies.append(b" " * (4 * MAX_RESPONSE_BYTES))
    settings = keep_alive_server.settings()

    too_large = wallet.send(settings, CREDIT)
    after = [wallet.send(settings, CREDIT), wallet.send(settings, CREDIT)]

    assert isinstance(too_large, WalletOutcomeUnknown)
    assert "larger than" in too_large.reason
    assert after == [WalletAccepted(balance_after_minor=11820, provider_txn_ref="ptx-88")] * 2
    first, second, third = keep_alive_server.client_ports
    assert first != second == third


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


# --- what a call does not do again -----------------------------------------------------------


class CountedConstructions:
    """Counts the objects of some classes built while it is attached."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, classes: Iterable[type]) -> None:
        self.counts: dict[str, int] = {}
        for cls in classes:
            self.counts[cls.__name__] = 0
            init = vars(cls)["__init__"]  # each of them defines its own
            monkeypatch.setattr(cls, "__init__", self._counting(cls.__name__, init))

    def _counting(self, name: str, init: Callable[..., None]) -> Callable[..., None]:
        def counted_init(instance: object, *args: Any, **kwargs: Any) -> None:
            self.counts[name] += 1
            init(instance, *args, **kwargs)

        return counted_init


def test_a_call_builds_no_session_adapter_pool_connection_or_cookie_jar(
    wallet: HttpWallet, keep_alive_server: KeepAliveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = keep_alive_server.settings()
    assert isinstance(wallet.send(settings, CREDIT), WalletAccepted)  # the wallet's pool
    built = CountedConstructions(
        monkeypatch,
        [
            requests.Session,
            requests.adapters.HTTPAdapter,
            requests.PreparedRequest,
            requests.Response,
            http.cookiejar.CookieJar,
            urllib3.PoolManager,
            urllib3.HTTPConnectionPool,
            urllib3.connection.HTTPConnection,
        ],
    )

    outcomes = [wallet.send(settings, CREDIT) for _ in range(5)]

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes)
    assert built.counts == dict.fromkeys(built.counts, 0)


ENVIRONMENT_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)  # fmt: skip


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class WatchedEnviron(MutableMapping[str, str]):
    """Stands in for ``os.environ`` and counts every look at it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.reads = 0

    def __getitem__(self, key: str) -> str:
        self.reads += 1
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        self.reads += 1
        return iter(list(self._values))

    def __len__(self) -> int:
        self.reads += 1
        return len(self._values)

    def __setitem__(self, key: str, value: str) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def copy(self) -> dict[str, str]:
        self.reads += 1
        return dict(self._values)


def test_without_a_proxy_at_start_calls_never_look_at_the_environment_again(
    keep_alive_server: KeepAliveServer, clean_environment: pytest.MonkeyPatch
) -> None:
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0)
    clean_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")  # too late
    environ = WatchedEnviron(os.environ)
    clean_environment.setattr(os, "environ", environ)
    try:
        outcomes = [client.send(keep_alive_server.settings(), CREDIT) for _ in range(3)]
    finally:
        client.close()

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes), outcomes
    assert [seen.target for seen in keep_alive_server.seen] == ["/wallet"] * 3
    assert environ.reads == 0


def test_a_proxy_configured_at_start_carries_the_calls(
    keep_alive_server: KeepAliveServer, clean_environment: pytest.MonkeyPatch
) -> None:
    # The keep-alive wallet answers any POST, so it can stand in for a forward proxy: a
    # call for a host that does not resolve succeeds only through it.
    clean_environment.setenv("HTTP_PROXY", keep_alive_server.base_url)
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0)
    settings = WalletSettings(url="http://wallet.example.test/rpc?tenant=acme", secret=SECRET)
    try:
        outcomes = [client.send(settings, CREDIT) for _ in range(3)]
    finally:
        client.close()

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes), outcomes
    assert [seen.target for seen in keep_alive_server.seen] == [
        "http://wallet.example.test/rpc?tenant=acme"
    ] * 3
    assert len(set(keep_alive_server.client_ports)) == 1


def test_behind_a_proxy_a_wallet_named_in_no_proxy_is_called_directly(
    keep_alive_server: KeepAliveServer, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    clean_environment.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0)
    try:
        direct = client.send(keep_alive_server.settings(), CREDIT)
        proxied = client.send(WalletSettings("http://wallet.example.test/rpc", SECRET), CREDIT)
    finally:
        client.close()

    assert isinstance(direct, WalletAccepted)
    assert proxied == WalletOutcomeUnknown("connection error: Connection refused")  # the proxy


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_self_signed_certificate(tmp_path_factory.mktemp("wallet-tls"))


def test_an_https_wallet_trusted_through_the_ca_bundle_variable_keeps_one_connection(
    keep_alive: Callable[..., KeepAliveServer],
    tls_files: TlsFiles,
    clean_environment: pytest.MonkeyPatch,
) -> None:
    server = keep_alive(tls=tls_files)
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(tls_files.cert))
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0)
    clean_environment.delenv("REQUESTS_CA_BUNDLE")  # read at start: no effect now
    try:
        outcomes = [client.send(server.settings(), CREDIT) for _ in range(3)]
    finally:
        client.close()

    assert all(isinstance(outcome, WalletAccepted) for outcome in outcomes), outcomes
    assert len(server.client_ports) == 3
    assert len(set(server.client_ports)) == 1


def test_an_https_wallet_whose_certificate_is_not_trusted_is_a_tls_error(
    keep_alive: Callable[..., KeepAliveServer],
    tls_files: TlsFiles,
    clean_environment: pytest.MonkeyPatch,
) -> None:
    server = keep_alive(tls=tls_files)
    client = HttpWallet(connect_timeout_seconds=1.0, read_timeout_seconds=3.0)
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(tls_files.cert))  # too late
    try:
        outcome = client.send(server.settings(), CREDIT)
    finally:
        client.close()

    assert isinstance(outcome, WalletOutcomeUnknown)
    assert outcome.reason.startswith("TLS error: ")
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.reason
    assert server.seen == []


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
