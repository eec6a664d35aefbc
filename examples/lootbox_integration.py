#!/usr/bin/env python3
"""An operator backend's integration with the LootBox S2S API, written from the contract
alone (no ``lootbox`` import): signed requests with ``requests``, ``hashlib`` and ``hmac``.

It checks health, lists the catalog, reads one box's prize table and live version, shows
the player's seed commitment, buys that box three times for the player, pages through the
player's inventory, cashes one won item out (and replays the cashout to show it is
idempotent), finds the money movements in the player's history, and finally rotates the
player's seeds and re-derives every prize it bought from the revealed seed and the box
version's public snapshot (provably fair draws, contract section 9), with its own
implementation of the draw. It exits 0 when every answer is what the contract says, else
it prints the step, the HTTP status and the body and exits 1.

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
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import requests

PURCHASES = 3
PAGE_SIZE = 2  # small on purpose, to show the paging
BOXES_PER_PAGE = 1
ALGORITHM = "hmac_sha256_v1"


class StepFailed(Exception):
    """An answer the contract does not allow, at a named step."""


class S2SClient:
    """Signs and sends S2S requests; remembers the step and last body for error messages."""

    def __init__(self, api: str, key_id: str, secret: str) -> None:
        api = api.rstrip("/")
        self.api = api if api.endswith("/api/s2s") else api + "/api/s2s"
        self.root = self.api[: -len("/api/s2s")]  # the public, unsigned pages live here
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

    def public_get(self, step: str, path: str) -> Any:
        """An unsigned GET of a public page (anyone may read it: no key, no signature)."""
        self.step = step
        return self._answer(step, self.session.get(self.root + path, timeout=10))

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


def show_commitment(client: S2SClient, player: str) -> dict[str, Any]:
    """Step 4: the player's seeds, before they play: the server seed's hash is what the
    player notes down (the seed itself is revealed by a rotation)."""
    seeds = client.get("fairness", "/fairness", playerExternalId=player)
    check("fairness", "serverSeed" not in seeds, "the secret seed is shown", seeds)
    check("fairness", seeds["algorithmKey"] == ALGORITHM, "unknown algorithm", seeds)
    print(f"seeds: server seed hash {seeds['serverSeedHash']}, client seed {seeds['clientSeed']}")
    return dict(seeds)


def buy(client: S2SClient, player: str, box_version_id: int) -> list[dict[str, Any]]:
    """Step 5: atomic buy-and-open, ``PURCHASES`` times; the purchase answers."""
    answers: list[dict[str, Any]] = []
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
        answers.append(bought)
        won = ", ".join(item["name"] for item in bought["wonItems"])
        nonce = bought["round"]["fairness"]["nonce"]
        print(f"purchase {bought['round']['publicId']} (nonce {nonce}): paid", end=" ")
        print(f"{bought['round']['betMinor']}, won {won}")
    return answers


def walk_inventory(client: S2SClient, player: str) -> list[dict[str, Any]]:
    """Step 6: the unresolved items, page by page, and back one page with ``cursor.prev``."""
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
    """Step 7: cash one item out, then send the same request again: the same answer."""
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
    """Step 8: the purchases and the cashback, as the wallet saw them, in the history."""
    history = list_all(client, "history", "/history", player)
    key = f"cashback:inventory:{item_id}"
    cashbacks = [row for row in history if row["type"] == "cashback"]
    check("history", len(cashbacks) == 1, "not exactly one cashback row", cashbacks)
    check("history", cashbacks[0]["status"] == "completed", "cashback not completed", cashbacks)
    check("history", cashbacks[0]["idempotencyKey"] == key, "wrong idempotencyKey", cashbacks)
    opened = {row["roundPublicId"] for row in history if row["type"] == "open"}
    check("history", opened >= set(rounds), "purchases missing", sorted(opened))
    print(f"history: {len(history)} rows; {len(opened)} open, 1 cashback ({key}) completed")


# --- provably fair draws, from the contract's section 9 alone ---------------------------------


def canonical_json(value: Any) -> str:
    """The text a snapshot's hash is taken over: keys sorted, no spaces, strings as JSON
    writes them with every non-ASCII character as a \\u escape, decimals (read as
    ``Decimal``) with exactly their digits."""
    if isinstance(value, dict):
        members = (json.dumps(key) + ":" + canonical_json(value[key]) for key in sorted(value))
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)  # a string (ASCII-escaped), an integer, true, false, null


def draw(server_seed: str, client_seed: str, nonce: int, reel: int, prizes: list[Any]) -> Any:
    """``hmac_sha256_v1``: the prize reel ``reel`` of the round with ``nonce`` draws."""
    message = f"{client_seed}:{nonce}:{reel}".encode("ascii")
    digest = hmac.new(server_seed.encode("ascii"), message, hashlib.sha256).digest()
    x = Fraction(int.from_bytes(digest[:7], "big") >> 4, 2**52)  # first 52 bits / 2^52
    running = Fraction(0)
    for prize in prizes:  # in the snapshot's (published) order, odds added exactly
        running += Fraction(prize["odds"])
        if running > x:
            return prize
    raise StepFailed(f"verify: x = {x} is beyond the odds' sum {running}")


def snapshot(client: S2SClient, box_version_id: int) -> dict[str, Any]:
    """A box version's public snapshot, checked against its ``snapshotHash``."""
    published = client.public_get("snapshot", f"/fairness/box-version/{box_version_id}/snapshot")
    content = {key: value for key, value in published.items() if key != "snapshotHash"}
    digest = hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()
    check("snapshot", digest == published["snapshotHash"], f"content hashes to {digest}", published)
    check("snapshot", published["boxVersionId"] == box_version_id, "another version", published)
    return dict(published)


def verify_draws(
    client: S2SClient, player: str, seeds: dict[str, Any], purchases: list[dict[str, Any]]
) -> int:
    """Step 9: rotate the seeds the purchases were drawn with, check the revealed seed
    against the hash shown before, and redo every draw; how many prizes were re-derived."""
    nonces = []
    for bought in purchases:
        fairness = bought["round"]["fairness"]
        drawn_with = (fairness["serverSeedHash"], fairness["clientSeed"], fairness["algorithmKey"])
        expected = (seeds["serverSeedHash"], seeds["clientSeed"], ALGORITHM)
        check("fairness", drawn_with == expected, "not drawn with the seeds shown", fairness)
        nonces.append(fairness["nonce"])
    first = seeds["nextNonce"]
    check("fairness", nonces == list(range(first, first + PURCHASES)), "nonces skip", nonces)

    request = {"playerExternalId": player, "serverSeedHash": seeds["serverSeedHash"]}
    rotation, _ = client.post("rotate", "/fairness/rotate", request)
    revealed, current = rotation["revealed"], rotation["current"]
    seed = revealed["serverSeed"]
    seed_hash = hashlib.sha256(seed.encode("ascii")).hexdigest()
    check("rotate", seed_hash == seeds["serverSeedHash"], "not the committed seed", revealed)
    check("rotate", revealed["lastNonce"] == nonces[-1], "wrong lastNonce", revealed)
    check("rotate", current["serverSeedHash"] != seed_hash, "the same pair again", current)
    check("rotate", current["nextNonce"] == 0, "the new pair does not start at 0", current)
    check("rotate", current["clientSeed"] == seeds["clientSeed"], "seed not carried", current)
    print(f"rotate: server seed {seed} revealed; its SHA-256 is the hash shown before")
    _, again = client.post("rotate again", "/fairness/rotate", request)  # safe to retry
    check("rotate again", again.json()["revealed"] == revealed, "another reveal", again.text)

    snapshots: dict[int, dict[str, Any]] = {}
    verified = 0
    for bought in purchases:
        round_, fairness = bought["round"], bought["round"]["fairness"]
        for reel in round_["reels"]:
            version = reel["boxVersionId"]
            if version not in snapshots:
                snapshots[version] = snapshot(client, version)
            prizes = snapshots[version]["prizes"]
            mine = draw(seed, fairness["clientSeed"], fairness["nonce"], reel["reelIndex"], prizes)
            given = reel["prize"]
            check(
                "verify",
                mine["itemId"] == given["itemId"],
                f"round {round_['publicId']} reel {reel['reelIndex']}: the draw gives item"
                f" {mine['itemId']} {mine['name']!r}, the service gave",
                given,
            )
            verified += 1
            print(
                f"verify: round {round_['publicId']} nonce {fairness['nonce']} reel"
                f" {reel['reelIndex']}: {mine['name']} (item {mine['itemId']}), as given"
            )
    return verified


def run(client: S2SClient, player: str) -> None:
    box_version_id = read_box(client)
    seeds = show_commitment(client, player)
    purchases = buy(client, player, box_version_id)
    rounds = [bought["round"]["publicId"] for bought in purchases]
    items = walk_inventory(client, player)
    cash_out(client, player, items[0])
    check_history(client, player, rounds, items[0]["id"])
    verified = verify_draws(client, player, seeds, purchases)
    print(
        f"OK: player {player}: {len(rounds)} purchases, {len(items)} items, 1 cashout,"
        f" {verified} prizes re-derived from the revealed seed"
    )


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
