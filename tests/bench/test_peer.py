"""The peer (``bench/peer.py``) does what the benchmark credits it with: it checks our
signatures, credits the wallet once per item, and answers a replay from Redis without
touching the wallet again. On the tests' PostgreSQL and Redis, with a real reference
wallet; it needs ``bench/requirements-peer.txt``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

from bench import data
from bench.load import cashouts
from lootbox.refwallet import serve_wallet
from tests.conftest import empty_postgres_database
from tests.services import redis_url

pytest.importorskip("aws_lambda_powertools")

from bench.peer import create_app

KEY = data.Credentials("peer-key", "peer-secret")
WALLET_SECRET = "wallet-secret"


@pytest.fixture
def peer(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[FlaskClient, Any, list[tuple[int, str]]]]:
    with empty_postgres_database("lootbox_peer") as url, serve_wallet([WALLET_SECRET]) as wallet:
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            items = data.create_peer_items(conn, 2, uuid.uuid4().hex[:8])  # players unique
        monkeypatch.setenv("PEER_DATABASE_URL", url)
        monkeypatch.setenv("PEER_REDIS_URL", redis_url())
        monkeypatch.setenv("PEER_API_KEYS", f"{KEY.key_id}:{KEY.secret},other:x")
        monkeypatch.setenv("PEER_WALLET_URL", wallet.url)
        monkeypatch.setenv("PEER_WALLET_SECRET", WALLET_SECRET)
        yield create_app().test_client(), wallet, items


def send(client: FlaskClient, credentials: data.Credentials, item: tuple[int, str]) -> Any:
    (request,) = cashouts(credentials, [item])
    return client.post(request.path, data=request.body, headers=request.headers)


def test_a_cashout_credits_once_and_its_replay_answers_the_same(peer: Any) -> None:
    client, wallet, items = peer

    first, again = send(client, KEY, items[0]), send(client, KEY, items[0])

    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert first.get_json()["item"] == {
        "inventoryItemId": items[0][0],
        "state": "cashed_back",
        "cashbackMinor": data.PRIZE_VALUE * data.CASHBACK_BPS // 10_000,
        "currency": "EUR",
    }
    credits = [t for t in wallet.ledger.transactions() if t["type"] == "wallet.credit"]
    assert [t["idempotencyKey"] for t in credits] == [f"cashback:inventory:{items[0][0]}"]


def test_a_request_signed_with_another_secret_or_for_another_item_is_refused(peer: Any) -> None:
    client, wallet, items = peer

    forged = send(client, data.Credentials(KEY.key_id, "not-the-secret"), items[0])
    stranger = send(client, KEY, (items[1][0], "someone-else"))

    assert (forged.status_code, forged.get_json()) == (
        401,
        {"error": {"code": "INVALID_SIGNATURE"}},
    )
    assert stranger.status_code == 404
    assert wallet.ledger.transactions() == []
    tampered = cashouts(KEY, [items[1]])[0]
    body = json.loads(tampered.body) | {"inventoryItemId": items[0][0]}
    answer = client.post(tampered.path, data=json.dumps(body), headers=tampered.headers)
    assert answer.status_code == 401
