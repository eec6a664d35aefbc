"""``python3 dev.py serve`` as a newcomer runs it: no DATABASE_URL or REDIS_URL, so a real
PostgreSQL and a real Redis from pip wheels; a signed request answered; the operator
integration example (``examples/lootbox_integration.py``, written from the contract alone)
run against it with the printed credentials; and SIGTERM (what an IDE's stop button or a
process manager sends) stops every child, servers included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lootbox.signing import signed_headers
from tests.processes import free_port, stop_process
from tests.services import unix_socket_listens

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # the first run installs nothing here, but initdb takes seconds
STOP_TIMEOUT = 20.0
EXAMPLE = ROOT / "examples" / "lootbox_integration.py"
EXAMPLE_TIMEOUT = 120.0


@pytest.fixture
def instance() -> Iterator[Path]:
    # Short: the embedded servers' unix sockets live here (a path of at most ~100 bytes).
    path = Path(tempfile.mkdtemp(prefix="lbx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_demo_block(serve: subprocess.Popen[str]) -> tuple[dict[str, object], list[str]]:
    """The JSON block ``serve`` prints once it is ready, and every line before it."""
    assert serve.stdout is not None
    lines: list[str] = []
    block: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = serve.stdout.readline()
        if not line:
            pytest.fail(f"dev.py serve exited ({serve.poll()}):\n{''.join(lines)}")
        if block or line == "{\n":
            block.append(line)
            if line == "}\n":
                return json.loads("".join(block)), lines
        else:
            lines.append(line)
    pytest.fail(f"dev.py serve printed no credentials in {START_TIMEOUT}s:\n{''.join(lines)}")


def drain(serve: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    """Keep reading what serve (and the API and wallet it started) prints into ``lines``,
    so that a full pipe never blocks them; the reader ends at EOF, when they have all
    exited."""
    assert serve.stdout is not None
    stdout = serve.stdout
    reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
    reader.start()
    return reader


def run_example(demo: dict[str, object]) -> subprocess.CompletedProcess[str]:
    """The integration example, as an operator's engineer runs it: its own process, only
    the printed API URL and credentials (in the environment, out of the process list)."""
    env = {
        **{name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
        "LOOTBOX_API": str(demo["api"]),
        "LOOTBOX_KEY_ID": str(demo["keyId"]),
        "LOOTBOX_SECRET": str(demo["secret"]),
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=ROOT / "examples",
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
    )


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_serve_runs_on_embedded_servers_and_stops_everything_on_sigterm(instance: Path) -> None:
    # Credentials from a database since deleted: serve says so and makes new ones.
    (instance / "demo-operator.json").write_text(
        json.dumps({"slug": "demo", "currency": "EUR", "keyId": "lk_gone", "secret": "x"})
    )
    api_port, wallet_port = free_port(), free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL")
    }
    env.update(LOOTBOX_INSTANCE=str(instance), PORT=str(api_port), REFWALLET_PORT=str(wallet_port))
    serve = subprocess.Popen(
        [sys.executable, str(ROOT / "dev.py"), "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served: list[str] = []
    reader: threading.Thread | None = None
    try:
        demo, before = read_demo_block(serve)
        reader = drain(serve, served)
        assert any("does not have: a new one" in line for line in before), before
        assert any(f"host={instance}/postgres" in line for line in before), before
        assert any(f"unix://{instance}/redis.sock" in line for line in before), before

        path = "/api/s2s/inventory"
        headers = signed_headers(
            str(demo["secret"]), int(time.time()), "GET", path, b"", key_id=str(demo["keyId"])
        )
        deadline = time.monotonic() + 30
        while not port_open(api_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        reply = requests.get(
            f"http://127.0.0.1:{api_port}{path}?playerExternalId=u_1", headers=headers, timeout=10
        )
        assert reply.status_code == 200, reply.text

        example = run_example(demo)
        assert example.returncode == 0, (
            f"{EXAMPLE.name} exited {example.returncode}\n{example.stdout}\n{example.stderr}"
            f"\n--- dev.py serve ---\n{''.join(served[-50:])}"
        )
        assert example.stdout.splitlines()[-1].startswith("OK: "), example.stdout

        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=STOP_TIMEOUT)
    finally:
        stop_process(serve)
        if reader is not None:
            reader.join(timeout=STOP_TIMEOUT)
        if serve.stdout is not None and (reader is None or not reader.is_alive()):
            serve.stdout.close()  # never under the reader's feet

    assert not port_open(api_port), "the API still listens"
    assert not port_open(wallet_port), "the reference wallet still listens"
    assert not unix_socket_listens(str(instance / "redis.sock")), "redis-server still runs"
    assert not unix_socket_listens(str(instance / "postgres" / ".s.PGSQL.5432")), "PostgreSQL"
