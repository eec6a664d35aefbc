"""``/healthz`` and ``/readyz`` as a PaaS polls them: no signature, JSON, cheap, and honest
about what is down (issue 4)."""

from __future__ import annotations

import json

from app import create_app
from tests.e2e.conftest import World, WorldFactory, assert_error_envelope
from tests.services import redis_url

UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


def test_healthz_answers_ok_without_a_signature(world: World) -> None:
    reply = world.app.test_client().get("/healthz")

    assert reply.status_code == 200
    assert reply.is_json and reply.get_json() == {"status": "ok"}


def test_readyz_says_ready_when_the_database_and_redis_answer(world: World) -> None:
    reply = world.app.test_client().get("/readyz")

    assert reply.status_code == 200
    assert reply.get_json() == {"status": "ready", "database": "ok", "redis": "ok"}


def test_readyz_with_redis_down_is_degraded_but_still_ready(make_world: WorldFactory) -> None:
    world = make_world(controllable_redis=True)
    world.stop_redis()
    try:
        reply = world.app.test_client().get("/readyz")
        # ... and the service does serve: the database guard answers.
        item = world.win_item()
    finally:
        world.start_redis()

    assert reply.status_code == 200
    body = reply.get_json()
    assert "Connection" in body.pop("reason")  # why (tests/e2e/test_redis_tls.py: a TLS cause)
    assert body == {"status": "degraded", "database": "ok", "redis": "unreachable"}
    assert item["state"] == "unresolved"


def test_readyz_with_the_database_unreachable_is_503_while_healthz_stays_200() -> None:
    app = create_app(
        {
            "database_url": UNREACHABLE_DATABASE,
            "redis_url": redis_url(),
            "env": "test",
            "log_level": "ERROR",
        }
    )
    client = app.test_client()
    try:
        ready = client.get("/readyz")
        alive = client.get("/healthz")
    finally:
        app.extensions["lootbox"].engine.dispose()

    assert ready.status_code == 503
    assert ready.get_json() == {"status": "unavailable", "database": "unreachable", "redis": "ok"}
    assert alive.status_code == 200


def test_probes_answer_other_methods_in_the_error_envelope(world: World) -> None:
    reply = world.app.test_client().post("/readyz", data=b"{}")

    assert reply.status_code == 405
    assert_error_envelope(reply)  # type: ignore[arg-type]


def test_the_probes_are_in_the_openapi_document(world: World) -> None:
    spec = json.loads(world.app.test_client().get("/openapi.json").data)

    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
