"""Child processes the tests (and the benchmark, ``bench/``) start, and waiting on things,
without ever blocking for good. Every process is ours, tracked and stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM our own process by its PID, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def cmdline(pid: int) -> bytes:
    """The command line of ``pid`` (``b""`` once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children_of(pid: int) -> set[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in (task / "children").read_text().split())
    return found


def kill_pids(pids: set[int], name: str) -> None:
    """SIGKILL leftovers of a process we started (e.g. gunicorn workers whose master is
    gone), only if they still are what we started (``name`` in their command line)."""
    for pid in pids:
        if name.encode() in cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def tail(path: Path, size: int = 4000) -> str:
    """The end of a log file, for an error message (``""`` if it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def wait_until(
    condition: Callable[[], T | None], timeout: float = 5.0, what: str = "the condition"
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


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


def run_json(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Run a command of ours (a ``flask`` CLI command) to the end, its output appended to
    ``log``; the JSON document on the last line of its stdout (``{}`` if it printed nothing).
    RuntimeError if it fails."""
    done = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    with log.open("ab") as out:
        out.write(b"$ " + " ".join(argv).encode() + b"\n" + done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout!r}\n{done.stderr!r}")
    lines = done.stdout.decode().strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def start_refwallet(
    log: Path, env: dict[str, str], secret: str, starting_balance: int, timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    """The reference wallet (``python -m lootbox.refwallet``) on a free port of 127.0.0.1,
    its stderr appended to ``log``: the process and the URL it announced on stdout. If it
    announces nothing within ``timeout``, it is stopped and RuntimeError says why."""
    argv = [
        sys.executable,
        "-m",
        "lootbox.refwallet",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--secret",
        secret,
        "--starting-balance",
        str(starting_balance),
        "--quiet",
    ]
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    line = read_line(proc, timeout)
    try:
        announced = json.loads(line)
        assert announced["refwallet"] == "ready"
    except (ValueError, KeyError, AssertionError):
        stop_process(proc)
        raise RuntimeError(
            f"reference wallet did not announce itself: {line!r}\n{tail(log)}"
        ) from None
    return proc, str(announced["url"])
