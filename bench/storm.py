"""The duplicate storm: N identical requests on N connections, released at once.

Connections are opened first; then one event loop writes the same pre-signed bytes to
every socket in a tight loop (a few microseconds apart) and times each answer from its
own write. A single-threaded asyncio client keeps the load generator's own CPU (and GIL)
out of the latencies as far as Python allows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.payloads import SignedRequest


@dataclass(frozen=True)
class Answer:
    status: int
    latency_s: float
    replayed: bool
    body: bytes
    error: str | None = None


@dataclass(frozen=True)
class StormResult:
    answers: list[Answer]
    wall_s: float

    @property
    def statuses(self) -> dict[int, int]:
        found: dict[int, int] = {}
        for answer in self.answers:
            found[answer.status] = found.get(answer.status, 0) + 1
        return dict(sorted(found.items()))

    @property
    def errors(self) -> int:
        return sum(1 for a in self.answers if not 200 <= a.status < 300)

    def percentile_ms(self, p: float) -> float:
        return percentile([a.latency_s for a in self.answers], p) * 1000


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0-100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body


async def _storm(
    host: str, port: int, request: SignedRequest, count: int, timeout_s: float
) -> StormResult:
    raw = request.raw(f"{host}:{port}")
    connections = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(count)))

    async def one(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sent: float
    ) -> Answer:
        try:
            status, headers, body = await asyncio.wait_for(_read_answer(reader), timeout_s)
            return Answer(
                status,
                time.perf_counter() - sent,
                headers.get("idempotent-replayed") == "true",
                body,
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            return Answer(0, time.perf_counter() - sent, False, b"", type(exc).__name__)
        finally:
            writer.close()

    began = time.perf_counter()
    tasks = []
    for reader, writer in connections:
        writer.write(raw)
        tasks.append(asyncio.ensure_future(one(reader, writer, time.perf_counter())))
    answers = await asyncio.gather(*tasks)
    return StormResult(list(answers), time.perf_counter() - began)


def duplicate_storm(
    host: str, port: int, request: SignedRequest, count: int = 200, timeout_s: float = 30.0
) -> StormResult:
    """Send ``request`` ``count`` times at once on ``count`` connections."""
    return asyncio.run(_storm(host, port, request, count, timeout_s))
