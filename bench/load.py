"""The load: signed requests built before a scenario starts, sent by ``wrk`` (through
``bench/wrk_script.lua``, which only hands out pre-built bytes), by one keep-alive
connection in sequence (the counting pass), or all at once on their own connections (the
duplicate storm)."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import Credentials
from lootbox.signing import signed_headers

SCRIPT = Path(__file__).resolve().parent / "wrk_script.lua"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SignedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def raw(self, host: str) -> bytes:
        """The whole HTTP/1.1 request as sent on a keep-alive connection."""
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + self.body


def sign(credentials: Credentials, path: str, document: dict[str, Any]) -> SignedRequest:
    """Signed now: the server accepts 300 s of skew, far longer than a scenario."""
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = signed_headers(
        credentials.secret, int(time.time()), "POST", path, body, key_id=credentials.key_id
    )
    return SignedRequest(path, {"Content-Type": "application/json", **headers}, body)


def cashouts(credentials: Credentials, items: Iterable[tuple[int, str]]) -> list[SignedRequest]:
    """One cashout per ``(inventoryItemId, playerExternalId)``, default idempotency key."""
    return [
        sign(credentials, "/api/s2s/cashout", {"playerExternalId": player, "inventoryItemId": item})
        for item, player in items
    ]


def cancels(credentials: Credentials, rounds: Iterable[tuple[str, str]]) -> list[SignedRequest]:
    return [
        sign(credentials, "/api/s2s/cancel", {"playerExternalId": player, "roundPublicId": round_})
        for round_, player in rounds
    ]


def purchases(
    credentials: Credentials, box_version_id: int, count: int, tag: str
) -> list[SignedRequest]:
    """``count`` atomic purchases (buy and open), each a new ``clientActionId``."""
    return [
        sign(
            credentials,
            "/api/s2s/purchase",
            {
                "playerExternalId": f"bench-buyer-{n % 1000}",
                "gameKey": "mystery_box",
                "mode": "open",
                "clientActionId": f"{tag}-{n}",
                "reels": [{"reelIndex": 0, "boxVersionId": box_version_id}],
            },
        )
        for n in range(count)
    ]


# --- wrk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: int
    exhausted: bool  # the one-time requests ran out before the duration did

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + sum(n for s, n in self.statuses.items() if not 200 <= s < 300)


def parse_wrk(document: dict[str, Any]) -> WrkResult:
    """What ``done()`` in ``wrk_script.lua`` wrote (latencies in microseconds)."""
    percentiles = document["latency_us"]["percentiles"]
    return WrkResult(
        requests=int(document["requests"]),
        duration_s=float(document["duration_us"]) / 1e6,
        p50_ms=float(percentiles["50"]) / 1000,
        p99_ms=float(percentiles["99"]) / 1000,
        statuses={int(k): int(v) for k, v in document["statuses"].items()},
        socket_errors=sum(int(v) for k, v in document["errors"].items() if k != "status"),
        exhausted=int(document["overflow"]) > 0,
    )


def run_wrk(
    url: str, requests: Sequence[SignedRequest], duration_s: float, connections: int, cycle: bool
) -> WrkResult:
    """wrk (one thread) against ``url`` for ``duration_s``, sending ``requests`` round and
    round (``cycle``) or each at most once."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (make bench-deps)")
    host = url.removeprefix("http://")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as directory:
        data, result = Path(directory, "requests.dat"), Path(directory, "result.json")
        with data.open("wb") as out:
            for request in requests:
                raw = request.raw(host)
                out.write(f"{len(raw)}\n".encode() + raw)
        env = os.environ | {
            "BENCH_WRK_DATA": str(data),
            "BENCH_WRK_RESULT": str(result),
            "BENCH_WRK_MODE": "cycle" if cycle else "once",
        }
        argv = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s"]
        argv += ["--timeout=10s", "--latency", "-s", str(SCRIPT), url]
        done = subprocess.run(  # noqa: S603 - our own argv
            argv, env=env, capture_output=True, text=True, timeout=duration_s + 130, check=False
        )
        if done.returncode != 0 or not result.exists():
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return parse_wrk(json.loads(result.read_text()))


def pool_size(rate_bound: float, duration_s: float, connections: int) -> int:
    """One-time requests enough for ``duration_s`` at up to ``rate_bound`` per second."""
    return math.ceil(rate_bound * duration_s * 1.3) + 4 * connections


# --- in sequence, and all at once -----------------------------------------------------------


def send_in_turn(port: int, requests: Sequence[SignedRequest]) -> Counter[int]:
    """Each request in turn on one keep-alive connection; the statuses seen."""
    statuses: Counter[int] = Counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        for request in requests:
            conn.request("POST", request.path, request.body, request.headers)
            answer = conn.getresponse()
            answer.read()
            statuses[answer.status] += 1
    finally:
        conn.close()
    return statuses


@dataclass(frozen=True)
class Answer:
    status: int
    latency_s: float
    body: bytes


def percentile_ms(answers: Sequence[Answer], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0–100) of the answers' latencies."""
    ordered = sorted(a.latency_s for a in answers)
    rank = max(1, min(len(ordered), math.ceil(p * len(ordered) / 100)))
    return ordered[rank - 1] * 1000 if ordered else 0.0


async def _storm(port: int, request: SignedRequest, count: int) -> list[Answer]:
    raw = request.raw(f"{HOST}:{port}")
    connections = await asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in range(count)))

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sent: float
    ) -> Answer:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            return Answer(int(head.split()[1]), time.perf_counter() - sent, body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, StopIteration, ValueError):
            return Answer(0, time.perf_counter() - sent, b"")
        finally:
            writer.close()

    # Every connection open first; then the same bytes written to each in one tight loop.
    waiting = []
    for reader, writer in connections:
        writer.write(raw)
        waiting.append(asyncio.ensure_future(answer(reader, writer, time.perf_counter())))
    return list(await asyncio.gather(*waiting))


def duplicate_storm(port: int, request: SignedRequest, count: int) -> list[Answer]:
    """``request`` sent ``count`` times at once, each on its own connection; latency of
    each answer from its own write."""
    return asyncio.run(_storm(port, request, count))
