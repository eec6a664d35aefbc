"""Retention of idempotency records, through HTTP and the CLI: after a key's retention is
over and its records are gone (the database's purged, Redis's expired or deleted), a retry
of the same request still moves no money twice, and a key reused for another request is
still refused. The wallet's own record is the witness.

The apps here keep completed answers for 1 s (``IDEMPOTENCY_TTL_SECONDS``), so a test waits
about a second for its records to expire instead of moving a clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lootbox.services.purchase import purchase_key
from tests.e2e.conftest import PLAYER, Reply, World, WorldFactory, assert_error_envelope
from tests.processes import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"
TTL_SECONDS = 1


def short_retention_world(make_world: WorldFactory) -> World:
    return make_world(idempotency_ttl_seconds=TTL_SECONDS)


def expired_count(world: World) -> int:
    result = world.cli("idem", "purge", "--dry-run")
    assert result.exit_code == 0, result
    return int(result.json["expired"])


def wait_for_expiry(world: World) -> None:
    """Until every completed record written so far is past its retention."""
    (completed,) = world.query("SELECT count(*) AS n FROM idempotency_records")
    wait_until(
        lambda: expired_count(world) >= completed.n,
        timeout=10,
        what="the records to expire",
    )


def forget(world: World, *keys: str) -> dict[str, Any]:
    """Expiry, then the purge as on-call runs it, then Redis's copies gone too (they expire
    by their own TTL; deleted here so the test does not depend on when)."""
    wait_for_expiry(world)
    purged = world.cli("idem", "purge")
    assert purged.exit_code == 0, purged
    for key in keys:
        world.redis.delete(world.redis_key(key))
        shown = world.cli("idem", "show", world.operator.slug, key)
        assert shown.exit_code == 1, shown
        assert shown.error["code"] == "IDEMPOTENCY_RECORD_NOT_FOUND"
    return dict(purged.json)


def assert_answered_without_a_second_effect(retry: Reply, first: Reply) -> None:
    """What docs/design.md ("After the retention period") promises a retry whose records
    are gone: the operation's result again (today: 200, the same bytes, rebuilt from the
    ledger), or a clear refusal in the error envelope. Never a 5xx, never "try again"."""
    if retry.status == 200:
        assert retry.data == first.data
        return
    assert 400 <= retry.status < 500, (retry.status, retry.data)
    assert_error_envelope(retry)
    assert retry.code != "IDEMPOTENCY_KEY_IN_USE", retry.data


# --- the purge ----------------------------------------------------------------------------------


def test_the_purge_deletes_only_expired_answers(make_world: WorldFactory) -> None:
    # Retention long enough that the last answer cannot expire before the purge runs.
    world = make_world(idempotency_ttl_seconds=3)
    item = world.win_item("gold")
    done = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert done.status == 200
    wait_for_expiry(world)
    fresh = world.win_item("gold")  # completed, but not yet expired

    result = world.cli("idem", "purge")

    assert result.exit_code == 0, result
    assert result.json["deleted"] == 2  # the first purchase and the cashout
    assert result.json["capped"] is False
    keys = {row.idempotency_key for row in world.query("SELECT * FROM idempotency_records")}
    assert len(keys) == 1
    (only,) = keys
    assert only.startswith("purchase:")
    assert fresh["inventoryItemId"] != item["inventoryItemId"]
    again = world.cli("idem", "purge")
    assert again.json["deleted"] == 0


def test_the_purge_reports_batches_and_stops_at_its_cap(make_world: WorldFactory) -> None:
    world = short_retention_world(make_world)
    for _ in range(5):
        world.win_item("gold")
    wait_for_expiry(world)

    capped = world.cli("idem", "purge", "--batch-size", "2", "--max-rows", "3")
    rest = world.cli("idem", "purge", "--batch-size", "2")

    assert capped.json["deleted"] == 3
    assert capped.json["batches"] == 2  # 2, then the 1 left under the cap
    assert capped.json["capped"] is True
    assert rest.json["deleted"] == 2
    assert rest.json["capped"] is False
    assert expired_count(world) == 0


# --- a retry after the records are gone -------------------------------------------------------


def test_a_cashout_retried_after_its_records_were_purged_credits_once(
    make_world: WorldFactory,
) -> None:
    world = short_retention_world(make_world)
    item = world.win_item("gold")["inventoryItemId"]
    body = {"playerExternalId": PLAYER, "inventoryItemId": item}
    first = world.api.cashout(**body)
    assert first.status == 200, first.data
    forget(world, f"cashback:inventory:{item}")

    retry = world.api.cashout(**body)

    assert_answered_without_a_second_effect(retry, first)
    assert len(world.wallet.credits(inventoryItemId=item)) == 1


def test_a_cancel_retried_after_its_records_were_purged_refunds_once(
    make_world: WorldFactory,
) -> None:
    world = short_retention_world(make_world)
    public_id = world.hold_round("gold")
    body = {"playerExternalId": PLAYER, "roundPublicId": public_id}
    first = world.api.cancel(**body)
    assert first.status == 200, first.data
    forget(world, f"refund:round:{public_id}")

    retry = world.api.cancel(**body)

    assert_answered_without_a_second_effect(retry, first)
    assert len(world.wallet.credits(roundPublicId=public_id)) == 1


def test_a_purchase_retried_after_its_records_were_purged_debits_once(
    make_world: WorldFactory,
) -> None:
    world = short_retention_world(make_world)
    body = world.purchase_body("gold", "silver")
    first = world.api.purchase(**body)
    assert first.status == 200, first.data
    public_id = first.json["round"]["publicId"]
    forget(world, purchase_key(PLAYER, body["clientActionId"]))

    retry = world.api.purchase(**body)

    assert_answered_without_a_second_effect(retry, first)
    assert len(world.wallet.debits(roundPublicId=public_id)) == 1
    assert len(world.wallet.debits()) == 1
    # No second round, no second set of prizes.
    (rounds,) = world.query("SELECT count(*) AS n FROM rounds")
    assert rounds.n == 1


def test_a_prepay_retried_after_its_round_was_refunded_and_purged_moves_nothing(
    make_world: WorldFactory,
) -> None:
    """The retry is answered from what the round is now: the answer may differ from the
    first one (the round is refunded since), the money does not move."""
    world = short_retention_world(make_world)
    body = world.purchase_body("gold", mode="prepay")
    first = world.api.purchase(**body)
    public_id = first.json["round"]["publicId"]
    refund = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)
    assert refund.status == 200, refund.data
    forget(world, purchase_key(PLAYER, body["clientActionId"]), f"refund:round:{public_id}")

    retry = world.api.purchase(**body)

    if retry.status == 200:
        assert retry.json["round"]["publicId"] == public_id
        assert retry.json["round"]["status"] == "refunded"
    else:
        assert 400 <= retry.status < 500 and retry.code != "IDEMPOTENCY_KEY_IN_USE"
    assert len(world.wallet.debits(roundPublicId=public_id)) == 1
    assert len(world.wallet.credits(roundPublicId=public_id)) == 1


def test_a_key_reused_for_another_item_after_the_purge_is_still_refused(
    make_world: WorldFactory,
) -> None:
    world = short_retention_world(make_world)
    first_item = world.win_item("gold")["inventoryItemId"]
    second_item = world.win_item("gold")["inventoryItemId"]
    done = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=first_item, idempotencyKey="payout-77"
    )
    assert done.status == 200
    forget(world, "payout-77")

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=second_item, idempotencyKey="payout-77"
    )

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.wallet.credits()) == 1
    assert world.wallet.credits(inventoryItemId=second_item) == []


# --- the worker -----------------------------------------------------------------------------


def test_the_worker_loop_purges_expired_records_and_logs_it(make_world: WorldFactory) -> None:
    world = short_retention_world(make_world)
    item = world.win_item("gold")["inventoryItemId"]
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item).status == 200
    wait_for_expiry(world)
    settings = world.app.extensions["lootbox"].settings
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LOOTBOX_", "DATABASE_", "REDIS_"))
    }
    env |= {
        "LOOTBOX_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "LOG_LEVEL": "INFO",
    }
    worker = subprocess.Popen(
        [str(FLASK), "--app", "app", "reconcile", "--loop", "--interval", "0.2"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: expired_count(world) == 0, timeout=30, what="the worker's purge")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        assert worker.stdout is not None and worker.stderr is not None
        stdout = worker.stdout.read().decode(errors="replace")
        worker.stdout.close()
        stderr = worker.stderr.read().decode(errors="replace")
        worker.stderr.close()
    logged = [
        json.loads(line)
        for line in stderr.splitlines()
        if line.startswith("{") and '"lootbox.retention"' in line
    ]
    assert stdout == ""  # nothing to reconcile: no summary line; the purge only logs
    assert logged, stderr
    assert logged[0]["purge"]["deleted"] == 2
    assert logged[0]["purgedSinceStart"] == 2
    assert world.query("SELECT * FROM idempotency_records") == []
    # The answer is gone; the money is not: the ledger still has both movements.
    (movements,) = world.query("SELECT count(*) AS n FROM money_movements")
    assert movements.n == 2
