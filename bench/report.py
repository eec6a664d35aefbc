"""The tables of a run, and its section of ``docs/benchmarks.md`` (between markers)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.servers import REPO_ROOT

if TYPE_CHECKING:
    from bench.run import Row

DOCS = REPO_ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
PEER_OF = {"replay": "peer_replay", "cashout": "peer_cashout"}
SERVERS = ("app", "PostgreSQL", "Redis", "wallet", "wrk")


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()}


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _per(value: float | None) -> str:
    """A per-request figure: at most two decimals, no trailing zeros."""
    return "—" if value is None else (f"{value:.2f}".rstrip("0").rstrip(".") or "0")


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "—"
    value = numerator / denominator
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def counts_line(row: Row) -> str:
    c = row.counts
    if c is None:
        return "not counted"
    return (
        f"PG {_per(c.transactions)} xacts, {_per(c.round_trips)} round trips,"
        f" Redis {_per(c.redis_calls)} calls per request"
    )


def row_line(row: Row) -> str:
    """The progress line of a measured scenario."""
    flags = f"  [{'; '.join(row.flags)}]" if row.flags else ""
    return (
        f"{row.key}: {_num(row.rps)} req/s, p99 {_num(row.p99_ms, 1)} ms,"
        f" app CPU {_per(row.cpu_ms.get('app'))} ms/req{flags}"
    )


def main_table(rows: list[Row]) -> str:
    by_key = {row.key: row for row in rows}
    bare = by_key.get("baseline")
    lines = [
        "| scenario | req/s | p99 ms | app CPU ms/req | × bare Flask | × peer"
        " | PG xacts/req | PG round trips/req | Redis calls/req | notes |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        peer = by_key.get(PEER_OF.get(row.key, ""))
        c = row.counts
        figures = [c.transactions, c.round_trips, c.redis_calls] if c else [None] * 3
        cells = [
            row.label,
            _num(row.rps),
            _num(row.p99_ms, 1),
            _per(row.cpu_ms.get("app")),
            _ratio(row.rps, bare.rps if bare else None),
            _ratio(row.rps, peer.rps if peer else None),
            *(_per(f) for f in figures),
            "; ".join(n for n in (row.notes, *row.flags) if n),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | " + " | ".join(SERVERS) + " | all | others' share of the machine |",
        "|---|" + "--:|" * (len(SERVERS) + 2),
    ]
    for row in rows:
        if row.rps is not None:
            cells = [_per(row.cpu_ms.get(name)) for name in SERVERS]
            cells.append(_per(sum(row.cpu_ms.get(name, 0.0) for name in SERVERS)))
            cells.append("—" if row.others_share is None else f"{row.others_share:.0%}")
            lines.append(f"| {row.key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(rows: list[Row]) -> str:
    lines = ["| scenario | per request |", "|---|---|"]
    for row in rows:
        if row.counts is not None:
            parts = ", ".join(f"{kind} {_per(n)}" for kind, n in row.counts.detail.items())
            lines.append(f"| {row.key} | {parts or 'nothing'} |")
    return "\n".join(lines)


def render(run: dict[str, Any], rows: list[Row]) -> str:
    m = run["machine"]
    g = m.get("gunicorn", {})
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    profiles = "".join(
        f"\n`{row.key}`, busiest functions (py-spy, own samples):\n\n```\n{row.profile}\n```\n"
        for row in rows
        if row.profile
    )
    return f"""### Run of {run["started"]}

- `{run["command"].strip()}` at `{run["revision"]}`, {run["minutes"]:.0f} minutes.
- Machine: {m["cpu"]}, {m["cores"]} cores, shared: {m["busy_before_start"]:.0%} of its CPU
  busy before the run; load average {m["loadavg_at_start"]} at the start,
  {m["loadavg_at_end"]} at the end.
- gunicorn (`config/gunicorn.py`, for our app, the peer and the bare endpoint alike):
  {g.get("workers")} workers × {g.get("threads")} threads, keepalive {g.get("keepalive")} s.
  wrk: 1 thread, {run["connections"]} connections, {run["duration_s"]:g} s per scenario.
- Counts: {run["count"]} requests per scenario one after the other (the storm: one burst),
  read from the servers' own counters.
- {versions}.

{main_table(rows)}

CPU milliseconds per request, by server (from /proc; PostgreSQL is the whole private
server, the wallet is the reference wallet under gunicorn):

{cpu_table(rows)}

What the servers counted, per request (PostgreSQL statements by kind, the pool's
pre-pings, connections opened; Redis commands, those a script runs included):

{detail_table(rows)}
{profiles}"""


def replace_section(document: str, body: str) -> str:
    """``body`` between the markers, which are added at the end if missing."""
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip() + "\n\n" + block + "\n"


def update_doc(path: Path, text: str) -> None:
    path.write_text(replace_section(path.read_text() if path.exists() else "", text))
