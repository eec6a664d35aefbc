"""``GET /metrics`` after real requests on both stacks: the counters an on-call engineer
reads move by exactly what happened (a cashout, a replay, a wallet refusal, a wallet
timeout, an in-use duplicate), the money in flight is read from the ledger at scrape time,
and a scrape moves the database counter by its own query only.

The counters belong to the process, which runs many apps in one test session, so every
assertion is about the difference between two scrapes."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import GOLD_CASHBACK_EUR, PLAYER, Reply, World, WorldFactory
from tests.processes import wait_until

Series = tuple[str, frozenset[tuple[str, str]]]
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def scrape(world: World, headers: Mapping[str, str] | None = None) -> dict[Series, float]:
    response = world.app.test_client().get("/metrics", headers=dict(headers or {}))
    assert response.status_code == 200, response.get_data()
    assert response.content_type.startswith("text/plain; version=0.0.4"), response.content_type
    samples: dict[Series, float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            series = (sample.name, frozenset(sample.labels.items()))
            assert series not in samples, f"{series} reported twice"
            samples[series] = sample.value
    return samples


def value(samples: dict[Series, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Delta:
    """What moved between a scrape taken now and one taken by ``after()``."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.before = scrape(world)
        self.now: dict[Series, float] = {}

    def after(self) -> Delta:
        self.now = scrape(self.world)
        return self

    def __call__(self, name: str, **labels: str) -> float:
        return value(self.now, name, **labels) - value(self.before, name, **labels)


def requests_of(
    delta: Delta, path: str, status: int, code: str = "", method: str = "POST"
) -> float:
    return delta(
        "lootbox_http_requests_total",
        endpoint=path,
        method=method,
        status=str(status),
        code=code,
    )


def cashout_item(world: World, item: dict[str, Any], **extra: Any) -> Reply:
    return world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], **extra
    )


CASHOUT = "/api/s2s/cashout"


# --- what moves ---------------------------------------------------------------------------------


def test_a_cashout_moves_requests_latency_wallet_and_database_counters(world: World) -> None:
    item = world.win_item("gold")
    delta = Delta(world)

    reply = cashout_item(world, item)

    assert reply.status == 200
    delta.after()
    assert requests_of(delta, CASHOUT, 200) == 1
    assert delta("lootbox_http_request_duration_seconds_count", endpoint=CASHOUT) == 1
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="fresh") == 1
    assert delta("lootbox_wallet_calls_total", type="credit", outcome="accepted") == 1
    assert delta("lootbox_wallet_call_duration_seconds_count", type="credit") == 1
    assert delta("lootbox_db_statements_total") > 0


def test_a_replay_is_counted_and_calls_no_wallet(world: World) -> None:
    item = world.win_item("gold")
    assert cashout_item(world, item).status == 200
    delta = Delta(world)

    again = cashout_item(world, item)

    assert again.replayed
    delta.after()
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="replay") == 1
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="fresh") == 0
    assert delta("lootbox_wallet_calls_total", type="credit", outcome="accepted") == 0
    assert requests_of(delta, CASHOUT, 200) == 1


def test_a_wallet_refusal_is_counted_as_refused_with_its_code(world: World) -> None:
    item = world.win_item("gold")
    world.wallet.fault("refuse", code="LIMIT_REACHED", times=1, types=["wallet.credit"])
    delta = Delta(world)

    reply = cashout_item(world, item)

    assert (reply.status, reply.code) == (422, "LIMIT_REACHED")
    delta.after()
    assert delta("lootbox_wallet_calls_total", type="credit", outcome="refused") == 1
    assert requests_of(delta, CASHOUT, 422, "LIMIT_REACHED") == 1
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="refused") == 1


def test_a_wallet_timeout_is_unknown_and_its_money_shows_as_pending(
    make_world: WorldFactory,
) -> None:
    world = make_world(
        wallet_read_timeout_seconds=0.5,
        wallet_connect_timeout_seconds=0.5,
        movement_lease_seconds=2,
    )
    item = world.win_item("gold")
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    delta = Delta(world)
    assert value(delta.before, "lootbox_pending_operations") == 0

    reply = cashout_item(world, item)

    assert (reply.status, reply.code) == (503, "WALLET_UNAVAILABLE")
    delta.after()
    assert delta("lootbox_wallet_calls_total", type="credit", outcome="unknown") == 1
    assert requests_of(delta, CASHOUT, 503, "WALLET_UNAVAILABLE") == 1
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="unavailable") == 1
    # Scrape-time gauges from the ledger: what `flask ops pending` shows.
    assert value(delta.now, "lootbox_pending_operations") == 1
    assert value(delta.now, "lootbox_money_at_risk_minor", currency="EUR", kind="credit") == (
        GOLD_CASHBACK_EUR
    )
    assert value(delta.now, "lootbox_pending_operation_oldest_age_seconds") >= 0
    assert value(delta.now, "lootbox_database_up") == 1
    pending = world.cli("ops", "pending").json
    assert pending["count"] == 1
    assert pending["atRisk"]["EUR"]["creditsMinor"] == GOLD_CASHBACK_EUR


def test_a_duplicate_while_the_first_is_in_flight_is_counted_as_in_use(
    make_world: WorldFactory,
) -> None:
    world = make_world(wallet_read_timeout_seconds=4, movement_lease_seconds=6)
    item = world.win_item("gold")
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    delta = Delta(world)
    first: list[Reply] = []
    thread = threading.Thread(target=lambda: first.append(cashout_item(world, item)), daemon=True)
    thread.start()
    wait_until(lambda: world.wallet.fault_count() == 0)  # the slow call reached the wallet

    second = cashout_item(world, item)
    thread.join(timeout=10)

    assert (second.status, second.code) == (409, "IDEMPOTENCY_KEY_IN_USE")
    assert first and first[0].status == 200
    delta.after()
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="in_use") == 1
    assert delta("lootbox_idempotent_requests_total", endpoint=CASHOUT, outcome="fresh") == 1
    assert requests_of(delta, CASHOUT, 409, "IDEMPOTENCY_KEY_IN_USE") == 1


def test_requests_no_route_matched_share_one_series(world: World) -> None:
    delta = Delta(world)

    for n in range(3):
        world.api.get(f"/api/s2s/nothing-here/{n}")

    delta.after()
    assert requests_of(delta, "unmatched", 404, "NOT_FOUND", method="GET") == 3
    assert not [s for s in delta.now if any("nothing-here" in v for _, v in s[1])]


def test_probes_are_counted_but_kept_out_of_the_latency_histogram(world: World) -> None:
    delta = Delta(world)

    world.app.test_client().get("/readyz")

    delta.after()
    assert requests_of(delta, "/readyz", 200, method="GET") == 1
    assert delta("lootbox_http_request_duration_seconds_count", endpoint="/readyz") == 0


def test_a_scrape_sends_one_statement_of_its_own(world: World) -> None:
    delta = Delta(world).after()  # two scrapes in a row

    # The first scrape's query of the pending money, after it read the counters.
    assert delta("lootbox_db_statements_total") == 1
    # The first scrape itself is counted as a request, once.
    assert requests_of(delta, "/metrics", 200, method="GET") == 1
    assert value(delta.now, "lootbox_database_up") == 1
    assert value(delta.now, "lootbox_redis_up") == 1


def test_redis_down_shows_as_redis_up_zero_and_the_scrape_still_answers(
    make_world: WorldFactory,
) -> None:
    world = make_world(controllable_redis=True)
    world.stop_redis()
    try:
        samples = scrape(world)
    finally:
        world.start_redis()

    assert value(samples, "lootbox_redis_up") == 0
    assert value(samples, "lootbox_database_up") == 1


# --- METRICS_TOKEN --------------------------------------------------------------------------------


def test_with_a_metrics_token_a_scrape_needs_the_bearer_token(make_world: WorldFactory) -> None:
    world = make_world(metrics_token=METRICS_TOKEN)
    client = world.app.test_client()

    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    samples = scrape(world, {"Authorization": f"Bearer {METRICS_TOKEN}"})

    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json is not None
        assert refused.json["error"]["code"] == "UNAUTHORIZED"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"lootbox_" not in refused.get_data()
        assert METRICS_TOKEN.encode() not in refused.get_data()
    assert value(samples, "lootbox_database_up") == 1


def test_without_a_metrics_token_the_scrape_is_open_and_not_in_the_api_document(
    world: World,
) -> None:
    client = world.app.test_client()

    assert client.get("/metrics").status_code == 200
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    assert spec.json is not None
    assert "/metrics" not in spec.json["paths"]
