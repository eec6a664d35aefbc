"""``flask idem show|list|release``: an on-call engineer inspecting and unsticking keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from lootbox.services.purchase import purchase_key
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


def buy(world: World, client_action_id: str, *, lose_answer: bool = False) -> None:
    body = world.purchase_body("gold", client_action_id=client_action_id)
    if lose_answer:
        world.wallet.fault("error", status=503, times=1)
    reply = world.api.purchase(**body)
    assert reply.status == (503 if lose_answer else 200), reply.data


def test_show_finds_a_purchase_by_its_player_and_client_action_id(world: World) -> None:
    buy(world, "act-show")
    slug, key = world.operator.slug, purchase_key(PLAYER, "act-show")

    shown = world.cli("idem", "show", slug, "act-show", "--player", PLAYER)
    as_json = world.cli("idem", "show", slug, "act-show", "--player", PLAYER, "--json")

    assert shown.exit_code == 0, shown
    assert f"{slug} / {key}  (redis key {world.redis_key(key)}" in shown.stdout
    state_line = next(line for line in shown.stdout.splitlines() if line.startswith("state"))
    assert state_line.split() == ["state", "completed", "completed"]
    assert as_json.json["key"] == key
    assert as_json.json["database"]["endpoint"] == "purchase"
    assert as_json.json["database"]["key"] == key


def test_show_of_a_client_action_id_without_its_player_says_to_pass_it(world: World) -> None:
    buy(world, "act-alone")

    result = world.cli("idem", "show", world.operator.slug, "act-alone")

    assert result.exit_code == 1
    assert result.error["code"] == "IDEMPOTENCY_RECORD_NOT_FOUND"
    assert "--player" in result.error["message"]


def test_show_of_a_key_recorded_nowhere_fails_with_its_code(world: World) -> None:
    text_mode = world.cli("idem", "show", world.operator.slug, "never-used")
    json_mode = world.cli("idem", "show", world.operator.slug, "never-used", "--json")

    for result in (text_mode, json_mode):
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.error["code"] == "IDEMPOTENCY_RECORD_NOT_FOUND"
        assert "neither Redis nor the database has it" in result.error["message"]


def test_show_of_a_key_the_database_lacks_while_redis_is_down_fails(
    make_world: WorldFactory,
) -> None:
    world = make_world(controllable_redis=True)
    world.stop_redis()
    try:
        result = world.cli("idem", "show", world.operator.slug, "never-used")
    finally:
        world.start_redis()

    assert result.exit_code == 1
    assert result.error["code"] == "IDEMPOTENCY_RECORD_NOT_FOUND"
    assert "Redis could not be read" in result.error["message"]


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
    assert old == {"count": 0, "truncated": False, "keys": []}
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


def test_list_shows_the_newest_keys_first(world: World) -> None:
    cash_out(world, "k-first")
    cash_out(world, "k-second")

    listed = world.cli("idem", "list", world.operator.slug, "--json").json
    text_listing = world.cli("idem", "list", world.operator.slug).stdout

    keys = [k["key"] for k in listed["keys"]]
    assert keys[0] == "k-second"
    assert keys.index("k-second") < keys.index("k-first")
    created = [datetime.fromisoformat(k["createdAt"]) for k in listed["keys"]]
    assert created == sorted(created, reverse=True)
    assert text_listing.splitlines()[1].startswith("k-second")


def test_list_says_when_it_was_cut_at_the_limit(world: World) -> None:
    cash_out(world, "k-1")
    cash_out(world, "k-2")
    slug = world.operator.slug
    everything = world.cli("idem", "list", slug, "--json").json
    total = everything["count"]  # the cashouts' keys and the purchases' that won the items

    exactly = world.cli("idem", "list", slug, "--limit", str(total), "--json").json
    cut = world.cli("idem", "list", slug, "--limit", "2", "--json").json
    cut_text = world.cli("idem", "list", slug, "--limit", "2").stdout.splitlines()
    whole_text = world.cli("idem", "list", slug).stdout.splitlines()

    assert total == 4 and everything["truncated"] is False
    assert exactly["count"] == total and exactly["truncated"] is False
    assert cut["count"] == 2 and cut["truncated"] is True
    assert cut["keys"] == everything["keys"][:2]
    assert len(cut_text) == 1 + 2 + 1  # header, the two newest keys, and the notice
    assert cut_text[1].startswith("k-2")
    assert "cut at --limit 2" in cut_text[-1] and "raise --limit" in cut_text[-1]
    assert len(whole_text) == 1 + total
    assert not any("cut at --limit" in line for line in whole_text)


def test_list_refuses_a_duration_it_cannot_read(world: World) -> None:
    result = world.cli("idem", "list", world.operator.slug, "--older-than", "5 minutes")

    assert result.exit_code == 2
    assert "expected a number and a unit" in result.stderr


def test_release_forgets_a_stuck_key_and_its_retry_runs(world: World) -> None:
    item = cash_out(world, "k-stuck", lose_answer=True)

    result = world.cli("idem", "release", world.operator.slug, "k-stuck")

    assert result.exit_code == 0, result
    assert result.json["released"] == "k-stuck"
    forgotten = world.cli("idem", "show", world.operator.slug, "k-stuck", "--json")
    assert forgotten.error["code"] == "IDEMPOTENCY_RECORD_NOT_FOUND"
    retry = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item, idempotencyKey="k-stuck"
    )
    assert retry.status == 200, retry.data
    assert len(world.wallet.credits(inventoryItemId=item)) == 1


def test_release_finds_a_stuck_purchase_by_its_player_and_client_action_id(
    world: World,
) -> None:
    buy(world, "act-stuck", lose_answer=True)
    key = purchase_key(PLAYER, "act-stuck")

    result = world.cli("idem", "release", world.operator.slug, "act-stuck", "--player", PLAYER)

    assert result.exit_code == 0, result
    assert result.json["released"] == key
    assert world.query("SELECT id FROM idempotency_records WHERE idempotency_key = :k", k=key) == []


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
