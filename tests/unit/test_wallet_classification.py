"""The wallet answer classification of contract section 6, without any I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from lootbox.domain.records import WalletSettings
from lootbox.ports import (
    WalletAccepted,
    WalletMoneyCall,
    WalletOutcome,
    WalletOutcomeUnknown,
    WalletRefusal,
)
from lootbox.wallet import HttpWallet, build_session, classify
from lootbox.wallet.http import DEFAULT_REFUSAL_CODE, DEFAULT_REFUSAL_MESSAGE


def js(document: Any) -> bytes:
    return json.dumps(document).encode()


ACCEPTED = js({"accepted": True, "balanceAfterMinor": 11820, "providerTxnRef": "ptx-1"})
REFUSED = js({"accepted": False, "code": "INSUFFICIENT_FUNDS", "message": "Not enough money"})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(200, ACCEPTED, WalletAccepted(11820, "ptx-1"), id="200-accepted"),
        pytest.param(201, ACCEPTED, WalletAccepted(11820, "ptx-1"), id="201-accepted"),
        pytest.param(299, ACCEPTED, WalletAccepted(11820, "ptx-1"), id="299-accepted"),
        pytest.param(
            200, js({"accepted": True}), WalletAccepted(None, None), id="accepted-minimal"
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": 0, "providerTxnRef": ""}),
            WalletAccepted(0, ""),
            id="accepted-zero-balance-empty-ref",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": -50}),
            WalletAccepted(-50, None),
            id="accepted-negative-balance",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": True, "providerTxnRef": "x"}),
            WalletAccepted(None, "x"),
            id="accepted-balance-bool-is-none",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": False}),
            WalletAccepted(None, None),
            id="accepted-balance-false-is-none",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": 118.2}),
            WalletAccepted(None, None),
            id="accepted-balance-float-is-none",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": "11820"}),
            WalletAccepted(None, None),
            id="accepted-balance-string-is-none",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": None, "providerTxnRef": 42}),
            WalletAccepted(None, None),
            id="accepted-ref-not-string-is-none",
        ),
        pytest.param(
            200,
            js({"accepted": True, "balanceAfterMinor": 10**30}),
            WalletAccepted(10**30, None),
            id="accepted-big-int-balance",
        ),
        pytest.param(
            200,
            REFUSED,
            WalletRefusal("INSUFFICIENT_FUNDS", "Not enough money"),
            id="200-refused",
        ),
        pytest.param(
            422,
            REFUSED,
            WalletRefusal("INSUFFICIENT_FUNDS", "Not enough money"),
            id="422-refused",
        ),
        pytest.param(
            403,
            js({"accepted": False, "code": "PLAYER_BLOCKED", "message": "blocked"}),
            WalletRefusal("PLAYER_BLOCKED", "blocked"),
            id="403-player-blocked-passes",
        ),
        pytest.param(
            400,
            js({"accepted": False, "code": "LIMIT_2024_X", "message": "m"}),
            WalletRefusal("LIMIT_2024_X", "m"),
            id="400-digits-and-underscores-pass",
        ),
        pytest.param(
            499,
            js({"accepted": False, "code": "A" * 64, "message": "m"}),
            WalletRefusal("A" * 64, "m"),
            id="64-char-code-passes",
        ),
        pytest.param(
            200,
            js({"accepted": False, "code": "A" * 65, "message": "m"}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, "m"),
            id="65-char-code-is-wallet-refused",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "insufficient_funds", "message": "m"}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, "m"),
            id="lowercase-code-is-wallet-refused",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "INSUFFICIENT-FUNDS", "message": "m"}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, "m"),
            id="dash-in-code-is-wallet-refused",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "INSUFFICIENT_FUNDS\n", "message": "m"}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, "m"),
            id="trailing-newline-code-is-wallet-refused",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "", "message": "m"}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, "m"),
            id="empty-code-is-wallet-refused",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": 402, "message": "m"}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, "m"),
            id="numeric-code-is-wallet-refused",
        ),
        pytest.param(
            422,
            js({"accepted": False}),
            WalletRefusal(DEFAULT_REFUSAL_CODE, DEFAULT_REFUSAL_MESSAGE),
            id="refused-without-code-or-message",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "X", "message": ["not", "a", "string"]}),
            WalletRefusal("X", DEFAULT_REFUSAL_MESSAGE),
            id="non-string-message-gets-default",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "X", "message": "   "}),
            WalletRefusal("X", DEFAULT_REFUSAL_MESSAGE),
            id="blank-message-gets-default",
        ),
        pytest.param(
            422,
            js({"accepted": False, "code": "X", "message": "m" * 501}),
            WalletRefusal("X", "m" * 500),
            id="long-message-truncated-to-500",
        ),
    ],
)
def test_definite_answers(status: int, body: bytes, expected: WalletOutcome) -> None:
    assert classify(status, body) == expected


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        pytest.param(500, ACCEPTED, "HTTP 500", id="500-even-if-accepted"),
        pytest.param(502, b"<html>Bad Gateway</html>", "HTTP 502", id="502-html"),
        pytest.param(503, REFUSED, "HTTP 503", id="503-refused-body-is-still-unknown"),
        pytest.param(504, b"", "HTTP 504", id="504-empty"),
        pytest.param(599, ACCEPTED, "HTTP 599", id="599"),
        pytest.param(100, ACCEPTED, "HTTP 100", id="1xx"),
        pytest.param(101, ACCEPTED, "HTTP 101", id="101"),
        pytest.param(301, ACCEPTED, "HTTP 301 redirect", id="301"),
        pytest.param(302, ACCEPTED, "HTTP 302 redirect", id="302"),
        pytest.param(307, REFUSED, "HTTP 307 redirect", id="307"),
        pytest.param(600, ACCEPTED, "HTTP 600", id="nonsense-status"),
        pytest.param(200, b"<html>ok</html>", "HTTP 200, response is not JSON", id="html"),
        pytest.param(200, b"", "HTTP 200, response is not JSON", id="empty-body"),
        pytest.param(200, b"\xff\xfe\xfa", "HTTP 200, response is not JSON", id="not-utf8"),
        pytest.param(200, b'{"accepted": true', "HTTP 200, response is not JSON", id="truncated"),
        pytest.param(404, b"Not Found", "HTTP 404, response is not JSON", id="404-text"),
        pytest.param(200, b"[" * 100_000, "HTTP 200, response is not JSON", id="deep-nesting"),
        pytest.param(200, b"true", "JSON response is not an object", id="json-true"),
        pytest.param(200, js([{"accepted": True}]), "not an object", id="json-array"),
        pytest.param(200, js("accepted"), "not an object", id="json-string"),
        pytest.param(200, b"null", "not an object", id="json-null"),
        pytest.param(200, js({}), "no boolean 'accepted'", id="no-accepted"),
        pytest.param(200, js({"ok": True}), "no boolean 'accepted'", id="other-shape"),
        pytest.param(200, js({"accepted": "true"}), "no boolean 'accepted'", id="string-true"),
        pytest.param(200, js({"accepted": 1}), "no boolean 'accepted'", id="int-1"),
        pytest.param(200, js({"accepted": 0}), "no boolean 'accepted'", id="int-0"),
        pytest.param(200, js({"accepted": None}), "no boolean 'accepted'", id="null"),
        pytest.param(422, js({"code": "INSUFFICIENT_FUNDS"}), "no boolean", id="4xx-no-accepted"),
        pytest.param(400, ACCEPTED, "HTTP 400 with 'accepted: true'", id="400-accepted-true"),
        pytest.param(409, ACCEPTED, "HTTP 409 with 'accepted: true'", id="409-accepted-true"),
    ],
)
def test_everything_else_is_unknown(status: int, body: bytes, reason: str) -> None:
    outcome = classify(status, body)
    assert isinstance(outcome, WalletOutcomeUnknown)
    assert reason in outcome.reason
    assert len(outcome.reason) < 120


# --- transport failures, through a session that fails without touching the network ----------

SECRET = "whsec_do-not-log-me"
SETTINGS = WalletSettings(url="https://wallet.example.test/rpc", secret=SECRET)
CALL = WalletMoneyCall(
    type="wallet.credit",
    idempotency_key="cashback:inventory:88",
    player_external_id="u_8431",
    amount_minor=353,
    currency="USD",
    reason="cashback",
    inventory_item_id=88,
)


class FailingSession(requests.Session):
    """Raises ``error`` from ``post`` and records what it was asked to do."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def post(self, url: Any, data: Any = None, json: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append({"url": url, "data": data, **kwargs})
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(requests.ConnectTimeout("x"), "connect timeout after 2.0s", id="connect"),
        pytest.param(requests.ReadTimeout("x"), "read timeout after 5.0s", id="read"),
        pytest.param(
            requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer")),
            "connection error: Connection reset by peer",
            id="reset",
        ),
        pytest.param(
            requests.exceptions.ChunkedEncodingError("Connection broken"),
            "connection error: Connection broken",
            id="chunked",
        ),
        pytest.param(
            requests.exceptions.InvalidSchema("No connection adapters"),
            "invalid wallet URL (InvalidSchema)",
            id="bad-url",
        ),
        pytest.param(
            OSError(24, "Too many open files"),
            "connection error: Too many open files",
            id="oserror",
        ),
    ],
)
def test_transport_failures_are_unknown_and_never_raise(error: BaseException, reason: str) -> None:
    wallet = HttpWallet(FailingSession(error))
    outcome = wallet.send(SETTINGS, CALL)
    assert outcome == WalletOutcomeUnknown(reason)


def test_a_reason_never_carries_the_secret() -> None:
    wallet = HttpWallet(FailingSession(requests.ConnectionError(f"boom {SECRET} boom")))
    outcome = wallet.send(SETTINGS, CALL)
    assert isinstance(outcome, WalletOutcomeUnknown)
    assert SECRET not in outcome.reason
    assert "connection error" in outcome.reason


def test_client_defaults_and_operator_overrides_become_the_timeout_tuple() -> None:
    session = FailingSession(requests.ReadTimeout("x"))
    wallet = HttpWallet(session, connect_timeout_seconds=1.5, read_timeout_seconds=4.0)
    wallet.send(SETTINGS, CALL)
    wallet.send(
        WalletSettings(SETTINGS.url, SECRET, connect_timeout_seconds=0.5, read_timeout_seconds=9),
        CALL,
    )
    wallet.send(WalletSettings(SETTINGS.url, SECRET, read_timeout_seconds=0.25), CALL)
    # An invalid per-operator value must neither crash a money call nor unbound it.
    wallet.send(WalletSettings(SETTINGS.url, SECRET, connect_timeout_seconds=0), CALL)
    assert [call["timeout"] for call in session.calls] == [
        (1.5, 4.0),
        (0.5, 9.0),
        (1.5, 0.25),
        (1.5, 4.0),
    ]
    assert all(call["allow_redirects"] is False for call in session.calls)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_invalid_client_timeouts_are_rejected_at_construction(bad: float) -> None:
    with pytest.raises(ValueError, match="read_timeout_seconds"):
        HttpWallet(FailingSession(RuntimeError()), read_timeout_seconds=bad)


def test_balance_is_none_when_the_wallet_cannot_be_reached() -> None:
    wallet = HttpWallet(FailingSession(requests.ConnectTimeout("x")))
    assert wallet.balance(SETTINGS, "u_8431", "EUR") is None


def test_an_unparseable_wallet_url_is_unknown_without_sending() -> None:
    session = FailingSession(RuntimeError("must not be called"))
    outcome = HttpWallet(session).send(WalletSettings("http://[::1/rpc", SECRET), CALL)
    assert outcome == WalletOutcomeUnknown("invalid wallet URL (unparseable)")
    assert session.calls == []


def test_the_built_session_pools_connections_and_never_retries() -> None:
    session = build_session(pool_maxsize=7)
    try:
        for scheme in ("http://", "https://"):
            adapter = session.get_adapter(scheme + "wallet.example.test/")
            assert isinstance(adapter, HTTPAdapter)
            assert adapter.max_retries.total == 0
            assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
    finally:
        session.close()


PROXY_AND_BUNDLE_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "trusted"),
    [
        (None, None, False),
        ("HTTPS_PROXY", "http://egress.internal:3128", True),
        ("https_proxy", "http://egress.internal:3128", True),
        ("ALL_PROXY", "socks5://egress.internal:1080", True),
        ("REQUESTS_CA_BUNDLE", "/etc/ssl/private-ca.pem", False),
    ],
)
def test_the_environment_is_read_per_call_only_when_it_configures_a_proxy(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, value: str | None, trusted: bool
) -> None:
    for name in PROXY_AND_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if variable is not None:
        monkeypatch.setenv(variable, str(value))

    session = build_session()
    try:
        assert session.trust_env is trusted
    finally:
        session.close()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_named_by_the_environment_is_read_once_and_used(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name in PROXY_AND_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "/etc/ssl/private-ca.pem")

    session = build_session()
    try:
        assert session.verify == "/etc/ssl/private-ca.pem"
        merged = session.merge_environment_settings(
            "https://wallet.example.test/rpc", {}, None, None, None
        )
        assert merged["verify"] == "/etc/ssl/private-ca.pem"
    finally:
        session.close()


def test_with_a_proxy_configured_a_wallet_call_goes_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of keeping trust_env on: requests routes the call via the proxy. Nothing
    listens on the proxy's port, so the connection is refused there: the wallet's own
    host (which does not resolve) is never tried."""
    for name in PROXY_AND_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    outcome = HttpWallet(connect_timeout_seconds=0.5).send(
        WalletSettings("http://wallet.example.test/rpc", SECRET), CALL
    )

    assert isinstance(outcome, WalletOutcomeUnknown)
    assert "refused" in outcome.reason.lower()
