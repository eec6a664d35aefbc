"""The outbound HTTP wallet client: signing, bounded timeouts and outcome classification.

Every money movement is one ``POST {walletUrl}`` (contract, section 6), signed with the
operator's outbound secret over the exact body bytes, carrying the body's idempotency key
in the ``Idempotency-Key`` header too. The answer is classified into exactly one of:

* ``WalletAccepted``: the wallet applied the operation;
* ``WalletRefusal``: the wallet definitely did not apply it (``accepted: false``, 2xx/4xx);
* ``WalletOutcomeUnknown``: anything else. The call may or may not have been applied.

Why an unknown outcome is never retried here: before this client is called, the use case
has already recorded the movement in the ledger as *pending* with its wallet key and
amount (section 7). Re-driving is the caller's job (the next attempt on the same item or
round, or the reconciler), and it always re-sends the **same key and amount**, so the
wallet's idempotency makes the repeat harmless. A retry loop in here would only hold a web
worker for several timeouts while the ledger cannot see it, so the transport never
retries (``max_retries=0``) and this module returns at the first failure.

Why redirects are not followed: the signature covers the wallet URL's path, so a
redirected request would arrive with a signature that no longer matches its path; and
``requests`` turns a 302/303 POST into a body-less GET. Either way the money call would be
silently mangled. A 3xx means the operator's wallet URL is misconfigured, which an on-call
engineer should see as "HTTP 302", not have papered over.

Connections and the environment: each wallet host (scheme, host, port) gets one pool of
kept-alive connections, shared by the operators on it, for the life of the client. The
process environment is read once, when the client is built: a CA bundle
(``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) and whether a proxy variable is set; changing
them takes a restart. Cookies are never kept. Without a proxy, calls go straight onto
urllib3's pools. Proxies are rare for a server-to-server wallet; behind one, calls go
through ``requests.Session.post``, which applies its proxy and ``NO_PROXY`` rules per call.

Every call is logged (one ``wallet call …`` line) and counted by type and outcome
(``lootbox_wallet_calls_total``, ``lootbox_wallet_call_duration_seconds``; docs/runbook.md).

The client never raises for transport or protocol trouble. Programming errors (a call
body that is not JSON-serialisable) still raise, before anything is sent.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from lootbox.domain.records import WalletSettings, is_valid_timeout
from lootbox.observability.metrics import record_wallet_call
from lootbox.ports import (
    WalletAccepted,
    WalletMoneyCall,
    WalletOutcome,
    WalletOutcomeUnknown,
    WalletRefusal,
)
from lootbox.signing import signed_headers

__all__ = [
    "DEFAULT_REFUSAL_CODE",
    "DEFAULT_REFUSAL_MESSAGE",
    "MAX_RESPONSE_BYTES",
    "HttpWallet",
    "build_session",
    "classify",
]

logger = logging.getLogger("lootbox.wallet")

DEFAULT_REFUSAL_CODE = "WALLET_REFUSED"
DEFAULT_REFUSAL_MESSAGE = "The wallet refused the operation."
MAX_MESSAGE_CHARS = 500
# A wallet answer is a few hundred bytes. Anything far larger is not a wallet answer, and
# reading it all would let a broken endpoint exhaust a worker's memory.
MAX_RESPONSE_BYTES = 64 * 1024
_MAX_REASON_CHARS = 300
_MIN_REDACTED_SECRET_CHARS = 8
_REFUSAL_CODE = re.compile(r"[A-Z0-9_]{1,64}")
_USER_AGENT = "lootbox-wallet-client/1"

# What the transport can throw at us. ``requests`` wraps almost everything into
# ``RequestException``; the rest is belt and braces so that ``send`` keeps its promise.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


# --- classification (pure) ----------------------------------------------------------------


def classify(status_code: int, body: bytes) -> WalletOutcome:
    """Map an HTTP status and raw body to a wallet outcome, exactly as section 6 says.

    Only a JSON object with a boolean ``accepted`` is an answer: ``true`` with a 2xx is
    accepted, ``false`` with a 2xx or 4xx is a refusal. Everything else (1xx, 3xx, 5xx,
    non-JSON, no boolean ``accepted``, ``true`` with a 4xx, ``false`` with a 5xx) is
    unknown, because the wallet may have applied the operation anyway.
    """
    if 300 <= status_code < 400:
        return WalletOutcomeUnknown(f"HTTP {status_code} redirect (redirects are not followed)")
    is_success = 200 <= status_code < 300
    is_client_error = 400 <= status_code < 500
    if not (is_success or is_client_error):
        return WalletOutcomeUnknown(f"HTTP {status_code}")

    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError
        return WalletOutcomeUnknown(f"HTTP {status_code}, response is not JSON")
    if not isinstance(document, dict):
        return WalletOutcomeUnknown(f"HTTP {status_code}, JSON response is not an object")
    accepted = document.get("accepted")
    if not isinstance(accepted, bool):
        return WalletOutcomeUnknown(f"HTTP {status_code}, response has no boolean 'accepted'")

    if accepted:
        if not is_success:
            return WalletOutcomeUnknown(
                f"HTTP {status_code} with 'accepted: true' is contradictory"
            )
        return WalletAccepted(
            balance_after_minor=_int_or_none(document.get("balanceAfterMinor")),
            provider_txn_ref=_str_or_none(document.get("providerTxnRef")),
        )
    return WalletRefusal(
        code=_refusal_code(document.get("code")),
        message=_refusal_message(document.get("message")),
    )


def _int_or_none(value: Any) -> int | None:
    # bool is an int subclass; ``true`` is not a balance.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _refusal_code(value: Any) -> str:
    # The code reaches the S2S caller verbatim, who branches on it: only pass through
    # something shaped like one of our codes.
    if isinstance(value, str) and _REFUSAL_CODE.fullmatch(value):
        return value
    return DEFAULT_REFUSAL_CODE


def _refusal_message(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value[:MAX_MESSAGE_CHARS]
    return DEFAULT_REFUSAL_MESSAGE


def _outcome_kind(outcome: WalletOutcome) -> str:
    if isinstance(outcome, WalletAccepted):
        return "accepted"
    if isinstance(outcome, WalletRefusal):
        return "refused"
    return "unknown"


# --- the client -----------------------------------------------------------------------------


def build_session(pool_maxsize: int = 32) -> requests.Session:
    """A session whose connections are kept alive and reused, and which never retries.

    ``pool_maxsize`` is the number of connections kept per wallet host (about the number of
    threads calling one wallet at once).
    """
    session = requests.Session()
    # No cookie jar: one session serves every operator, and a cookie set by one wallet
    # must never ride along on a call for another (they may share a host).
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    # max_retries=0: a retry of a money call is a decision for the ledger, with the same
    # key, not something a transport adapter may do behind its back. A pool per wallet
    # host, for many more hosts than operators usually have, so none is dropped and
    # reconnected because others were used in between.
    adapter = HTTPAdapter(
        pool_connections=max(pool_maxsize, _WALLET_HOSTS),
        pool_maxsize=pool_maxsize,
        max_retries=0,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # The environment does not change while the process runs, so it is read once here: a
    # CA bundle it names is set on the session (as requests would use it), and trust_env
    # (requests reading the environment again at each call) stays on only when a proxy
    # is configured, for requests to apply its proxy and no_proxy rules per URL.
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = bool(urllib.request.getproxies_environment())
    return session


# How many wallet hosts keep a connection pool (least recently used beyond that).
_WALLET_HOSTS = 256
# How many distinct wallet URLs keep their resolved route (see ``_WalletPools``).
_MAX_ROUTES = 1024
_CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a wallet URL's calls go, worked out once per URL."""

    manager: urllib3.PoolManager
    scheme: str
    host: str
    port: int | None
    target: str  # the request line's target: path and query


class _PooledResponse:
    """What ``HttpWallet`` reads of a ``requests.Response``, over urllib3's response."""

    __slots__ = ("_raw", "status_code")

    def __init__(self, raw: urllib3.BaseHTTPResponse) -> None:
        self._raw = raw
        self.status_code = raw.status

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        return self._raw.stream(chunk_size, decode_content=True)

    def __enter__(self) -> _PooledResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A body read to its end has already handed the connection back for reuse. One
        # that was not (too large, or broken) leaves the connection unusable: close it.
        if not self._raw.closed:
            self._raw.close()
        self._raw.release_conn()


class _WalletPools:
    """Sends a wallet POST straight on the pools of a session without a proxy:
    ``Session.post`` for the arguments ``HttpWallet`` passes, without the rest of
    ``Session.request``.

    ``Session.request`` redoes for every call what does not change between calls: it
    prepares and re-validates the URL, merges settings, builds cookie jars and works out
    the pool key. Here a wallet URL's checks and request target are worked out on its
    first call, and the TLS settings once for all. Errors are urllib3's own, raised at the
    first failure.
    """

    def __init__(self, session: requests.Session) -> None:
        self._session = session
        self._tls = _tls_pool_kwargs(session.verify)
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()

    def post(
        self,
        url: str,
        *,
        data: bytes,
        headers: dict[str, str],
        timeout: tuple[float, float],
        allow_redirects: bool,
        stream: bool,
    ) -> _PooledResponse:
        if allow_redirects or not stream:
            raise ValueError("wallet calls are streamed and never follow redirects")
        route = self._routes.get(url) or self._add_route(url)
        pool = route.manager.connection_from_host(
            route.host, route.port, route.scheme, pool_kwargs=self._tls
        )
        raw = pool.urlopen(
            "POST",
            route.target,
            body=data,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            preload_content=False,
            decode_content=False,
        )
        return _PooledResponse(raw)

    def close(self) -> None:
        self._session.close()

    def _add_route(self, url: str) -> _Route:
        with self._lock:
            route = self._routes.get(url)
            if route is None:
                route = self._resolve(url)
                if len(self._routes) >= _MAX_ROUTES:
                    self._routes.clear()
                self._routes[url] = route
            return route

    def _resolve(self, url: str) -> _Route:
        # The same checks and normalisation as Session.request, with its exceptions.
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        full_url = str(prepared.url)
        adapter = self._session.get_adapter(full_url)
        if not isinstance(adapter, HTTPAdapter):
            raise requests.exceptions.InvalidSchema(f"no HTTP adapter for {full_url!r}")
        parts = urlsplit(full_url)
        if parts.hostname is None:
            raise requests.exceptions.InvalidURL(f"no host in {full_url!r}")
        scheme = parts.scheme.lower()
        if scheme == "https":
            _check_ca_location(self._tls)
        return _Route(adapter.poolmanager, scheme, parts.hostname, parts.port, prepared.path_url)


def _tls_pool_kwargs(verify: bool | str | None) -> dict[str, Any]:
    """What requests gives each https pool for ``verify``, worked out once."""
    if verify is False:
        return {"cert_reqs": "CERT_NONE"}
    location = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
    kind = "ca_cert_dir" if os.path.isdir(location) else "ca_certs"
    return {"cert_reqs": "CERT_REQUIRED", kind: location}


def _check_ca_location(tls: Mapping[str, Any]) -> None:
    location = tls.get("ca_certs") or tls.get("ca_cert_dir")
    if location and not os.path.exists(location):
        # requests' own words for it.
        raise OSError(
            f"Could not find a suitable TLS CA certificate bundle, invalid path: {location}"
        )


class _ResponseTooLarge(Exception):
    pass


class HttpWallet:
    """The ``Wallet`` port over HTTP (contract, section 6). Safe to share between threads.

    ``connect_timeout_seconds`` / ``read_timeout_seconds`` are the service defaults; an
    operator's ``WalletSettings`` may override either. The read timeout bounds each wait
    for bytes from the wallet, as in ``requests``.
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        connect_timeout_seconds: float = 2.0,
        read_timeout_seconds: float = 5.0,
        pool_maxsize: int = 32,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, value in (
            ("connect_timeout_seconds", connect_timeout_seconds),
            ("read_timeout_seconds", read_timeout_seconds),
        ):
            if not is_valid_timeout(value):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if pool_maxsize < 1:
            raise ValueError(f"pool_maxsize must be at least 1, got {pool_maxsize!r}")
        self._owns_session = session is None
        # A session of our own is sent on directly (``_WalletPools``) unless the environment
        # configures a proxy (trust_env on): then, like a caller's, through ``Session.post``.
        self._session: requests.Session | _WalletPools
        if session is None:
            session = build_session(pool_maxsize)
            self._session = session if session.trust_env else _WalletPools(session)
        else:
            self._session = session
        self._connect_timeout = float(connect_timeout_seconds)
        self._read_timeout = float(read_timeout_seconds)
        self._clock = clock
        self._sleep = sleep

    def close(self) -> None:
        """Close pooled connections, if this client built its own session."""
        if self._owns_session:
            self._session.close()

    def send(self, settings: WalletSettings, call: WalletMoneyCall) -> WalletOutcome:
        """Send one signed ``wallet.debit`` / ``wallet.credit`` and classify the answer.

        Never raises for transport or protocol failures; those are ``WalletOutcomeUnknown``.
        """
        outcome, _ = self._post(
            settings, call.to_body(), call_type=call.type, idempotency_key=call.idempotency_key
        )
        return outcome

    def balance(
        self, settings: WalletSettings, player_external_id: str, currency: str
    ) -> int | None:
        """Ask the wallet for a player's balance; ``None`` on any failure or if it gave none.

        Informational only: it moves no money, so it carries no idempotency key.
        """
        body = {
            "type": "wallet.balance",
            "playerExternalId": player_external_id,
            "currency": currency,
        }
        outcome, _ = self._post(settings, body, call_type="wallet.balance", idempotency_key=None)
        if isinstance(outcome, WalletAccepted):
            return outcome.balance_after_minor
        return None

    # --- internals --------------------------------------------------------------------------

    def _timeouts(self, settings: WalletSettings) -> tuple[float, float]:
        return settings.timeouts(self._connect_timeout, self._read_timeout)

    def _post(
        self,
        settings: WalletSettings,
        payload: dict[str, Any],
        *,
        call_type: str,
        idempotency_key: str | None,
    ) -> tuple[WalletOutcome, int | None]:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        started = time.monotonic()
        outcome, status, signed_at = self._attempt(settings, body, idempotency_key)
        if _is_replay_refusal(outcome):
            # A wallet that refuses a signature it has seen (docs/security.md) says so when
            # this same call was signed in the same second before: by a retry of ours, or
            # another worker's. It decided nothing; sign again in a later second.
            self._sleep(max(0.0, signed_at + 1 - self._clock()))
            outcome, status, _ = self._attempt(settings, body, idempotency_key)
            if _is_replay_refusal(outcome):
                # Not a refusal of the operation: whether it was applied is unknown.
                outcome = WalletOutcomeUnknown("the wallet refused our signature as replayed")
        if isinstance(outcome, WalletOutcomeUnknown):
            outcome = WalletOutcomeUnknown(_safe_reason(outcome.reason, settings.secret))
        elapsed = time.monotonic() - started
        self._log(call_type, idempotency_key, outcome, status, round(elapsed * 1000))
        record_wallet_call(call_type, _outcome_kind(outcome), elapsed)  # never raises
        return outcome, status

    def _attempt(
        self, settings: WalletSettings, body: bytes, idempotency_key: str | None
    ) -> tuple[WalletOutcome, int | None, int]:
        """One signed exchange: its outcome, HTTP status and the second it was signed."""
        timeouts = self._timeouts(settings)
        signed_at = int(self._clock())
        try:
            path = urlsplit(settings.url).path or "/"
        except ValueError:
            return WalletOutcomeUnknown("invalid wallet URL (unparseable)"), None, signed_at
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(signed_headers(settings.secret, signed_at, "POST", path, body))
        try:
            return (*self._exchange(settings.url, body, headers, timeouts), signed_at)
        except _TRANSPORT_ERRORS as exc:
            return WalletOutcomeUnknown(_describe_failure(exc, timeouts)), None, signed_at

    def _exchange(
        self, url: str, body: bytes, headers: dict[str, str], timeouts: tuple[float, float]
    ) -> tuple[WalletOutcome, int]:
        # stream=True so that the body can be read with a size cap; the ``with`` returns
        # the connection to the pool once the body has been read completely.
        with self._session.post(
            url,
            data=body,
            headers=headers,
            timeout=timeouts,
            allow_redirects=False,
            stream=True,
        ) as response:
            status = response.status_code
            try:
                content = _read_capped(response, MAX_RESPONSE_BYTES)
            except _ResponseTooLarge:
                return (
                    WalletOutcomeUnknown(
                        f"HTTP {status}, response larger than {MAX_RESPONSE_BYTES} bytes"
                    ),
                    status,
                )
            except _TRANSPORT_ERRORS as exc:
                reason = f"HTTP {status}, then {_describe_failure(exc, timeouts)}"
                return WalletOutcomeUnknown(reason), status
            return classify(status, content), status

    @staticmethod
    def _log(
        call_type: str,
        idempotency_key: str | None,
        outcome: WalletOutcome,
        status: int | None,
        latency_ms: int,
    ) -> None:
        kind = _outcome_kind(outcome)
        code: str | None = None
        reason: str | None = None
        detail = ""
        if isinstance(outcome, WalletRefusal):
            code = outcome.code
            detail = f" code={code}"
        elif isinstance(outcome, WalletOutcomeUnknown):
            reason = outcome.reason
            detail = f" reason={reason!r}"
        # The extra is the line's fields (config/logging.py), named like the access line's:
        # the same ``idempotencyKey`` finds a request and the wallet calls made for it.
        logger.info(
            "wallet call type=%s key=%s outcome=%s status=%s latency_ms=%d%s",
            call_type,
            idempotency_key if idempotency_key is not None else "-",
            kind,
            status if status is not None else "-",
            latency_ms,
            detail,
            extra={
                "callType": call_type,
                "idempotencyKey": idempotency_key,
                "walletOutcome": kind,
                "walletStatus": status,
                "walletCode": code,
                "reason": reason,
                "latencyMs": latency_ms,
            },
        )


# The code a wallet answers a signature it has already seen with (docs/reference-wallet.md).
SIGNATURE_REPLAYED = "SIGNATURE_REPLAYED"


def _is_replay_refusal(outcome: WalletOutcome) -> bool:
    return isinstance(outcome, WalletRefusal) and outcome.code == SIGNATURE_REPLAYED


def _read_capped(response: requests.Response | _PooledResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise _ResponseTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _describe_failure(exc: BaseException, timeouts: tuple[float, float]) -> str:
    """A short reason an on-call engineer can act on, without URLs or object reprs."""
    # requests' exceptions (``Session.post``) and urllib3's (``_WalletPools``) alike.
    connect_timeout, read_timeout = timeouts
    if isinstance(exc, requests.ConnectTimeout) or (
        # urllib3 makes a refused connection a kind of connect timeout; it is not one.
        isinstance(exc, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(exc, urllib3.exceptions.NewConnectionError)
    ):
        return f"connect timeout after {connect_timeout}s"
    if isinstance(exc, requests.ReadTimeout) or _caused_by(
        exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)
    ):
        # A timeout while streaming the body surfaces as a ConnectionError wrapping
        # urllib3's ReadTimeoutError; it is the same read timeout.
        return f"read timeout after {read_timeout}s"
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return f"TLS error: {_root_cause_text(exc)}"
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.InvalidSchema
        | requests.exceptions.MissingSchema
        | requests.exceptions.URLRequired,
    ):
        return f"invalid wallet URL ({type(exc).__name__})"
    if isinstance(exc, urllib3.exceptions.LocationValueError):
        return "invalid wallet URL (InvalidURL)"
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | urllib3.exceptions.HTTPError  # the rest of urllib3's, as requests would wrap them
        | http.client.HTTPException
        | OSError,
    ):
        return f"connection error: {_root_cause_text(exc)}"
    return f"request failed: {type(exc).__name__}: {_root_cause_text(exc)}"


def _causes(exc: BaseException) -> list[BaseException]:
    linked: list[BaseException] = []
    reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError
    if isinstance(reason, BaseException):
        linked.append(reason)
    if exc.__cause__ is not None:
        linked.append(exc.__cause__)
    linked.extend(arg for arg in reversed(exc.args) if isinstance(arg, BaseException))
    if exc.__context__ is not None and not exc.__suppress_context__:
        linked.append(exc.__context__)
    return linked


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps, outermost first, following the first link each time."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 12:
        seen.add(id(current))
        chain.append(current)
        links = [link for link in _causes(current) if id(link) not in seen]
        current = links[0] if links else None
    return chain


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(link, kinds) for link in _chain(exc))


def _root_cause_text(exc: BaseException) -> str:
    root = _chain(exc)[-1]
    if isinstance(root, OSError) and root.strerror:
        text = root.strerror
    else:
        text = str(root) or type(root).__name__
    return text


def _safe_reason(reason: str, secret: str) -> str:
    # Nothing above should ever carry the secret (only its signature is sent, and reasons
    # are built from status codes and socket errors), but a reason ends up in logs, the
    # ledger and dashboards, so make sure of it. A secret this short would only mangle
    # ordinary words, and is no secret anyway.
    if len(secret) >= _MIN_REDACTED_SECRET_CHARS:
        reason = reason.replace(secret, "[redacted]")
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 3] + "..."
    return reason
