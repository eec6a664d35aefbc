#!/usr/bin/env python3
"""An operator backend's integration with the LootBox S2S API, written from the contract
alone (no ``lootbox`` import): signed requests with ``requests``, ``hashlib`` and ``hmac``.

It checks health, lists the catalog, reads one box's prize table and live version, buys
that box three times for a player, pages through the player's inventory, cashes one won
item out (and replays the cashout to show it is idempotent), and finds the money movements
in the player's history. It exits 0 when every answer is what the contract says, else it
prints the step, the HTTP status and the body and exits 1.

Run it against a local service::

    python3 dev.py serve          # prints {"api": ..., "keyId": ..., "secret": ...}
    python3 examples/lootbox_integration.py --api http://127.0.0.1:8080/api/s2s \\
        --key-id lk_... --secret ...

or with ``LOOTBOX_API``, ``LOOTBOX_KEY_ID`` and ``LOOTBOX_SECRET`` set. ``--player`` picks
the player (default: a new one per run; the reference wallet gives a new player a balance).
Only ``requests`` is needed beyond the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

PURCHASES = 3
PAGE_SIZE = 2  # small on purpose, to show the paging
BOXES_PER_PAGE = 1


class StepFailed(Exception):
    """An answer the contract does not allow, at a named step."""


class S2SClient:
    """Signs and sends S2S requests; remembers the step and last body for error messages."""

    def __init__(self, api: str, key_id: str, secret: str) -> None:
        api = api.rstrip("/")
        self.api = api if api.endswith("/api/s2s") else api + "/api/s2s"
        self.base_path = urlsplit(self.api).path  # what is signed is the full path
        self.key_id, self.secret = key_id, secret
        self.session = requests.Session()
        self.step, self.last_status, self.last_body = "start", 0, ""

    def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """Section 3: HMAC-SHA256 over timestamp, method, path (no query), body hash."""
        timestamp = str(int(time.time()))
        body_hash = hashlib.sha256(body).hexdigest()
        canonical = f"{timestamp}\n{method}\n{self.base_path}{path}\n{body_hash}"
        signature = hmac.new(self.secret.encode(), canonical.encode(), hashlib.sha256)
        return {
            "X-Key-Id": self.key_id,
            "X-Timestamp": timestamp,
            "X-Signature": signature.hexdigest(),
        }

    def get(self, step: str, path: str, **params: Any) -> Any:
        self.step = step
        query = {name: value for name, value in params.items() if value is not None}
        headers = self._headers("GET", path, b"")  # the query string is not signed
        response = self.session.get(self.api + path, params=query, headers=headers, timeout=10)
        return self._answer(step, response)

    def post(self, step: str, path: str, body: dict[str, Any]) -> tuple[Any, requests.Response]:
        self.step = step
        raw = json.dumps(body).encode()  # sign exactly the bytes sent
        headers = {"Content-Type": "application/json", **self._headers("POST", path, raw)}
        response = self.session.post(self.api + path, data=raw, headers=headers, timeout=30)
        return self._answer(step, response), response

    def _answer(self, step: str, response: requests.Response) -> Any:
        """The JSON body of a 200 (decimals as ``Decimal``, never float), else StepFailed."""
        self.last_status, self.last_body = response.status_code, response.text
        if response.status_code != 200:
            raise StepFailed(f"{step}: HTTP {response.status_code}: {response.text}")
        try:
            return json.loads(response.text, parse_float=Decimal)
        except ValueError as error:
            raise StepFailed(f"{step}: not JSON ({error}): {response.text!r}") from error


def check(step: str, condition: bool, message: str, body: Any = None) -> None:
    """Fail ``step`` with ``message`` (and what was answered) unless ``condition``."""
    if not condition:
        raise StepFailed(f"{step}: {message}" + (f": {body!r}" if body is not None else ""))


def list_boxes(client: S2SClient) -> list[dict[str, Any]]:
    """The whole catalog, page by page until ``pagination.lastPage``."""
    boxes: list[dict[str, Any]] = []
    page = 1
    while True:
        body = client.get("boxes", "/boxes", page=page, perPage=BOXES_PER_PAGE)
        boxes.extend(body["boxes"])
        pagination = body["pagination"]
        if pagination["page"] >= pagination["lastPage"]:
            check("boxes", len(boxes) == pagination["total"], "total differs", pagination)
            return boxes
        page += 1


def list_all(client: S2SClient, step: str, path: str, player: str) -> list[dict[str, Any]]:
    """Every row of a list endpoint, following ``cursor.next`` until it is null."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        body = client.get(step, path, playerExternalId=player, limit=PAGE_SIZE, cursor=cursor)
        check(step, len(body["items"]) <= PAGE_SIZE, "page larger than limit", body)
        rows.extend(body["items"])
        cursor = body["cursor"]["next"]
        if cursor is None:
            return rows
    raise StepFailed(f"{step}: cursor.next never ends")


def read_box(client: S2SClient) -> int:
    """Steps 1 to 3: health, the catalog, one box's prize table; its live boxVersionId."""
    health = client.get("health", "/health")
    check("health", health.get("status") == "ok", "status is not ok", health)
    print(f"health: ok, server time {health['time']}")

    boxes = list_boxes(client)
    check("boxes", bool(boxes), "the catalog is empty")
    print(f"catalog: {len(boxes)} box(es): " + ", ".join(b["name"] for b in boxes))
    box_id = boxes[0]["boxId"]
    box = client.get("box", f"/boxes/{box_id}")["box"]
    price = f"{box['priceMinor']} {box['currency']}"
    print(f"box {box_id} {box['name']!r}: {price}, house edge {box['houseEdgeBps']} bps")
    for prize in box["prizes"]:
        value = f"{prize['valueMinor']} {prize['currency']}"
        print(f"  odds {prize['odds']!s:<8} {prize['name']} ({value})")
    odds = [prize["odds"] for prize in box["prizes"]]
    check("box", all(isinstance(o, Decimal) for o in odds), "odds are not decimals", odds)
    total = sum(odds, Decimal(0))
    check("box", total == 1, f"odds sum to {total}, not exactly 1")

    version = client.get("version", f"/boxes/{box_id}/version")
    check("version", version["boxVersionId"] == box["boxVersionId"], "versions differ", version)
    print(f"live version {version['versionNumber']}: boxVersionId {version['boxVersionId']}")
    return int(version["boxVersionId"])


def buy(client: S2SClient, player: str, box_version_id: int) -> list[str]:
    """Step 4: atomic buy-and-open, ``PURCHASES`` times; the rounds' public ids."""
    rounds: list[str] = []
    for _ in range(PURCHASES):
        body = {
            "playerExternalId": player,
            "gameKey": "mystery_box",
            "mode": "open",
            "clientActionId": f"act-{uuid.uuid4().hex}",  # new player action, new id
            "reels": [{"reelIndex": 0, "boxVersionId": box_version_id}],
        }
        bought, _ = client.post("purchase", "/purchase", body)
        check("purchase", bought["round"]["status"] == "settled", "round not settled", bought)
        rounds.append(bought["round"]["publicId"])
        won = ", ".join(item["name"] for item in bought["wonItems"])
        print(f"purchase {rounds[-1]}: paid {bought['round']['betMinor']}, won {won}")
    return rounds


def walk_inventory(client: S2SClient, player: str) -> list[dict[str, Any]]:
    """Step 5: the unresolved items, page by page, and back one page with ``cursor.prev``."""
    items = list_all(client, "inventory", "/inventory", player)
    ids = [item["id"] for item in items]
    check("inventory", len(ids) >= PURCHASES, f"{len(ids)} items after {PURCHASES} buys")
    check("inventory", len(set(ids)) == len(ids), "an item listed twice", ids)
    print(f"inventory: {len(items)} items in pages of {PAGE_SIZE}: ids {ids}")

    def page(cursor: str | None) -> dict[str, Any]:
        params = {"playerExternalId": player, "limit": PAGE_SIZE, "cursor": cursor}
        return dict(client.get("inventory back", "/inventory", **params))

    first = page(None)
    second = page(first["cursor"]["next"])
    check("inventory back", second["cursor"]["prev"] is not None, "no cursor.prev", second)
    back = page(second["cursor"]["prev"])
    check("inventory back", back["items"] == first["items"], "prev is not page 1", back)
    print("inventory: cursor.prev of page 2 gives page 1 again")
    return items


def cash_out(client: S2SClient, player: str, item: dict[str, Any]) -> None:
    """Step 6: cash one item out, then send the same request again: the same answer."""
    request = {"playerExternalId": player, "inventoryItemId": item["id"]}
    cashed, answer = client.post("cashout", "/cashout", request)
    check("cashout", cashed["item"]["state"] == "cashed_back", "not cashed_back", cashed)
    _, replay = client.post("cashout replay", "/cashout", request)
    check("cashout replay", replay.content == answer.content, "answer differs", replay.text)
    credited = f"{cashed['item']['cashbackMinor']} {cashed['item']['currency']}"
    print(f"cashout of item {item['id']} ({item['name']}): {credited} credited")
    header = replay.headers.get("Idempotent-Replayed")
    print(f"cashout replayed: same answer (Idempotent-Replayed: {header})")


def check_history(client: S2SClient, player: str, rounds: list[str], item_id: int) -> None:
    """Step 7: the purchases and the cashback, as the wallet saw them, in the history."""
    history = list_all(client, "history", "/history", player)
    key = f"cashback:inventory:{item_id}"
    cashbacks = [row for row in history if row["type"] == "cashback"]
    check("history", len(cashbacks) == 1, "not exactly one cashback row", cashbacks)
    check("history", cashbacks[0]["status"] == "completed", "cashback not completed", cashbacks)
    check("history", cashbacks[0]["idempotencyKey"] == key, "wrong idempotencyKey", cashbacks)
    opened = {row["roundPublicId"] for row in history if row["type"] == "open"}
    check("history", opened >= set(rounds), "purchases missing", sorted(opened))
    print(f"history: {len(history)} rows; {len(opened)} open, 1 cashback ({key}) completed")


def run(client: S2SClient, player: str) -> None:
    box_version_id = read_box(client)
    rounds = buy(client, player, box_version_id)
    items = walk_inventory(client, player)
    cash_out(client, player, items[0])
    check_history(client, player, rounds, items[0]["id"])
    print(f"OK: player {player}: {len(rounds)} purchases, {len(items)} items, 1 cashout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--api", default=os.environ.get("LOOTBOX_API", "http://127.0.0.1:8080/api/s2s")
    )
    parser.add_argument("--key-id", default=os.environ.get("LOOTBOX_KEY_ID"))
    parser.add_argument("--secret", default=os.environ.get("LOOTBOX_SECRET"))
    parser.add_argument("--player", default=f"example-{uuid.uuid4().hex[:12]}")
    args = parser.parse_args(argv)
    if not args.key_id or not args.secret:
        parser.error("--key-id and --secret (or LOOTBOX_KEY_ID and LOOTBOX_SECRET) are required")
    client = S2SClient(args.api, args.key_id, args.secret)
    try:
        run(client, args.player)
    except StepFailed as failed:
        print(f"FAILED at {failed}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, AttributeError) as error:  # a field missing or mistyped
        problem = f"{type(error).__name__} {error}"
        print(f"FAILED at {client.step}: unexpected answer ({problem}):", file=sys.stderr)
        print(f"HTTP {client.last_status}: {client.last_body}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"FAILED at {client.step}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
