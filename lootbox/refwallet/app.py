"""The reference wallet over HTTP: the operator side of the wallet RPC (contract section 6).

This is the model implementation an operator can read before writing their own wallet, and
the wallet our demos and tests talk to. The rules it keeps are the ones every wallet must
keep; the bookkeeping itself lives in :mod:`lootbox.refwallet.ledger`.

The RPC, ``POST {path}`` (default ``/wallet``)
    Signed with the envelope of contract section 3 minus ``X-Key-Id``: ``X-Timestamp``
    (Unix seconds) and ``X-Signature`` = lowercase hex HMAC-SHA256 over
    ``lootbox.signing.canonical_string(timestamp, "POST", request.path, raw_body)``. The
    signature is checked over the raw bytes *before* the body is parsed, against every
    configured secret, and the timestamp must be within 300 s of our clock.

    The secret that matches says whose call it is: one wallet may serve several
    operators (each with several secrets during a rotation; ``operator_secrets``), and
    every account, key and blocked player belongs to one operator, invisible to the
    others. A signature is accepted once: a copy of it within the window is refused
    ``SIGNATURE_REPLAYED``, unless it repeats an applied operation (then it gets the
    stored answer, which moves nothing). So a refused debit cannot be replayed after a
    top-up; a client re-sending a call must sign it in a later second.

    ===========================================  =====  ==============================
    answer                                       HTTP   when
    ===========================================  =====  ==============================
    ``{"accepted": true, "balanceAfterMinor",    200    applied, or a replay of an
    "providerTxnRef"}``                                 applied key with the same body
    ``{"accepted": true, "balanceAfterMinor",    200    ``wallet.balance``
    "currency"}``
    ``INVALID_SIGNATURE``                        401    missing/bad signature, skew
    ``SIGNATURE_REPLAYED``                       401    signature already used, and
                                                        the key is not applied
    ``BAD_REQUEST``                              400    body not of the contract's shape
    ``IDEMPOTENCY_KEY_MISMATCH``                 400    header ``Idempotency-Key`` is
                                                        not the body's idempotencyKey
    ``PLAYER_BLOCKED``                           403    player blocked by an admin
    ``DUPLICATE_TRANSACTION``                    409    key already used, other body
                                                        (same body: ``duplicate`` fault)
    ``INSUFFICIENT_FUNDS``                       422    debit above the balance
    (plain text)                                 503    too many signatures still in
                                                        their window; nothing decided
    ===========================================  =====  ==============================

    Refusals are ``{"accepted": false, "code", "message"}``. A refused key is not
    consumed; an applied key answers the same stored answer for ever (until reset).

Administration, under ``/_admin`` (JSON in and out)
    ``GET transactions``, ``GET|PUT balances``, ``POST players/<id>/block|unblock``,
    ``GET players/blocked``, ``GET operators``, ``POST reset``, ``GET stats``,
    ``GET|POST|DELETE faults``.

    Operators: ``?operator=<name>`` narrows ``transactions`` and ``balances`` to one
    operator (without it they list every operator, each row naming its ``operator``). The
    calls about players (``PUT balances``, ``block``, ``unblock``, ``players/blocked``)
    act for ``?operator=``, which may be left out when the wallet serves one operator;
    with several it is required (400 otherwise). Faults, stats and reset are the whole
    wallet's; ``reset`` also forgets the signatures seen, as a fresh wallet would.

    ``stats`` counts ``calls`` (every POST to the RPC path), ``applied`` and ``replayed``
    money calls, ``refused`` answers (at the door, by the rules, or by a ``refuse`` or
    ``duplicate`` fault) and ``faulted`` calls (any fault mode); a faulted call is also
    counted by its outcome. An ``error`` or ``reset`` call has none (nothing applied, no
    answer a client can read), so it is only ``faulted``; a replay answered by a
    ``duplicate`` fault is ``faulted`` and ``refused``, not ``replayed``.

    These endpoints are **unauthenticated**: the wallet binds to 127.0.0.1 by default and
    is a test tool. If the environment variable ``REFWALLET_ADMIN_TOKEN`` is set (or
    ``admin_token`` is passed), every admin call must carry it in ``X-Admin-Token``.

Faults (``POST /_admin/faults``), so a client's failure handling can be tested for real
    ``refuse``            refuse with ``code`` (HTTP 422, 403 for PLAYER_BLOCKED); nothing
                          is applied. A repeat of an applied key is never refused (it
                          passes by, using up nothing): a wallet keeps its answer for a
                          key, so a refusal always means "not applied".
    ``error``             answer HTTP ``status`` (default 503) with a non-JSON body;
                          nothing is applied.
    ``delay``             sleep ``delayMs``, then answer normally. The wallet handles one
                          copy of a key at a time, so a copy arriving meanwhile waits.
    ``apply_then_drop``   handle the call as usual (apply it, replay it, or refuse it),
                          then drop the TCP connection with no HTTP answer at all: the
                          wallet moved the money but the client cannot know it.
    ``apply_then_delay``  handle the call as usual, then sleep ``delayMs`` before
                          answering (a client read-timeout after the wallet applied).
    ``reset``             abort the TCP connection with a RST (``SO_LINGER`` on, linger 0,
                          then close) without applying the call and without any HTTP
                          answer: the client gets "connection reset by peer". Nothing is
                          applied, but the client cannot know that.
    ``duplicate``         a wallet that does not replay: a money call whose key was already
                          applied with the same payload is answered
                          ``409 DUPLICATE_TRANSACTION`` instead of the stored answer
                          (nothing is applied again). It matches *only* such replays: any
                          other call passes it by, handled as usual, without using up its
                          ``times`` or drawing from its ``rate``. It takes no ``code`` or
                          ``status``, and ``types`` only from the money calls.

    Without access to the client socket (a server that does not expose it, or Flask's
    test client) ``apply_then_drop`` and ``reset`` cannot hang up; they answer HTTP 502
    with a non-JSON body instead, which leaves the client equally in the dark.

    ``times`` (default until cleared), ``types`` (call types) and ``rate`` with ``seed``
    narrow which calls a fault affects; several may be stacked and the first match wins.
    Faults act only on authenticated, well-formed calls, so the door checks stay honest.
    A call lost to an ``error`` or ``reset`` fault never reached the wallet's rules, so its
    signature is not remembered: sent again as it was, it is handled as a first arrival.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from lootbox.refwallet.ledger import (
    DUPLICATE_TRANSACTION,
    INSUFFICIENT_FUNDS,
    PLAYER_BLOCKED,
    Applied,
    BalanceQuery,
    FaultHit,
    InvalidCall,
    Ledger,
    MoneyCall,
    Refused,
    Replayed,
    parse_balance_update,
    parse_call,
    plain_secret_operator,
)
from lootbox.refwallet.replay import ReplayCacheFull, SeenSignatures, SignedCall
from lootbox.signing import HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_matches

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"
# Names, not secrets.
HEADER_ADMIN_TOKEN = "X-Admin-Token"  # noqa: S105
ADMIN_TOKEN_ENV = "REFWALLET_ADMIN_TOKEN"  # noqa: S105
MAX_SKEW_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
EXTENSION_KEY = "refwallet"

# The view marks the request with how to hang up (``HANG_UP`` or ``RESET``); the WSGI
# middleware below does the dropping, because only outside Flask can a request end
# without Flask writing a response.
DROP_CONNECTION_KEY = "refwallet.drop_connection"
HANG_UP = "hang_up"  # FIN: an orderly close with no answer (apply_then_drop)
RESET = "reset"  # RST: an abortive close, "connection reset by peer" (reset)
# werkzeug's dev server exposes the client socket as "werkzeug.socket" (checked against
# werkzeug 3.1); gunicorn as "gunicorn.socket".
_SOCKET_ENVIRON_KEYS = ("werkzeug.socket", "gunicorn.socket")

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
# Like an operator slug of the service: readable in a URL, no separators.
_OPERATOR_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

SIGNATURE_REPLAYED = "SIGNATURE_REPLAYED"

# Faults that stand for a call lost before the wallet's rules see it.
_FAULTS_BEFORE_THE_WALLET = frozenset({"error", "reset"})

REFUSAL_STATUS = {
    INSUFFICIENT_FUNDS: 422,
    PLAYER_BLOCKED: 403,
    DUPLICATE_TRANSACTION: 409,
}


class Unauthenticated(Exception):
    """A call not signed by one of our operators; the message says why."""


@dataclass
class WalletState:
    """Everything one wallet app holds; reachable as ``wallet_state(app)``."""

    ledger: Ledger
    # Each operator with the secrets it signs with (several during a rotation).
    operators: Mapping[str, tuple[str, ...]]
    path: str
    admin_token: str | None
    max_skew_seconds: int
    seen_signatures: SeenSignatures
    # Set when the server stops, so request threads sleeping for a delay fault wake up
    # instead of outliving the server.
    stopping: threading.Event = field(default_factory=threading.Event)
    _key_locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _key_locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def key_lock(self, operator: str, idempotency_key: str) -> threading.Lock:
        """One lock per operator and idempotency key: a wallet must not work on two copies
        of one operation at once (contract section 6), or a copy arriving while the first
        is still being processed could be refused, and the first then applied."""
        with self._key_locks_guard:
            return self._key_locks.setdefault((operator, idempotency_key), threading.Lock())

    def pause(self, delay_ms: int) -> None:
        """Sleep for a delay fault. Never called with the ledger lock held."""
        self.stopping.wait(delay_ms / 1000)

    def stop(self) -> None:
        self.stopping.set()


def wallet_state(app: Flask) -> WalletState:
    state = app.extensions[EXTENSION_KEY]
    assert isinstance(state, WalletState)
    return state


OperatorSecrets = Sequence[str] | Mapping[str, str | Sequence[str]]


def operator_secrets(secrets: OperatorSecrets) -> dict[str, tuple[str, ...]]:
    """Each operator the wallet serves, with the secrets it signs with.

    A list gives each secret its own operator, named by its position: ``secret-1``,
    ``secret-2``, ... A mapping names them (``{"casino-a": "s1", "casino-b": ["old",
    "new"]}``); several secrets of one operator (a rotation) share its accounts and keys.
    """
    if isinstance(secrets, str):
        # tuple("abc") would quietly make three one-letter secrets.
        raise TypeError("secrets must be a list of strings, not a string")
    if isinstance(secrets, Mapping):
        operators = {
            name: (given,) if isinstance(given, str) else tuple(given)
            for name, given in secrets.items()
        }
    else:
        operators = {
            plain_secret_operator(n): (secret,) for n, secret in enumerate(secrets, start=1)
        }
    every_secret = [secret for group in operators.values() for secret in group]
    if not every_secret or not all(isinstance(s, str) and s for s in every_secret):
        raise ValueError("the reference wallet needs at least one non-empty secret")
    if len(set(every_secret)) != len(every_secret):
        # A call signed with it would belong to two operators at once.
        raise ValueError("a secret may belong to one operator only, once")
    for name, group in operators.items():
        if not isinstance(name, str) or not _OPERATOR_NAME.fullmatch(name):
            raise ValueError(f"operator name {name!r} must match {_OPERATOR_NAME.pattern}")
        if not group:
            raise ValueError(f"operator {name!r} has no secret")
    return operators


def create_wallet_app(
    secrets: OperatorSecrets,
    starting_balance_minor: int = 100_000,
    path: str = "/wallet",
    *,
    admin_token: str | None = None,
    ledger: Ledger | None = None,
    max_skew_seconds: int = MAX_SKEW_SECONDS,
    seen_signatures: SeenSignatures | None = None,
) -> Flask:
    """Build the reference wallet.

    ``secrets``: who may call, as ``operator_secrets`` reads it (at least one secret).
    ``admin_token``: required ``X-Admin-Token`` for ``/_admin``; ``None`` reads
    ``REFWALLET_ADMIN_TOKEN`` (unset or empty: admin is open). ``ledger`` and
    ``seen_signatures``: share or pre-load state (tests).
    """
    operators = operator_secrets(secrets)
    if not path.startswith("/") or path.startswith("/_admin"):
        raise ValueError("path must start with '/' and must not be under /_admin")
    if admin_token is None:
        admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    state = WalletState(
        ledger=ledger if ledger is not None else Ledger(starting_balance_minor),
        operators=operators,
        path=path,
        admin_token=admin_token,
        max_skew_seconds=max_skew_seconds,
        seen_signatures=(
            seen_signatures if seen_signatures is not None else SeenSignatures(max_skew_seconds)
        ),
    )
    app.extensions[EXTENSION_KEY] = state
    _register_rpc(app, state)
    _register_admin(app, state)
    app.wsgi_app = _ConnectionDropper(app.wsgi_app)  # type: ignore[method-assign]
    return app


# --- the RPC ---------------------------------------------------------------------------


def _register_rpc(app: Flask, state: WalletState) -> None:
    ledger = state.ledger

    def refuse(status: int, code: str, message: str) -> ResponseReturnValue:
        ledger.count("refused")
        return jsonify(accepted=False, code=code, message=message), status

    def wallet_rpc() -> ResponseReturnValue:
        ledger.count("calls")
        # The exact bytes that were signed; parsing first could hide a tampered body.
        raw = request.get_data(cache=True)
        try:
            signed = _authenticate(state, raw)
        except Unauthenticated as exc:
            return refuse(401, "INVALID_SIGNATURE", str(exc))
        try:
            call = parse_call(_decode_json(raw), signed.operator)
        except InvalidCall as exc:
            return refuse(400, "BAD_REQUEST", str(exc))
        if (
            isinstance(call, MoneyCall)
            and request.headers.get(HEADER_IDEMPOTENCY_KEY) != call.idempotency_key
        ):
            return refuse(
                400,
                "IDEMPOTENCY_KEY_MISMATCH",
                f"header {HEADER_IDEMPOTENCY_KEY} must equal the body's idempotencyKey",
            )

        # Copies of one key are decided one after the other, a delay before applying
        # included: a copy arriving meanwhile waits, then sees the first's outcome (a
        # replay, or a free key after a refusal). Never two copies in flight at once.
        key_lock = (
            state.key_lock(call.operator, call.idempotency_key)
            if isinstance(call, MoneyCall)
            else contextlib.nullcontext()
        )
        with key_lock:
            # Under the key lock, so a copy of a call is judged after the first copy was
            # decided: whether its key was applied is then known, not in flight.
            try:
                first_use = state.seen_signatures.first_use(signed)
            except ReplayCacheFull:
                return _busy()
            if not first_use and not ledger.is_replay(call):
                # A copy of an applied operation gets its stored answer and moves no
                # money; refusing it would tell a client whose first answer was lost
                # that its applied operation was not applied.
                return refuse(
                    401,
                    SIGNATURE_REPLAYED,
                    "this signature was already used; sign every request anew",
                )
            fault = ledger.take_fault(call)
            if first_use and fault is not None and fault.mode in _FAULTS_BEFORE_THE_WALLET:
                # The call is lost on its way in: the wallet's rules never saw its
                # signature, so a re-send of it is a first arrival.
                state.seen_signatures.forget(signed)
            early = _before_applying(fault)
            if early is not None:
                return early
            status, answer = _answer(ledger, call)
        # Decided: what follows only loses or delays the answer, so the key is free again.
        if fault is not None and fault.mode == "apply_then_delay":
            state.pause(fault.delay_ms)
        if fault is not None and fault.mode == "apply_then_drop":
            return _hang_up(HANG_UP, "answer lost (apply_then_drop)")
        return jsonify(answer), status

    def _before_applying(fault: FaultHit | None) -> ResponseReturnValue | None:
        """Act out a fault that answers instead of the wallet (or delays it); ``None``
        when the call goes on to be decided."""
        if fault is None:
            return None
        if fault.mode == "error":
            # Deliberately not JSON: a client must treat it as outcome unknown.
            return Response(
                f"reference wallet: injected error {fault.status}\n",
                status=fault.status,
                mimetype="text/plain",
            )
        if fault.mode == "refuse":
            return refuse(REFUSAL_STATUS.get(fault.code, 422), fault.code, fault.message)
        if fault.mode == "duplicate":
            # take_fault matched it only because this key was applied with this very
            # payload: refuse instead of replaying, and move nothing.
            return refuse(REFUSAL_STATUS[DUPLICATE_TRANSACTION], fault.code, fault.message)
        if fault.mode == "reset":
            # Before anything is applied: the call is lost, not just its answer.
            return _hang_up(RESET, "connection reset (reset), nothing applied")
        if fault.mode == "delay":
            state.pause(fault.delay_ms)
        return None

    app.add_url_rule(state.path, "wallet_rpc", wallet_rpc, methods=["POST"])


def _busy() -> ResponseReturnValue:
    """Every remembered signature is still in its window: answer "busy" (outcome unknown
    to the client, nothing applied) rather than forget one and let it be replayed."""
    log.warning("wallet call not handled: the cache of seen signatures is full")
    return Response(
        "reference wallet: too many calls within the signature window, try again later\n",
        status=503,
        mimetype="text/plain",
    )


def _hang_up(how: str, fallback: str) -> ResponseReturnValue:
    """Mark the request for ``_ConnectionDropper`` to end without an answer (``how``:
    ``HANG_UP`` or ``RESET``). The 200 returned here is never written."""
    if _client_socket(request.environ) is None:
        # A server that hides its socket cannot hang up; an unintelligible 502 leaves the
        # client equally in the dark about the operation.
        return Response(f"reference wallet: {fallback}\n", status=502, mimetype="text/plain")
    request.environ[DROP_CONNECTION_KEY] = how
    return Response(b"", status=200)


def _answer(ledger: Ledger, call: MoneyCall | BalanceQuery) -> tuple[int, dict[str, Any]]:
    if isinstance(call, BalanceQuery):
        read = ledger.balance(call)
        if isinstance(read, Refused):
            return REFUSAL_STATUS.get(read.code, 422), read.answer()
        return 200, read.answer()
    outcome = ledger.apply(call)
    if isinstance(outcome, Applied | Replayed):
        return 200, outcome.transaction.answer()
    return REFUSAL_STATUS.get(outcome.code, 422), outcome.answer()


def _authenticate(state: WalletState, raw: bytes) -> SignedCall:
    """Which operator signed this request; raises ``Unauthenticated`` saying why none did."""
    timestamp = request.headers.get(HEADER_TIMESTAMP)
    signature = request.headers.get(HEADER_SIGNATURE)
    if not timestamp or not signature:
        raise Unauthenticated(f"headers {HEADER_TIMESTAMP} and {HEADER_SIGNATURE} are required")
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise Unauthenticated(f"{HEADER_TIMESTAMP} must be Unix seconds")
    # Every secret is tried (no early exit) so the time taken does not tell which one of
    # several secrets came close.
    signers = [
        operator
        for operator, secrets in state.operators.items()
        for secret in secrets
        if signature_matches(secret, timestamp, request.method, request.path, raw, signature)
    ]
    if not signers:
        raise Unauthenticated("signature does not match")
    # After the signature, so an unsigned caller learns nothing about our clock; the
    # window stops a captured request from being replayed later (and the seen
    # signatures within it).
    if abs(time.time() - int(timestamp)) > state.max_skew_seconds:
        raise Unauthenticated(
            f"timestamp is more than {state.max_skew_seconds} s from the wallet's clock"
        )
    return SignedCall(operator=signers[0], timestamp=int(timestamp), signature=signature)


def _reject_constant(name: str) -> Any:
    raise InvalidCall(f"{name} is not valid JSON")


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        if isinstance(exc, InvalidCall):
            raise
        raise InvalidCall("the body is not valid JSON") from exc


# --- dropping a connection without an answer -------------------------------------------


def _client_socket(environ: WSGIEnvironment) -> socket.socket | None:
    for key in _SOCKET_ENVIRON_KEYS:
        candidate = environ.get(key)
        if isinstance(candidate, socket.socket):
            return candidate
    return None


class _ConnectionDropper:
    """WSGI middleware: for a request the view marked, hang up instead of answering.

    ``HANG_UP``: ``shutdown(SHUT_RDWR)`` sends the FIN at once whatever else holds the
    socket, so the client sees the connection end with no status line (``requests``
    raises ``ConnectionError``).

    ``RESET``: ``SO_LINGER`` on with a linger of 0 turns the close into an abortive one,
    which sends a RST instead of a FIN (the client gets ``ECONNRESET``, "connection reset
    by peer"). ``shutdown(SHUT_RD)`` sends nothing to the client (no FIN to beat the RST)
    but makes the server's next read see the end of the stream, so werkzeug does not wait
    for another request on this connection. The RST leaves when the descriptor is really
    closed: when the server closes its file objects for the request, right after this.

    Either way, raising ``ConnectionAbortedError`` afterwards is how werkzeug's server
    learns the client is gone: it treats it as a dropped connection, writes nothing and
    logs nothing.
    """

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self._wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        result = self._wsgi_app(environ, start_response)
        how = environ.get(DROP_CONNECTION_KEY)
        if not how:
            return result
        close = getattr(result, "close", None)
        if close is not None:
            close()
        reset = how == RESET
        sock = _client_socket(environ)
        # Logged because nothing else will be: the server sees a dropped connection.
        log.warning(
            "%s: %s %s %s without answering",
            "reset" if reset else "apply_then_drop",
            "reset the connection of" if reset else "hung up on",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
        )
        if sock is not None:
            # OSError: the client hung up first; for it the outcome is the same.
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            # The server's own file objects keep the descriptor alive until it finishes
            # the request, so this close cannot pull the fd from under it.
            sock.close()
        if reset:
            raise ConnectionAbortedError("reference wallet: reset the connection, applied nothing")
        raise ConnectionAbortedError("reference wallet: apply_then_drop hung up after applying")


# --- administration --------------------------------------------------------------------


def _names(state: WalletState) -> str:
    return ", ".join(state.operators)


def _register_admin(app: Flask, state: WalletState) -> None:
    ledger = state.ledger

    @app.before_request
    def require_admin_token() -> ResponseReturnValue | None:
        if state.admin_token is None or not request.path.startswith("/_admin/"):
            return None
        given = request.headers.get(HEADER_ADMIN_TOKEN, "")
        if not hmac.compare_digest(given.encode(), state.admin_token.encode()):
            return jsonify(error=f"admin endpoints need a valid {HEADER_ADMIN_TOKEN}"), 401
        return None

    def bad_request(exc: InvalidCall) -> ResponseReturnValue:
        return jsonify(error=str(exc)), 400

    def json_body() -> Any:
        # force: curl users forget the content type; silent: bad JSON becomes None and
        # is then refused by the validator with a readable message.
        return request.get_json(force=True, silent=True)

    def listed_operator() -> str | None:
        """``?operator=`` of a listing; ``None`` (every operator) when not given."""
        name = request.args.get("operator")
        if name is not None and name not in state.operators:
            raise InvalidCall(f"no operator {name!r}; this wallet serves {_names(state)}")
        return name

    def chosen_operator() -> str:
        """``?operator=`` of a call about players; without it, the only operator."""
        name = listed_operator()
        if name is not None:
            return name
        if len(state.operators) > 1:
            raise InvalidCall(f"this wallet serves {_names(state)}: name one with ?operator=")
        return next(iter(state.operators))

    @app.errorhandler(InvalidCall)
    def invalid_admin_call(exc: InvalidCall) -> ResponseReturnValue:
        return bad_request(exc)

    @app.get("/_admin/transactions")
    def list_transactions() -> ResponseReturnValue:
        return jsonify(transactions=ledger.transactions(listed_operator()))

    @app.get("/_admin/balances")
    def list_balances() -> ResponseReturnValue:
        return jsonify(balances=ledger.balances(listed_operator()))

    @app.put("/_admin/balances")
    def set_balance() -> ResponseReturnValue:
        operator = chosen_operator()
        player, currency, balance = parse_balance_update(json_body())
        ledger.set_balance(player, currency, balance, operator)
        return jsonify(
            operator=operator, playerExternalId=player, currency=currency, balanceMinor=balance
        )

    @app.get("/_admin/players/blocked")
    def list_blocked_players() -> ResponseReturnValue:
        return jsonify(blocked=ledger.blocked(chosen_operator()))

    @app.post("/_admin/players/<path:player_id>/block")
    def block_player(player_id: str) -> ResponseReturnValue:
        operator = chosen_operator()
        ledger.block(player_id, operator)
        return jsonify(operator=operator, playerExternalId=player_id, blocked=True)

    @app.post("/_admin/players/<path:player_id>/unblock")
    def unblock_player(player_id: str) -> ResponseReturnValue:
        operator = chosen_operator()
        ledger.unblock(player_id, operator)
        return jsonify(operator=operator, playerExternalId=player_id, blocked=False)

    @app.get("/_admin/operators")
    def list_operators() -> ResponseReturnValue:
        # Names only: the secrets never leave the process.
        return jsonify(operators=list(state.operators))

    @app.post("/_admin/reset")
    def reset() -> ResponseReturnValue:
        # A fresh wallet: the calls it has seen are forgotten with their effects.
        ledger.reset()
        state.seen_signatures.clear()
        return jsonify(reset=True)

    @app.get("/_admin/stats")
    def stats() -> ResponseReturnValue:
        return jsonify(ledger.stats())

    @app.get("/_admin/faults")
    def list_faults() -> ResponseReturnValue:
        return jsonify(faults=ledger.faults())

    @app.post("/_admin/faults")
    def add_fault() -> ResponseReturnValue:
        return jsonify(fault=ledger.add_fault(json_body())), 201

    @app.delete("/_admin/faults")
    def clear_faults() -> ResponseReturnValue:
        ledger.clear_faults()
        return jsonify(faults=[])
