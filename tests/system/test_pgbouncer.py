"""The service behind PgBouncer in transaction mode, the default of many managed poolers.

In transaction mode PgBouncer hands each transaction whichever server connection is free,
so a statement prepared on the server by one client connection is seen by others and is
missing for its own next transaction. PgBouncer before 1.21 does not track prepared
statements at all: psycopg's automatic preparation (after 5 executions) then fails with
``prepared statement "_pg3_0" already exists`` / ``does not exist`` or, worse, runs another
client's statement. The service must work there with its defaults.

A real ``pgbouncer`` (the Debian package, installed here if missing) runs on a free port of
127.0.0.1 in front of the tests' PostgreSQL, its files in a temporary directory, started
and stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from lootbox.persistence.database import make_engine
from tests.concurrency import concurrently
from tests.conftest import fresh_postgres_database
from tests.processes import free_port, stop_process, tail
from tests.services import skip_or_fail
from tests.system.stack import (
    BOX_PRICE,
    CASHBACK,
    STARTING_BALANCE,
    Response,
    SystemStack,
    start_stack,
)

pytestmark = pytest.mark.system

START_TIMEOUT = 10.0
INSTALL_TIMEOUT = 300.0
# Few server connections, shared by every client connection: the pooler's whole point.
SERVER_POOL_SIZE = 4
# Every client connection gunicorn's workers may open (4 workers x (5 + 5)) and ours.
MAX_CLIENT_CONN = 100

CALLERS = 8
ROUNDS = 5  # per caller, 7 requests each: 280 requests in all


# --- PgBouncer --------------------------------------------------------------------------------


def pgbouncer_binary() -> str:
    """The pgbouncer executable, installed from Debian's package if missing (we run as
    root on CI and on the developers' machines); skipped (failed under CI) otherwise."""
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )
    if found:
        return found
    if os.geteuid() != 0:
        skip_or_fail("pgbouncer is not installed (apt-get install pgbouncer)")
    # Waits for another apt or dpkg run (a second test session) instead of failing.
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q", "pgbouncer"]
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    attempts: list[str] = []
    for commands in ([install], [["apt-get", "update", "-q"], install]):
        for argv in commands:
            done = subprocess.run(
                argv, env=env, capture_output=True, timeout=INSTALL_TIMEOUT, check=False
            )
            attempts.append(f"$ {' '.join(argv)} -> {done.returncode}\n{done.stderr[-2000:]!r}")
            if done.returncode != 0:
                break
        if os.access("/usr/sbin/pgbouncer", os.X_OK):
            return "/usr/sbin/pgbouncer"
    skip_or_fail("could not install pgbouncer:\n" + "\n".join(attempts))
    raise AssertionError("unreachable")


def pgbouncer_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    found = re.search(r"PgBouncer (\d+)\.(\d+)", out.stdout)
    return tuple(int(n) for n in found.groups()) if found else (0,)


@dataclass
class PgBouncer:
    """One pgbouncer process of ours in ``pool_mode = transaction``."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    def url(self, server_url: URL, database: str | None = None) -> str:
        """``server_url`` (a database of the upstream server), through this pooler."""
        through = server_url.set(host="127.0.0.1", port=self.port).difference_update_query(
            ["host"]  # a unix socket directory of the server's, not of the pooler
        )
        if database is not None:
            through = through.set(database=database)
        return through.render_as_string(hide_password=False)

    def log(self) -> str:
        return tail(self.workdir / "pgbouncer.log")


def _server_host(server: URL) -> str:
    """The server's host, or the directory of its unix socket (the embedded PostgreSQL's
    URL names it as ``?host=``, and pgbouncer takes a directory as its ``host``)."""
    socket_dir = server.query.get("host")
    return server.host or (str(socket_dir) if socket_dir else "127.0.0.1")


def _config(server: URL, port: int, workdir: Path, version: tuple[int, ...]) -> str:
    upstream = f"host={_server_host(server)} port={server.port or 5432}"
    if server.username:
        upstream += f" user={server.username}"
    if server.password:
        upstream += f" password={server.password}"
    lines = [
        "[databases]",
        # One server connection for every client of this alias: a deterministic collision.
        f"single = {upstream} dbname={server.database} pool_size=1",
        f"* = {upstream}",
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {workdir / 'userlist.txt'}",
        "pool_mode = transaction",
        "server_reset_query =",
        f"default_pool_size = {SERVER_POOL_SIZE}",
        f"max_client_conn = {MAX_CLIENT_CONN}",
        "ignore_startup_parameters = extra_float_digits",
        "log_connections = 0",
        "log_disconnections = 0",
    ]
    if version >= (1, 21):
        # From 1.21 PgBouncer can track protocol-level prepared statements; keep the
        # behaviour of the poolers we must work behind (1.18 on Debian 12, many PaaS).
        lines.append("max_prepared_statements = 0")
    return "\n".join(lines) + "\n"


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@contextlib.contextmanager
def running_pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """pgbouncer on a free port of 127.0.0.1 in front of ``server_url``'s server; stopped
    (by its PID) and its files removed when the block ends."""
    binary = pgbouncer_binary()
    version = pgbouncer_version(binary)
    server = make_url(server_url)
    # Readable by the unprivileged user pgbouncer switches to (it refuses to run as root).
    workdir = Path(tempfile.mkdtemp(prefix="lootbox-pgbouncer-"))
    workdir.chmod(0o755)
    user = None
    if os.geteuid() == 0:
        host = _server_host(server)
        # A socket directory is readable by the server's own user only (the embedded
        # PostgreSQL runs as "pgserver"): pgbouncer must become that user.
        user = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = "nobody"
    (workdir / "userlist.txt").write_text(f'"{server.username or "postgres"}" ""\n')
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # a free port can be taken before pgbouncer binds it
            port = free_port()
            ini = workdir / "pgbouncer.ini"
            ini.write_text(_config(server, port, workdir, version))
            for path in (ini, workdir / "userlist.txt"):
                path.chmod(0o644)
            argv = [binary, *(["-u", user] if user else []), str(ini)]
            with (workdir / "pgbouncer.log").open("ab") as log:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and not _listening(port):
                if time.monotonic() > deadline:
                    stop_process(proc)
                    raise RuntimeError(
                        f"pgbouncer did not listen on {port} within {START_TIMEOUT}s:\n"
                        + tail(workdir / "pgbouncer.log")
                    )
                time.sleep(0.05)
            if proc.poll() is None:
                yield PgBouncer(proc, port, workdir)
                return
        raise RuntimeError(f"pgbouncer exited at start:\n{tail(workdir / 'pgbouncer.log')}")
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module's own (direct URL), migrated."""
    with fresh_postgres_database("lootbox_pgb") as url:
        yield url


@pytest.fixture(scope="module")
def pgbouncer(database: str) -> Iterator[PgBouncer]:
    with running_pgbouncer(database) as bouncer:
        yield bouncer


# --- the engine: two client connections, one server connection --------------------------------


def run_alternately(engine_url: str, *, prepared_statements: bool | None) -> list[int]:
    """Two connections of the app's engine take turns, one transaction each, on the same
    server connection (the ``single`` alias), each running the same query 10 times.
    Returns what the queries answered."""
    engine = (
        make_engine(engine_url, pool_size=2)
        if prepared_statements is None
        else make_engine(engine_url, pool_size=2, prepared_statements=prepared_statements)
    )
    answers = []
    try:
        with engine.connect() as first, engine.connect() as second:
            for n in range(10):
                for offset, conn in ((0, first), (1000, second)):
                    answers.append(conn.execute(text("SELECT :n + 1"), {"n": n + offset}).one()[0])
                    conn.commit()  # the pooler may now give the server connection to the other
    finally:
        engine.dispose()
    return answers


def test_engine_connections_sharing_a_pooled_server_connection_get_their_own_answers(
    database: str, pgbouncer: PgBouncer
) -> None:
    url = pgbouncer.url(make_url(database), "single")

    answers = run_alternately(url, prepared_statements=None)  # the shipped default

    assert answers == [n + offset + 1 for n in range(10) for offset in (0, 1000)]


def test_prepared_statements_turned_on_collide_behind_the_pooler(
    database: str, pgbouncer: PgBouncer
) -> None:
    """The control: this pooler really does mix the clients' prepared statements, so the
    test above and the one below could fail."""
    url = pgbouncer.url(make_url(database), "single")

    with pytest.raises(DBAPIError, match=r"prepared statement .*_pg3_"):
        run_alternately(url, prepared_statements=True)


# --- the service: 8 callers buying, cashing out, cancelling and replaying ----------------------


@dataclass
class Step:
    what: str
    answer: Response
    subject: Any = None  # the item id or round id the call was about
    original: Response | None = None  # for a replay, the first answer


def caller(stack: SystemStack, player: str) -> list[Step]:
    """One operator's player: buy and cash out, prepay and cancel, each replayed."""
    steps: list[Step] = []
    for n in range(ROUNDS):
        buy = stack.purchase(player, f"buy-{player}-{n}")
        steps.append(Step("purchase", buy))
        again = stack.purchase(player, f"buy-{player}-{n}")
        steps.append(Step("purchase replay", again, original=buy))
        if buy.status == 200:
            item = int(buy.json["wonItems"][0]["inventoryItemId"])
            key = f"cashout-{player}-{n}"
            cashout = stack.cashout(player, item, key)
            steps.append(Step("cashout", cashout, item))
            steps.append(Step("cashout replay", stack.cashout(player, item, key), item, cashout))
        held = stack.purchase(player, f"prepay-{player}-{n}", mode="prepay")
        steps.append(Step("prepay", held))
        if held.status == 200:
            round_id = str(held.json["round"]["publicId"])
            key = f"cancel-{player}-{n}"
            cancel = stack.cancel(player, round_id, key)
            steps.append(Step("cancel", cancel, round_id))
            again = stack.cancel(player, round_id, key)
            steps.append(Step("cancel replay", again, round_id, cancel))
    return steps


@pytest.fixture(scope="module")
def pooled_stack(database: str, pgbouncer: PgBouncer) -> Iterator[SystemStack]:
    """gunicorn (4 workers x 8 threads), the reference wallet and Redis, with
    DATABASE_URL pointing at the pooler; nothing else about the app changed."""
    with start_stack(pgbouncer.url(make_url(database))) as stack:
        yield stack


def test_eight_callers_through_a_transaction_pooler_get_no_errors_and_move_money_once(
    database: str, pgbouncer: PgBouncer, pooled_stack: SystemStack
) -> None:
    stack = pooled_stack
    players = [stack.new_player(f"pooled{n}") for n in range(CALLERS)]
    started = time.monotonic()

    per_caller = concurrently([partial(caller, stack, player) for player in players])

    elapsed = time.monotonic() - started
    steps = [step for steps in per_caller for step in steps]
    outcome = Counter((s.what, s.answer.status, s.answer.code) for s in steps)
    failed = [s for s in steps if s.answer.status != 200]
    assert not failed, (
        f"{len(failed)} of {len(steps)} requests failed through pgbouncer in {elapsed:.1f}s:"
        f" {dict(outcome)}\nfirst: {failed[0].answer.body[:500]!r}\n"
        f"the database errors behind them:\n{database_errors(stack)}\n"
        f"--- pgbouncer ---\n{pgbouncer.log()[-1500:]}"
    )
    assert len(steps) == CALLERS * ROUNDS * 7

    ledger = stack.wallet_transactions()
    for player, steps_of_player in zip(players, per_caller, strict=True):
        mine = [t for t in ledger if t["playerExternalId"] == player]
        by_key = Counter(t["idempotencyKey"] for t in mine)
        assert set(by_key.values()) == {1}, f"a key moved money twice: {by_key}"
        debits = [t for t in mine if t["type"] == "wallet.debit"]
        credits = [t for t in mine if t["type"] == "wallet.credit"]
        assert len(debits) == 2 * ROUNDS, debits  # each purchase and each prepay, once
        assert len(credits) == 2 * ROUNDS, credits  # each cashout and each cancel, once
        for step in steps_of_player:
            check_step(step, player, mine)
        final = STARTING_BALANCE - 2 * ROUNDS * BOX_PRICE + ROUNDS * (CASHBACK + BOX_PRICE)
        assert steps_of_player[-1].answer.json["balanceAfterMinor"] == final

    direct = create_engine(database)
    try:
        with direct.connect() as conn:
            movements: dict[str, int] = dict(
                conn.execute(
                    text("SELECT status, count(*) FROM money_movements GROUP BY status")
                ).all()
            )
    finally:
        direct.dispose()
    assert movements == {"accepted": CALLERS * ROUNDS * 4}, movements


def database_errors(stack: SystemStack) -> str:
    """The distinct driver errors gunicorn's workers logged (``prepared statement "_pg3_0"
    already exists`` and the like), with how often each occurred."""
    log = (stack.logdir / "gunicorn.log").read_text(errors="replace")
    tracebacks = []  # one JSON object per line; a traceback is its exc_info field
    for line in log.splitlines():
        with contextlib.suppress(ValueError, AttributeError):  # not a JSON object
            tracebacks.append(str(json.loads(line).get("exc_info") or ""))
    text = "\n".join(tracebacks) or log
    found = Counter(re.findall(r"^psycopg\.errors\.\w+: .*$", text, re.MULTILINE))
    return "\n".join(f"{count:4} x {line}" for line, count in found.most_common(10)) or "(none)"


def check_step(step: Step, player: str, ledger: list[dict[str, Any]]) -> None:
    """The answer is about this caller's own request, and agrees with the wallet."""
    answer = step.answer.json
    if step.original is not None:
        assert step.answer.replayed, step
        assert step.answer.body == step.original.body, step
    elif step.what in ("purchase", "prepay"):
        round_id = answer["round"]["publicId"]
        (debit,) = [t for t in ledger if t["idempotencyKey"] == f"round:{round_id}"]
        assert (debit["type"], debit["amountMinor"]) == ("wallet.debit", BOX_PRICE)
        assert answer["balanceAfterMinor"] == debit["balanceAfterMinor"]
    elif step.what == "cashout":
        assert answer["item"]["inventoryItemId"] == step.subject
        assert answer["item"]["state"] == "cashed_back"
        (credit,) = [
            t
            for t in ledger
            if t["type"] == "wallet.credit" and t["inventoryItemId"] == step.subject
        ]
        assert (credit["type"], credit["amountMinor"]) == ("wallet.credit", CASHBACK)
        assert answer["balanceAfterMinor"] == credit["balanceAfterMinor"]
    elif step.what == "cancel":
        assert answer["round"]["publicId"] == step.subject
        (refund,) = [
            t for t in ledger if t["type"] == "wallet.credit" and t["roundPublicId"] == step.subject
        ]
        assert (refund["reason"], refund["amountMinor"]) == ("refund", BOX_PRICE)
        assert answer["balanceAfterMinor"] == refund["balanceAfterMinor"]
