"""The SDK's transport without a network: signing, the same bytes on every attempt,
what is retried and for how long, typed results and paging.

A scripted ``requests`` transport adapter stands in for the network (the e2e tests in
tests/e2e/test_client.py run the same client against the real app over real HTTP).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from lootbox.client import (
    USER_AGENT,
    BusinessRuleError,
    CancelResult,
    Fairness,
    IdempotencyKeyInUseError,
    LootboxClient,
    NotFoundError,
    ReelPick,
    RetryPolicy,
    RevealedSeed,
    SeedRotation,
    Seeds,
    TransportError,
    UnavailableError,
    UnexpectedResponseError,
    ValidationError,
    WalletRefusedError,
)
from lootbox.signing import signature_matches

BASE = "https://lootbox.example"
KEY_ID = "lk_test"
SECRET = "s3cret"

CASHOUT_OK = {
    "item": {
        "inventoryItemId": 88,
        "state": "cashed_back",
        "cashbackMinor": 353,
        "currency": "USD",
    },
    "balanceAfterMinor": 11820,
}


def error_body(code: str, message: str = "m") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a document (sent as JSON) or bytes (sent as is)
    headers: dict[str, str] = field(default_factory=dict)


Step = Reply | Exception


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next step of the script; records what was sent."""

    def __init__(self, *steps: Step) -> None:
        super().__init__()
        self.steps = list(steps)
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []
        self.closed = False
        self.lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self.lock:
            self.sent.append(request)
            self.timeouts.append(kwargs.get("timeout"))
            step = self.steps.pop(0) if self.steps else Reply(500, b"script exhausted")
        if isinstance(step, Exception):
            raise step
        response = requests.Response()
        response.status_code = step.status
        body = step.body
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.headers = CaseInsensitiveDict(
            {"X-Request-Id": f"srv-{len(self.sent)}", **step.headers}
        )
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        self.closed = True


@dataclass
class Clock:
    """A monotonic clock that sleeping advances: deadlines without waiting."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def make_client(
    adapter: ScriptedAdapter,
    clock: Clock | None = None,
    *,
    retry: RetryPolicy | None = None,
    draw: float = 0.5,
    base: str = BASE,
    unix: Callable[[], float] | None = None,
    **kwargs: Any,
) -> LootboxClient:
    clock = clock or Clock()
    return LootboxClient(
        base,
        KEY_ID,
        SECRET,
        retry=retry or RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0, deadline=60),
        adapter=adapter,
        sleep=clock.sleep,
        random=lambda: draw,
        monotonic=clock.monotonic,
        clock=unix or (lambda: 1_800_000_000.0),
        **kwargs,
    )


def signed_correctly(request: requests.PreparedRequest, path: str) -> bool:
    body = request.body or b""
    assert isinstance(body, bytes)
    return signature_matches(
        SECRET,
        request.headers["X-Timestamp"],
        request.method or "",
        path,
        body,
        request.headers["X-Signature"],
    )


# --- signing and the request ------------------------------------------------------------------


def test_a_cashout_is_signed_over_its_exact_bytes_with_the_default_key() -> None:
    adapter = ScriptedAdapter(Reply(200, CASHOUT_OK, {"Idempotent-Replayed": "true"}))

    result = make_client(adapter).cashout("u_8431", 88, "USD")

    (sent,) = adapter.sent
    assert sent.method == "POST" and sent.url == f"{BASE}/api/s2s/cashout"
    assert json.loads(sent.body or b"") == {
        "playerExternalId": "u_8431",
        "inventoryItemId": 88,
        "idempotencyKey": "cashback:inventory:88",
        "currency": "USD",
    }
    assert sent.headers["X-Key-Id"] == KEY_ID
    assert sent.headers["X-Timestamp"] == "1800000000"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert signed_correctly(sent, "/api/s2s/cashout")
    assert (result.inventory_item_id, result.cashback_minor, result.currency) == (88, 353, "USD")
    assert result.balance_after_minor == 11820
    assert result.raw == CASHOUT_OK
    assert (result.request_id, result.replayed) == ("srv-1", True)


def test_the_documented_default_keys_are_sent_explicitly() -> None:
    round_ok = {"round": {"publicId": "r_1", "status": "refunded", "refundedMinor": 5,
                          "currency": "EUR"}, "balanceAfterMinor": None}  # fmt: skip
    adapter = ScriptedAdapter(Reply(200, round_ok), Reply(404, error_body("ROUND_NOT_FOUND")))
    client = make_client(adapter)

    cancelled = client.cancel("u_1", "r_1")
    with pytest.raises(NotFoundError):
        client.open("u_1", "r_1")

    bodies = [json.loads(sent.body or b"") for sent in adapter.sent]
    assert bodies[0]["idempotencyKey"] == "refund:round:r_1"
    assert bodies[1]["idempotencyKey"] == "open:round:r_1"
    assert cancelled == CancelResult("r_1", "refunded", 5, "EUR", None, raw={})
    assert not cancelled.replayed


def test_a_callers_key_replaces_the_default() -> None:
    adapter = ScriptedAdapter(Reply(200, CASHOUT_OK))

    make_client(adapter).cashout("u_8431", 88, idempotency_key="my-key-1")

    body = json.loads(adapter.sent[0].body or b"")
    assert body["idempotencyKey"] == "my-key-1" and "currency" not in body


def test_a_get_signs_the_path_without_the_query_and_an_empty_body() -> None:
    adapter = ScriptedAdapter(Reply(200, page_of([])))

    make_client(adapter).inventory("u 1/ü", state="all", limit=5, cursor="c+/=")

    (sent,) = adapter.sent
    assert sent.method == "GET" and not sent.body
    assert "Content-Type" not in sent.headers
    url = urlsplit(sent.url or "")
    assert url.path == "/api/s2s/inventory"
    assert parse_qs(url.query) == {
        "playerExternalId": ["u 1/ü"],
        "state": ["all"],
        "limit": ["5"],
        "cursor": ["c+/="],
    }
    assert signed_correctly(sent, "/api/s2s/inventory")


def test_a_base_url_behind_a_path_prefix_signs_the_full_path() -> None:
    adapter = ScriptedAdapter(Reply(200, {"status": "ok"}))

    make_client(adapter, base="https://gw.example/lootbox/").health()

    (sent,) = adapter.sent
    assert sent.url == "https://gw.example/lootbox/api/s2s/health"
    assert signed_correctly(sent, "/lootbox/api/s2s/health")


def test_purchase_accepts_reel_picks_mappings_and_bare_box_versions() -> None:
    adapter = ScriptedAdapter(Reply(400, error_body("VALIDATION_ERROR")), Reply(400, b""))
    client = make_client(adapter)

    with pytest.raises(ValidationError):
        client.purchase("u_1", "act-1", [ReelPick(2, 7), {"reelIndex": 0, "boxVersionId": 8}])
    with pytest.raises(ValidationError):
        client.purchase("u_1", "act-2", [7, 8], mode="prepay", currency="USD")

    first, second = (json.loads(sent.body or b"") for sent in adapter.sent)
    assert first == {
        "playerExternalId": "u_1",
        "gameKey": "mystery_box",
        "mode": "open",
        "clientActionId": "act-1",
        "reels": [{"reelIndex": 2, "boxVersionId": 7}, {"reelIndex": 0, "boxVersionId": 8}],
    }
    assert second["reels"] == [
        {"reelIndex": 0, "boxVersionId": 7},
        {"reelIndex": 1, "boxVersionId": 8},
    ]
    assert (second["mode"], second["currency"]) == ("prepay", "USD")
    with pytest.raises(TypeError):
        client.purchase("u_1", "act-3", ["7"])  # type: ignore[list-item]


# --- retries ----------------------------------------------------------------------------------


def test_503s_are_retried_with_the_same_bytes_and_fresh_signatures() -> None:
    ticks = iter(range(1_800_000_000, 1_800_000_100, 7))
    adapter = ScriptedAdapter(
        Reply(503, error_body("WALLET_UNAVAILABLE")),
        Reply(503, error_body("SERVICE_UNAVAILABLE")),
        Reply(200, CASHOUT_OK),
    )
    clock = Clock()

    result = make_client(adapter, clock, unix=lambda: float(next(ticks))).cashout("u_8431", 88)

    assert result.cashback_minor == 353 and result.request_id == "srv-3"
    assert clock.sleeps == [0.5, 1.0]  # draw 0.5 × ceilings 1, 2
    bodies = {sent.body for sent in adapter.sent}
    assert len(bodies) == 1, "every attempt sends the very same bytes"
    timestamps = [sent.headers["X-Timestamp"] for sent in adapter.sent]
    assert timestamps == ["1800000000", "1800000007", "1800000014"]
    assert all(signed_correctly(sent, "/api/s2s/cashout") for sent in adapter.sent)
    request_ids = {sent.headers["X-Request-Id"] for sent in adapter.sent}
    assert len(request_ids) == 3, "each attempt is its own request"


def test_in_use_is_retried_no_sooner_than_retry_after() -> None:
    adapter = ScriptedAdapter(
        Reply(409, error_body("IDEMPOTENCY_KEY_IN_USE"), {"Retry-After": "3"}),
        Reply(200, CASHOUT_OK, {"Idempotent-Replayed": "true"}),
    )
    clock = Clock()

    result = make_client(adapter, clock).cashout("u_8431", 88)

    assert clock.sleeps == [3.0] and result.replayed


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("connection refused"),
        requests.ConnectTimeout("connect timeout"),
        requests.ReadTimeout("read timeout"),
        requests.exceptions.ChunkedEncodingError("connection broken"),
    ],
    ids=type,
)
def test_network_errors_are_retried(exc: Exception) -> None:
    adapter = ScriptedAdapter(exc, Reply(200, CASHOUT_OK))
    clock = Clock()

    assert make_client(adapter, clock).cashout("u_8431", 88).state == "cashed_back"
    assert clock.sleeps == [0.5]
    assert adapter.sent[0].body == adapter.sent[1].body


@pytest.mark.parametrize(
    "reply,expected",
    [
        (Reply(400, error_body("VALIDATION_ERROR")), ValidationError),
        (Reply(404, error_body("INVENTORY_ITEM_NOT_FOUND")), NotFoundError),
        (Reply(422, error_body("CASHBACK_NOT_AVAILABLE")), BusinessRuleError),
        (Reply(422, error_body("INSUFFICIENT_FUNDS")), WalletRefusedError),
        (Reply(429, error_body("TOO_MANY_REQUESTS"), {"Retry-After": "1"}), Exception),
        (Reply(500, error_body("INTERNAL_ERROR")), Exception),
    ],
)
def test_other_errors_are_raised_at_once(reply: Reply, expected: type[Exception]) -> None:
    adapter = ScriptedAdapter(reply, Reply(200, CASHOUT_OK))
    clock = Clock()

    with pytest.raises(expected) as caught:
        make_client(adapter, clock).cashout("u_8431", 88)

    assert len(adapter.sent) == 1 and clock.sleeps == []
    assert getattr(caught.value, "attempts", None) == 1


def test_when_the_attempts_run_out_the_last_answer_is_raised() -> None:
    adapter = ScriptedAdapter(*[Reply(503, error_body("WALLET_UNAVAILABLE"))] * 5)
    clock = Clock()

    with pytest.raises(UnavailableError) as caught:
        make_client(adapter, clock).cashout("u_8431", 88)

    assert caught.value.attempts == 4 and caught.value.request_id == "srv-4"
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_when_the_attempts_run_out_on_the_network_a_transport_error_keeps_the_cause() -> None:
    last = requests.ConnectionError("reset by peer")
    adapter = ScriptedAdapter(requests.ConnectionError("refused"), requests.ReadTimeout(), last)
    clock = Clock()

    with pytest.raises(TransportError) as caught:
        make_client(adapter, clock, retry=RetryPolicy(max_attempts=3)).cashout("u_8431", 88)

    error = caught.value
    assert error.cause is last and error.__cause__ is last and error.attempts == 3
    assert error.request_id == adapter.sent[-1].headers["X-Request-Id"]


def test_a_tls_failure_is_not_retried() -> None:
    adapter = ScriptedAdapter(requests.exceptions.SSLError("bad certificate"))
    clock = Clock()

    with pytest.raises(TransportError) as caught:
        make_client(adapter, clock).health()

    assert caught.value.attempts == 1 and clock.sleeps == []


def test_the_deadline_stops_retrying_before_a_sleep_would_cross_it() -> None:
    adapter = ScriptedAdapter(*[Reply(503, error_body("WALLET_UNAVAILABLE"))] * 10)
    clock = Clock()
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=100.0, deadline=6.0)

    with pytest.raises(UnavailableError) as caught:
        make_client(adapter, clock, retry=policy, draw=0.999).cashout("u_8431", 88)

    # Sleeps ~1 and ~2 (3 s in all); the next, ~4, would end past 6 s.
    assert len(clock.sleeps) == 2 and caught.value.attempts == 3


def test_a_retry_after_beyond_the_deadline_is_raised_not_waited_for() -> None:
    adapter = ScriptedAdapter(
        Reply(409, error_body("IDEMPOTENCY_KEY_IN_USE"), {"Retry-After": "120"})
    )
    clock = Clock()

    with pytest.raises(IdempotencyKeyInUseError) as caught:
        make_client(adapter, clock).cashout("u_8431", 88)

    assert caught.value.retry_after == 120.0 and clock.sleeps == []


def test_each_attempt_is_bounded_by_the_time_left() -> None:
    adapter = ScriptedAdapter(requests.ReadTimeout(), Reply(200, {"status": "ok"}))
    client = make_client(
        adapter,
        retry=RetryPolicy(base_delay=1.0, deadline=5.0),
        draw=1.0,
        connect_timeout=2.0,
        read_timeout=10.0,
    )

    client.health()

    assert adapter.timeouts == [(2.0, 5.0), (2.0, 4.0)]


# --- answers that are not the contract ------------------------------------------------------------


def test_a_2xx_that_is_not_json_is_an_unexpected_response_not_a_decode_error() -> None:
    adapter = ScriptedAdapter(Reply(200, b"<html>welcome to the captive portal</html>"))

    with pytest.raises(UnexpectedResponseError) as caught:
        make_client(adapter).cashout("u_8431", 88)

    assert caught.value.status == 200 and caught.value.request_id == "srv-1"


def test_a_2xx_missing_a_field_is_an_unexpected_response() -> None:
    adapter = ScriptedAdapter(Reply(200, {"item": {"inventoryItemId": 88}}))

    with pytest.raises(UnexpectedResponseError, match="state"):
        make_client(adapter).cashout("u_8431", 88)


def test_an_html_error_page_is_a_typed_error() -> None:
    adapter = ScriptedAdapter(Reply(404, b"<!doctype html><h1>Not Found</h1>"))

    with pytest.raises(NotFoundError) as caught:
        make_client(adapter).cashout("u_8431", 88)

    assert caught.value.code == "NOT_FOUND" and caught.value.body.startswith(b"<!doctype")


# --- reads and paging -----------------------------------------------------------------------------


def page_of(items: list[Any], next_: str | None = None, prev: str | None = None) -> Any:
    return {"items": items, "cursor": {"next": next_, "prev": prev}}


def inventory_item(n: int) -> dict[str, Any]:
    return {
        "id": n,
        "itemId": 906,
        "name": "Golden Sword",
        "type": "physical",
        "imageUrl": None,
        "valueMinor": 400,
        "currency": "EUR",
        "state": "unresolved",
        "cashbackMinor": 320 if n % 2 else None,
        "shippable": True,
        "wonAtRoundPublicId": f"r_{n}",
        "createdAt": "2026-11-21T10:00:00.123456Z",
        "reelIndex": 0,
        "boxVersionId": 3,
        "updatedAt": "2026-11-21T10:00:01Z",
        "somethingNew": True,
    }


def history_entry(n: int) -> dict[str, Any]:
    return {
        "id": f"txn_mm_{n}",
        "type": "cashback",
        "roundPublicId": None,
        "inventoryItemId": 88,
        "amountMinor": 353,
        "payoutMinor": None,
        "currency": "USD",
        "status": "completed",
        "idempotencyKey": "cashback:inventory:88",
        "providerTxnRef": None,
        "occurredAt": "2026-11-21T10:00:00.123456Z",
        "completedAt": None,
        "playerExternalId": "u_1",
        "operatorAmountMinor": 320,
        "operatorCurrency": "EUR",
        "rate": "1.1042",
        "refusalCode": None,
    }


def test_iter_inventory_follows_the_next_cursor_until_null() -> None:
    adapter = ScriptedAdapter(
        Reply(200, page_of([inventory_item(1), inventory_item(2)], "c1")),
        Reply(200, page_of([inventory_item(3)], "c2", prev="p2")),
        Reply(200, page_of([], prev="p3")),
    )

    items = list(make_client(adapter).iter_inventory("u_1", state="all", page_size=2))

    assert [item.id for item in items] == [1, 2, 3]
    assert items[0].cashback_minor == 320 and items[1].cashback_minor is None
    assert items[0].created_at == datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    assert (items[0].type, items[0].image_url, items[0].shippable) == ("physical", None, True)
    assert items[0].won_at_round_public_id == "r_1"
    assert items[0].raw["somethingNew"] is True
    cursors = [parse_qs(urlsplit(sent.url or "").query).get("cursor") for sent in adapter.sent]
    assert cursors == [None, ["c1"], ["c2"]]
    assert all(parse_qs(urlsplit(sent.url or "").query)["limit"] == ["2"] for sent in adapter.sent)


def test_a_page_carries_both_cursors_and_several_states_go_as_one_list() -> None:
    adapter = ScriptedAdapter(Reply(200, page_of([inventory_item(2)], "n1", prev="p1")))

    page = make_client(adapter).inventory("u_1", state=["unresolved", "cashed_back"])

    assert (page.cursor.next, page.cursor.prev) == ("n1", "p1")
    query = parse_qs(urlsplit(adapter.sent[0].url or "").query)
    assert query["state"] == ["unresolved,cashed_back"]


def test_our_additions_are_optional_so_a_documented_answer_reads_too() -> None:
    documented = {
        k: v
        for k, v in inventory_item(1).items()
        if k not in {"reelIndex", "boxVersionId", "updatedAt"}
    }
    row = {
        k: v
        for k, v in history_entry(1).items()
        if k in {"id", "type", "amountMinor", "currency", "status", "occurredAt"}
    }
    adapter = ScriptedAdapter(Reply(200, page_of([documented])), Reply(200, page_of([row])))
    client = make_client(adapter)

    (item,) = client.inventory("u_1").items
    (entry,) = client.history().items

    assert (item.reel_index, item.box_version_id, item.updated_at) == (None, None, None)
    assert (entry.payout_minor, entry.rate, entry.player_external_id) == (None, None, None)


@pytest.mark.parametrize(
    "broken",
    [
        {"items": []},  # no cursor
        {"items": [], "nextCursor": None},  # the envelope of earlier versions
        {"items": [], "cursor": {"next": 7, "prev": None}},
        page_of([{**inventory_item(1), "shippable": "yes"}]),
        page_of([{k: v for k, v in inventory_item(1).items() if k != "wonAtRoundPublicId"}]),
    ],
)
def test_a_page_without_the_documented_shape_is_an_unexpected_response(broken: Any) -> None:
    with pytest.raises(UnexpectedResponseError):
        make_client(ScriptedAdapter(Reply(200, broken))).inventory("u_1")


def test_iterators_are_lazy() -> None:
    adapter = ScriptedAdapter(
        Reply(200, page_of([inventory_item(1)], "c1")),
        Reply(200, page_of([inventory_item(2)])),
    )

    items = make_client(adapter).iter_inventory("u_1")
    assert adapter.sent == []
    assert next(items).id == 1
    assert len(adapter.sent) == 1


def test_a_cursor_that_does_not_move_stops_the_iterator() -> None:
    adapter = ScriptedAdapter(
        Reply(200, page_of([inventory_item(1)], "same")),
        Reply(200, page_of([inventory_item(1)], "same")),
    )

    with pytest.raises(UnexpectedResponseError, match="loop"):
        list(make_client(adapter).iter_inventory("u_1"))


def test_history_sends_its_filters_and_types_the_rows() -> None:
    adapter = ScriptedAdapter(
        Reply(200, page_of([history_entry(2)], "h1")),
        Reply(200, page_of([history_entry(1)], prev="h0")),
    )
    cet = timezone(timedelta(hours=1))

    entries = list(
        make_client(adapter).iter_history(
            "u_1",
            types=["cashback", "refund"],
            from_=datetime(2026, 11, 1, 1, 0, tzinfo=cet),
            to="2026-11-30T23:59:59Z",
            page_size=1,
        )
    )

    first_query = parse_qs(urlsplit(adapter.sent[0].url or "").query)
    assert first_query == {
        "playerExternalId": ["u_1"],
        "types": ["cashback,refund"],
        "from": ["2026-11-01T00:00:00Z"],
        "to": ["2026-11-30T23:59:59Z"],
        "limit": ["1"],
    }
    assert parse_qs(urlsplit(adapter.sent[1].url or "").query)["types"] == ["cashback,refund"]
    assert [entry.id for entry in entries] == ["txn_mm_2", "txn_mm_1"]
    assert entries[0].rate == Decimal("1.1042") and entries[0].amount_minor == 353
    assert (entries[0].status, entries[0].inventory_item_id) == ("completed", 88)
    assert entries[0].completed_at is None


def test_history_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_client(ScriptedAdapter()).history(from_=datetime(2026, 1, 1))


def test_a_number_where_a_decimal_string_belongs_is_an_unexpected_response() -> None:
    entry = {**history_entry(1), "rate": 1.1042}
    adapter = ScriptedAdapter(Reply(200, page_of([entry])))

    with pytest.raises(UnexpectedResponseError, match="rate"):
        make_client(adapter).history()


# --- catalog ----------------------------------------------------------------------------------

BOX_SUMMARY = {
    "boxId": 42,
    "name": "Dragon Box",
    "slug": "dragon-box",
    "isActive": True,
    "isPublished": True,
    "versionNumber": 7,
    "boxVersionId": 1201,
    "priceMinor": 500,
    "currency": "EUR",
    "houseEdgeBps": 600,
    "image": None,
    "customAttributes": {},
}
PAGINATION = {"page": 2, "perPage": 1, "total": 3, "lastPage": 3}
# Odds written as the catalog holds them: as floats, 0.1 + 0.2 is 0.30000000000000004.
BOX_DETAIL = b"""{"box": {"boxId": 42, "boxVersionId": 1201, "name": "Dragon Box",
 "priceMinor": 500, "currency": "EUR", "houseEdgeBps": 600,
 "snapshotUrl": "/fairness/box-version/1201/snapshot", "customAttributes": {"tier": "gold"},
 "prizes": [
  {"itemId": 906, "name": "Golden Sword", "type": "physical", "valueMinor": 320,
   "currency": "EUR", "imageUrl": null, "odds": 0.1},
  {"itemId": 907, "name": "Spins", "type": "bonus", "valueMinor": 50,
   "currency": "EUR", "imageUrl": "https://cdn.example/s.png", "odds": 0.2},
  {"itemId": 908, "name": "Sticker", "type": "digital", "valueMinor": 1,
   "currency": "EUR", "imageUrl": null, "odds": 0.7}]}}"""


def test_list_boxes_sends_the_documented_query() -> None:
    adapter = ScriptedAdapter(Reply(200, {"boxes": [BOX_SUMMARY], "pagination": PAGINATION}))

    listed = make_client(adapter).list_boxes(
        page=2,
        per_page=1,
        ids=[42, 43],
        name=["Dragon Box", "Tiger Box"],
        slug="dragon-box",
        is_active=[True, False],
        sort="-price",
        currency="USD",
    )

    (sent,) = adapter.sent
    url = urlsplit(sent.url or "")
    assert url.path == "/api/s2s/boxes"
    assert parse_qs(url.query) == {
        "page": ["2"],
        "perPage": ["1"],
        "ids": ["42,43"],
        "filter[name]": ["Dragon Box,Tiger Box"],
        "filter[slug]": ["dragon-box"],
        "filter[isActive]": ["true,false"],
        "sort": ["-price"],
        "currency": ["USD"],
    }
    assert signed_correctly(sent, "/api/s2s/boxes")
    (box,) = listed.boxes
    assert (box.box_id, box.box_version_id, box.price_minor, box.house_edge_bps) == (
        42,
        1201,
        500,
        600,
    )
    assert (listed.pagination.page, listed.pagination.last_page) == (2, 3)


def test_get_box_reads_the_odds_exactly_as_written() -> None:
    adapter = ScriptedAdapter(Reply(200, BOX_DETAIL))

    box = make_client(adapter).get_box(42, currency="EUR")

    assert urlsplit(adapter.sent[0].url or "").path == "/api/s2s/boxes/42"
    assert signed_correctly(adapter.sent[0], "/api/s2s/boxes/42")
    assert [str(p.odds) for p in box.prizes] == ["0.1", "0.2", "0.7"]
    assert all(type(p.odds) is Decimal for p in box.prizes)
    assert box.prizes[0].odds + box.prizes[1].odds == Decimal("0.3")
    assert sum(p.odds for p in box.prizes) == 1
    assert box.custom_attributes == {"tier": "gold"}
    assert (box.prizes[1].type, box.prizes[1].image_url) == ("bonus", "https://cdn.example/s.png")


def test_get_box_version_reads_the_live_version() -> None:
    version = {
        "boxId": 42,
        "boxVersionId": 1201,
        "versionNumber": 7,
        "priceMinor": 542,
        "currency": "USD",
    }
    adapter = ScriptedAdapter(Reply(200, version))

    live = make_client(adapter).get_box_version(42, currency="USD")

    (sent,) = adapter.sent
    assert urlsplit(sent.url or "").path == "/api/s2s/boxes/42/version"
    assert parse_qs(urlsplit(sent.url or "").query) == {"currency": ["USD"]}
    assert (live.box_version_id, live.version_number, live.price_minor) == (1201, 7, 542)


@pytest.mark.parametrize("box_id", ["42/../../health", 4.2, True])
def test_a_box_id_is_an_integer_never_a_path(box_id: Any) -> None:
    adapter = ScriptedAdapter()

    with pytest.raises(TypeError):
        make_client(adapter).get_box(box_id)
    assert adapter.sent == []


def test_odds_that_are_not_a_number_are_an_unexpected_response() -> None:
    broken = BOX_DETAIL.replace(b'"odds": 0.1', b'"odds": "0.1"')

    with pytest.raises(UnexpectedResponseError, match="odds"):
        make_client(ScriptedAdapter(Reply(200, broken))).get_box(42)


# --- provably fair draws ----------------------------------------------------------------------

HASH_A = "a" * 64
HASH_B = "b" * 64
SEEDS = {
    "serverSeedHash": HASH_A,
    "clientSeed": "a1b2c3d4e5f60718",
    "nextNonce": 12,
    "algorithmKey": "hmac_sha256_v1",
}
ROTATION = {
    "revealed": {
        "serverSeed": "3c" * 32,
        "serverSeedHash": HASH_A,
        "clientSeed": "a1b2c3d4e5f60718",
        "lastNonce": 11,
    },
    "current": {
        "serverSeedHash": HASH_B,
        "clientSeed": "my-lucky-seed",
        "nextNonce": 0,
        "algorithmKey": "hmac_sha256_v1",
    },
}


def round_answer(fairness: Any, *, with_fairness: bool = True) -> dict[str, Any]:
    round_ = {
        "publicId": "r_1",
        "status": "settled",
        "mode": "open",
        "betMinor": 500,
        "payoutMinor": 400,
        "currency": "EUR",
        "createdAt": "2026-11-21T10:00:00.123456Z",
        "reels": [
            {
                "reelIndex": 0,
                "boxVersionId": 1201,
                "priceMinor": 500,
                "prize": {"itemId": 907, "name": "Shield", "valueMinor": 400, "currency": "EUR"},
            }
        ],
    }
    if with_fairness:
        round_["fairness"] = fairness
    return {"round": round_, "wonItems": [], "balanceAfterMinor": 99500}


def test_get_fairness_signs_a_get_with_the_player_in_the_query() -> None:
    adapter = ScriptedAdapter(Reply(200, SEEDS))

    seeds = make_client(adapter).get_fairness("u 8431/ü")

    (sent,) = adapter.sent
    url = urlsplit(sent.url or "")
    assert sent.method == "GET" and url.path == "/api/s2s/fairness" and not sent.body
    assert parse_qs(url.query) == {"playerExternalId": ["u 8431/ü"]}
    assert signed_correctly(sent, "/api/s2s/fairness")
    assert seeds == Seeds(HASH_A, "a1b2c3d4e5f60718", 12, "hmac_sha256_v1")
    assert seeds.raw == SEEDS and seeds.request_id == "srv-1"


def test_rotate_seeds_names_the_pair_and_sends_a_client_seed_only_when_given() -> None:
    adapter = ScriptedAdapter(Reply(200, ROTATION), Reply(200, ROTATION))
    client = make_client(adapter)

    rotation = client.rotate_seeds("u_8431", HASH_A, "my-lucky-seed")
    client.rotate_seeds("u_8431", HASH_A)

    first, second = adapter.sent
    assert first.method == "POST" and first.url == f"{BASE}/api/s2s/fairness/rotate"
    assert signed_correctly(first, "/api/s2s/fairness/rotate")
    assert json.loads(first.body or b"") == {
        "playerExternalId": "u_8431",
        "serverSeedHash": HASH_A,
        "clientSeed": "my-lucky-seed",
    }
    assert json.loads(second.body or b"") == {
        "playerExternalId": "u_8431",
        "serverSeedHash": HASH_A,
    }
    assert rotation == SeedRotation(
        revealed=RevealedSeed("3c" * 32, HASH_A, "a1b2c3d4e5f60718", 11),
        current=Seeds(HASH_B, "my-lucky-seed", 0, "hmac_sha256_v1"),
        raw={},
    )
    assert rotation.raw == ROTATION and rotation.request_id == "srv-1"


def test_a_rotation_of_a_pair_that_drew_nothing_reveals_no_last_nonce() -> None:
    nothing_drawn = {
        "revealed": {**ROTATION["revealed"], "lastNonce": None},
        # The contract's answer names no algorithm for the new pair: optional.
        "current": {k: v for k, v in ROTATION["current"].items() if k != "algorithmKey"},
    }
    adapter = ScriptedAdapter(Reply(200, nothing_drawn))

    rotation = make_client(adapter).rotate_seeds("u_8431", HASH_A)

    assert rotation.revealed.last_nonce is None
    assert rotation.current.algorithm_key is None


def test_a_revealed_block_without_last_nonce_is_an_unexpected_response() -> None:
    broken = {**ROTATION, "revealed": {k: v for k, v in ROTATION["revealed"].items()
                                       if k != "lastNonce"}}  # fmt: skip

    with pytest.raises(UnexpectedResponseError, match="lastNonce"):
        make_client(ScriptedAdapter(Reply(200, broken))).rotate_seeds("u_8431", HASH_A)


def test_a_rotation_is_retried_through_outages_with_the_same_bytes() -> None:
    adapter = ScriptedAdapter(
        requests.ConnectionError("reset by peer"),
        Reply(503, error_body("SERVICE_UNAVAILABLE")),
        Reply(200, ROTATION),
    )
    clock = Clock()

    rotation = make_client(adapter, clock).rotate_seeds("u_8431", HASH_A, "my-lucky-seed")

    assert rotation.revealed.server_seed_hash == HASH_A
    assert len(clock.sleeps) == 2
    assert len({sent.body for sent in adapter.sent}) == 1, "every attempt names the same pair"
    assert all(signed_correctly(sent, "/api/s2s/fairness/rotate") for sent in adapter.sent)


@pytest.mark.parametrize(
    "reply,expected",
    [
        (Reply(404, error_body("SEED_PAIR_NOT_FOUND")), NotFoundError),
        (Reply(422, error_body("INVALID_CLIENT_SEED")), BusinessRuleError),
        (Reply(400, error_body("VALIDATION_ERROR")), ValidationError),
    ],
)
def test_rotation_errors_raise_their_family_at_once(
    reply: Reply, expected: type[Exception]
) -> None:
    adapter = ScriptedAdapter(reply, Reply(200, ROTATION))
    clock = Clock()

    with pytest.raises(expected) as caught:
        make_client(adapter, clock).rotate_seeds("u_8431", HASH_A, "seed")

    assert type(caught.value) is expected
    assert len(adapter.sent) == 1 and clock.sleeps == []


def test_a_rounds_fairness_is_typed_and_null_or_absent_is_none() -> None:
    fairness = {k: v for k, v in SEEDS.items() if k != "nextNonce"} | {"nonce": 11}
    adapter = ScriptedAdapter(
        Reply(200, round_answer(fairness)),
        Reply(200, round_answer(None)),
        Reply(200, round_answer(None, with_fairness=False)),  # a server before 0.3.0
    )
    client = make_client(adapter)

    drawn = client.purchase("u_1", "act-1", [1201])
    held = client.purchase("u_1", "act-2", [1201], mode="prepay")
    older = client.open("u_1", "r_1")

    assert drawn.round.fairness == Fairness(HASH_A, "a1b2c3d4e5f60718", 11, "hmac_sha256_v1")
    assert held.round.fairness is None and older.round.fairness is None


def test_a_malformed_fairness_block_is_an_unexpected_response() -> None:
    fairness = {k: v for k, v in SEEDS.items() if k != "nextNonce"} | {"nonce": "11"}
    adapter = ScriptedAdapter(Reply(200, round_answer(fairness)))

    with pytest.raises(UnexpectedResponseError, match="nonce"):
        make_client(adapter).purchase("u_1", "act-1", [1201])


def test_the_verifier_is_re_exported_and_verifies_the_documented_example() -> None:
    import lootbox.client
    import lootbox.fairness

    snapshot_file = Path(__file__).resolve().parents[2] / "docs/fairness-example-snapshot.json"

    draw = lootbox.client.verify_draw(
        "89fc4b4a93e8f4f3202b8ba5a74ef6b0c56cb6ac382eb0bd2e51ec916e7f8631",
        "39999971b48bbd92",
        1,
        0,
        lootbox.client.load_snapshot(str(snapshot_file)),
        expected_server_seed_hash="388ddbf83bf56c8c11f3d391f4b6ee08eaa0dd68f14e5f19a9b930d95bdd75ec",
    )

    assert lootbox.client.verify_draw is lootbox.fairness.verify_draw
    assert lootbox.client.load_snapshot is lootbox.fairness.load_snapshot
    assert (draw.item_id, draw.prize["name"]) == (907, "Silver Shield")


# --- the client itself ----------------------------------------------------------------------------


def test_threads_get_their_own_session_over_one_shared_pool() -> None:
    adapter = ScriptedAdapter(*[Reply(200, {"status": "ok"})] * 4)
    client = make_client(adapter)
    sessions: list[requests.Session] = []

    def work() -> None:
        client.health()
        sessions.append(client._session())

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    work()

    assert len({id(session) for session in sessions}) == 4
    assert all(session.get_adapter(BASE) is adapter for session in sessions)
    client.close()
    assert adapter.closed


@pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:8080", "http://h/?q=1", "http://h/#f"])
def test_a_base_url_that_is_not_an_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        LootboxClient(url, KEY_ID, SECRET)


def test_the_secret_does_not_show_in_the_repr() -> None:
    client = LootboxClient(BASE, KEY_ID, SECRET)

    assert SECRET not in repr(client) and KEY_ID in repr(client)


def test_the_sdk_imports_neither_flask_nor_sqlalchemy_nor_the_app() -> None:
    code = (
        "import sys, lootbox.client\n"
        "ours = ('lootbox.client', 'lootbox.signing', 'lootbox.fairness')\n"
        "verifier = {'lootbox.domain', 'lootbox.domain.fairness'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'flask', 'werkzeug', 'sqlalchemy', 'redis', 'marshmallow', 'schemas', 'app'}"
        " or (m.startswith('lootbox.') and not m.startswith(ours) and m not in verifier))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert result.stdout.strip() == ""
