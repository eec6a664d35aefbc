"""The access log: exactly one JSON line per request, whatever answered it, with what an
on-call engineer needs (request id, operator, route, key, outcome, status, code, latency)
and nothing secret; and the other lines of a request (the wallet call, a traceback), JSON
as well. Each record is read as the app writes it out, through the handler ``create_app``
configured (config/logging.py). Through HTTP on both stacks, with the reference wallet
acting out refusals and timeouts (docs/runbook.md, "Reading the access log")."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from config.logging import HANDLER
from lootbox.api import observability
from lootbox.services.purchase import purchase_key
from lootbox.signing import HEADER_SIGNATURE, signed_headers
from tests.e2e.conftest import (
    PLAYER,
    WALLET_SECRET,
    Reply,
    World,
    WorldFactory,
)
from tests.processes import wait_until

EVERY_LINE = {"time", "level", "logger", "message"}
FIELDS = {
    "requestId",
    "operator",
    "keyId",
    "method",
    "endpoint",
    "path",
    "idempotencyKey",
    "outcome",
    "status",
    "code",
    "latencyMs",
}


def written(record: logging.LogRecord) -> dict[str, Any]:
    """``record`` as the app writes it: through the handler create_app put on the root
    logger, one JSON object on one line, with the fields every line has (its text kept as
    ``_raw``)."""
    (handler,) = [h for h in logging.getLogger().handlers if h.name == HANDLER]
    raw = handler.format(record)
    assert "\n" not in raw, raw
    line = json.loads(raw)
    assert isinstance(line, dict) and set(line) >= EVERY_LINE, raw
    assert line["logger"] == record.name
    line["_raw"] = raw
    return dict(line)


@pytest.fixture
def lines_of(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[dict[str, Any]]]:
    """Every line a logger (and its children) wrote during the test, as written out."""
    caplog.set_level(logging.INFO, logger="lootbox")

    def lines(logger: str) -> list[dict[str, Any]]:
        return [
            written(record)
            for record in caplog.records
            if record.name == logger or record.name.startswith(f"{logger}.")
        ]

    return lines


@pytest.fixture
def access_lines(
    lines_of: Callable[[str], list[dict[str, Any]]],
) -> Callable[[str], list[dict[str, Any]]]:
    """The access lines written for one request id."""
    return lambda request_id: [
        line for line in lines_of("lootbox.access") if line["requestId"] == request_id
    ]


def the_line(lines_for: Callable[[str], list[dict[str, Any]]], request_id: str) -> dict[str, Any]:
    lines = lines_for(request_id)
    assert len(lines) == 1, lines
    line = lines[0]
    assert set(line) - {"_raw"} == EVERY_LINE | FIELDS, line
    return line


def rid() -> str:
    return f"req-{uuid.uuid4().hex[:16]}"


def cashout(world: World, item: dict[str, Any], request_id: str, **extra: Any) -> Reply:
    return world.api.post(
        "/api/s2s/cashout",
        {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"], **extra},
        headers={"X-Request-Id": request_id},
    )


def post_signed(
    world: World, path: str, body: dict[str, Any], request_id: str, *, secret: str | None = None
) -> tuple[Reply, str]:
    """POST ``body`` signed here, so the test knows the signature it sent."""
    raw = json.dumps(body).encode()
    headers = signed_headers(
        secret or world.operator.secret,
        int(time.time()),
        "POST",
        path,
        raw,
        key_id=world.operator.key_id,
    )
    headers["X-Request-Id"] = request_id
    return world.api.post(path, raw=raw, signed=False, headers=headers), headers[HEADER_SIGNATURE]


def assert_nothing_secret(world: World, line: dict[str, Any], *also: str) -> None:
    """Neither the operator's API secret, the wallet secret, nor what else the test names
    (the signature sent) is in the line."""
    raw = line["_raw"]
    for secret in (world.operator.secret, WALLET_SECRET, *also):
        assert secret not in raw, (secret, raw)


# --- successes and replays ----------------------------------------------------------------------


def test_a_cashout_writes_one_line_with_operator_route_key_and_outcome(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    item = world.win_item("gold")
    request_id = rid()

    reply, signature = post_signed(
        world,
        "/api/s2s/cashout",
        {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]},
        request_id,
    )

    assert reply.status == 200
    line = the_line(access_lines, request_id)
    assert line["operator"] == world.operator.slug
    assert line["keyId"] == world.operator.key_id
    assert line["method"] == "POST"
    assert line["endpoint"] == "/api/s2s/cashout"
    assert line["path"] == "/api/s2s/cashout"
    assert line["idempotencyKey"] == f"cashback:inventory:{item['inventoryItemId']}"
    assert (line["outcome"], line["status"], line["code"]) == ("fresh", 200, None)
    assert isinstance(line["latencyMs"], int | float) and line["latencyMs"] >= 0
    assert line["level"] == "INFO"
    assert_nothing_secret(world, line, signature)


def test_the_wallet_call_of_a_request_is_a_json_line_with_the_same_key(
    world: World,
    access_lines: Callable[[str], list[dict[str, Any]]],
    lines_of: Callable[[str], list[dict[str, Any]]],
) -> None:
    item = world.win_item("gold")
    request_id = rid()

    assert cashout(world, item, request_id).status == 200

    key = the_line(access_lines, request_id)["idempotencyKey"]
    calls = [line for line in lines_of("lootbox.wallet") if line["idempotencyKey"] == key]
    assert len(calls) == 1, calls
    (call,) = calls
    assert (call["level"], call["callType"], call["walletOutcome"]) == (
        "INFO",
        "wallet.credit",
        "accepted",
    )
    assert (call["walletStatus"], call["walletCode"], call["reason"]) == (200, None, None)
    assert isinstance(call["latencyMs"], int)
    assert_nothing_secret(world, call)


def test_a_retry_is_logged_as_a_replay(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    item = world.win_item("gold")
    assert cashout(world, item, rid()).status == 200
    request_id = rid()

    again = cashout(world, item, request_id)

    assert again.replayed
    line = the_line(access_lines, request_id)
    assert (line["outcome"], line["status"], line["code"]) == ("replay", 200, None)


def test_a_purchase_line_carries_its_derived_key_and_no_signature(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    body = world.purchase_body("gold")
    request_id = rid()

    reply, signature = post_signed(world, "/api/s2s/purchase", body, request_id)

    assert reply.status == 200
    line = the_line(access_lines, request_id)
    assert line["idempotencyKey"] == purchase_key(PLAYER, body["clientActionId"])
    assert line["outcome"] == "fresh"
    assert_nothing_secret(world, line, signature)


def test_a_read_without_the_guard_has_no_outcome(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    request_id = rid()

    reply = world.api.get("/api/s2s/health", headers={"X-Request-Id": request_id})

    assert reply.status == 200
    line = the_line(access_lines, request_id)
    assert line["operator"] == world.operator.slug
    assert (line["idempotencyKey"], line["outcome"], line["code"]) == (None, None, None)


# --- the wallet says no, or nothing -------------------------------------------------------------


def test_a_wallet_refusal_is_logged_as_refused_with_the_wallets_code(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    item = world.win_item("gold")
    world.wallet.fault("refuse", code="LIMIT_REACHED", times=1, types=["wallet.credit"])
    request_id = rid()

    reply = cashout(world, item, request_id)

    assert (reply.status, reply.code) == (422, "LIMIT_REACHED")
    line = the_line(access_lines, request_id)
    assert (line["outcome"], line["status"], line["code"]) == ("refused", 422, "LIMIT_REACHED")
    assert line["idempotencyKey"] == f"cashback:inventory:{item['inventoryItemId']}"


def test_a_wallet_timeout_is_logged_as_unavailable_at_warning(
    make_world: WorldFactory, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    world = make_world(
        wallet_read_timeout_seconds=0.5,
        wallet_connect_timeout_seconds=0.5,
        movement_lease_seconds=2,
    )
    item = world.win_item("gold")
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    request_id = rid()

    reply = cashout(world, item, request_id)

    assert (reply.status, reply.code) == (503, "WALLET_UNAVAILABLE")
    line = the_line(access_lines, request_id)
    assert (line["outcome"], line["status"], line["code"]) == (
        "unavailable",
        503,
        "WALLET_UNAVAILABLE",
    )
    assert line["level"] == "WARNING"
    assert_nothing_secret(world, line)


# --- the guard says no --------------------------------------------------------------------------


def test_a_duplicate_while_the_first_is_in_flight_is_logged_as_in_use(
    make_world: WorldFactory, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    world = make_world(wallet_read_timeout_seconds=4, movement_lease_seconds=6)
    item = world.win_item("gold")
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    first_id, second_id = rid(), rid()
    first: list[Reply] = []
    thread = threading.Thread(
        target=lambda: first.append(cashout(world, item, first_id)), daemon=True
    )
    thread.start()
    wait_until(lambda: world.wallet.fault_count() == 0)  # the slow call reached the wallet

    second = cashout(world, item, second_id)
    thread.join(timeout=10)

    assert (second.status, second.code) == (409, "IDEMPOTENCY_KEY_IN_USE")
    line = the_line(access_lines, second_id)
    assert (line["outcome"], line["status"], line["code"]) == (
        "in_use",
        409,
        "IDEMPOTENCY_KEY_IN_USE",
    )
    assert line["idempotencyKey"] == f"cashback:inventory:{item['inventoryItemId']}"
    assert first and first[0].status == 200
    assert the_line(access_lines, first_id)["outcome"] == "fresh"


def test_a_key_reused_for_another_item_is_logged_as_a_mismatch(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    first_item, second_item = world.win_item("gold"), world.win_item("gold")
    assert cashout(world, first_item, rid(), idempotencyKey="payout-1").status == 200
    request_id = rid()

    reply = cashout(world, second_item, request_id, idempotencyKey="payout-1")

    assert (reply.status, reply.code) == (422, "IDEMPOTENCY_KEY_REUSED")
    line = the_line(access_lines, request_id)
    assert (line["outcome"], line["idempotencyKey"]) == ("mismatch", "payout-1")


def test_a_business_rejection_is_logged_as_rejected(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    request_id = rid()

    reply = cashout(world, {"inventoryItemId": 987654}, request_id)

    assert (reply.status, reply.code) == (404, "INVENTORY_ITEM_NOT_FOUND")
    line = the_line(access_lines, request_id)
    assert (line["outcome"], line["code"]) == ("rejected", "INVENTORY_ITEM_NOT_FOUND")
    assert line["idempotencyKey"] == "cashback:inventory:987654"


# --- answered before any view -----------------------------------------------------------------


def test_an_authentication_failure_has_no_operator_and_logs_no_signature(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    request_id = rid()
    wrong_secret = "not-the-secret-" + uuid.uuid4().hex

    reply, signature = post_signed(
        world,
        "/api/s2s/cashout",
        {"playerExternalId": PLAYER, "inventoryItemId": 1},
        request_id,
        secret=wrong_secret,
    )

    assert (reply.status, reply.code) == (401, "INVALID_SIGNATURE")
    line = the_line(access_lines, request_id)
    assert (line["operator"], line["keyId"]) == (None, None)
    assert (line["outcome"], line["status"], line["code"]) == ("rejected", 401, "INVALID_SIGNATURE")
    assert line["idempotencyKey"] is None
    assert_nothing_secret(world, line, wrong_secret, signature)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/s2s/no-such-thing/42", 404, "NOT_FOUND"),
        ("DELETE", "/api/s2s/cashout", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_a_request_no_route_matched_has_its_path_but_no_endpoint(
    world: World,
    access_lines: Callable[[str], list[dict[str, Any]]],
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    request_id = rid()

    reply = world.api.request(method, path, headers={"X-Request-Id": request_id})

    assert (reply.status, reply.code) == (status, code)
    line = the_line(access_lines, request_id)
    assert (line["endpoint"], line["path"], line["method"]) == (None, path, method)
    assert (line["outcome"], line["status"], line["code"]) == ("rejected", status, code)


def test_a_body_over_the_limit_is_logged_once_as_413(
    make_world: WorldFactory, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    world = make_world(max_content_length=1024)
    request_id = rid()

    reply = world.api.post(
        "/api/s2s/cashout",
        {"playerExternalId": "x" * 2000, "inventoryItemId": 1},
        headers={"X-Request-Id": request_id},
    )

    assert (reply.status, reply.code) == (413, "PAYLOAD_TOO_LARGE")
    line = the_line(access_lines, request_id)
    assert (line["endpoint"], line["outcome"], line["status"]) == (
        "/api/s2s/cashout",
        "rejected",
        413,
    )


def test_the_probes_are_logged_too(
    world: World, access_lines: Callable[[str], list[dict[str, Any]]]
) -> None:
    request_id = rid()

    reply = world.app.test_client().get("/readyz", headers={"X-Request-Id": request_id})

    assert reply.status_code == 200
    line = the_line(access_lines, request_id)
    assert (line["endpoint"], line["operator"], line["outcome"]) == ("/readyz", None, None)


# --- failures of our own -----------------------------------------------------------------------


class ExplodingWallet:
    """A wallet adapter with a bug: every call raises."""

    def send(self, *_args: Any) -> Any:
        raise RuntimeError("bug in the wallet adapter")

    def balance(self, *_args: Any) -> Any:
        raise RuntimeError("bug in the wallet adapter")

    def close(self) -> None:
        pass


def test_an_unexpected_error_is_logged_once_as_error_after_its_traceback(
    world: World,
    access_lines: Callable[[str], list[dict[str, Any]]],
    lines_of: Callable[[str], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = world.win_item("gold")
    services = world.app.extensions["lootbox"].services
    monkeypatch.setattr(services, "wallet", ExplodingWallet())
    request_id = rid()

    reply = cashout(world, item, request_id)

    assert (reply.status, reply.code) == (500, "INTERNAL_ERROR")
    line = the_line(access_lines, request_id)
    assert (line["outcome"], line["status"], line["code"]) == ("error", 500, "INTERNAL_ERROR")
    assert line["level"] == "WARNING"
    logged = [line["_raw"] for line in lines_of("lootbox")]
    (traceback,) = [t for t in lines_of("lootbox.api") if "exc_info" in t]
    assert logged.index(traceback["_raw"]) < logged.index(line["_raw"])
    assert (traceback["level"], traceback["message"]) == ("ERROR", "unhandled error")
    assert traceback["exc_info"].startswith("Traceback (most recent call last):")
    assert traceback["exc_info"].endswith("RuntimeError: bug in the wallet adapter")


@pytest.mark.parametrize("broken_part", ["log", "metrics"])
def test_a_failing_log_handler_or_metric_never_breaks_the_request(
    world: World, monkeypatch: pytest.MonkeyPatch, broken_part: str
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk full")

    if broken_part == "log":
        monkeypatch.setattr(observability.access_log, "log", broken)
    else:
        monkeypatch.setattr(observability, "record_request", broken)
    item = world.win_item("gold")

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 200, reply.data
    assert reply.json["item"]["state"] == "cashed_back"
