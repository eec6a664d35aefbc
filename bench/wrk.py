"""Running ``wrk`` with ``bench/wrk_script.lua`` and reading what it measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.payloads import SignedRequest, write_wrk_data

SCRIPT = Path(__file__).resolve().parent / "wrk_script.lua"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; ``requests`` are complete responses."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    overflow: int
    pool: int
    raw: dict[str, Any] = field(repr=False)

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def errors(self) -> int:
        """Everything that was not a 2xx answer, socket errors and timeouts included."""
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def exhausted(self) -> bool:
        """The pool of one-time requests ran out before the duration did."""
        return self.overflow > 0


def parse_result(document: dict[str, Any]) -> WrkResult:
    """Turn the JSON that ``done()`` in ``wrk_script.lua`` writes into a ``WrkResult``."""
    latency = document["latency_us"]
    percentiles = {float(k): float(v) for k, v in latency["percentiles"].items()}
    duration_s = float(document["duration_us"]) / 1e6
    requests = int(document["requests"])
    statuses = {int(k): int(v) for k, v in document.get("statuses", {}).items()}
    errors = {k: int(v) for k, v in document.get("errors", {}).items() if k != "status"}
    return WrkResult(
        requests=requests,
        duration_s=duration_s,
        rps=requests / duration_s if duration_s > 0 else 0.0,
        p50_ms=percentiles.get(50.0, 0.0) / 1000,
        p75_ms=percentiles.get(75.0, 0.0) / 1000,
        p90_ms=percentiles.get(90.0, 0.0) / 1000,
        p99_ms=percentiles.get(99.0, 0.0) / 1000,
        max_ms=float(latency["max"]) / 1000,
        mean_ms=float(latency["mean"]) / 1000,
        statuses=statuses,
        socket_errors=errors,
        overflow=int(document.get("overflow", 0)),
        pool=int(document.get("pool", 0)),
        raw=document,
    )


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    binary = wrk_binary()
    if binary is None:
        return "not installed"
    done = subprocess.run(  # noqa: S603 - our own argv
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def run_wrk(
    url: str,
    requests: Sequence[SignedRequest],
    *,
    host_header: str,
    duration_s: float,
    connections: int,
    threads: int = 1,
    mode: str = "once",
    timeout_s: float = 10.0,
    workdir: Path | None = None,
) -> WrkResult:
    """Run wrk against ``url`` sending ``requests`` (``mode`` ``once``: each at most once;
    ``cycle``: round and round) for ``duration_s`` seconds."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed: `make bench-deps` (apt-get install -y wrk)")
    if threads != 1 and mode == "once":
        # Each wrk thread has its own Lua state and would walk the same table.
        raise ValueError("one-time requests need a single wrk thread")
    directory = Path(tempfile.mkdtemp(prefix="wrk-", dir=workdir))
    data = directory / "requests.dat"
    result_file = directory / "result.json"
    write_wrk_data(data, requests, host_header)
    env = {
        **os.environ,
        "BENCH_WRK_DATA": str(data),
        "BENCH_WRK_RESULT": str(result_file),
        "BENCH_WRK_MODE": mode,
    }
    argv = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
    ]
    done = subprocess.run(  # noqa: S603 - our own argv
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration_s + timeout_s + 120,
        check=False,
    )
    try:
        if done.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return parse_result(json.loads(result_file.read_text()))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
