"""Child processes of the benchmark: started by us, tracked by PID, stopped by PID.

The generic helpers (free ports, stopping, /proc look-ups, the reference wallet) are the
test suite's own, ``tests/processes.py``; this adds what only the benchmark needs."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.processes import tail

HOST = "127.0.0.1"


def wait_http_ok(url: str, proc: subprocess.Popen[Any], timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process dies."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - 127.0.0.1
                if answer.status == 200:
                    return
                last = answer.status
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 ({last!r}):\n{tail(log)}")
