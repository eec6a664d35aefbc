"""``flask idem show|list|release``: an on-call engineer inspecting and unsticking keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.e2e.conftest import PLAYER, World, WorldFactory


def cash_out(world: World, key: str, *, lose_answer: bool = False) -> int:
    item = world.win_item()["inventoryItemId"]
    if lose_answer:
        world.wallet.fault("error", status=503, times=1)
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item, idempotencyKey=key)
    assert reply.status == (503 if lose_answer else 200), reply.data
    return int(item)


def test_show_puts_the_redis_and_the_database_record_side_by_side(world: World) -> None:
    cash_out(world, "k-done")

    shown = world.cli("idem", "show", world.operator.slug, "k-done")
    as_json = world.cli("idem", "show", world.operator.slug, "k-done", "--json").json

    assert shown.exit_code == 0, shown
    assert f"redis key {world.redis_key('k-done')}" in shown.stdout
    assert "fingerprints agree" in shown.stdout
    state_line = next(line for line in shown.stdout.splitlines() if line.startswith("state"))
    assert state_line.split() == ["state", "completed", "completed"]
    assert as_json["redis"]["fingerprint"] == as_json["database"]["fingerprint"]
    assert as_json["redis"]["body"] == as_json["database"]["body"]
    assert as_json["database"]["status"] == 200 and as_json["database"]["expiresAt"]


def test_show_says_when_redis_lost_the_key(make_world: WorldFactory) -> None:
    world = make_world(controllable_redis=True)
    cash_out(world, "k-lost")
    world.lose_redis_keys()

    shown = world.cli("idem", "show", world.operator.slug, "k-lost").stdout

    state_line = next(line for line in shown.splitlines() if line.startswith("state"))
    assert state_line.split() == ["state", "absent", "completed"]
    assert "the database is the durable record" in shown


def test_show_of_an_unknown_operator_fails_with_its_code(world: World) -> None:
    result = world.cli("idem", "show", "no-such-operator", "k")

    assert result.exit_code == 1
    assert result.error["code"] == "OPERATOR_NOT_FOUND"


def test_list_filters_by_state_and_age(world: World) -> None:
    cash_out(world, "k-done")
    cash_out(world, "k-stuck", lose_answer=True)
    slug = world.operator.slug

    in_progress = world.cli("idem", "list", slug, "--state", "in_progress", "--json").json
    completed = world.cli("idem", "list", slug, "--state", "completed", "--json").json
    old = world.cli("idem", "list", slug, "--older-than", "1h", "--json").json
    text_listing = world.cli("idem", "list", slug).stdout

    assert [k["key"] for k in in_progress["keys"]] == ["k-stuck"]
    # The purchases that made the items are keys too.
    assert "k-done" in [k["key"] for k in completed["keys"]]
    assert old == {"count": 0, "keys": []}
    assert text_listing.splitlines()[0].split() == [
        "KEY",
        "STATE",
        "ENDPOINT",
        "AGE",
        "LEASE",
        "STATUS",
    ]
    stuck_line = next(line for line in text_listing.splitlines() if line.startswith("k-stuck"))
    assert "in_progress" in stuck_line and "expired" in stuck_line


def test_list_refuses_a_duration_it_cannot_read(world: World) -> None:
    result = world.cli("idem", "list", world.operator.slug, "--older-than", "5 minutes")

    assert result.exit_code == 2
    assert "expected a number and a unit" in result.stderr


def test_release_forgets_a_stuck_key_and_its_retry_runs(world: World) -> None:
    item = cash_out(world, "k-stuck", lose_answer=True)

    result = world.cli("idem", "release", world.operator.slug, "k-stuck")

    assert result.exit_code == 0, result
    assert result.json["released"] == "k-stuck"
    assert (
        world.cli("idem", "show", world.operator.slug, "k-stuck", "--json").json["database"] is None
    )
    retry = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item, idempotencyKey="k-stuck"
    )
    assert retry.status == 200, retry.data
    assert len(world.wallet.credits(inventoryItemId=item)) == 1


def test_release_refuses_a_completed_key(world: World) -> None:
    cash_out(world, "k-done")

    result = world.cli("idem", "release", world.operator.slug, "k-done")

    assert result.exit_code == 1
    assert result.error["code"] == "KEY_NOT_RELEASABLE"
    assert "completed" in result.error["message"]
    replay = world.cli("idem", "show", world.operator.slug, "k-done", "--json").json
    assert replay["database"]["state"] == "completed"


def test_release_refuses_a_key_a_request_still_holds(world: World) -> None:
    cash_out(world, "k-held", lose_answer=True)
    engine = world.app.extensions["lootbox"].engine
    with engine.begin() as conn:  # as if its request were running right now
        conn.execute(
            text(
                "UPDATE idempotency_records SET lease_expires_at = :until"
                " WHERE idempotency_key = 'k-held'"
            ),
            {"until": datetime.now(UTC) + timedelta(minutes=5)},
        )

    result = world.cli("idem", "release", world.operator.slug, "k-held")

    assert result.exit_code == 1
    assert result.error["code"] == "KEY_NOT_RELEASABLE"
    assert "holds the key until" in result.error["message"]


def test_release_of_an_unknown_key_says_so(world: World) -> None:
    result = world.cli("idem", "release", world.operator.slug, "never-used")

    assert result.exit_code == 1
    assert result.error["code"] == "IDEMPOTENCY_RECORD_NOT_FOUND"
