"""The reference wallet through real HTTP: werkzeug's threaded server on 127.0.0.1.

Every call is signed the way our wallet client signs (``lootbox.signing.signed_headers``)
and sent with ``requests``, so these tests also pin the wire behaviour other suites rely
on when they start the wallet with ``serve_wallet``.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lootbox.refwallet import create_wallet_app, serve_wallet
from lootbox.refwallet.replay import SeenSignatures
from lootbox.refwallet.server import RunningWallet
from lootbox.signing import signed_headers

SECRET = "wallet-secret-1"
OTHER_SECRET = "wallet-secret-2"
STARTING = 10_000
TIMEOUT = 5
REPO_ROOT = Path(__file__).resolve().parents[2]


class WalletClient:
    """Signs and sends wallet RPC calls and admin calls, always with a timeout."""

    def __init__(self, wallet: RunningWallet) -> None:
        self.wallet = wallet
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        secret: str = SECRET,
        timestamp: int | None = None,
        idempotency_key: str | None = None,
        sign_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> requests.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if idempotency_key is None and isinstance(body, dict):
            idempotency_key = body.get("idempotencyKey")
        signed = signed_headers(
            secret,
            int(time.time()) if timestamp is None else timestamp,
            "POST",
            self.wallet.path,
            raw if sign_body is None else sign_body,
        )
        all_headers = {"Content-Type": "application/json", **signed}
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        all_headers.update(headers or {})
        return self.send(raw, all_headers, timeout=timeout)

    def send(
        self, raw: bytes, headers: dict[str, str], timeout: float = TIMEOUT
    ) -> requests.Response:
        """Send exactly these bytes and headers: what someone who captured a call can do."""
        return self.session.post(self.wallet.url, data=raw, headers=headers, timeout=timeout)

    def signed(self, body: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
        """A money call's bytes and headers, signed now, as they go over the wire."""
        raw = json.dumps(body).encode()
        headers = signed_headers(secret, int(time.time()), "POST", self.wallet.path, raw)
        return raw, {
            "Content-Type": "application/json",
            "Idempotency-Key": body["idempotencyKey"],
            **headers,
        }

    def debit(self, key: str, amount: int, player: str = "u_1", **extra: Any) -> requests.Response:
        return self.post(money_body("wallet.debit", key, amount, player, **extra))

    def credit(self, key: str, amount: int, player: str = "u_1", **extra: Any) -> requests.Response:
        return self.post(money_body("wallet.credit", key, amount, player, **extra))

    def balance(self, player: str = "u_1", currency: str = "EUR") -> requests.Response:
        body = {"type": "wallet.balance", "playerExternalId": player, "currency": currency}
        return self.post(body)

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(
            method, f"{self.wallet.admin_url}{path}", json=body, timeout=TIMEOUT
        )

    def transactions(self) -> list[dict[str, Any]]:
        response = self.admin("GET", "/transactions")
        assert response.status_code == 200
        return response.json()["transactions"]

    def balance_minor(self, player: str = "u_1", currency: str = "EUR") -> int:
        response = self.balance(player, currency)
        assert response.status_code == 200, response.text
        return response.json()["balanceAfterMinor"]

    def ledger_stats(self) -> dict[str, int]:
        response = self.admin("GET", "/stats")
        assert response.status_code == 200
        return dict(response.json())

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        response = self.admin("POST", "/faults", spec)
        assert response.status_code == 201, response.text
        return response.json()["fault"]


def next_second(seconds: int = 1) -> int:
    """A timestamp for sending the same call again: the wallet accepts a signature once,
    so a client re-sending a call signs it anew, in a later second."""
    return int(time.time()) + seconds


def money_body(
    call_type: str, key: str, amount: int, player: str = "u_1", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": call_type,
        "idempotencyKey": key,
        "playerExternalId": player,
        "amountMinor": amount,
        "currency": "EUR",
        "reason": "open" if call_type == "wallet.debit" else "cashback",
    }
    body.update(extra)
    return body


@pytest.fixture(autouse=True)
def _no_admin_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFWALLET_ADMIN_TOKEN", raising=False)


@pytest.fixture
def wallet() -> Iterator[RunningWallet]:
    with serve_wallet([SECRET], starting_balance_minor=STARTING) as running:
        yield running


@pytest.fixture
def client(wallet: RunningWallet) -> Iterator[WalletClient]:
    wallet_client = WalletClient(wallet)
    yield wallet_client
    wallet_client.close()


# --- the happy paths -------------------------------------------------------------------


def test_signed_debit_is_applied_with_balance_and_provider_ref(client: WalletClient) -> None:
    response = client.debit("round:r_1", 500, roundPublicId="r_1")

    assert response.status_code == 200
    assert response.json() == {
        "accepted": True,
        "balanceAfterMinor": STARTING - 500,
        "providerTxnRef": "rw_1",
    }
    [txn] = client.transactions()
    assert txn["idempotencyKey"] == "round:r_1"
    assert txn["type"] == "wallet.debit"
    assert txn["amountMinor"] == 500
    assert txn["roundPublicId"] == "r_1"
    assert txn["providerTxnRef"] == "rw_1"
    assert txn["balanceAfterMinor"] == STARTING - 500
    assert txn["appliedAt"].endswith("Z")


def test_credit_adds_to_the_balance_and_keeps_the_reference(client: WalletClient) -> None:
    reference = {"operatorAmountMinor": 320, "operatorCurrency": "EUR", "rate": "1.1042"}
    response = client.credit(
        "cashback:inventory:88", 353, inventoryItemId=88, reference=reference, currency="USD"
    )

    assert response.status_code == 200
    assert response.json()["balanceAfterMinor"] == STARTING + 353
    [txn] = client.transactions()
    assert txn["inventoryItemId"] == 88
    assert txn["reference"] == reference
    assert txn["currency"] == "USD"
    assert client.balance_minor(currency="USD") == STARTING + 353
    assert client.balance_minor(currency="EUR") == STARTING


def test_balance_call_answers_balance_and_currency_for_a_new_account(
    client: WalletClient,
) -> None:
    response = client.balance("u_new", "GBP")

    assert response.status_code == 200
    assert response.json() == {"accepted": True, "balanceAfterMinor": STARTING, "currency": "GBP"}
    assert client.transactions() == []


def test_any_configured_secret_is_accepted() -> None:
    with serve_wallet([SECRET, OTHER_SECRET]) as running:
        client = WalletClient(running)
        response = client.post(money_body("wallet.debit", "k-other", 100), secret=OTHER_SECRET)
        client.close()

    assert response.status_code == 200
    assert response.json()["accepted"] is True


def test_balances_can_be_listed_and_set(client: WalletClient) -> None:
    client.debit("k1", 100, player="u_a")
    response = client.admin(
        "PUT", "/balances", {"playerExternalId": "u_b", "currency": "USD", "balanceMinor": 42}
    )
    assert response.status_code == 200

    balances = client.admin("GET", "/balances").json()["balances"]

    assert {
        "operator": "secret-1",
        "playerExternalId": "u_a",
        "currency": "EUR",
        "balanceMinor": STARTING - 100,
    } in balances
    assert {
        "operator": "secret-1",
        "playerExternalId": "u_b",
        "currency": "USD",
        "balanceMinor": 42,
    } in balances
    assert client.balance_minor("u_b", "USD") == 42


@pytest.mark.parametrize(
    "body",
    [
        {"playerExternalId": "u_b", "currency": "USD", "balanceMinor": 1.5},
        {"playerExternalId": "u_b", "currency": "usd", "balanceMinor": 1},
        {"playerExternalId": "", "currency": "USD", "balanceMinor": 1},
        ["not", "an", "object"],
    ],
)
def test_setting_a_balance_validates_the_body(client: WalletClient, body: Any) -> None:
    response = client.admin("PUT", "/balances", body)

    assert response.status_code == 400
    assert "error" in response.json()


# --- the door: signature and shape ------------------------------------------------------


def _good_debit() -> dict[str, Any]:
    return money_body("wallet.debit", "k-door", 100)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"secret": "not-our-secret"}, id="unknown-secret"),
        pytest.param({"sign_body": b'{"amountMinor": 1}'}, id="tampered-body"),
        # Offsets, not absolute times: parameters are built at collection, long before
        # the test runs in a full suite.
        pytest.param({"timestamp_offset": -301}, id="timestamp-too-old"),
        pytest.param({"timestamp_offset": 400}, id="timestamp-in-future"),
        pytest.param({"headers": {"X-Signature": "0" * 64}}, id="wrong-signature"),
        pytest.param({"headers": {"X-Timestamp": "12.5"}}, id="timestamp-not-seconds"),
        pytest.param({"headers": {"X-Signature": "ünïcode"}}, id="non-hex-signature"),
    ],
)
def test_badly_signed_calls_are_refused_401(client: WalletClient, kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    if "timestamp_offset" in kwargs:
        kwargs["timestamp"] = int(time.time()) + kwargs.pop("timestamp_offset")
    response = client.post(_good_debit(), **kwargs)

    assert response.status_code == 401
    body = response.json()
    assert body["accepted"] is False
    assert body["code"] == "INVALID_SIGNATURE"
    assert body["message"]
    assert client.transactions() == []


@pytest.mark.parametrize("missing", ["X-Timestamp", "X-Signature"])
def test_unsigned_calls_are_refused_401(client: WalletClient, missing: str) -> None:
    raw = json.dumps(_good_debit()).encode()
    headers = signed_headers(SECRET, int(time.time()), "POST", client.wallet.path, raw)
    del headers[missing]
    headers["Idempotency-Key"] = "k-door"

    response = client.session.post(client.wallet.url, data=raw, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert client.transactions() == []


def test_a_signature_for_another_path_is_refused(client: WalletClient) -> None:
    raw = json.dumps(_good_debit()).encode()
    headers = signed_headers(SECRET, int(time.time()), "POST", "/other", raw)
    headers["Idempotency-Key"] = "k-door"

    response = client.session.post(client.wallet.url, data=raw, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 401


def test_a_timestamp_within_the_window_is_accepted(client: WalletClient) -> None:
    response = client.post(_good_debit(), timestamp=int(time.time()) - 250)

    assert response.status_code == 200


def _with(**changes: Any) -> dict[str, Any]:
    body = _good_debit()
    for name, value in changes.items():
        if value is _DROP:
            del body[name]
        else:
            body[name] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'{"type": "wallet.debit", "amountMinor": NaN}', id="nan"),
        pytest.param(json.dumps(_with(type="wallet.steal")).encode(), id="unknown-type"),
        pytest.param(json.dumps(_with(amountMinor=0)).encode(), id="zero-amount"),
        pytest.param(json.dumps(_with(amountMinor=-5)).encode(), id="negative-amount"),
        pytest.param(json.dumps(_with(amountMinor=5.0)).encode(), id="float-amount"),
        pytest.param(json.dumps(_with(amountMinor=True)).encode(), id="bool-amount"),
        pytest.param(json.dumps(_with(amountMinor="5")).encode(), id="string-amount"),
        pytest.param(json.dumps(_with(currency="eur")).encode(), id="lower-currency"),
        pytest.param(json.dumps(_with(currency="EURO")).encode(), id="long-currency"),
        pytest.param(json.dumps(_with(reason=_DROP)).encode(), id="no-reason"),
        pytest.param(json.dumps(_with(playerExternalId=7)).encode(), id="numeric-player"),
        pytest.param(json.dumps(_with(inventoryItemId="88")).encode(), id="string-item-id"),
        pytest.param(json.dumps(_with(reference="x")).encode(), id="string-reference"),
        pytest.param(
            json.dumps({"type": "wallet.balance", "playerExternalId": "u_1"}).encode(),
            id="balance-without-currency",
        ),
    ],
)
def test_malformed_bodies_are_bad_request(client: WalletClient, raw: bytes) -> None:
    response = client.post(raw, idempotency_key="k-door")

    assert response.status_code == 400
    body = response.json()
    assert body["accepted"] is False
    assert body["code"] == "BAD_REQUEST"
    assert client.transactions() == []


@pytest.mark.parametrize("header", [None, "another-key"])
def test_idempotency_header_must_equal_the_body_key(
    client: WalletClient, header: str | None
) -> None:
    raw = json.dumps(_good_debit()).encode()
    headers = {"Idempotency-Key": header} if header else {}
    signed = signed_headers(SECRET, int(time.time()), "POST", client.wallet.path, raw)

    response = client.session.post(
        client.wallet.url, data=raw, headers={**signed, **headers}, timeout=TIMEOUT
    )

    assert response.status_code == 400
    assert response.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert client.transactions() == []


# --- money rules -----------------------------------------------------------------------


def test_debit_above_the_balance_is_refused_insufficient_funds(client: WalletClient) -> None:
    response = client.debit("k-big", STARTING + 1)

    assert response.status_code == 422
    assert response.json()["accepted"] is False
    assert response.json()["code"] == "INSUFFICIENT_FUNDS"
    assert client.balance_minor() == STARTING
    assert client.transactions() == []


def test_debit_of_the_whole_balance_is_accepted(client: WalletClient) -> None:
    response = client.debit("k-all", STARTING)

    assert response.status_code == 200
    assert response.json()["balanceAfterMinor"] == 0


def test_blocked_player_is_refused_403_until_unblocked(client: WalletClient) -> None:
    assert client.admin("POST", "/players/u_1/block").status_code == 200
    assert client.admin("GET", "/players/blocked").json() == {"blocked": ["u_1"]}

    for response in (client.debit("k1", 100), client.credit("k2", 100), client.balance()):
        assert response.status_code == 403
        assert response.json()["code"] == "PLAYER_BLOCKED"
    assert client.transactions() == []

    assert client.admin("POST", "/players/u_1/unblock").status_code == 200
    retry = client.post(money_body("wallet.debit", "k1", 100), timestamp=next_second())
    assert retry.status_code == 200


def test_same_key_same_payload_replays_the_same_answer_without_moving_money_again(
    client: WalletClient,
) -> None:
    body = money_body("wallet.debit", "round:r_7", 700, roundPublicId="r_7")
    first = client.post(body)
    # The same payload with another key order and spacing is still the same payload.
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    second = client.post(reordered, idempotency_key="round:r_7")
    third = client.debit("round:r_7", 700, roundPublicId="r_7")

    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json() == second.json() == third.json()
    assert len(client.transactions()) == 1
    assert client.balance_minor() == STARTING - 700
    stats = client.admin("GET", "/stats").json()
    assert stats["applied"] == 1
    assert stats["replayed"] == 2


def test_a_replay_gets_its_stored_answer_even_after_the_balance_changed(
    client: WalletClient,
) -> None:
    first = client.debit("k1", 100).json()
    client.credit("k2", 5_000)

    assert client.debit("k1", 100).json() == first


def test_same_key_other_payload_is_refused_duplicate_transaction(client: WalletClient) -> None:
    client.debit("round:r_8", 700)

    response = client.debit("round:r_8", 701)

    assert response.status_code == 409
    assert response.json()["accepted"] is False
    assert response.json()["code"] == "DUPLICATE_TRANSACTION"
    assert len(client.transactions()) == 1
    assert client.balance_minor() == STARTING - 700


def test_a_refused_key_is_not_consumed(client: WalletClient) -> None:
    refused = client.debit("round:r_9", 20_000)
    assert refused.status_code == 422
    top_up = {"playerExternalId": "u_1", "currency": "EUR", "balanceMinor": 50_000}
    assert client.admin("PUT", "/balances", top_up).status_code == 200

    accepted = client.post(money_body("wallet.debit", "round:r_9", 20_000), timestamp=next_second())

    assert accepted.status_code == 200
    assert accepted.json()["balanceAfterMinor"] == 30_000
    assert [t["idempotencyKey"] for t in client.transactions()] == ["round:r_9"]


def test_concurrent_retries_of_one_key_apply_once(client: WalletClient) -> None:
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send() -> None:
        other = WalletClient(client.wallet)
        response = other.debit("round:r_race", 250)
        other.close()
        with lock:
            answers.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)

    assert len(answers) == 12
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["accepted"] is True
    assert len(client.transactions()) == 1
    assert client.balance_minor() == STARTING - 250


def test_concurrent_debits_never_overdraw(client: WalletClient) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        other = WalletClient(client.wallet)
        response = other.debit(f"k-{n}", 1_000)
        other.close()
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)

    assert sorted(statuses) == [200] * 10 + [422] * 5
    assert client.balance_minor() == 0


# --- operators: one wallet, separate books ---------------------------------------------


@pytest.fixture
def two_operators() -> Iterator[WalletClient]:
    """A wallet serving two operators, ``secret-1`` (SECRET) and ``secret-2``."""
    with serve_wallet([SECRET, OTHER_SECRET], starting_balance_minor=STARTING) as running:
        wallet_client = WalletClient(running)
        yield wallet_client
        wallet_client.close()


def test_the_same_key_from_two_operators_is_two_operations(two_operators: WalletClient) -> None:
    body = money_body("wallet.debit", "round:r_1", 500, roundPublicId="r_1")

    first = two_operators.post(body, secret=SECRET)
    second = two_operators.post(body, secret=OTHER_SECRET)

    assert first.status_code == second.status_code == 200
    # Not the first operator's stored answer: the second operator's player was charged.
    assert first.json()["providerTxnRef"] != second.json()["providerTxnRef"]
    assert first.json()["balanceAfterMinor"] == second.json()["balanceAfterMinor"] == STARTING - 500
    booked = [(t["operator"], t["idempotencyKey"]) for t in two_operators.transactions()]
    assert booked == [("secret-1", "round:r_1"), ("secret-2", "round:r_1")]


def test_an_operator_never_sees_another_operators_balances_or_blocks(
    two_operators: WalletClient,
) -> None:
    two_operators.post(money_body("wallet.debit", "k1", 4_000), secret=SECRET)
    block = two_operators.admin("POST", "/players/u_1/block?operator=secret-1")
    assert block.status_code == 200

    # The same player id at the other operator: its own, untouched, unblocked account.
    other = two_operators.post(money_body("wallet.debit", "k2", 100), secret=OTHER_SECRET)
    blocked = two_operators.post(money_body("wallet.debit", "k3", 100), secret=SECRET)

    assert other.status_code == 200
    assert other.json()["balanceAfterMinor"] == STARTING - 100
    assert (blocked.status_code, blocked.json()["code"]) == (403, "PLAYER_BLOCKED")
    assert block.json() == {"operator": "secret-1", "playerExternalId": "u_1", "blocked": True}
    listed = two_operators.admin("GET", "/balances?operator=secret-2").json()["balances"]
    assert listed == [
        {
            "operator": "secret-2",
            "playerExternalId": "u_1",
            "currency": "EUR",
            "balanceMinor": STARTING - 100,
        }
    ]
    assert two_operators.admin("GET", "/players/blocked?operator=secret-2").json() == {
        "blocked": []
    }


def test_admin_calls_about_players_name_the_operator_when_there_are_several(
    two_operators: WalletClient,
) -> None:
    top_up = {"playerExternalId": "u_1", "currency": "EUR", "balanceMinor": 42}

    unnamed = two_operators.admin("PUT", "/balances", top_up)
    unknown = two_operators.admin("POST", "/players/u_1/block?operator=secret-9")
    named = two_operators.admin("PUT", "/balances?operator=secret-2", top_up)

    assert unnamed.status_code == 400
    assert "?operator=" in unnamed.json()["error"]
    assert unknown.status_code == 400
    assert named.status_code == 200
    assert named.json()["operator"] == "secret-2"
    assert two_operators.admin("GET", "/operators").json() == {
        "operators": ["secret-1", "secret-2"]
    }
    assert two_operators.balance_minor() == STARTING  # secret-1's u_1, signed with SECRET


def test_an_operators_secrets_share_its_books_during_a_rotation() -> None:
    secrets = {"casino-a": ["old-secret", "new-secret"], "casino-b": "b-secret"}
    with serve_wallet(secrets, starting_balance_minor=STARTING) as running:
        client = WalletClient(running)
        body = money_body("wallet.credit", "cashback:inventory:1", 300)
        before = client.post(body, secret="old-secret")
        after = client.post(body, secret="new-secret")
        elsewhere = client.post(body, secret="b-secret")
        transactions = client.transactions()
        client.close()

    assert before.status_code == after.status_code == elsewhere.status_code == 200
    assert after.json() == before.json()  # the same operation, replayed
    assert elsewhere.json()["providerTxnRef"] != before.json()["providerTxnRef"]
    assert [t["operator"] for t in transactions] == ["casino-a", "casino-b"]


@pytest.mark.parametrize(
    "secrets",
    [
        pytest.param([SECRET, SECRET], id="one-secret-twice"),
        pytest.param({"a": SECRET, "b": SECRET}, id="one-secret-two-operators"),
        pytest.param({"Casino A": SECRET}, id="bad-operator-name"),
        pytest.param({"a": []}, id="operator-without-secret"),
    ],
)
def test_every_secret_belongs_to_exactly_one_operator(secrets: Any) -> None:
    with pytest.raises(ValueError):
        create_wallet_app(secrets)


# --- replayed signatures -----------------------------------------------------------------


def test_a_refused_debit_replayed_after_a_top_up_is_refused_and_charges_nothing(
    client: WalletClient,
) -> None:
    raw, headers = client.signed(money_body("wallet.debit", "round:r_1", STARTING + 500))
    refused = client.send(raw, headers)
    assert refused.json()["code"] == "INSUFFICIENT_FUNDS"
    top_up = {"playerExternalId": "u_1", "currency": "EUR", "balanceMinor": 50_000}
    assert client.admin("PUT", "/balances", top_up).status_code == 200

    replayed = client.send(raw, headers)

    assert replayed.status_code == 401
    assert replayed.json() == {
        "accepted": False,
        "code": "SIGNATURE_REPLAYED",
        "message": "this signature was already used; sign every request anew",
    }
    assert client.transactions() == []
    assert client.balance_minor() == 50_000
    # The key is still free: the same debit, signed anew, is a new attempt.
    fresh = client.post(
        money_body("wallet.debit", "round:r_1", STARTING + 500), timestamp=next_second()
    )
    assert fresh.status_code == 200
    assert fresh.json()["balanceAfterMinor"] == 50_000 - STARTING - 500


def test_a_replayed_balance_query_is_refused(client: WalletClient) -> None:
    raw = json.dumps({"type": "wallet.balance", "playerExternalId": "u_1", "currency": "EUR"})
    headers = signed_headers(SECRET, int(time.time()), "POST", client.wallet.path, raw.encode())

    first = client.send(raw.encode(), headers)
    replayed = client.send(raw.encode(), headers)

    assert first.status_code == 200
    assert (replayed.status_code, replayed.json()["code"]) == (401, "SIGNATURE_REPLAYED")


def test_a_copy_of_an_applied_call_whose_answer_was_lost_gets_the_stored_answer(
    client: WalletClient,
) -> None:
    """A client re-sending in the same second sends the very same signature. Refusing it
    would tell the client that its applied debit was not applied."""
    client.add_fault(mode="apply_then_drop", times=1)
    raw, headers = client.signed(money_body("wallet.debit", "round:r_2", 300))
    with pytest.raises(requests.ConnectionError):
        client.send(raw, headers)

    copy = client.send(raw, headers)

    assert copy.status_code == 200
    assert copy.json() == {
        "accepted": True,
        "balanceAfterMinor": STARTING - 300,
        "providerTxnRef": "rw_1",
    }
    assert len(client.transactions()) == 1


@pytest.mark.parametrize("mode", ["error", "reset"])
def test_a_call_lost_before_the_wallet_may_be_sent_again_as_it_was(
    client: WalletClient, mode: str
) -> None:
    client.add_fault(mode=mode, times=1)
    raw, headers = client.signed(money_body("wallet.debit", "round:r_3", 300))
    try:
        lost = client.send(raw, headers)
    except requests.ConnectionError:
        pass  # reset: no answer at all
    else:
        assert lost.status_code == 503
    assert client.transactions() == []

    copy = client.send(raw, headers)

    assert copy.status_code == 200
    assert len(client.transactions()) == 1


def test_a_replayed_signature_is_refused_once_per_copy_under_concurrency(
    client: WalletClient,
) -> None:
    raw, headers = client.signed(money_body("wallet.debit", "round:r_4", STARTING + 1))
    statuses: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        other = WalletClient(client.wallet)
        response = other.send(raw, headers)
        other.close()
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)

    # One copy is judged by the rules (refused), every other is a replay.
    assert sorted(statuses) == [401] * 7 + [422]
    assert client.transactions() == []


def test_a_full_cache_of_signatures_answers_busy_and_applies_nothing() -> None:
    app = create_wallet_app([SECRET], seen_signatures=SeenSignatures(300, capacity=1))
    ledger = app.extensions["refwallet"].ledger
    test_client = app.test_client()

    def debit(key: str) -> Any:
        raw = json.dumps(money_body("wallet.debit", key, 100)).encode()
        headers = signed_headers(SECRET, int(time.time()), "POST", "/wallet", raw)
        return test_client.post("/wallet", data=raw, headers={**headers, "Idempotency-Key": key})

    assert debit("k1").status_code == 200
    busy = debit("k2")

    assert busy.status_code == 503
    assert busy.is_json is False
    assert len(ledger.transactions()) == 1


# --- faults ----------------------------------------------------------------------------


def test_refuse_fault_refuses_with_its_code_and_applies_nothing(client: WalletClient) -> None:
    client.add_fault(mode="refuse", code="LIMIT_EXCEEDED", message="daily limit", times=1)

    refused = client.debit("k1", 100)

    assert refused.status_code == 422
    assert refused.json() == {"accepted": False, "code": "LIMIT_EXCEEDED", "message": "daily limit"}
    assert client.transactions() == []
    # The key was not consumed, and the fault is used up.
    retry = client.post(money_body("wallet.debit", "k1", 100), timestamp=next_second())
    assert retry.status_code == 200


def test_refuse_fault_with_player_blocked_answers_403(client: WalletClient) -> None:
    client.add_fault(mode="refuse", code="PLAYER_BLOCKED", times=1)

    response = client.debit("k1", 100)

    assert response.status_code == 403
    assert response.json()["code"] == "PLAYER_BLOCKED"


def test_error_fault_answers_its_status_without_json_and_applies_nothing(
    client: WalletClient,
) -> None:
    client.add_fault(mode="error", status=503, times=1)

    response = client.debit("k1", 100)

    assert response.status_code == 503
    assert not response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()
    assert client.transactions() == []
    assert client.debit("k1", 100).json()["providerTxnRef"] == "rw_1"


def test_delay_fault_answers_normally_after_the_delay(client: WalletClient) -> None:
    client.add_fault(mode="delay", delayMs=400, times=1)

    started = time.monotonic()
    response = client.debit("k1", 100)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.4
    assert len(client.transactions()) == 1


def test_a_delayed_call_does_not_hold_up_other_calls(client: WalletClient) -> None:
    client.add_fault(mode="delay", delayMs=1500, types=["wallet.credit"])
    slow_done = threading.Event()

    def slow_credit() -> None:
        other = WalletClient(client.wallet)
        other.credit("k-slow", 100)
        other.close()
        slow_done.set()

    thread = threading.Thread(target=slow_credit)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    response = client.debit("k-fast", 100)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < 1.0
    assert not slow_done.is_set()
    thread.join(timeout=TIMEOUT)
    assert slow_done.is_set()


def test_a_copy_of_a_key_arriving_during_a_delay_waits_and_gets_the_replay(
    client: WalletClient,
) -> None:
    """The first copy is slow (the client gave up on it); a re-send arrives while it is
    still being handled. The wallet must not refuse the re-send and then apply the first:
    the client would free the item for a second credit. It handles copies one at a time."""
    client.add_fault(mode="delay", delayMs=800, times=1)
    client.add_fault(mode="refuse", code="PLAYER_LIMIT_REACHED", times=1)
    first: list[requests.Response] = []

    def slow_copy() -> None:
        other = WalletClient(client.wallet)
        first.append(other.credit("k-slow", 100))
        other.close()

    thread = threading.Thread(target=slow_copy)
    thread.start()
    time.sleep(0.2)
    second = client.credit("k-slow", 100)
    thread.join(timeout=TIMEOUT)

    assert first[0].json()["accepted"] is True
    assert second.status_code == 200
    assert second.json() == first[0].json()
    assert len(client.transactions()) == 1


def test_apply_then_drop_applies_then_hangs_up_and_the_retry_replays(
    client: WalletClient,
) -> None:
    client.add_fault(mode="apply_then_drop", times=1)

    with pytest.raises(requests.ConnectionError):
        client.debit("round:r_drop", 300)

    [txn] = client.transactions()
    assert txn["idempotencyKey"] == "round:r_drop"
    assert client.balance_minor() == STARTING - 300
    retry = client.debit("round:r_drop", 300)
    assert retry.status_code == 200
    assert retry.json() == {
        "accepted": True,
        "balanceAfterMinor": STARTING - 300,
        "providerTxnRef": txn["providerTxnRef"],
    }
    assert len(client.transactions()) == 1


def test_apply_then_delay_applies_before_the_client_times_out(client: WalletClient) -> None:
    client.add_fault(mode="apply_then_delay", delayMs=2000, times=1)

    with pytest.raises(requests.ReadTimeout):
        client.post(money_body("wallet.debit", "round:r_slow", 300), timeout=0.5)

    [txn] = client.transactions()
    retry = client.debit("round:r_slow", 300)
    assert retry.status_code == 200
    assert retry.json()["providerTxnRef"] == txn["providerTxnRef"]
    assert client.balance_minor() == STARTING - 300


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (``args``, ``__cause__``, ``__context__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        todo.extend(link for link in (current.__cause__, current.__context__) if link)
    return seen


def _was_reset(exc: BaseException) -> bool:
    # By errno: http.client's RemoteDisconnected (an orderly close with no status line) is
    # a ConnectionResetError subclass too, but without ECONNRESET.
    return any(isinstance(link, OSError) and link.errno == errno.ECONNRESET for link in _chain(exc))


def test_reset_fault_resets_the_connection_and_applies_nothing(client: WalletClient) -> None:
    client.add_fault(mode="reset", times=1)

    with pytest.raises(requests.ConnectionError) as caught:
        client.debit("round:r_reset", 300)

    # A RST ("connection reset by peer"), not an orderly close and not an HTTP answer.
    assert _was_reset(caught.value), repr(caught.value)
    assert client.transactions() == []
    assert client.admin("GET", "/balances").json() == {"balances": []}
    assert client.admin("GET", "/faults").json() == {"faults": []}
    # The key was never applied, so the retry is a first application, not a replay.
    retry = client.debit("round:r_reset", 300)
    assert retry.status_code == 200
    assert retry.json() == {
        "accepted": True,
        "balanceAfterMinor": STARTING - 300,
        "providerTxnRef": "rw_1",
    }
    assert len(client.transactions()) == 1
    assert client.admin("GET", "/stats").json() == {
        "calls": 2,
        "applied": 1,
        "replayed": 0,
        "refused": 0,
        "faulted": 1,
    }


def test_apply_then_drop_is_an_orderly_close_not_a_reset(client: WalletClient) -> None:
    # The contrast that makes the reset test above meaningful.
    client.add_fault(mode="apply_then_drop", times=1)

    with pytest.raises(requests.ConnectionError) as caught:
        client.debit("round:r_fin", 300)

    assert not _was_reset(caught.value), repr(caught.value)


def test_reset_fault_on_a_replay_keeps_the_applied_operation_untouched(
    client: WalletClient,
) -> None:
    first = client.debit("round:r_1", 300).json()
    client.add_fault(mode="reset", times=1)

    with pytest.raises(requests.ConnectionError):
        client.debit("round:r_1", 300)

    assert client.debit("round:r_1", 300).json() == first
    assert len(client.transactions()) == 1
    assert client.balance_minor() == STARTING - 300


def test_reset_fault_honours_times_and_types(client: WalletClient) -> None:
    client.add_fault(mode="reset", times=2, types=["wallet.credit", "wallet.balance"])

    assert client.debit("k1", 10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        client.credit("k2", 10)
    [fault] = client.admin("GET", "/faults").json()["faults"]
    assert fault["times"] == 1
    with pytest.raises(requests.ConnectionError):
        client.balance()
    assert client.admin("GET", "/faults").json() == {"faults": []}

    assert client.credit("k2", 10).status_code == 200
    assert client.balance().status_code == 200
    assert [t["idempotencyKey"] for t in client.transactions()] == ["k1", "k2"]


def test_every_call_under_a_standing_reset_fault_is_reset(client: WalletClient) -> None:
    client.add_fault(mode="reset")

    for n in range(5):
        with pytest.raises(requests.ConnectionError) as caught:
            client.debit(f"k{n}", 10)
        assert _was_reset(caught.value)

    assert client.transactions() == []
    assert client.ledger_stats()["faulted"] == 5
    client.admin("DELETE", "/faults")
    assert client.debit("k0", 10).status_code == 200


def test_duplicate_fault_refuses_a_replay_409_and_moves_nothing_again(
    client: WalletClient,
) -> None:
    applied = client.debit("round:r_dup", 300)
    assert applied.status_code == 200
    client.add_fault(mode="duplicate", times=1)

    replay = client.debit("round:r_dup", 300)

    assert replay.status_code == 409
    body = replay.json()
    assert body["accepted"] is False
    assert body["code"] == "DUPLICATE_TRANSACTION"
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) == {"accepted", "code", "message"}
    assert len(client.transactions()) == 1
    assert client.balance_minor() == STARTING - 300
    # The fault is used up: the next replay gets the stored answer again.
    assert client.debit("round:r_dup", 300).json() == applied.json()


def test_duplicate_fault_passes_a_call_that_is_not_a_replay_without_using_it_up(
    client: WalletClient,
) -> None:
    client.add_fault(mode="duplicate", times=1)

    first = client.debit("k1", 100)

    # A first application is handled as usual and does not count against the fault.
    assert first.status_code == 200
    [fault] = client.admin("GET", "/faults").json()["faults"]
    assert fault["times"] == 1
    # Neither is the same key with another payload (refused by the rules, not the fault),
    # nor a refused (so unconsumed) key, nor a balance query.
    other_payload = client.debit("k1", 999)
    assert other_payload.status_code == 409
    assert other_payload.json()["message"] != fault["message"]
    too_big = money_body("wallet.debit", "k-big", STARTING * 2)
    assert client.post(too_big).json()["code"] == "INSUFFICIENT_FUNDS"
    assert client.post(too_big, timestamp=next_second()).json()["code"] == "INSUFFICIENT_FUNDS"
    assert client.balance().status_code == 200
    assert client.admin("GET", "/faults").json()["faults"][0]["times"] == 1

    assert client.debit("k1", 100).json()["code"] == "DUPLICATE_TRANSACTION"
    assert client.admin("GET", "/faults").json() == {"faults": []}
    assert len(client.transactions()) == 1


def test_duplicate_fault_honours_times_and_types(client: WalletClient) -> None:
    client.debit("d1", 10)
    client.credit("c1", 10)
    client.add_fault(mode="duplicate", times=2, types=["wallet.credit"])

    assert client.debit("d1", 10).status_code == 200  # a replay, but not a credit
    assert [client.credit("c1", 10).status_code for _ in range(3)] == [409, 409, 200]
    assert client.admin("GET", "/faults").json() == {"faults": []}
    assert len(client.transactions()) == 2


def test_a_standing_duplicate_fault_never_replays(client: WalletClient) -> None:
    client.add_fault(mode="duplicate")

    assert client.credit("c1", 10).status_code == 200
    assert [client.credit("c1", 10).status_code for _ in range(3)] == [409] * 3
    assert client.balance_minor() == STARTING + 10


def test_a_duplicate_fault_does_not_hide_the_faults_behind_it(client: WalletClient) -> None:
    # First match wins, and a duplicate fault does not match a call that is no replay.
    client.add_fault(mode="duplicate", times=1)
    client.add_fault(mode="refuse", code="BEHIND", times=1)

    assert client.debit("k1", 10).json()["code"] == "BEHIND"
    retry = client.post(money_body("wallet.debit", "k1", 10), timestamp=next_second())
    assert retry.status_code == 200
    assert client.debit("k1", 10).json()["code"] == "DUPLICATE_TRANSACTION"
    assert client.admin("GET", "/faults").json() == {"faults": []}


def test_a_duplicate_fault_is_listed_with_what_it_answers(client: WalletClient) -> None:
    listed = client.add_fault(mode="duplicate", times=3, types=["wallet.debit"])
    custom = client.add_fault(mode="duplicate", message="we never replay")

    assert listed["mode"] == "duplicate"
    assert (listed["code"], listed["status"], listed["times"]) == ("DUPLICATE_TRANSACTION", 409, 3)
    assert listed["types"] == ["wallet.debit"]
    assert custom["message"] == "we never replay"
    client.credit("c1", 10)
    assert client.credit("c1", 10).json()["message"] == "we never replay"


def test_duplicate_and_reset_faults_are_counted_by_the_stats_rules(
    client: WalletClient,
) -> None:
    client.debit("k1", 100)  # applied
    client.add_fault(mode="duplicate", times=1)
    client.debit("k2", 100)  # applied, passes the duplicate fault by
    client.debit("k1", 100)  # faulted and refused, not replayed
    client.debit("k1", 100)  # replayed
    client.add_fault(mode="reset", times=1)
    with pytest.raises(requests.ConnectionError):
        client.debit("k3", 100)  # faulted only

    assert client.ledger_stats() == {
        "calls": 5,
        "applied": 2,
        "replayed": 1,
        "refused": 1,
        "faulted": 2,
    }


def test_a_fault_affects_only_its_number_of_calls(client: WalletClient) -> None:
    client.add_fault(mode="error", status=500, times=2)

    statuses = [client.debit(f"k{n}", 10).status_code for n in range(3)]

    assert statuses == [500, 500, 200]
    assert client.admin("GET", "/faults").json() == {"faults": []}


def test_a_fault_lists_its_remaining_times(client: WalletClient) -> None:
    client.add_fault(mode="error", times=3)
    client.debit("k1", 10)

    [fault] = client.admin("GET", "/faults").json()["faults"]

    assert fault["mode"] == "error"
    assert fault["times"] == 2


def test_a_fault_affects_only_its_types(client: WalletClient) -> None:
    client.add_fault(mode="refuse", code="NO_CREDITS", types=["wallet.credit"])

    assert client.debit("k1", 10).status_code == 200
    assert client.balance().status_code == 200
    assert client.credit("k2", 10).json()["code"] == "NO_CREDITS"
    assert client.credit("k3", 10).json()["code"] == "NO_CREDITS"


def test_stacked_faults_first_match_wins(client: WalletClient) -> None:
    client.add_fault(mode="refuse", code="FIRST", times=1)
    client.add_fault(mode="refuse", code="SECOND", times=1)

    codes = [client.debit(f"k{n}", 10).json().get("code") for n in range(3)]

    assert codes == ["FIRST", "SECOND", None]


def test_a_fault_rate_with_a_seed_is_reproducible(client: WalletClient) -> None:
    def pattern() -> list[int]:
        client.admin("POST", "/reset")
        client.add_fault(mode="error", status=503, rate=0.5, seed=7)
        return [client.debit(f"k{n}", 1).status_code for n in range(20)]

    first = pattern()

    assert first == pattern()
    assert 0 < first.count(503) < 20


def test_faults_can_be_cleared(client: WalletClient) -> None:
    client.add_fault(mode="error")
    client.add_fault(mode="delay", delayMs=5000)

    assert client.admin("DELETE", "/faults").json() == {"faults": []}
    assert client.admin("GET", "/faults").json() == {"faults": []}
    assert client.debit("k1", 10).status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "explode"},
        {"mode": "error", "status": 99},
        {"mode": "delay", "delayMs": -1},
        {"mode": "delay", "delayMs": 10**9},
        {"mode": "error", "times": 0},
        {"mode": "error", "types": ["wallet.steal"]},
        {"mode": "error", "rate": 1.5},
        {"mode": "error", "rate": 0.5, "seed": "x"},
        ["mode", "error"],
        {"mode": "RESET"},
        {"mode": "reset", "times": 0},
        {"mode": "reset", "times": True},
        {"mode": "reset", "types": []},
        {"mode": "reset", "types": ["wallet.steal"]},
        {"mode": "duplicate", "times": -1},
        {"mode": "duplicate", "types": ["wallet.balance"]},
        {"mode": "duplicate", "types": ["wallet.debit", "wallet.balance"]},
        {"mode": "duplicate", "code": "OTHER_CODE"},
        {"mode": "duplicate", "code": "DUPLICATE_TRANSACTION"},
        {"mode": "duplicate", "status": 409},
        {"mode": "duplicate", "message": 7},
        {"mode": "duplicate", "rate": 0},
    ],
)
def test_an_invalid_fault_is_rejected(client: WalletClient, spec: Any) -> None:
    response = client.admin("POST", "/faults", spec)

    assert response.status_code == 400
    assert response.json()["error"]
    assert client.admin("GET", "/faults").json() == {"faults": []}


def test_faults_only_act_on_authenticated_calls(client: WalletClient) -> None:
    client.add_fault(mode="error", status=503, times=1)

    unsigned = client.post(_good_debit(), secret="intruder")

    assert unsigned.status_code == 401
    assert client.debit("k1", 10).status_code == 503


# --- administration --------------------------------------------------------------------


def test_stats_count_calls_and_outcomes(client: WalletClient) -> None:
    client.debit("k1", 100)  # applied
    client.debit("k1", 100)  # replayed
    client.debit("k2", STARTING * 2)  # refused
    client.post(_good_debit(), secret="intruder")  # refused at the door
    client.add_fault(mode="error", times=1)
    client.debit("k3", 1)  # faulted

    assert client.admin("GET", "/stats").json() == {
        "calls": 5,
        "applied": 1,
        "replayed": 1,
        "refused": 2,
        "faulted": 1,
    }


def test_reset_forgets_everything(client: WalletClient) -> None:
    client.debit("k1", 100)
    client.admin("POST", "/players/u_2/block")
    client.add_fault(mode="refuse", types=["wallet.credit"])

    assert client.admin("POST", "/reset").status_code == 200

    assert client.transactions() == []
    assert client.admin("GET", "/balances").json() == {"balances": []}
    assert client.admin("GET", "/faults").json() == {"faults": []}
    assert client.admin("GET", "/players/blocked").json() == {"blocked": []}
    assert client.admin("GET", "/stats").json() == dict.fromkeys(
        ["calls", "applied", "replayed", "refused", "faulted"], 0
    )
    # The same key is new again, and the player is not blocked any more.
    assert client.debit("k1", 100).json()["balanceAfterMinor"] == STARTING - 100
    assert client.credit("k2", 100, player="u_2").status_code == 200


def test_admin_needs_the_token_when_one_is_configured() -> None:
    with serve_wallet([SECRET], admin_token="let-me-in") as running:
        url = f"{running.admin_url}/stats"
        assert requests.get(url, timeout=TIMEOUT).status_code == 401
        wrong = {"X-Admin-Token": "guess"}
        assert requests.get(url, headers=wrong, timeout=TIMEOUT).status_code == 401
        right = {"X-Admin-Token": "let-me-in"}
        assert requests.get(url, headers=right, timeout=TIMEOUT).status_code == 200
        # The RPC itself is guarded by its signature, not by the admin token.
        assert WalletClient(running).balance().status_code == 200


def test_admin_token_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFWALLET_ADMIN_TOKEN", "from-env")
    with serve_wallet([SECRET]) as running:
        url = f"{running.admin_url}/faults"
        assert requests.get(url, timeout=TIMEOUT).status_code == 401
        headers = {"X-Admin-Token": "from-env"}
        assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 200


def test_reset_without_a_socket_applies_nothing_and_answers_unintelligibly() -> None:
    # No socket to reset: a non-JSON 502 is equally an unknown outcome for the client.
    app = create_wallet_app([SECRET])
    ledger = app.extensions["refwallet"].ledger
    ledger.add_fault({"mode": "reset", "times": 1})
    raw = json.dumps(_good_debit()).encode()
    headers = signed_headers(SECRET, int(time.time()), "POST", "/wallet", raw)
    test_client = app.test_client()

    response = test_client.post(
        "/wallet", data=raw, headers={**headers, "Idempotency-Key": "k-door"}
    )

    assert response.status_code == 502
    assert response.is_json is False
    assert ledger.transactions() == []
    retry = test_client.post("/wallet", data=raw, headers={**headers, "Idempotency-Key": "k-door"})
    assert retry.status_code == 200
    assert len(ledger.transactions()) == 1


def test_apply_then_drop_without_a_socket_still_applies_and_answers_unintelligibly() -> None:
    # Flask's test client has no socket to drop; the wallet must still apply and must not
    # give an answer that could be read as a definite outcome.
    app = create_wallet_app([SECRET])
    app.extensions["refwallet"].ledger.add_fault({"mode": "apply_then_drop"})
    raw = json.dumps(_good_debit()).encode()
    headers = signed_headers(SECRET, int(time.time()), "POST", "/wallet", raw)

    response = app.test_client().post(
        "/wallet", data=raw, headers={**headers, "Idempotency-Key": "k-door"}
    )

    assert response.status_code == 502
    assert response.is_json is False
    assert len(app.extensions["refwallet"].ledger.transactions()) == 1


@pytest.mark.parametrize(
    ("secrets", "path", "error"),
    [
        ("one-secret", "/wallet", TypeError),
        ([], "/wallet", ValueError),
        ([""], "/wallet", ValueError),
        ([SECRET], "wallet", ValueError),
        ([SECRET], "/_admin/wallet", ValueError),
    ],
)
def test_the_factory_refuses_a_bad_configuration(
    secrets: Any, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        create_wallet_app(secrets, path=path)


def test_the_wallet_path_is_configurable() -> None:
    with serve_wallet([SECRET], path="/api/v1/wallet") as running:
        assert running.url.endswith("/api/v1/wallet")
        assert WalletClient(running).balance().status_code == 200


# --- the process ------------------------------------------------------------------------


def _start_process(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lootbox.refwallet", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 15)
    if not ready:
        process.kill()
        process.communicate(timeout=TIMEOUT)
        pytest.fail("the reference wallet did not announce itself within 15 s")
    line = process.stdout.readline()
    return process, line


def _stop_process(process: subprocess.Popen[str], sig: int) -> int:
    process.send_signal(sig)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=TIMEOUT)
        pytest.fail("the reference wallet did not stop within 10 s")
    return process.returncode


def _call_process_wallet(url: str, secret: str) -> requests.Response:
    path = "/" + url.split("/", 3)[3]
    body = json.dumps(money_body("wallet.debit", "k-proc", 250)).encode()
    headers = signed_headers(secret, int(time.time()), "POST", path, body)
    headers["Idempotency-Key"] = "k-proc"
    return requests.post(url, data=body, headers=headers, timeout=TIMEOUT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_process_announces_its_url_serves_and_stops_cleanly(sig: int) -> None:
    process, line = _start_process(
        ["--host", "127.0.0.1", "--port", "0", "--secret", "proc-secret", "--quiet"],
        {"REFWALLET_STARTING_BALANCE": "1000"},
    )
    try:
        announcement = json.loads(line)
        assert announcement["refwallet"] == "ready"
        assert announcement["url"].startswith("http://127.0.0.1:")
        assert announcement["url"].endswith("/wallet")

        response = _call_process_wallet(announcement["url"], "proc-secret")

        assert response.status_code == 200
        assert response.json()["balanceAfterMinor"] == 750
    finally:
        returncode = _stop_process(process, sig)
    assert returncode == 0


def test_the_process_takes_its_settings_from_the_environment() -> None:
    process, line = _start_process(
        ["--quiet"],
        {
            "REFWALLET_SECRETS": "first, second",
            "REFWALLET_PORT": "0",
            "REFWALLET_PATH": "/w",
            "REFWALLET_STARTING_BALANCE": "500",
        },
    )
    try:
        url = json.loads(line)["url"]
        assert url.endswith("/w")

        response = _call_process_wallet(url, "second")

        assert response.status_code == 200
        assert response.json()["balanceAfterMinor"] == 250
    finally:
        returncode = _stop_process(process, signal.SIGTERM)
    assert returncode == 0


def test_the_process_serves_named_operators_each_with_its_own_books() -> None:
    process, line = _start_process(
        [
            "--port",
            "0",
            "--quiet",
            "--operator",
            "casino-a=old-secret",
            "--operator",
            "casino-a=new-secret",
            "--operator",
            "casino-b=b-secret",
        ],
        {"REFWALLET_STARTING_BALANCE": "1000"},
    )
    try:
        url = json.loads(line)["url"]
        admin_url = url.rsplit("/", 1)[0] + "/_admin"

        before = _call_process_wallet(url, "old-secret")
        after = _call_process_wallet(url, "new-secret")  # the same operator: a replay
        elsewhere = _call_process_wallet(url, "b-secret")  # the same key elsewhere

        assert before.json() == after.json()
        assert before.json()["balanceAfterMinor"] == elsewhere.json()["balanceAfterMinor"] == 750
        operators = requests.get(f"{admin_url}/operators", timeout=TIMEOUT).json()
        assert operators == {"operators": ["casino-a", "casino-b"]}
    finally:
        returncode = _stop_process(process, signal.SIGTERM)
    assert returncode == 0


def test_the_process_refuses_to_start_without_a_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REFWALLET_SECRETS"}
    result = subprocess.run(
        [sys.executable, "-m", "lootbox.refwallet", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=15,
    )

    assert result.returncode == 2
    assert "secret" in result.stderr
    assert result.stdout == ""
