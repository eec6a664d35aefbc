"""Pre-signed S2S requests: built and signed in Python before a scenario starts, so the
load generator only sends bytes.

Every request carries its own body and ``X-Key-Id`` / ``X-Timestamp`` / ``X-Signature``
(contract section 3). The timestamp is taken when the batch is built, which is right
before its scenario runs: the server accepts 300 s of skew, far more than one scenario
lasts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lootbox.signing import signed_headers

CASHOUT_PATH = "/api/s2s/cashout"
CANCEL_PATH = "/api/s2s/cancel"
PURCHASE_PATH = "/api/s2s/purchase"


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def raw(self, host: str) -> bytes:
        """The whole HTTP/1.1 request as sent on a keep-alive connection."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + self.body


def _body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def sign(
    credentials: Credentials, path: str, document: dict[str, Any], now: int | None = None
) -> SignedRequest:
    body = _body(document)
    timestamp = int(time.time()) if now is None else now
    headers = signed_headers(
        credentials.secret, timestamp, "POST", path, body, key_id=credentials.key_id
    )
    return SignedRequest("POST", path, {"Content-Type": "application/json", **headers}, body)


def cashout_requests(
    credentials: Credentials, items: Iterable[tuple[int, str]], now: int | None = None
) -> list[SignedRequest]:
    """One cashout per ``(inventoryItemId, playerExternalId)``, default idempotency key."""
    stamp = int(time.time()) if now is None else now
    return [
        sign(
            credentials,
            CASHOUT_PATH,
            {"playerExternalId": player, "inventoryItemId": item_id},
            stamp,
        )
        for item_id, player in items
    ]


def cancel_requests(
    credentials: Credentials, rounds: Iterable[tuple[str, str]], now: int | None = None
) -> list[SignedRequest]:
    """One cancel per ``(roundPublicId, playerExternalId)``, default idempotency key."""
    stamp = int(time.time()) if now is None else now
    return [
        sign(
            credentials,
            CANCEL_PATH,
            {"playerExternalId": player, "roundPublicId": public_id},
            stamp,
        )
        for public_id, player in rounds
    ]


def purchase_requests(
    credentials: Credentials,
    box_version_id: int,
    count: int,
    tag: str,
    players: int = 1000,
    now: int | None = None,
) -> list[SignedRequest]:
    """``count`` atomic purchases, each a new ``clientActionId`` (so a new round)."""
    stamp = int(time.time()) if now is None else now
    return [
        sign(
            credentials,
            PURCHASE_PATH,
            {
                "playerExternalId": f"bench-buyer-{n % players}",
                "gameKey": "mystery_box",
                "mode": "open",
                "clientActionId": f"{tag}-{n}",
                "reels": [{"reelIndex": 0, "boxVersionId": box_version_id}],
            },
            stamp,
        )
        for n in range(count)
    ]


def write_wrk_data(path: Path, requests: Sequence[SignedRequest], host: str) -> int:
    """Write the requests for ``bench/wrk_script.lua``: ``<length>\\n<raw bytes>`` each.
    Returns the number of bytes written."""
    size = 0
    with path.open("wb") as out:
        for request in requests:
            raw = request.raw(host)
            header = f"{len(raw)}\n".encode()
            out.write(header)
            out.write(raw)
            size += len(header) + len(raw)
    return size


def read_wrk_data(path: Path) -> list[bytes]:
    """The raw requests of a file written by ``write_wrk_data`` (for tests and checks)."""
    data = path.read_bytes()
    found = []
    position = 0
    while position < len(data):
        newline = data.index(b"\n", position)
        length = int(data[position:newline])
        start = newline + 1
        found.append(data[start : start + length])
        position = start + length
    return found
