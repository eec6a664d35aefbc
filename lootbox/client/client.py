"""``LootboxClient``: the S2S API for an operator backend, signed, retried, typed."""

from __future__ import annotations

import json
import logging
import random as _random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from http.cookiejar import DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from lootbox.client._version import __version__
from lootbox.client.errors import (
    TransportError,
    UnexpectedResponseError,
    error_from_response,
)
from lootbox.client.models import (
    BoxDetail,
    BoxList,
    BoxVersionInfo,
    CancelResult,
    CashoutResult,
    Health,
    HistoryEntry,
    HistoryPage,
    InventoryItem,
    InventoryPage,
    PageCursor,
    ReelPick,
    RoundResult,
    SeedRotation,
    Seeds,
    ShapeError,
)
from lootbox.client.retry import RetryPolicy
from lootbox.signing import signed_headers

log = logging.getLogger("lootbox.client")

API_PREFIX = "/api/s2s"
USER_AGENT = f"lootbox-python-client/{__version__} python-requests/{requests.__version__}"
HEADER_REQUEST_ID = "X-Request-Id"
HEADER_REPLAYED = "Idempotent-Replayed"

T = TypeVar("T")
ReelSpec = ReelPick | Mapping[str, int] | int

# The documented default keys. The service has the same three functions
# (lootbox.services.cashout/cancel/purchase); they are written again here, not imported,
# because the SDK must stay vendorable (stdlib, requests and lootbox/signing.py only).


def default_cashout_key(inventory_item_id: int) -> str:
    """The documented default key of a cashout: ``cashback:inventory:<id>``."""
    return f"cashback:inventory:{inventory_item_id}"


def default_cancel_key(round_public_id: str) -> str:
    """The documented default key of a cancel: ``refund:round:<publicId>``."""
    return f"refund:round:{round_public_id}"


def default_open_key(round_public_id: str) -> str:
    """The documented default key of an open: ``open:round:<publicId>``."""
    return f"open:round:{round_public_id}"


class LootboxClient:
    """A client of the LootBox S2S API for an operator backend.

    ::

        client = LootboxClient("https://lootbox.example", key_id="lk_...", secret="...")
        bought = client.purchase("u_8431", "act-1", [ReelPick(0, box_version_id)])
        cashed = client.cashout("u_8431", bought.won_items[0].inventory_item_id)

    Every request is signed (contract section 3: ``X-Key-Id``, ``X-Timestamp``,
    ``X-Signature`` over the exact body bytes and the path without the query string) with
    a fresh timestamp per attempt.

    Money calls always send an idempotency key: the documented default unless the caller
    gives one (``cashback:inventory:<id>``, ``refund:round:<publicId>``,
    ``open:round:<publicId>``; a purchase's key is its ``client_action_id``). The body is
    encoded once per call, so every retry carries the same key and the same bytes, and a
    retry never moves money twice. See ``RetryPolicy`` for what is retried and how.

    Errors raise subclasses of ``LootboxClientError`` (``lootbox.client.errors``).

    Thread safety: one client may be shared by any number of threads. Each thread gets
    its own ``requests.Session`` (requests does not promise a Session is thread-safe), and
    all of them share one connection pool (urllib3's pool is thread-safe), of at most
    ``pool_maxsize`` connections per host. ``close()`` (or ``with``) releases the pool.

    ``connect_timeout`` and ``read_timeout`` bound each attempt (seconds); the policy's
    ``deadline`` bounds a whole call, sleeps included. ``sleep``, ``random`` (a draw in
    [0, 1)), ``monotonic`` and ``clock`` (Unix seconds, for ``X-Timestamp``) can be replaced,
    for tests; ``adapter`` replaces the HTTP transport.
    """

    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        pool_maxsize: int = 10,
        user_agent: str | None = None,
        trust_env: bool = True,
        adapter: BaseAdapter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query or a fragment")
        if not key_id or not secret:
            raise ValueError("key_id and secret are required")
        self.base_url = base_url.rstrip("/")
        self._api_url = f"{self.base_url}{API_PREFIX}"
        # What the server sees as the request path, and so what is signed: the base URL's
        # own path (a reverse proxy's prefix) included.
        self._api_path = f"{parts.path.rstrip('/')}{API_PREFIX}"
        self.key_id = key_id
        self._secret = secret
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry or RetryPolicy()
        self.user_agent = user_agent or USER_AGENT
        self._trust_env = trust_env
        self._adapter = adapter or HTTPAdapter(
            pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0
        )
        self._sleep = sleep
        self._random = random
        self._monotonic = monotonic
        self._clock = clock
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"LootboxClient({self.base_url!r}, key_id={self.key_id!r})"

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections. The client must not be used afterwards."""
        self._adapter.close()

    def __enter__(self) -> LootboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- money calls -------------------------------------------------------------------------

    def purchase(
        self,
        player_external_id: str,
        client_action_id: str,
        reels: Sequence[ReelSpec],
        mode: str = "open",
        currency: str | None = None,
        game_key: str = "mystery_box",
    ) -> RoundResult:
        """Buy a box (``POST /purchase``): one wallet debit for all ``reels``.

        ``mode="open"`` draws at once (the round is ``settled`` and ``won_items`` holds the
        new items); ``mode="prepay"`` holds the box for a later ``open`` or ``cancel``.
        ``client_action_id`` (≤ 80 chars) is the idempotency key of this player action:
        reuse it to retry, never for another purchase. ``reels``: ``ReelPick``s, mappings
        ``{"reelIndex", "boxVersionId"}``, or bare box version ids (reel index = position).
        ``currency``: the player's wallet currency (default: the operator's).

        Raises ``WalletRefusedError`` (``INSUFFICIENT_FUNDS``, ``PLAYER_BLOCKED``: the round
        is voided, nothing moved), ``NotFoundError`` (``UNKNOWN_BOX``), ``ConflictError``
        (``BOX_NOT_PLAYABLE``), ``BusinessRuleError`` (``CURRENCY_NOT_SUPPORTED``), ...
        """
        body = {
            "playerExternalId": player_external_id,
            "gameKey": game_key,
            "mode": mode,
            "clientActionId": client_action_id,
            "reels": [_reel(spec, position) for position, spec in enumerate(reels)],
            "currency": currency,
        }
        return self._call(
            "POST", "/purchase", RoundResult.from_json, body, wallet_call=True, replayable=True
        )

    def open(
        self, player_external_id: str, round_public_id: str, idempotency_key: str | None = None
    ) -> RoundResult:
        """Open a held box (``POST /open``): draw, no wallet call.

        Key: ``idempotency_key`` or ``open:round:<round_public_id>``. Raises
        ``NotFoundError`` (``ROUND_NOT_FOUND``), ``ConflictError`` (``ROUND_NOT_HELD``).
        """
        body = {
            "playerExternalId": player_external_id,
            "roundPublicId": round_public_id,
            "idempotencyKey": idempotency_key or default_open_key(round_public_id),
        }
        return self._call("POST", "/open", RoundResult.from_json, body, replayable=True)

    def cashout(
        self,
        player_external_id: str,
        inventory_item_id: int,
        currency: str | None = None,
        idempotency_key: str | None = None,
    ) -> CashoutResult:
        """Cash a won, unresolved item back into the player's wallet (``POST /cashout``).

        ``currency``: the wallet currency to credit (converted at the operator's rate;
        default the operator's currency). Key: ``idempotency_key`` or
        ``cashback:inventory:<inventory_item_id>``.

        Raises ``NotFoundError`` (``INVENTORY_ITEM_NOT_FOUND``), ``BusinessRuleError``
        (``CASHBACK_NOT_AVAILABLE``: already cashed, no rule, no rate), ``WalletRefusedError``
        (the item stays unresolved), ``UnavailableError`` once retries ran out (outcome not
        known yet: retry later, same key).
        """
        body = {
            "playerExternalId": player_external_id,
            "inventoryItemId": inventory_item_id,
            "idempotencyKey": idempotency_key or default_cashout_key(inventory_item_id),
            "currency": currency,
        }
        return self._call(
            "POST", "/cashout", CashoutResult.from_json, body, wallet_call=True, replayable=True
        )

    def cancel(
        self, player_external_id: str, round_public_id: str, idempotency_key: str | None = None
    ) -> CancelResult:
        """Refund a held (pre-paid, unopened) box (``POST /cancel``).

        Key: ``idempotency_key`` or ``refund:round:<round_public_id>``. Raises
        ``NotFoundError`` (``ROUND_NOT_FOUND``), ``ConflictError`` (``ROUND_NOT_REFUNDABLE``),
        ``BusinessRuleError`` (``REFUND_NOT_ALLOWED``, 403), ``WalletRefusedError``.
        """
        body = {
            "playerExternalId": player_external_id,
            "roundPublicId": round_public_id,
            "idempotencyKey": idempotency_key or default_cancel_key(round_public_id),
        }
        return self._call(
            "POST", "/cancel", CancelResult.from_json, body, wallet_call=True, replayable=True
        )

    # --- reads ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Signed liveness (``GET /health``): proves the key, the secret and the clock."""
        return self._call("GET", "/health", Health.from_json)

    def inventory(
        self,
        player_external_id: str,
        state: Iterable[str] | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InventoryPage:
        """One page of a player's items (``GET /inventory``), newest first.

        ``state``: one or several of ``unresolved`` (the server's default),
        ``cashed_back``, ``ship_requested``, ``fulfilled``, ``expired``, or ``all``; the
        server ignores states it does not know. ``limit``: 1 to 200 (server default 50).
        ``cursor``: a page's ``cursor.next`` (the page after it) or ``cursor.prev`` (the
        page before it), with the same ``state``.
        """
        query = {
            "playerExternalId": player_external_id,
            "state": _comma(state),
            "limit": limit,
            "cursor": cursor,
        }
        return self._call("GET", "/inventory", InventoryPage.from_json, query)

    def iter_inventory(
        self,
        player_external_id: str,
        state: Iterable[str] | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[InventoryItem]:
        """Every item of the player in ``state``, newest first, page after page (lazily)."""
        state = _comma(state)
        return _follow(
            lambda cursor: self.inventory(player_external_id, state, page_size, cursor),
            lambda page: (page.items, page.cursor),
        )

    def history(
        self,
        player_external_id: str | None = None,
        types: Iterable[str] | str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> HistoryPage:
        """One page of the money ledger (``GET /history``), newest first.

        ``player_external_id``: one player (default all). ``types``: any of ``purchase``
        (pre-pays), ``open`` (atomic opens and openings of held boxes), ``refund``,
        ``cashback``. ``from_`` / ``to``: inclusive bounds, aware ``datetime``s or ISO 8601
        strings. ``limit``: up to 200. ``cursor``: a page's ``cursor.next`` or
        ``cursor.prev``, with the same filters.
        """
        query = {
            "playerExternalId": player_external_id,
            "types": _comma(types),
            "from": None if from_ is None else _iso(from_),
            "to": None if to is None else _iso(to),
            "limit": limit,
            "cursor": cursor,
        }
        return self._call("GET", "/history", HistoryPage.from_json, query)

    def iter_history(
        self,
        player_external_id: str | None = None,
        types: Iterable[str] | str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[HistoryEntry]:
        """Every ledger row matching the filters, newest first, page after page."""
        types = _comma(types)
        return _follow(
            lambda cursor: self.history(player_external_id, types, from_, to, page_size, cursor),
            lambda page: (page.items, page.cursor),
        )

    # --- catalog -------------------------------------------------------------------------

    def list_boxes(
        self,
        page: int | None = None,
        per_page: int | None = None,
        ids: Iterable[int] | None = None,
        name: Iterable[str] | str | None = None,
        slug: Iterable[str] | str | None = None,
        is_active: Iterable[bool] | bool | None = None,
        sort: str | None = None,
        currency: str | None = None,
    ) -> BoxList:
        """One page of the catalog (``GET /boxes``).

        ``page``: 1-based (default 1); ``per_page``: up to 200 (default 100). ``ids``:
        exactly these boxes, whatever their state (to detect a deactivation); without it,
        only boxes that can be bought. ``name``, ``slug``, ``is_active``: filters, each a
        value or several (any of them matches); filters combine with AND. ``sort``:
        ``name`` (default) or ``price``, ``-`` first for descending. ``currency``: prices
        converted into it (``BusinessRuleError`` ``UNSUPPORTED_CURRENCY`` if the operator
        has no rate for it).
        """
        query = {
            "page": page,
            "perPage": per_page,
            "ids": None if ids is None else ",".join(str(_box_id(i)) for i in ids),
            "filter[name]": _comma(name),
            "filter[slug]": _comma(slug),
            "filter[isActive]": _comma_bools(is_active),
            "sort": sort,
            "currency": currency,
        }
        return self._call("GET", "/boxes", BoxList.from_json, query)

    def get_box(self, box_id: int, currency: str | None = None) -> BoxDetail:
        """A box's current offer with its prize table (``GET /boxes/{boxId}``).

        Raises ``NotFoundError`` (``UNKNOWN_BOX``), ``ConflictError`` (``BOX_NOT_PLAYABLE``:
        inactive, or no current version).
        """
        path = f"/boxes/{_box_id(box_id)}"
        return self._call("GET", path, BoxDetail.from_json, {"currency": currency})

    def get_box_version(self, box_id: int, currency: str | None = None) -> BoxVersionInfo:
        """The live version of a box to buy, without its prizes
        (``GET /boxes/{boxId}/version``). Same errors as ``get_box``."""
        path = f"/boxes/{_box_id(box_id)}/version"
        return self._call("GET", path, BoxVersionInfo.from_json, {"currency": currency})

    # --- provably fair draws -------------------------------------------------------------

    def get_fairness(self, player_external_id: str) -> Seeds:
        """The player's current seed pair (``GET /fairness``), created if they have none:
        show ``server_seed_hash`` to the player before they play."""
        query = {"playerExternalId": player_external_id}
        return self._call("GET", "/fairness", Seeds.from_json, query)

    def rotate_seeds(
        self, player_external_id: str, server_seed_hash: str, client_seed: str | None = None
    ) -> SeedRotation:
        """Reveal the pair whose hash is ``server_seed_hash`` and start a new one
        (``POST /fairness/rotate``) with ``client_seed``, or the old client seed.

        With ``revealed.server_seed`` every round drawn with the pair can be checked:
        ``verify_draw(revealed.server_seed, fairness.client_seed, fairness.nonce, reel,
        load_snapshot(url))``. Naming the pair makes this safe to retry (the client
        retries it like the other calls): a pair already revealed is answered with the same
        ``revealed`` block and the pair current now.

        Raises ``NotFoundError`` (``SEED_PAIR_NOT_FOUND``: neither the player's current pair
        nor one of their revealed ones), ``BusinessRuleError`` (``INVALID_CLIENT_SEED``: not
        1 to 64 printable ASCII characters without spaces), ``ValidationError`` (a hash that
        is not 64 lowercase hex characters).
        """
        body = {
            "playerExternalId": player_external_id,
            "serverSeedHash": server_seed_hash,
            "clientSeed": client_seed,
        }
        return self._call("POST", "/fairness/rotate", SeedRotation.from_json, body)

    # --- the transport -----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = self._trust_env
            session.headers["User-Agent"] = self.user_agent
            # The API sets no cookies; a jar that accepts none keeps requests stateless.
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            session.mount("http://", self._adapter)
            session.mount("https://", self._adapter)
            self._local.session = session
        return session

    def _call(
        self,
        method: str,
        endpoint: str,
        build: Callable[..., T],
        fields: Mapping[str, Any] | None = None,
        *,
        wallet_call: bool = False,
        replayable: bool = False,
    ) -> T:
        """One API call, its 2xx answer built by ``build`` into a typed result.

        ``fields`` whose value is not ``None`` are the query of a ``GET``, or the JSON body
        of a ``POST``. The result of a ``replayable`` call (a money call, idempotent by its
        key) also says whether it was ``replayed``.
        """
        present = {name: value for name, value in (fields or {}).items() if value is not None}
        if method == "GET":
            query, data = present, None
        else:
            query, data = None, json.dumps(present, separators=(",", ":")).encode()
        response = self._send(method, endpoint, query, data, wallet_call=wallet_call)
        request_id = response.headers.get(HEADER_REQUEST_ID)
        document = _decode(response.content, response.status_code, request_id)
        try:
            if not replayable:
                return build(document, request_id)
            replayed = response.headers.get(HEADER_REPLAYED, "").lower() == "true"
            return build(document, request_id, replayed)
        except ShapeError as exc:
            raise UnexpectedResponseError(
                f"the answer does not have the documented shape: {exc}",
                status=response.status_code,
                body=response.content,
                request_id=request_id,
            ) from exc

    def _send(
        self,
        method: str,
        endpoint: str,
        query: Mapping[str, Any] | None,
        data: bytes | None,
        *,
        wallet_call: bool,
    ) -> requests.Response:
        """Send one request, retrying what the policy allows; the 2xx answer, or raise.

        ``data`` was encoded once, by the caller: every attempt sends the very same bytes
        (and so the same idempotency key), each with a new timestamp and signature.
        """
        path = f"{self._api_path}{endpoint}"
        url = f"{self._api_url}{endpoint}"
        content_type = {} if data is None else {"Content-Type": "application/json"}
        session = self._session()
        started = self._monotonic()
        attempts = 0
        while True:
            attempts += 1
            # A new X-Request-Id per attempt (sent, so that even a lost attempt can be
            # found in the service's logs). Never the same one twice: the service reads an
            # in-progress key held under the caller's own request id as that caller's
            # claim, not as a duplicate to wait for.
            request_id = uuid.uuid4().hex
            headers = {
                **signed_headers(
                    self._secret, int(self._clock()), method, path, data or b"", self.key_id
                ),
                HEADER_REQUEST_ID: request_id,
                **content_type,
            }
            try:
                response = session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=headers,
                    timeout=self._timeouts(started),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                delay = self._retry_delay(started, attempts, retryable=_is_transient(exc))
                if delay is None:
                    raise TransportError(
                        f"{method} {path}: no answer after {attempts} attempt(s): {exc}",
                        cause=exc,
                        attempts=attempts,
                        request_id=request_id,
                    ) from exc
                failure = type(exc).__name__
            else:
                if 200 <= response.status_code < 300:
                    return response
                answer_id = response.headers.get(HEADER_REQUEST_ID)
                error = error_from_response(
                    response.status_code,
                    response.content,
                    request_id=answer_id,
                    retry_after=response.headers.get("Retry-After"),
                    wallet_call=wallet_call,
                    attempts=attempts,
                )
                delay = self._retry_delay(
                    started, attempts, retryable=error.retryable, floor=error.retry_after
                )
                if delay is None:
                    raise error
                failure = f"{error.status} {error.code} (request {answer_id})"
            log.warning(
                "lootbox %s %s: %s; retry %d in %.2fs", method, path, failure, attempts, delay
            )
            self._sleep(delay)

    def _retry_delay(
        self, started: float, attempts: int, *, retryable: bool, floor: float | None = None
    ) -> float | None:
        """How long to sleep before the next attempt, or ``None`` to give up."""
        policy = self.retry
        if not retryable or attempts >= policy.max_attempts:
            return None
        delay = policy.delay(attempts, self._random(), floor)
        if policy.deadline is not None:
            elapsed = self._monotonic() - started
            if elapsed + delay >= policy.deadline:
                return None
        return delay

    def _timeouts(self, started: float) -> tuple[float, float]:
        """(connect, read) for one attempt: the configured ones, within the deadline."""
        connect, read = self.connect_timeout, self.read_timeout
        deadline = self.retry.deadline
        if deadline is not None:
            remaining = max(deadline - (self._monotonic() - started), 0.001)
            connect, read = min(connect, remaining), min(read, remaining)
        return connect, read


# --- helpers -------------------------------------------------------------------------------


def _is_transient(exc: requests.RequestException) -> bool:
    """Network trouble worth another attempt: refused, reset, dropped, timed out.

    Not TLS failures (a certificate does not fix itself) nor a malformed URL."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc,
        requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError,
    )


def _decode(content: bytes, status: int, request_id: str | None) -> Any:
    try:
        # Numbers with a fraction (odds) as written, never rounded through a float.
        return json.loads(content, parse_float=Decimal)
    except ValueError as exc:
        raise UnexpectedResponseError(
            f"HTTP {status} with a body that is not JSON",
            status=status,
            body=content,
            request_id=request_id,
        ) from exc


def _reel(spec: ReelSpec, position: int) -> dict[str, int]:
    if isinstance(spec, ReelPick):
        return {"reelIndex": spec.reel_index, "boxVersionId": spec.box_version_id}
    if isinstance(spec, Mapping):
        return {"reelIndex": spec["reelIndex"], "boxVersionId": spec["boxVersionId"]}
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {"reelIndex": position, "boxVersionId": spec}
    raise TypeError(f"a reel is a ReelPick, a mapping or a box version id, not {spec!r}")


def _comma(values: Iterable[str] | str | None) -> str | None:
    """A query list: one value, or several joined with commas."""
    if values is None or isinstance(values, str):
        return values
    return ",".join(values)


def _comma_bools(values: Iterable[bool] | bool | None) -> str | None:
    if values is None:
        return None
    flags = (values,) if isinstance(values, bool) else tuple(values)
    return ",".join("true" if flag else "false" for flag in flags)


def _box_id(value: int) -> int:
    """A box id goes into the URL path: an integer, never text that could change it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a box id is an integer, not {value!r}")
    return value


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("history bounds must be timezone-aware datetimes")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


PageT = TypeVar("PageT")


def _follow(
    fetch: Callable[[str | None], PageT],
    unpack: Callable[[PageT], tuple[Sequence[T], PageCursor]],
) -> Iterator[T]:
    """Yield every row of every page, following ``cursor.next`` until it is ``None``."""
    cursor: str | None = None
    while True:
        rows, cursors = unpack(fetch(cursor))
        next_cursor = cursors.next
        yield from rows
        if next_cursor is None:
            return
        if next_cursor == cursor:
            raise UnexpectedResponseError(
                f"the server returned the cursor it was given ({cursor!r}): paging would loop",
                status=200,
                body=b"",
                request_id=None,
            )
        cursor = next_cursor


__all__ = [
    "API_PREFIX",
    "USER_AGENT",
    "LootboxClient",
    "ReelSpec",
    "default_cancel_key",
    "default_cashout_key",
    "default_open_key",
]
