"""Provably fair draws on the deployment shape (gunicorn workers, PostgreSQL, Redis, the
reference wallet as its own process): a player buys (atomic, several reels), pre-pays and
opens, rotates their seeds, and every prize is then re-derived by the verifier a player
runs, ``python -m lootbox.fairness verify``, as its own process, reading each snapshot from
the running gunicorn by its public URL. Then one player's purchases race each other and a
rotation across the workers, and every nonce is still taken exactly once."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from lootbox.fairness import load_snapshot, verify_draw
from tests.concurrency import concurrently
from tests.system.stack import (
    REPO_ROOT,
    REQUEST_TIMEOUT,
    Response,
    SystemStack,
    summary,
)

pytestmark = pytest.mark.system

VERIFY_TIMEOUT = 20.0  # seconds, for each run of the verifier
RACERS = 12  # more than one worker's threads (config: 4 workers x 8 threads)

# Prize tables with real odds (the stack's own box has one prize), a non-ASCII name.
CATALOG = {
    "boxes": [
        {
            "slug": "fair-dice",
            "name": "Fair Dice 🎲",
            "priceMinor": 600,
            "prizes": [
                {"name": "Épée", "valueMinor": 50, "odds": "0.05"},
                {"name": "Bouclier", "valueMinor": 100, "odds": "0.15"},
                {"name": "Dragon 🐉", "valueMinor": 200, "odds": "0.3"},
                {"name": "Coin", "valueMinor": 300, "odds": "0.25"},
                {"name": "Gem", "valueMinor": 1000, "odds": "0.125"},
                {"name": "Star", "valueMinor": 2000, "odds": "0.125"},
            ],
        },
        {
            "slug": "fair-coin",
            "name": "Fair Coin",
            "priceMinor": 200,
            "prizes": [
                {"name": "Heads", "valueMinor": 100, "odds": "0.5"},
                {"name": "Tails", "valueMinor": 300, "odds": "0.5"},
            ],
        },
    ]
}


@pytest.fixture(scope="module")
def boxes(stack: SystemStack) -> dict[str, int]:
    """The fair boxes' live versions, imported once (the same document again would change
    nothing)."""
    path = stack.logdir / "fair-catalog.json"
    path.write_text(json.dumps(CATALOG, ensure_ascii=False), encoding="utf-8")
    imported = stack.cli("catalog", "import", stack.slug, str(path))
    return {box["slug"]: int(box["boxVersionId"]) for box in imported["boxes"]}


def get(system: SystemStack, path: str, **query: str) -> Response:
    """A signed GET: the signature covers the path, not the query string."""
    answer = requests.get(
        f"{system.base_url}{path}",
        params=query,
        headers=system.signed("GET", path, b""),
        timeout=REQUEST_TIMEOUT,
    )
    return Response(answer.status_code, answer.content, dict(answer.headers))


def ok(answer: Response) -> dict[str, Any]:
    assert answer.status == 200, (answer.status, answer.body[:500])
    return dict(answer.json)


def purchase(
    system: SystemStack, player: str, versions: list[int], mode: str = "open"
) -> dict[str, Any]:
    body = system.purchase_body(player, f"fair-{system.new_player('act')}", mode)
    body["reels"] = [{"reelIndex": i, "boxVersionId": v} for i, v in enumerate(versions)]
    return ok(system.post("/api/s2s/purchase", body))


def rotate(system: SystemStack, player: str, seed_hash: str, **extra: Any) -> Response:
    body = {"playerExternalId": player, "serverSeedHash": seed_hash, **extra}
    return system.post("/api/s2s/fairness/rotate", body)


def snapshot_url(system: SystemStack, box_version_id: int) -> str:
    return f"{system.base_url}/fairness/box-version/{box_version_id}/snapshot"


def verify_with_the_cli(
    system: SystemStack, revealed: dict[str, Any], fairness: dict[str, Any], reel: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lootbox.fairness",
            "verify",
            f"--server-seed={revealed['serverSeed']}",
            # "=": a client seed may start with "-"
            f"--client-seed={fairness['clientSeed']}",
            f"--nonce={fairness['nonce']}",
            f"--reel={reel['reelIndex']}",
            f"--snapshot={snapshot_url(system, reel['boxVersionId'])}",
            f"--server-seed-hash={fairness['serverSeedHash']}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        check=False,
    )


def test_every_prize_bought_opened_and_revealed_verifies_with_the_cli(
    system: SystemStack, boxes: dict[str, int]
) -> None:
    started = time.monotonic()
    dice, coin = boxes["fair-dice"], boxes["fair-coin"]
    player = system.new_player("fair")
    committed = ok(get(system, "/api/s2s/fairness", playerExternalId=player))
    answers = [purchase(system, player, [dice, coin, dice]) for _ in range(3)]
    for versions in ([dice], [coin, dice]):
        held = purchase(system, player, versions, mode="prepay")
        assert held["round"]["fairness"] is None
        answers.append(ok(system.open(player, held["round"]["publicId"])))

    rotation = ok(rotate(system, player, committed["serverSeedHash"], clientSeed="next:seed"))

    revealed = rotation["revealed"]
    assert (
        hashlib.sha256(revealed["serverSeed"].encode()).hexdigest() == (committed["serverSeedHash"])
    )
    assert [a["round"]["fairness"]["nonce"] for a in answers] == [0, 1, 2, 3, 4]
    assert revealed["lastNonce"] == 4
    assert (rotation["current"]["clientSeed"], rotation["current"]["nextNonce"]) == (
        "next:seed",
        0,
    )
    reels = [
        (answer["round"]["fairness"], reel)
        for answer in answers
        for reel in answer["round"]["reels"]
    ]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda pair: verify_with_the_cli(system, revealed, *pair), reels))
    for (fairness, reel), run in zip(reels, runs, strict=True):
        assert run.returncode == 0, (reel, run.stdout, run.stderr)
        first_line = run.stdout.splitlines()[0]
        assert first_line.startswith(f"prize: itemId {reel['prize']['itemId']} "), (
            reel,
            first_line,
        )
        assert json.dumps(reel["prize"]["name"], ensure_ascii=False) in first_line
        assert f"nonce             {fairness['nonce']}" in run.stdout
    assert len(runs) == 3 * 3 + 1 + 2
    # A seed that is not the committed one does not verify.
    wrong = verify_with_the_cli(
        system,
        revealed,
        {**reels[0][0], "serverSeedHash": rotation["current"]["serverSeedHash"]},
        reels[0][1],
    )
    assert wrong.returncode == 1 and "NOT VERIFIED" in wrong.stderr, (wrong.stdout, wrong.stderr)
    assert time.monotonic() - started < 30


def test_one_players_purchases_racing_across_workers_take_each_nonce_once(
    system: SystemStack, boxes: dict[str, int]
) -> None:
    player = system.new_player("race")
    versions = [boxes["fair-dice"], boxes["fair-coin"]]
    first = purchase(system, player, versions)
    old_hash = first["round"]["fairness"]["serverSeedHash"]

    def buy() -> Response:
        body = system.purchase_body(player, f"race-{system.new_player('act')}")
        body["reels"] = [{"reelIndex": i, "boxVersionId": v} for i, v in enumerate(versions)]
        return system.post("/api/s2s/purchase", body)

    calls: list[Callable[[], Response]] = [buy for _ in range(RACERS)]
    calls.insert(RACERS // 2, lambda: rotate(system, player, old_hash))
    answers = concurrently(calls)

    assert {a.status for a in answers} == {200}, summary(answers)
    rotation = answers.pop(RACERS // 2).json
    rounds = [first, *(a.json for a in answers)]
    new_hash = rotation["current"]["serverSeedHash"]
    by_pair: dict[str, list[dict[str, Any]]] = {old_hash: [], new_hash: []}
    for answer in rounds:
        by_pair[answer["round"]["fairness"]["serverSeedHash"]].append(answer)
    old, new = by_pair[old_hash], by_pair[new_hash]
    assert len(old) + len(new) == RACERS + 1
    assert sorted(a["round"]["fairness"]["nonce"] for a in old) == list(range(len(old)))
    assert sorted(a["round"]["fairness"]["nonce"] for a in new) == list(range(len(new)))
    assert rotation["revealed"]["lastNonce"] == len(old) - 1
    second = ok(rotate(system, player, new_hash))["revealed"]
    snapshots = {v: load_snapshot(snapshot_url(system, v)) for v in versions}
    for group, revealed in ((old, rotation["revealed"]), (new, second)):
        for answer in group:
            fairness = answer["round"]["fairness"]
            for reel in answer["round"]["reels"]:
                draw = verify_draw(
                    revealed["serverSeed"],
                    fairness["clientSeed"],
                    fairness["nonce"],
                    reel["reelIndex"],
                    snapshots[reel["boxVersionId"]],
                    expected_server_seed_hash=fairness["serverSeedHash"],
                )
                assert draw.item_id == reel["prize"]["itemId"], (answer["round"], draw)
    drawn = system.query(
        "SELECT count(*) AS n FROM rounds r JOIN seed_pairs p ON p.id = r.seed_pair_id"
        " WHERE p.player_external_id = :p",
        p=player,
    )
    assert drawn[0].n == RACERS + 1, "each round recorded with its pair and nonce"


def test_the_verifier_reports_a_snapshot_url_that_answers_404(system: SystemStack) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lootbox.fairness",
            "verify",
            f"--server-seed={'0' * 64}",
            "--client-seed=x",
            "--nonce=0",
            "--reel=0",
            f"--snapshot={system.base_url}/fairness/box-version/999999999/snapshot",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        check=False,
    )

    assert run.returncode == 1 and "404" in run.stderr, (run.stdout, run.stderr)


def test_a_client_seed_starting_with_a_dash_verifies_with_the_documented_command(
    system: SystemStack, boxes: dict[str, int]
) -> None:
    """docs/fairness.md: ``--client-seed CLIENT_SEED``. A player may choose any printable
    client seed, "-" first included (contract section 9), and must be able to check it."""
    player = system.new_player("dash")
    first = ok(get(system, "/api/s2s/fairness", playerExternalId=player))
    chosen = ok(rotate(system, player, first["serverSeedHash"], clientSeed="-lucky-7"))
    bought = purchase(system, player, [boxes["fair-dice"]])
    fairness, (reel,) = bought["round"]["fairness"], bought["round"]["reels"]
    assert fairness["clientSeed"] == "-lucky-7"
    revealed = ok(rotate(system, player, chosen["current"]["serverSeedHash"]))["revealed"]

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lootbox.fairness",
            "verify",
            "--server-seed",
            revealed["serverSeed"],
            "--client-seed",
            fairness["clientSeed"],
            "--nonce",
            str(fairness["nonce"]),
            "--reel",
            "0",
            "--snapshot",
            snapshot_url(system, reel["boxVersionId"]),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        check=False,
    )

    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.stdout.startswith(f"prize: itemId {reel['prize']['itemId']} ")
