#!/usr/bin/env python3
"""The newcomer's two commands. Needs only Python 3.11+.

    python3 dev.py serve   # set up, then serve the API on embedded defaults
    python3 dev.py test    # set up, then run the whole test suite (pytest args may follow)
    python3 dev.py chaos   # the full chaos run of docs/reliability.md (needs PostgreSQL
                           # and redis-server; optional seed, default 1)

Both create ``.venv`` and install the pinned requirements on first use (again only when a
requirements file changes), then run under it. With ``DATABASE_URL`` / ``REDIS_URL``
unset, both start a real PostgreSQL and a real Redis from pip wheels under ``instance/``
(``lootbox/embedded.py``) and stop them on exit; set, those servers are used. ``serve``
runs the reference wallet as its own process, creates a demo operator and catalog and
prints the key id and secret to sign requests with.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# Development state: the embedded servers' data, the demo operator's credentials. Tests of
# dev.py itself point LOOTBOX_INSTANCE elsewhere, away from a developer's own.
INSTANCE = Path(os.environ.get("LOOTBOX_INSTANCE") or ROOT / "instance")
EMBEDDED = "requirements-embedded.txt"
DEMO_CREDENTIALS = INSTANCE / "demo-operator.json"
DEMO_WALLET_SECRET = "demo-wallet-secret"  # noqa: S105 - the local reference wallet's


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment(requirements: str) -> None:
    """Create the virtualenv and install ``requirements`` and the embedded servers unless
    already done for exactly these requirement files."""
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is needed")
    if not venv_python().exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    files = [ROOT / name for name in ("requirements.txt", "requirements-dev.txt", EMBEDDED)]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing {requirements} and {EMBEDDED} ...", flush=True)
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
            "-r",
            str(ROOT / EMBEDDED),
        ],
        check=True,
    )
    stamp.write_text(digest)


def run_in_venv(argv: list[str]) -> None:
    """Go on as the virtualenv's Python (which has the embedded servers' packages)."""
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(venv_python()), [str(venv_python()), str(Path(__file__)), *argv])  # noqa: S606


class Stopped(Exception):
    """SIGTERM or SIGHUP: stop every child as Ctrl-C does."""


def stop_on_signals() -> None:
    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)


@contextmanager
def services_for(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``env`` with DATABASE_URL and REDIS_URL: as given, or embedded servers started
    under ``instance/`` (and stopped when the block ends)."""
    from lootbox.embedded import EmbeddedServices  # the venv's, after run_in_venv

    with EmbeddedServices(INSTANCE) as embedded:
        env = dict(env)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = embedded.start_postgres()
            print(f"embedded PostgreSQL: {env['DATABASE_URL']}", flush=True)
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = embedded.start_redis()
            print(f"embedded Redis: {env['REDIS_URL']}", flush=True)
        yield env


class FlaskCommandFailed(Exception):
    def __init__(self, args: tuple[str, ...], stderr: str) -> None:
        super().__init__(f"flask {' '.join(args)} failed: {stderr.strip()}")
        self.stderr = stderr


def flask(*args: str, env: dict[str, str]) -> str:
    """Run a ``flask --app app`` command; its last line of output. A failure raises with
    what the command said (its JSON error), not a bare exit status."""
    result = subprocess.run(
        [str(venv_python()), "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise FlaskCommandFailed(args, result.stderr)
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


def key_is_live(key_id: str, env: dict[str, str]) -> bool:
    """Whether the database ``env`` names holds ``key_id``, unrevoked: the saved demo
    credentials may belong to a database since deleted or replaced."""
    from app import create_app

    app = create_app({"database_url": env["DATABASE_URL"], "redis_url": env["REDIS_URL"]})
    container = app.extensions["lootbox"]
    try:
        with container.uow_factory() as uow:
            key = uow.operators.get_api_key(key_id)
        return key is not None and not key.revoked
    finally:
        container.engine.dispose()


def demo_operator(wallet_url: str, env: dict[str, str]) -> dict[str, str]:
    if DEMO_CREDENTIALS.exists():
        saved: dict[str, str] = json.loads(DEMO_CREDENTIALS.read_text())
        if key_is_live(saved["keyId"], env):
            return saved
        print(f"{DEMO_CREDENTIALS.name} names a key this database does not have: a new one")
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
    except FlaskCommandFailed as failed:
        if "OPERATOR_EXISTS" not in failed.stderr:
            raise
        # The operator exists but its credentials are gone or stale: issue a new key.
        key = json.loads(flask("operators", "keys", "create", "demo", env=env))
        created = {"slug": "demo", "currency": "EUR", **key}
    DEMO_CREDENTIALS.write_text(json.dumps(created))
    return created


def serve() -> int:
    INSTANCE.mkdir(exist_ok=True)
    stop_on_signals()
    try:
        with services_for({**os.environ, "PYTHONPATH": str(ROOT)}) as env:
            return serve_on(env)
    except (KeyboardInterrupt, Stopped):
        return 0
    except FlaskCommandFailed as failed:
        sys.exit(f"dev.py serve: {failed}")


def serve_on(env: dict[str, str]) -> int:
    port = int(os.environ.get("PORT", "8080"))
    wallet_port = int(os.environ.get("REFWALLET_PORT", "8081"))
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
        finally:  # Ctrl-C, SIGTERM or SIGHUP: the API goes first, then the wallet
            stop_child(api)
    finally:
        stop_child(wallet)


def stop_child(child: subprocess.Popen[str]) -> None:
    """SIGTERM (a child started in the background ignores SIGINT), then SIGKILL."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def test(pytest_args: list[str]) -> int:
    INSTANCE.mkdir(exist_ok=True)
    stop_on_signals()
    started = time.monotonic()
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("DATABASE_URL", "REDIS_URL"):  # what tests/services.py reads first
        environ.setdefault(name, environ.get(f"TEST_{name}", ""))
    with services_for(environ) as env:
        pytest = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    code = pytest.returncode
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
    ensure_environment("requirements.txt" if argv[0] == "serve" else "requirements-dev.txt")
    run_in_venv(argv)
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
