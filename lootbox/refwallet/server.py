"""Serving the reference wallet: werkzeug's threaded server, in-process or as a process.

``serve_wallet`` is the helper tests use to run a real wallet on an ephemeral port of
127.0.0.1 in a background thread::

    with serve_wallet(["s3cret"]) as wallet:
        requests.post(wallet.url, data=body, headers=signed, timeout=5)
        requests.get(f"{wallet.admin_url}/transactions", timeout=5)

werkzeug's server is enough here: the wallet is a test and demo tool, and only its dev
server hands the client socket to the app (``werkzeug.socket``), which the
``apply_then_drop`` and ``reset`` faults need.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from lootbox.refwallet.app import OperatorSecrets, create_wallet_app, wallet_state
from lootbox.refwallet.ledger import Ledger

# serve_forever checks for shutdown this often; short, so stopping a test server is quick.
POLL_INTERVAL_SECONDS = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def make_wallet_server(
    app: Flask, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = True
) -> BaseWSGIServer:
    """A bound, listening, threaded werkzeug server for ``app`` (port 0: pick a free one).
    Call ``serve_forever()`` to start answering."""
    handler = WSGIRequestHandler if log_requests else _QuietRequestHandler
    return make_server(host, port, app, threaded=True, request_handler=handler)


def server_base_url(server: BaseWSGIServer) -> str:
    host, port = server.server_address[:2]
    if isinstance(host, bytes):
        host = host.decode()
    if ":" in str(host):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def stop_wallet_server(app: Flask, server: BaseWSGIServer, thread: threading.Thread) -> None:
    """Wake requests sleeping in a delay fault, stop accepting, close the socket."""
    wallet_state(app).stop()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass(frozen=True)
class RunningWallet:
    """A wallet being served. ``url`` is what an operator's wallet URL would be."""

    url: str  # e.g. http://127.0.0.1:54321/wallet
    base_url: str  # e.g. http://127.0.0.1:54321
    admin_url: str  # e.g. http://127.0.0.1:54321/_admin
    path: str
    app: Flask
    ledger: Ledger
    server: BaseWSGIServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def serve_wallet(
    secrets: OperatorSecrets,
    *,
    starting_balance_minor: int = 100_000,
    path: str = "/wallet",
    host: str = "127.0.0.1",
    port: int = 0,
    admin_token: str | None = None,
    log_requests: bool = False,
) -> Iterator[RunningWallet]:
    """Serve a fresh reference wallet in a background thread for the ``with`` block.
    ``secrets``: a list (one operator per secret) or ``{operator: secret(s)}``.

    The socket listens before this yields, so the wallet can be called at once. On exit
    the server is shut down, delay faults are cut short and the port is released.
    """
    app = create_wallet_app(secrets, starting_balance_minor, path, admin_token=admin_token)
    server = make_wallet_server(app, host, port, log_requests=log_requests)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
        name=f"refwallet:{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    base_url = server_base_url(server)
    try:
        yield RunningWallet(
            url=f"{base_url}{path}",
            base_url=base_url,
            admin_url=f"{base_url}/_admin",
            path=path,
            app=app,
            ledger=wallet_state(app).ledger,
            server=server,
        )
    finally:
        stop_wallet_server(app, server, thread)
