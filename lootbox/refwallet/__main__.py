"""Run the reference wallet as its own process.

    python -m lootbox.refwallet --host 127.0.0.1 --port 8081 --secret S [--secret S2] \\
        [--operator NAME=SECRET ...] --starting-balance 100000 --path /wallet [--quiet]

Each ``--secret`` is one operator, named ``secret-1``, ``secret-2``, ... by its position;
``--operator casino-a=S`` names one, and repeating a name gives it a second secret (a
rotation: both sign for the same accounts and keys). Every flag falls back to an
environment variable: ``REFWALLET_HOST``, ``REFWALLET_PORT``, ``REFWALLET_SECRETS`` and
``REFWALLET_OPERATORS`` (comma separated), ``REFWALLET_STARTING_BALANCE``,
``REFWALLET_PATH``; ``REFWALLET_ADMIN_TOKEN`` (environment only, so it does not show in
``ps``) protects ``/_admin``. When the socket listens, one JSON line goes to stdout::

    {"refwallet": "ready", "url": "http://127.0.0.1:8081/wallet"}

so a supervisor (or a system test) can wait for it and read the URL, which matters with
``--port 0``. SIGTERM and SIGINT stop the server and exit with status 0. The admin
endpoints are unauthenticated unless the token is set: keep the default 127.0.0.1 bind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from lootbox.domain.records import is_loopback_host
from lootbox.refwallet.app import ADMIN_TOKEN_ENV, create_wallet_app
from lootbox.refwallet.ledger import plain_secret_operator
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


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def operators_from(named: Sequence[str], plain: Sequence[str]) -> dict[str, list[str]] | list[str]:
    """The wallet's operators: ``NAME=SECRET`` entries (a name may repeat) and plain
    secrets, which keep the names a list gives them (``secret-<position>``)."""
    if not named:
        return list(plain)
    operators: dict[str, list[str]] = {}
    for entry in named:
        name, sep, secret = entry.partition("=")
        if not sep or not name or not secret:
            # The entry is not echoed: it may be a bare secret.
            raise ValueError("--operator takes NAME=SECRET: a name, '=' and a secret")
        operators.setdefault(name, []).append(secret)
    for position, secret in enumerate(plain, start=1):
        name = plain_secret_operator(position)
        if name in operators:
            raise ValueError(f"operator name {name!r} is taken by a plain --secret")
        operators[name] = [secret]
    return operators


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
        help="a secret callers sign with, one operator each; repeat for several "
        "(env REFWALLET_SECRETS, a,b)",
    )
    parser.add_argument(
        "--operator",
        action="append",
        dest="operators",
        metavar="NAME=SECRET",
        help="a named operator and a secret it signs with; repeat a name for a rotation "
        "(env REFWALLET_OPERATORS, a=s1,b=s2)",
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
    if not args.secrets and not args.operators:
        args.secrets = _env_list("REFWALLET_SECRETS")
        args.operators = _env_list("REFWALLET_OPERATORS")
    args.secrets = args.secrets or []
    args.operators = args.operators or []
    if not args.secrets and not args.operators:
        parser.error("at least one --secret or --operator (or REFWALLET_SECRETS) is required")
    if args.starting_balance < 0:
        parser.error("--starting-balance must be >= 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        operators = operators_from(args.operators, args.secrets)
        app = create_wallet_app(operators, args.starting_balance, args.path)
    except ValueError as exc:
        print(f"refwallet: {exc}", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host) and not os.environ.get(ADMIN_TOKEN_ENV):
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
