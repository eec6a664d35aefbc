"""Run the reference wallet as its own process.

    python -m lootbox.refwallet --host 127.0.0.1 --port 8081 --secret S [--secret S2] \\
        --starting-balance 100000 --path /wallet [--quiet]

Every flag falls back to an environment variable: ``REFWALLET_HOST``, ``REFWALLET_PORT``,
``REFWALLET_SECRETS`` (comma separated), ``REFWALLET_STARTING_BALANCE``,
``REFWALLET_PATH``; ``REFWALLET_ADMIN_TOKEN`` (environment only, so it does not show in
``ps``) protects ``/_admin``. When the socket listens, one JSON line goes to stdout::

    {"refwallet": "ready", "url": "http://127.0.0.1:8081/wallet"}

so a supervisor (or a system test) can wait for it and read the URL, which matters with
``--port 0``. SIGTERM and SIGINT stop the server and exit with status 0. The admin
endpoints are unauthenticated unless the token is set: keep the default 127.0.0.1 bind.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from lootbox.refwallet.app import ADMIN_TOKEN_ENV, create_wallet_app
from lootbox.refwallet.server import (
    POLL_INTERVAL_SECONDS,
    make_wallet_server,
    server_base_url,
    stop_wallet_server,
)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"refwallet: {name} must be an integer, got {text!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lootbox.refwallet",
        description="The reference wallet (contract section 6) for demos and tests.",
    )
    parser.add_argument("--host", default=os.environ.get("REFWALLET_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=_env_int("REFWALLET_PORT", 8081))
    parser.add_argument(
        "--secret",
        action="append",
        dest="secrets",
        help="a secret callers sign with; repeat for several (env REFWALLET_SECRETS, a,b)",
    )
    parser.add_argument(
        "--starting-balance",
        type=int,
        default=_env_int("REFWALLET_STARTING_BALANCE", 100_000),
        help="minor units every new (player, currency) account starts with",
    )
    parser.add_argument("--path", default=os.environ.get("REFWALLET_PATH", "/wallet"))
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)
    if not args.secrets:
        env_secrets = os.environ.get("REFWALLET_SECRETS", "")
        args.secrets = [s.strip() for s in env_secrets.split(",") if s.strip()]
    if not args.secrets:
        parser.error("at least one --secret (or REFWALLET_SECRETS) is required")
    if args.starting_balance < 0:
        parser.error("--starting-balance must be >= 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        app = create_wallet_app(args.secrets, args.starting_balance, args.path)
    except ValueError as exc:
        print(f"refwallet: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host) and not os.environ.get(ADMIN_TOKEN_ENV):
        print(
            f"refwallet: warning: /_admin is open to anyone who can reach {args.host}; "
            f"set {ADMIN_TOKEN_ENV}",
            file=sys.stderr,
        )
    server = make_wallet_server(app, args.host, args.port, log_requests=not args.quiet)

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # Served from a thread so the main thread stays free to receive signals; a handler
    # cannot call server.shutdown() itself while the same thread runs serve_forever.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
        name="refwallet",
        daemon=True,
    )
    thread.start()
    url = f"{server_base_url(server)}{args.path}"
    print(json.dumps({"refwallet": "ready", "url": url}), flush=True)
    while not stopping.wait(0.5):
        pass
    stop_wallet_server(app, server, thread)
    return 0


if __name__ == "__main__":
    sys.exit(main())
