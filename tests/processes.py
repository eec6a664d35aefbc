"""Reading from child processes the tests start, without ever blocking for good."""

from __future__ import annotations

import os
import select
import subprocess
import time
from typing import Any


def read_line(proc: subprocess.Popen[Any], timeout: float) -> bytes:
    """The first line ``proc`` writes to its stdout pipe (``b""`` if it exits or the
    timeout passes first); whatever follows that line in the same read is dropped."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline and b"\n" not in buffer:
        if proc.poll() is not None:
            break
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
    return buffer.split(b"\n", 1)[0] if b"\n" in buffer else b""
