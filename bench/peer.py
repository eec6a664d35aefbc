"""The peer: the cashout endpoint as an operator's engineer would build it in a day from
off-the-shelf parts, for the benchmark to compare ours with (``bench/requirements-peer.txt``).

Flask; the HMAC check of the contract (section 3); aws-lambda-powertools'
``idempotent_function`` with its Redis persistence layer, as its documentation shows it;
SQLAlchemy 2 with the ORM: ``SELECT … FOR UPDATE`` of the item, the wallet credit, and the
``UPDATE`` of its state at commit; a ``requests.Session`` for the wallet (contract
section 6). Library defaults throughout. No ledger, no durable idempotency record, no
fencing: a wallet that times out leaves nobody knowing whether the money moved, a
duplicate arriving while the first runs gets a 409, and a record lost from Redis means
the next copy runs again (the item's state then refuses it, the wallet its key).

Served by ``gunicorn --config config/gunicorn.py 'bench.peer:create_app()'`` with
``PEER_DATABASE_URL``, ``PEER_REDIS_URL``, ``PEER_API_KEYS`` (``id:secret,…``),
``PEER_WALLET_URL`` and ``PEER_WALLET_SECRET``. Its table is ``peer_items``
(``bench/data.py`` creates and fills it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer
from flask import Flask, Response, jsonify, request
from sqlalchemy import create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

CASHBACK_BPS = 5000
MAX_SKEW_SECONDS = 300


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "peer_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    player_external_id: Mapped[str]
    value_minor: Mapped[int]
    currency: Mapped[str]
    state: Mapped[str]


class Refused(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status, self.code = status, code


def signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    canonical = f"{timestamp}\n{method}\n{path}\n{hashlib.sha256(body).hexdigest()}"
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def create_app() -> Flask:
    app = Flask(__name__)
    keys = dict(pair.split(":", 1) for pair in os.environ["PEER_API_KEYS"].split(","))
    wallet_url = os.environ["PEER_WALLET_URL"]
    wallet_secret = os.environ["PEER_WALLET_SECRET"]
    engine = create_engine(os.environ["PEER_DATABASE_URL"])
    wallet = requests.Session()
    persistence = CachePersistenceLayer(url=os.environ["PEER_REDIS_URL"])

    def authenticate() -> str:
        key_id = request.headers.get("X-Key-Id", "")
        timestamp = request.headers.get("X-Timestamp", "")
        given = request.headers.get("X-Signature", "")
        secret = keys.get(key_id)
        if secret is None or not timestamp.isdigit():
            raise Refused(401, "INVALID_SIGNATURE")
        if abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
            raise Refused(401, "TIMESTAMP_SKEW")
        expected = signature(secret, timestamp, "POST", request.path, request.get_data())
        if not hmac.compare_digest(expected, given):
            raise Refused(401, "INVALID_SIGNATURE")
        return key_id

    def credit(item: Item, amount: int) -> dict[str, Any]:
        key = f"cashback:inventory:{item.id}"
        body = json.dumps(
            {
                "type": "wallet.credit",
                "idempotencyKey": key,
                "playerExternalId": item.player_external_id,
                "amountMinor": amount,
                "currency": item.currency,
                "reason": "cashback",
                "inventoryItemId": item.id,
            }
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Timestamp": timestamp,
            "X-Signature": signature(
                wallet_secret, timestamp, "POST", urlsplit(wallet_url).path, body
            ),
        }
        try:
            answer = wallet.post(wallet_url, data=body, headers=headers, timeout=(2, 5))
            found = answer.json()
        except (requests.RequestException, ValueError):
            raise Refused(503, "WALLET_UNAVAILABLE") from None
        if answer.status_code >= 500 or "accepted" not in found:
            raise Refused(503, "WALLET_UNAVAILABLE")
        if not found["accepted"]:
            raise Refused(422, str(found.get("code", "WALLET_REFUSED")))
        return dict(found)

    @idempotent_function(
        data_keyword_argument="cashout",
        persistence_store=persistence,
        config=IdempotencyConfig(),
    )
    def cash_out(cashout: dict[str, Any]) -> dict[str, Any]:
        with Session(engine) as session, session.begin():
            item = session.scalars(
                select(Item)
                .where(
                    Item.id == cashout["inventoryItemId"],
                    Item.player_external_id == cashout["playerExternalId"],
                )
                .with_for_update()
            ).one_or_none()
            if item is None:
                raise Refused(404, "INVENTORY_ITEM_NOT_FOUND")
            if item.state != "unresolved":
                raise Refused(422, "CASHBACK_NOT_AVAILABLE")
            amount = item.value_minor * CASHBACK_BPS // 10_000
            credited = credit(item, amount)
            item.state = "cashed_back"
            answer = {
                "item": {
                    "inventoryItemId": item.id,
                    "state": item.state,
                    "cashbackMinor": amount,
                    "currency": item.currency,
                },
                "balanceAfterMinor": credited.get("balanceAfterMinor"),
            }
        return answer  # the UPDATE went with the COMMIT above

    @app.post("/api/s2s/cashout")
    def cashout() -> Response | tuple[Response, int]:
        key_id = authenticate()
        body = request.get_json(silent=True) or {}
        try:
            wanted = {
                "keyId": key_id,
                "playerExternalId": str(body["playerExternalId"]),
                "inventoryItemId": int(body["inventoryItemId"]),
            }
        except (KeyError, TypeError, ValueError):
            raise Refused(400, "VALIDATION_ERROR") from None
        try:
            return jsonify(cash_out(cashout=wanted))
        except IdempotencyAlreadyInProgressError:
            raise Refused(409, "IDEMPOTENCY_KEY_IN_USE") from None

    @app.errorhandler(Refused)
    def refused(exc: Refused) -> tuple[Response, int]:
        return jsonify(error={"code": exc.code}), exc.status

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
