"""``flask reconcile`` as the on-call engineer and the PaaS worker run it: one JSON summary
per pass on stdout, progress on stderr, and the wallet's own record showing one credit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import PLAYER, World
from tests.processes import read_line

REPO_ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"


def cash_out_with_the_answer_lost(world: World) -> int:
    """A cashout the wallet applies but whose answer never arrives: 503, left pending."""
    item = world.win_item()["inventoryItemId"]
    world.wallet.fault("apply_then_drop", times=1)
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item)
    assert reply.status == 503 and reply.code == "WALLET_UNAVAILABLE", reply.data
    return int(item)


def test_one_pass_completes_a_credit_whose_answer_was_lost(world: World) -> None:
    item = cash_out_with_the_answer_lost(world)

    result = world.cli("reconcile")

    assert result.exit_code == 0, result
    assert result.json == {"examined": 1, "completed": 1, "refused": 0, "stillPending": 0}
    assert "reconcile: 1/1 examined, 1 completed" in result.stderr
    assert len(world.wallet.credits(inventoryItemId=item)) == 1
    # The operator's retry now gets the credit it was owed, from the ledger.
    retry = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item)
    assert retry.status == 200, retry.data
    assert retry.json["item"]["state"] == "cashed_back"
    assert len(world.wallet.credits(inventoryItemId=item)) == 1


def test_a_wallet_still_failing_leaves_the_movement_pending_for_the_next_pass(
    world: World,
) -> None:
    item = cash_out_with_the_answer_lost(world)
    world.wallet.fault("error", status=502, times=1)

    first = world.cli("reconcile")
    second = world.cli("reconcile")

    assert first.json == {"examined": 1, "completed": 0, "refused": 0, "stillPending": 1}
    assert second.json == {"examined": 1, "completed": 1, "refused": 0, "stillPending": 0}
    assert len(world.wallet.credits(inventoryItemId=item)) == 1


def test_a_pass_with_nothing_to_do_prints_zeros_and_no_progress(world: World) -> None:
    world.win_item()

    result = world.cli("reconcile")

    assert result.exit_code == 0
    assert result.json == {"examined": 0, "completed": 0, "refused": 0, "stillPending": 0}
    assert result.stderr == ""


def test_the_worker_loop_reconciles_and_stops_cleanly_on_sigterm(world: World) -> None:
    item = cash_out_with_the_answer_lost(world)
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
        line = read_line(worker, timeout=30)
        assert line, "the worker printed no summary in 30 s"
        assert json.loads(line) == {
            "examined": 1,
            "completed": 1,
            "refused": 0,
            "stillPending": 0,
        }
        assert len(world.wallet.credits(inventoryItemId=item)) == 1

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        assert worker.stdout is not None and worker.stderr is not None
        worker.stdout.close()
        stderr = worker.stderr.read().decode(errors="replace")
        worker.stderr.close()
    assert "stopping after this pass" in stderr, stderr
