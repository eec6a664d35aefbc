#!/usr/bin/env python3
"""The newcomer's two commands. Needs only Python 3.11+.

    python3 dev.py serve   # set up, then serve the API on embedded defaults
    python3 dev.py test    # set up, then run the whole test suite (pytest args may follow)
    python3 dev.py chaos   # the full chaos run of docs/reliability.md (needs PostgreSQL
                           # and redis-server; optional seed, default 1)

Both create ``.venv`` and install the pinned requirements on first use (again only when a
requirements file changes). ``serve`` uses SQLite under ``instance/``, the in-process
Redis stand-in, and the reference wallet as its own process; it creates a demo operator
and catalog and prints the key id and secret to sign requests with.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
INSTANCE = ROOT / "instance"
DEMO_CREDENTIALS = INSTANCE / "demo-operator.json"
DEMO_WALLET_SECRET = "demo-wallet-secret"  # noqa: S105 - the local reference wallet's


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment(requirements: str) -> None:
    """Create the virtualenv and install ``requirements`` unless already done for exactly
    these requirement files."""
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is needed")
    if not venv_python().exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    files = [ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing {requirements} ...", flush=True)
    subprocess.run(
        [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(ROOT / requirements),
        ],
        check=True,
    )
    stamp.write_text(digest)


def flask(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(venv_python()), "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def start_wallet(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    wallet = subprocess.Popen(
        [
            str(venv_python()),
            "-m",
            "lootbox.refwallet",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--secret",
            DEMO_WALLET_SECRET,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert wallet.stdout is not None
    ready = wallet.stdout.readline()
    if '"ready"' not in ready:
        wallet.terminate()
        sys.exit(f"the reference wallet did not start: {ready!r}")
    return wallet


def demo_operator(wallet_url: str, env: dict[str, str]) -> dict[str, str]:
    if DEMO_CREDENTIALS.exists():
        return json.loads(DEMO_CREDENTIALS.read_text())
    try:
        created = json.loads(
            flask(
                "operators",
                "create",
                "demo",
                "--currency",
                "EUR",
                "--wallet-url",
                wallet_url,
                "--wallet-secret",
                DEMO_WALLET_SECRET,
                "--rate",
                "USD=1.0842",
                "--rate",
                "JPY=162.5",
                "--rate",
                "KWD=0.3312",
                "--cashback-bps",
                "8000",
                env=env,
            )
        )
    except subprocess.CalledProcessError:
        # The operator exists but its credentials file was removed: issue a new key.
        key = json.loads(flask("operators", "keys", "create", "demo", env=env))
        created = {"slug": "demo", "currency": "EUR", **key}
    DEMO_CREDENTIALS.write_text(json.dumps(created))
    return created


def serve() -> int:
    ensure_environment("requirements.txt")
    INSTANCE.mkdir(exist_ok=True)
    port = int(os.environ.get("PORT", "8080"))
    wallet_port = int(os.environ.get("REFWALLET_PORT", "8081"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flask("db", "upgrade", env=env)
    wallet = start_wallet(wallet_port, env)
    try:
        wallet_url = f"http://127.0.0.1:{wallet_port}/wallet"
        operator = demo_operator(wallet_url, env)
        catalog = json.loads(
            flask(
                "catalog", "import", "demo", str(ROOT / "examples" / "demo-catalog.json"), env=env
            )
        )
        print(
            json.dumps(
                {
                    "api": f"http://127.0.0.1:{port}/api/s2s",
                    "operator": operator["slug"],
                    "keyId": operator["keyId"],
                    "secret": operator["secret"],
                    "boxes": catalog["boxes"],
                    "wallet": wallet_url,
                    "walletTransactions": f"http://127.0.0.1:{wallet_port}/_admin/transactions",
                },
                indent=2,
            ),
            flush=True,
        )
        # One process: the in-process Redis stand-in cannot be shared between processes.
        api = subprocess.Popen(
            [
                str(venv_python()),
                "-m",
                "flask",
                "--app",
                "app",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--with-threads",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            return api.wait()
        except KeyboardInterrupt:
            api.send_signal(signal.SIGINT)
            return api.wait(timeout=10)
    finally:
        wallet.terminate()
        wallet.wait(timeout=10)


def test(pytest_args: list[str]) -> int:
    ensure_environment("requirements-dev.txt")
    started = time.monotonic()
    code = subprocess.run(
        [str(venv_python()), "-m", "pytest", *pytest_args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).returncode
    print(f"dev.py test: pytest exited {code} after {time.monotonic() - started:.0f}s", flush=True)
    return code


def chaos(argv: list[str]) -> int:
    seed = argv[0] if argv else "1"
    os.environ.update(
        CHAOS_PROFILE="full",
        CHAOS_SEED=seed,
        CHAOS_REPORT=str(ROOT / "instance" / f"chaos-full-seed{seed}.json"),
        LOOTBOX_REQUIRE_SERVICES="1",
    )
    (ROOT / "instance").mkdir(exist_ok=True)
    return test(["tests/system/test_chaos.py", "-p", "no:cacheprovider", "-q"])


def main(argv: list[str]) -> int:
    commands = {"serve": lambda: serve(), "test": lambda: test(argv[1:])}
    commands["chaos"] = lambda: chaos(argv[1:])
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
