"""Provably fair draws (contract section 9) through HTTP: the player's seeds
(``GET /api/s2s/fairness``), their rotation (``POST /api/s2s/fairness/rotate``), the public
snapshot of a box version, the ``fairness`` block of every round, and the proof itself:
after a rotation, every prize the player won is re-derived from the revealed seed and the
public snapshot with the standalone verifier (``lootbox.fairness.verify_draw``), and must be
the prize the service gave.

Concurrency runs in real threads against the app and its real PostgreSQL (as
tests/e2e/test_exactly_once.py does): one player's purchases racing each other, and a
rotation racing them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from app import create_app
from lootbox.domain.fairness import ALGORITHM, snapshot_hash
from lootbox.fairness import (
    ServerSeedHashMismatch,
    SnapshotHashMismatch,
    parse_snapshot,
    verify_draw,
)
from lootbox.services.purchase import purchase_key
from tests.concurrency import BATCH_TIMEOUT, concurrently
from tests.e2e.conftest import (
    CATALOG,
    OTHER_PLAYER,
    PLAYER,
    STARTING_BALANCE,
    Reply,
    SignedClient,
    StackConfig,
    World,
    WorldFactory,
    app_settings,
)
from tests.e2e.db_faults import SerializationFaults

FAIRNESS = "/api/s2s/fairness"
ROTATE = "/api/s2s/fairness/rotate"
HEX64 = re.compile(r"[0-9a-f]{64}")
RETRY_DEADLINE = 8.0  # seconds: a retry that must wait out a lease

# A box with a real prize table: six prizes, odds a binary float cannot all hold, names
# with non-ASCII characters (the snapshot's canonical JSON escapes them, beyond U+FFFF
# as a surrogate pair).
DICE: dict[str, Any] = {
    "slug": "dice",
    "name": "Dé à six faces \U0001f3b2",
    "priceMinor": 600,
    "prizes": [
        {"name": "Épée", "valueMinor": 50, "odds": "0.05", "type": "physical"},
        {"name": "Bouclier ✨", "valueMinor": 100, "odds": "0.15"},
        {"name": "Dragon \U0001f409", "valueMinor": 200, "odds": "0.3", "type": "bonus"},
        {"name": "Coin", "valueMinor": 300, "odds": "0.25"},
        {"name": "Gem", "valueMinor": 1000, "odds": "0.125"},
        {"name": "Star", "valueMinor": 2000, "odds": "0.125"},
    ],
}
FAIR_CATALOG = {"boxes": [*CATALOG["boxes"], DICE]}


@pytest.fixture
def world(make_world: WorldFactory) -> World:
    return make_world(catalog=FAIR_CATALOG)


def canonical(value: Any) -> str:
    if isinstance(value, dict):
        items = (json.dumps(key) + ":" + canonical(value[key]) for key in sorted(value))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    return str(value) if isinstance(value, Decimal) else json.dumps(value)


# --- calls --------------------------------------------------------------------------------------


def seeds(client: SignedClient, player: str = PLAYER) -> Reply:
    return client.get(FAIRNESS, query_string=urlencode({"playerExternalId": player}))


def current(client: SignedClient, player: str = PLAYER) -> dict[str, Any]:
    reply = seeds(client, player)
    assert reply.status == 200, reply.data
    return dict(reply.json)


def rotate(client: SignedClient, **body: Any) -> Reply:
    return client.post(ROTATE, body)


def rotated(client: SignedClient, player: str, seed_hash: str, **extra: Any) -> dict[str, Any]:
    reply = rotate(client, playerExternalId=player, serverSeedHash=seed_hash, **extra)
    assert reply.status == 200, reply.data
    return dict(reply.json)


def snapshot(world: World, box_version_id: Any) -> Reply:
    """The public snapshot, fetched as a player would: no signature."""
    response = world.app.test_client().get(f"/fairness/box-version/{box_version_id}/snapshot")
    return Reply(response.status_code, response.headers, response.get_data())


def buy(world: World, *boxes: str, player: str = PLAYER, **kwargs: Any) -> dict[str, Any]:
    reply = world.api.purchase(**world.purchase_body(*boxes, player=player, **kwargs))
    assert reply.status == 200, reply.data
    return dict(reply.json)


def open_round(world: World, public_id: str, player: str = PLAYER) -> dict[str, Any]:
    reply = world.api.open(playerExternalId=player, roundPublicId=public_id)
    assert reply.status == 200, reply.data
    return dict(reply.json)


def nonce_of(answer: dict[str, Any]) -> int:
    fairness = answer["round"]["fairness"]
    assert fairness is not None, answer
    return int(fairness["nonce"])


# --- the proof ------------------------------------------------------------------------------------


class Verifier:
    """Re-derives prizes with the standalone verifier, from public snapshots only."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.verified = 0

    def snapshot(self, box_version_id: int) -> dict[str, Any]:
        if box_version_id not in self.snapshots:
            reply = snapshot(self.world, box_version_id)
            assert reply.status == 200, reply.data
            self.snapshots[box_version_id] = parse_snapshot(reply.data)
        return self.snapshots[box_version_id]

    def round(self, answer: dict[str, Any], revealed: dict[str, Any]) -> None:
        """Every reel of the round in a purchase/open ``answer``, with the ``revealed``
        block of a rotation: the verifier's prize must be the prize the service gave."""
        round_ = answer["round"]
        fairness = round_["fairness"]
        assert fairness["serverSeedHash"] == revealed["serverSeedHash"], (fairness, revealed)
        assert fairness["nonce"] <= revealed["lastNonce"], (fairness, revealed)
        won = {item["reelIndex"]: item["itemId"] for item in answer["wonItems"]}
        assert sorted(won) == [reel["reelIndex"] for reel in round_["reels"]]
        for reel in round_["reels"]:
            draw = verify_draw(
                revealed["serverSeed"],
                fairness["clientSeed"],
                fairness["nonce"],
                reel["reelIndex"],
                self.snapshot(reel["boxVersionId"]),
                expected_server_seed_hash=fairness["serverSeedHash"],
            )
            assert draw.item_id == reel["prize"]["itemId"], (round_["publicId"], reel, draw)
            assert draw.item_id == won[reel["reelIndex"]]
            assert draw.prize["name"] == reel["prize"]["name"]
            self.verified += 1

    def rounds(self, answers: Sequence[dict[str, Any]], revealed: dict[str, Any]) -> None:
        for answer in answers:
            self.round(answer, revealed)


def purchase_call(world: World, player: str, *boxes: str) -> Callable[[], Reply]:
    body = world.purchase_body(*boxes, player=player)
    return lambda: SignedClient(world.app, world.operator).purchase(**body)


def rotate_call(world: World, player: str, seed_hash: str) -> Callable[[], Reply]:
    body = {"playerExternalId": player, "serverSeedHash": seed_hash}
    return lambda: SignedClient(world.app, world.operator).post(ROTATE, body)


# --- GET /api/s2s/fairness ------------------------------------------------------------------------


def test_the_first_read_creates_the_pair_and_shows_only_its_hash(world: World) -> None:
    first = seeds(world.api)
    again = seeds(world.api)

    assert first.status == 200, first.data
    body = first.json
    assert set(body) == {"serverSeedHash", "clientSeed", "nextNonce", "algorithmKey"}
    assert HEX64.fullmatch(body["serverSeedHash"])
    assert re.fullmatch(r"[0-9a-f]{16}", body["clientSeed"]), "the default: 16 hex characters"
    assert (body["nextNonce"], body["algorithmKey"]) == (0, ALGORITHM)
    assert again.json == body, "created once"
    assert first.headers.get("X-Request-Id")
    # The secret stays in the database, sealed: not its hash, not a hex seed.
    (row,) = world.query(
        "SELECT server_seed, server_seed_hash FROM seed_pairs WHERE player_external_id = :p",
        p=PLAYER,
    )
    assert row.server_seed_hash == body["serverSeedHash"]
    assert not HEX64.fullmatch(row.server_seed)


def test_each_player_and_each_operator_has_a_pair_of_its_own(world: World) -> None:
    other_operator = world.client_for(world.onboard())

    mine = current(world.api)
    theirs = current(world.api, OTHER_PLAYER)
    same_id_elsewhere = current(other_operator)

    hashes = {mine["serverSeedHash"], theirs["serverSeedHash"], same_id_elsewhere["serverSeedHash"]}
    assert len(hashes) == 3
    assert current(world.api) == mine


def test_reading_the_seeds_is_signed(world: World) -> None:
    query = urlencode({"playerExternalId": PLAYER})

    unsigned = world.api.get(FAIRNESS, query_string=query, signed=False)
    forged = world.api.get(FAIRNESS, query_string=query, secret="not-the-secret")
    stale = world.api.get(FAIRNESS, query_string=query, timestamp=int(time.time()) - 3600)

    assert (unsigned.status, unsigned.code) == (401, "MISSING_HEADERS")
    assert (forged.status, forged.code) == (401, "INVALID_SIGNATURE")
    assert (stale.status, stale.code) == (401, "TIMESTAMP_SKEW")
    assert world.query("SELECT id FROM seed_pairs") == [], "nothing created unauthenticated"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"playerExternalId": ""},
        {"playerExternalId": "u" * 191},
        {"playerExternalId": PLAYER, "nonce": "3"},
    ],
    ids=["missing", "empty", "too-long", "unknown-parameter"],
)
def test_a_malformed_query_is_a_validation_error(world: World, query: dict[str, str]) -> None:
    reply = world.api.get(FAIRNESS, query_string=urlencode(query))

    assert (reply.status, reply.code) == (400, "VALIDATION_ERROR"), reply.data
    assert reply.fields
    assert world.query("SELECT id FROM seed_pairs") == []


# --- POST /api/s2s/fairness/rotate ----------------------------------------------------------------


def test_a_rotation_reveals_the_committed_seed_and_starts_a_new_pair(world: World) -> None:
    committed = current(world.api)
    buy(world, "dice")
    buy(world, "mixed", "dice")

    rotation = rotated(world.api, PLAYER, committed["serverSeedHash"], clientSeed="my~own:seed!")

    assert set(rotation) == {"revealed", "current"}
    revealed, now = rotation["revealed"], rotation["current"]
    assert set(revealed) == {"serverSeed", "serverSeedHash", "clientSeed", "lastNonce"}
    assert HEX64.fullmatch(revealed["serverSeed"])
    assert (
        hashlib.sha256(revealed["serverSeed"].encode()).hexdigest() == (committed["serverSeedHash"])
    )
    assert revealed["serverSeedHash"] == committed["serverSeedHash"]
    assert (revealed["clientSeed"], revealed["lastNonce"]) == (committed["clientSeed"], 1)
    assert {"serverSeedHash", "clientSeed", "nextNonce"} <= set(now)
    assert now["serverSeedHash"] != committed["serverSeedHash"]
    assert (now["clientSeed"], now["nextNonce"]) == ("my~own:seed!", 0)
    assert now.get("algorithmKey", ALGORITHM) == ALGORITHM
    assert current(world.api) == {**now, "algorithmKey": ALGORITHM}
    assert nonce_of(buy(world, "gold")) == 0, "the new pair starts at nonce 0"
    # Sealed at rest before the reveal, and still not stored in the clear after it.
    stored = [row.server_seed for row in world.query("SELECT server_seed FROM seed_pairs")]
    assert all(revealed["serverSeed"] not in value for value in stored)


def test_without_a_client_seed_the_old_one_is_carried_forward(world: World) -> None:
    first = current(world.api)
    second = rotated(world.api, PLAYER, first["serverSeedHash"], clientSeed="chosen")["current"]

    third = rotated(world.api, PLAYER, second["serverSeedHash"])["current"]
    fourth = rotated(world.api, PLAYER, third["serverSeedHash"], clientSeed=None)["current"]

    assert second["clientSeed"] == third["clientSeed"] == fourth["clientSeed"] == "chosen"
    assert len({p["serverSeedHash"] for p in (first, second, third, fourth)}) == 4


def test_a_pair_that_drew_nothing_reveals_a_null_last_nonce(world: World) -> None:
    committed = current(world.api)
    world.hold_round("dice")  # held: not drawn, takes no nonce

    revealed = rotated(world.api, PLAYER, committed["serverSeedHash"])["revealed"]

    assert revealed["lastNonce"] is None
    assert (
        hashlib.sha256(revealed["serverSeed"].encode()).hexdigest() == (committed["serverSeedHash"])
    )


def test_a_retried_rotation_answers_the_same_reveal_and_the_pair_current_now(
    world: World,
) -> None:
    committed = current(world.api)
    buy(world, "dice")
    body = {"playerExternalId": PLAYER, "serverSeedHash": committed["serverSeedHash"]}
    first = rotate(world.api, **body, clientSeed="first-choice")
    retry = rotate(world.api, **body, clientSeed="first-choice")
    later = rotated(world.api, PLAYER, first.json["current"]["serverSeedHash"])

    much_later = rotate(world.api, **body, clientSeed="another-choice-ignored")

    assert first.status == retry.status == much_later.status == 200
    assert retry.json == first.json
    assert much_later.json["revealed"] == first.json["revealed"]
    assert much_later.json["current"] == later["current"], "the pair current now"
    assert much_later.json["current"]["clientSeed"] == "first-choice"
    states = world.query("SELECT state FROM seed_pairs WHERE player_external_id = :p", p=PLAYER)
    assert sorted(row.state for row in states) == ["current", "revealed", "revealed"]


def test_a_hash_that_is_not_one_of_the_players_pairs_is_not_found(world: World) -> None:
    mine = current(world.api)
    theirs = current(world.api, OTHER_PLAYER)
    other_operator = world.client_for(world.onboard())
    unknown = rotate(world.api, playerExternalId=PLAYER, serverSeedHash="0" * 64)

    another_players = rotate(
        world.api, playerExternalId=PLAYER, serverSeedHash=theirs["serverSeedHash"]
    )
    named_for_them = rotate(
        world.api, playerExternalId=OTHER_PLAYER, serverSeedHash=mine["serverSeedHash"]
    )
    another_operators = rotate(
        other_operator, playerExternalId=PLAYER, serverSeedHash=mine["serverSeedHash"]
    )

    assert (unknown.status, unknown.code) == (404, "SEED_PAIR_NOT_FOUND")
    for reply in (another_players, named_for_them, another_operators):
        assert (reply.status, reply.error) == (404, unknown.error), "indistinguishable"
    assert current(world.api) == mine and current(world.api, OTHER_PLAYER) == theirs
    stranger = rotate(world.api, playerExternalId="u_never_seen", serverSeedHash="1" * 64)
    assert (stranger.status, stranger.error) == (404, unknown.error)
    assert world.query("SELECT id FROM seed_pairs WHERE player_external_id = 'u_never_seen'") == []


@pytest.mark.parametrize(
    "client_seed",
    ["", "x" * 65, "two words", "tab\there", "é-accent", "new\nline", "\x7f"],
    ids=["empty", "65-chars", "space", "tab", "non-ascii", "newline", "del"],
)
def test_a_malformed_client_seed_is_refused_and_rotates_nothing(
    world: World, client_seed: str
) -> None:
    committed = current(world.api)

    reply = rotate(
        world.api,
        playerExternalId=PLAYER,
        serverSeedHash=committed["serverSeedHash"],
        clientSeed=client_seed,
    )

    assert (reply.status, reply.code) == (422, "INVALID_CLIENT_SEED"), reply.data
    assert current(world.api) == committed


@pytest.mark.parametrize("client_seed", ["!", "~" * 64, "a:b:c", "0"])
def test_client_seeds_of_one_to_64_printable_characters_are_taken(
    world: World, client_seed: str
) -> None:
    committed = current(world.api)

    now = rotated(world.api, PLAYER, committed["serverSeedHash"], clientSeed=client_seed)

    assert now["current"]["clientSeed"] == client_seed
    assert nonce_of(buy(world, "dice")) == 0


@pytest.mark.parametrize(
    "change,field",
    [
        ({"serverSeedHash": None}, "serverSeedHash"),
        ({"serverSeedHash": "A" * 64}, "serverSeedHash"),
        ({"serverSeedHash": "a" * 63}, "serverSeedHash"),
        ({"serverSeedHash": "g" * 64}, "serverSeedHash"),
        ({"serverSeedHash": 7}, "serverSeedHash"),
        ({"playerExternalId": None}, "playerExternalId"),
        ({"clientSeed": 12345}, "clientSeed"),
        ({"nonce": 0}, "nonce"),
    ],
    ids=[
        "hash-missing",
        "hash-uppercase",
        "hash-short",
        "hash-not-hex",
        "hash-number",
        "player-missing",
        "seed-number",
        "unknown-field",
    ],
)
def test_a_malformed_rotation_is_a_validation_error_naming_the_field(
    world: World, change: dict[str, Any], field: str
) -> None:
    committed = current(world.api)
    body = {"playerExternalId": PLAYER, "serverSeedHash": committed["serverSeedHash"], **change}
    body = {name: value for name, value in body.items() if value is not None}

    reply = world.api.post(ROTATE, body)

    assert (reply.status, reply.code) == (400, "VALIDATION_ERROR"), reply.data
    assert field in reply.fields, reply.fields
    assert current(world.api) == committed


def test_rotation_is_signed_json_of_bounded_size(make_world: WorldFactory) -> None:
    world = make_world(max_content_length=2048)
    committed = current(world.api)
    body = {"playerExternalId": PLAYER, "serverSeedHash": committed["serverSeedHash"]}
    raw = json.dumps(body).encode()

    unsigned = world.api.post(ROTATE, body, signed=False)
    forged = world.api.post(ROTATE, body, secret="not-the-secret")
    stale = world.api.post(ROTATE, body, timestamp=int(time.time()) - 3600)
    text = world.api.post(ROTATE, raw=raw, content_type="text/plain")
    broken = world.api.post(ROTATE, raw=b'{"playerExternalId": ')
    listed = world.api.post(ROTATE, raw=b"[]")
    large = world.api.post(ROTATE, {**body, "padding": "x" * 4096})
    large_get = world.api.get(FAIRNESS, raw=b"x" * 4096, query_string="playerExternalId=u_1")
    wrong_method = world.api.get(ROTATE)
    wrong_method_too = world.api.post(FAIRNESS, {"playerExternalId": PLAYER})

    assert (unsigned.status, unsigned.code) == (401, "MISSING_HEADERS")
    assert (forged.status, forged.code) == (401, "INVALID_SIGNATURE")
    assert (stale.status, stale.code) == (401, "TIMESTAMP_SKEW")
    assert (text.status, text.code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert (broken.status, broken.code) == (400, "VALIDATION_ERROR")
    assert (listed.status, listed.code) == (400, "VALIDATION_ERROR")
    assert (large.status, large.code) == (413, "PAYLOAD_TOO_LARGE")
    assert (large_get.status, large_get.code) == (413, "PAYLOAD_TOO_LARGE")
    assert (wrong_method.status, wrong_method.code) == (405, "METHOD_NOT_ALLOWED")
    assert (wrong_method_too.status, wrong_method_too.code) == (405, "METHOD_NOT_ALLOWED")
    assert current(world.api) == committed, "nothing was rotated"


AUTH = {"MISSING_HEADERS", "INVALID_SIGNATURE", "TIMESTAMP_SKEW"}
DOCUMENTED = {
    (FAIRNESS, "get"): {
        "400": {"VALIDATION_ERROR"},
        "401": AUTH,
        "413": {"PAYLOAD_TOO_LARGE"},
        "503": {"SERVICE_UNAVAILABLE"},
    },
    (ROTATE, "post"): {
        "400": {"VALIDATION_ERROR"},
        "401": AUTH,
        "404": {"SEED_PAIR_NOT_FOUND"},
        "413": {"PAYLOAD_TOO_LARGE"},
        "415": {"UNSUPPORTED_MEDIA_TYPE"},
        "422": {"INVALID_CLIENT_SEED"},
        "503": {"SERVICE_UNAVAILABLE"},
    },
}


def test_the_document_lists_exactly_the_codes_these_tests_provoke(world: World) -> None:
    document = json.loads(world.app.test_client().get("/openapi.json").get_data())

    for (path, method), expected in DOCUMENTED.items():
        operation = document["paths"][path][method]
        documented = {
            status: set(
                answer["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"][
                    "properties"
                ]["code"]["enum"]
            )
            for status, answer in operation["responses"].items()
            if status.startswith(("4", "5"))
        }
        assert documented == expected, path
        assert "200" in operation["responses"], path
        assert operation["security"], f"{path} is signed"


# --- the database failing -------------------------------------------------------------------------


def test_a_rotation_the_database_fails_is_unavailable_and_rotates_nothing(
    world: World, faults: SerializationFaults
) -> None:
    committed = current(world.api)
    faults.arm("reveal", table="seed_pairs", operation="UPDATE")

    failed = rotate(world.api, playerExternalId=PLAYER, serverSeedHash=committed["serverSeedHash"])
    faults.disarm("reveal")
    retried = rotate(world.api, playerExternalId=PLAYER, serverSeedHash=committed["serverSeedHash"])

    assert (failed.status, failed.code) == (503, "SERVICE_UNAVAILABLE"), failed.data
    assert faults.hits("reveal") == 1
    assert retried.status == 200, retried.data
    assert retried.json["revealed"]["serverSeedHash"] == committed["serverSeedHash"]


def test_a_first_read_the_database_fails_is_unavailable_and_creates_nothing(
    world: World, faults: SerializationFaults
) -> None:
    faults.arm("first_pair", table="seed_pairs", operation="INSERT")

    failed = seeds(world.api)
    faults.disarm("first_pair")

    assert (failed.status, failed.code) == (503, "SERVICE_UNAVAILABLE"), failed.data
    assert world.query("SELECT id FROM seed_pairs") == []
    assert current(world.api)["nextNonce"] == 0


def test_a_draw_the_database_fails_takes_no_nonce_and_the_retry_draws_the_next(
    make_world: WorldFactory, faults: SerializationFaults
) -> None:
    world = make_world(
        catalog=FAIR_CATALOG,
        wallet_connect_timeout_seconds=0.5,
        wallet_read_timeout_seconds=1.0,
        movement_lease_seconds=1.6,
        idempotency_lease_seconds=1.5,
    )
    assert nonce_of(buy(world, "dice")) == 0
    body = world.purchase_body("dice", "mixed")
    faults.arm("draw", table="seed_pairs", operation="UPDATE")

    failed = world.api.purchase(**body)
    faults.disarm("draw")
    retry = world.api.purchase(**body)
    deadline = time.monotonic() + RETRY_DEADLINE
    while retry.status == 409 and time.monotonic() < deadline:  # a lease still held
        time.sleep(float(retry.headers.get("Retry-After", "0.2")) / 4)
        retry = world.api.purchase(**body)

    assert (failed.status, failed.code) == (503, "SERVICE_UNAVAILABLE"), failed.data
    assert faults.hits("draw") == 1
    assert retry.status == 200, retry.data
    assert nonce_of(retry.json) == 1, "the failed draw rolled its nonce back"
    assert len(world.wallet.debits(playerExternalId=PLAYER)) == 2
    assert current(world.api)["nextNonce"] == 2


def test_the_snapshot_is_unavailable_while_the_database_is(stack: StackConfig) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:9/nothing_listens_here"
    app = create_app(app_settings(stack, database_url=unreachable))
    try:
        response = app.test_client().get("/fairness/box-version/1/snapshot")
        reply = Reply(response.status_code, response.headers, response.get_data())

        assert (reply.status, reply.code) == (503, "SERVICE_UNAVAILABLE"), reply.data
    finally:
        container = app.extensions["lootbox"]
        container.services.wallet.close()
        container.engine.dispose()


# --- GET /fairness/box-version/{id}/snapshot ---------------------------------------------------


def test_the_snapshot_is_public_in_published_order_and_hashes_to_its_snapshot_hash(
    world: World,
) -> None:
    version = world.boxes["dice"]

    reply = snapshot(world, version)

    assert reply.status == 200, reply.data
    assert reply.headers["Content-Type"].startswith("application/json")
    body = parse_snapshot(reply.data)
    assert {
        "boxVersionId",
        "boxId",
        "versionNumber",
        "priceMinor",
        "currency",
        "prizes",
        "snapshotHash",
    } <= set(body)
    assert (body["boxVersionId"], body["priceMinor"], body["currency"]) == (version, 600, "EUR")
    assert body["name"] == DICE["name"]
    assert [(p["name"], p["valueMinor"], str(p["odds"])) for p in body["prizes"]] == [
        (p["name"], p["valueMinor"], p["odds"]) for p in DICE["prizes"]
    ]
    assert all({"itemId", "name", "valueMinor", "odds"} <= set(p) for p in body["prizes"])
    assert len({p["itemId"] for p in body["prizes"]}) == len(DICE["prizes"])
    assert HEX64.fullmatch(body["snapshotHash"])
    assert body["snapshotHash"] == snapshot_hash(body)
    # The contract's canonical JSON, written here again: keys sorted, no spaces, ASCII
    # (non-ASCII as \u escapes, U+1F3B2 as a surrogate pair), odds with their digits.
    rest = {key: value for key, value in body.items() if key != "snapshotHash"}
    text = canonical(rest)
    assert "\\ud83c\\udfb2" in text and text.isascii()
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == body["snapshotHash"]


def test_the_snapshot_needs_no_signature_and_answers_the_same_to_anyone(world: World) -> None:
    version = world.boxes["dice"]
    public = snapshot(world, version)

    signed = world.api.get(f"/fairness/box-version/{version}/snapshot")
    other_operator = world.client_for(world.onboard())
    by_another_operator = other_operator.get(f"/fairness/box-version/{version}/snapshot")

    assert public.status == signed.status == by_another_operator.status == 200
    assert public.data == signed.data == by_another_operator.data


def test_an_unknown_version_has_no_snapshot_and_a_malformed_id_is_a_validation_error(
    world: World,
) -> None:
    unknown = snapshot(world, 10**12)
    malformed = [snapshot(world, version) for version in ("abc", "0", "-1", str(2**63), "1.5")]

    assert (unknown.status, unknown.code) == (404, "UNKNOWN_BOX")
    for reply in malformed:
        assert (reply.status, reply.code) == (400, "VALIDATION_ERROR"), reply.data


# --- the fairness of every round ---------------------------------------------------------------


def test_an_atomic_purchase_of_several_reels_is_drawn_with_one_nonce(world: World) -> None:
    committed = current(world.api)

    bought = buy(world, "dice", "mixed", "dice", "gold")

    fairness = bought["round"]["fairness"]
    assert fairness == {
        "serverSeedHash": committed["serverSeedHash"],
        "clientSeed": committed["clientSeed"],
        "nonce": 0,
        "algorithmKey": ALGORITHM,
    }
    reels = bought["round"]["reels"]
    assert [reel["reelIndex"] for reel in reels] == [0, 1, 2, 3]
    assert all(reel["prize"]["itemId"] for reel in reels)
    assert sorted((i["reelIndex"], i["itemId"]) for i in bought["wonItems"]) == [
        (reel["reelIndex"], reel["prize"]["itemId"]) for reel in reels
    ]
    assert current(world.api)["nextNonce"] == 1, "one round, one nonce"


def test_a_held_round_has_no_fairness_until_it_is_opened(world: World) -> None:
    assert nonce_of(buy(world, "gold")) == 0
    held = world.api.purchase(**world.purchase_body("dice", "mixed", mode="prepay"))
    assert held.status == 200, held.data
    assert held.json["round"]["fairness"] is None
    assert current(world.api)["nextNonce"] == 1, "a held round takes no nonce"
    assert nonce_of(buy(world, "gold")) == 1

    opened = open_round(world, held.json["round"]["publicId"])
    replay = world.api.open(playerExternalId=PLAYER, roundPublicId=held.json["round"]["publicId"])

    assert nonce_of(opened) == 2, "the nonce is taken when the round is drawn"
    assert opened["round"]["fairness"]["serverSeedHash"] == current(world.api)["serverSeedHash"]
    assert replay.replayed and replay.json == opened
    assert current(world.api)["nextNonce"] == 3


def test_a_round_held_across_a_rotation_is_drawn_with_the_pair_current_when_opened(
    world: World,
) -> None:
    committed = current(world.api)
    assert nonce_of(buy(world, "dice")) == 0
    held = world.hold_round(
        "dice",
    )

    rotation = rotated(world.api, PLAYER, committed["serverSeedHash"])
    opened = open_round(world, held)

    assert rotation["revealed"]["lastNonce"] == 0, "the held round was not drawn"
    assert opened["round"]["fairness"]["serverSeedHash"] == rotation["current"]["serverSeedHash"]
    assert nonce_of(opened) == 0
    revealed = rotated(world.api, PLAYER, rotation["current"]["serverSeedHash"])["revealed"]
    Verifier(world).round(opened, revealed)


def test_a_cancelled_held_round_takes_no_nonce(world: World) -> None:
    held = world.hold_round("dice")

    cancelled = world.api.cancel(playerExternalId=PLAYER, roundPublicId=held)

    assert cancelled.status == 200, cancelled.data
    assert nonce_of(buy(world, "dice")) == 0


def test_a_replayed_purchase_answers_the_same_draw_and_takes_no_nonce(world: World) -> None:
    body = world.purchase_body("dice", "dice")
    first = world.api.purchase(**body)

    replay = world.api.purchase(**body)

    assert first.status == replay.status == 200
    assert replay.replayed and replay.data == first.data
    assert nonce_of(replay.json) == 0
    assert current(world.api)["nextNonce"] == 1
    assert nonce_of(buy(world, "dice")) == 1


def forget_answers(world: World, *keys: str) -> None:
    """The idempotency records of ``keys`` gone, as after their retention: expired and
    purged from the database, deleted from Redis (tests/e2e/test_retention.py)."""
    (records,) = world.query("SELECT count(*) AS n FROM idempotency_records")
    deadline = time.monotonic() + 10
    while True:
        dry_run = world.cli("idem", "purge", "--dry-run")
        assert dry_run.exit_code == 0, dry_run
        if int(dry_run.json["expired"]) >= records.n:
            break
        assert time.monotonic() < deadline, "the records did not expire"
        time.sleep(0.1)
    assert world.cli("idem", "purge").exit_code == 0
    for key in keys:
        world.redis.delete(world.redis_key(key))


def test_answers_rebuilt_after_retention_and_a_rotation_name_the_pair_they_were_drawn_with(
    make_world: WorldFactory,
) -> None:
    world = make_world(catalog=FAIR_CATALOG, idempotency_ttl_seconds=1)
    committed = current(world.api)
    body = world.purchase_body("dice", "mixed")
    bought = world.api.purchase(**body)
    held = world.hold_round("dice")
    opened = world.api.open(playerExternalId=PLAYER, roundPublicId=held)
    assert bought.status == opened.status == 200
    revealed = rotated(world.api, PLAYER, committed["serverSeedHash"])["revealed"]
    forget_answers(world, purchase_key(PLAYER, body["clientActionId"]), f"open:round:{held}")

    bought_again = world.api.purchase(**body)
    opened_again = world.api.open(playerExternalId=PLAYER, roundPublicId=held)

    assert bought_again.status == 200 and bought_again.data == bought.data, bought_again.data
    assert opened_again.status == 200, opened_again.data
    assert opened_again.json["round"] == opened.json["round"]
    assert [nonce_of(bought.json), nonce_of(opened.json)] == [0, 1]
    Verifier(world).rounds([bought_again.json, opened_again.json], revealed)
    assert current(world.api)["nextNonce"] == 0, "no retry drew again"


def test_nonces_are_consecutive_per_player_from_zero_and_a_voided_purchase_takes_none(
    world: World,
) -> None:
    nonces = [nonce_of(buy(world, "dice")), nonce_of(buy(world, "mixed", "gold"))]
    held = world.hold_round("dice")
    world.wallet.set_balance(PLAYER, "EUR", 0)
    refused = world.api.purchase(**world.purchase_body("dice"))
    world.wallet.set_balance(PLAYER, "EUR", STARTING_BALANCE)
    nonces.append(nonce_of(buy(world, "dice")))
    nonces.append(nonce_of(open_round(world, held)))
    theirs = nonce_of(buy(world, "dice", player=OTHER_PLAYER))
    nonces.append(nonce_of(buy(world, "dice", currency="USD")))

    assert (refused.status, refused.code) == (422, "INSUFFICIENT_FUNDS")
    assert nonces == [0, 1, 2, 3, 4]
    assert theirs == 0, "every player counts from 0"
    voided = world.query(
        "SELECT seed_pair_id, nonce FROM rounds"
        " WHERE status = 'voided' AND player_external_id = :p",
        p=PLAYER,
    )
    assert [(row.seed_pair_id, row.nonce) for row in voided] == [(None, None)]
    assert current(world.api)["nextNonce"] == 5


def test_a_purchase_whose_debit_outcome_was_unknown_takes_its_nonce_when_drawn(
    world: World,
) -> None:
    assert nonce_of(buy(world, "dice")) == 0
    body = world.purchase_body("dice", "mixed")
    world.wallet.fault("reset", times=1, types=["wallet.debit"])

    unknown = world.api.purchase(**body)
    meanwhile = current(world.api)["nextNonce"]
    retry = world.api.purchase(**body)

    assert (unknown.status, unknown.code) == (503, "WALLET_UNAVAILABLE")
    assert meanwhile == 1, "a pending purchase is not drawn yet"
    assert retry.status == 200, retry.data
    assert nonce_of(retry.json) == 1


def test_purchases_the_reconciler_finishes_take_a_nonce_only_when_drawn(world: World) -> None:
    assert nonce_of(buy(world, "dice")) == 0
    applied_body = world.purchase_body("dice", "mixed")
    lost_body = world.purchase_body("dice")
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.debit"])
    applied = world.api.purchase(**applied_body)  # debited, the answer lost
    world.wallet.fault("reset", times=1, types=["wallet.debit"])
    lost = world.api.purchase(**lost_body)  # never reached the wallet
    assert applied.code == lost.code == "WALLET_UNAVAILABLE"
    assert current(world.api)["nextNonce"] == 1
    # Broke now: the re-sent debit is refused; the applied one is replayed as accepted.
    world.wallet.set_balance(PLAYER, "EUR", 0)

    result = world.cli("reconcile")

    assert result.exit_code == 0, result
    assert (result.json["completed"], result.json["refused"]) == (1, 1), result.json
    assert current(world.api)["nextNonce"] == 2, "drawn: the applied one; voided: none"
    answer = world.api.purchase(**applied_body)
    assert answer.status == 200, answer.data
    assert nonce_of(answer.json) == 1
    voided = world.query(
        "SELECT nonce FROM rounds WHERE status = 'voided' AND player_external_id = :p", p=PLAYER
    )
    assert [row.nonce for row in voided] == [None]
    revealed = rotated(world.api, PLAYER, answer.json["round"]["fairness"]["serverSeedHash"])
    Verifier(world).round(answer.json, revealed["revealed"])


# --- the proof: every prize re-derived ------------------------------------------------------------


def test_every_prize_of_every_round_is_re_derived_from_the_revealed_seed(world: World) -> None:
    verifier = Verifier(world)
    committed = current(world.api)
    first_pair = [
        buy(world, "dice", "mixed", "dice"),
        buy(world, "dice"),
        buy(world, "gold", "dice", currency="JPY"),
    ]
    held = [world.hold_round("dice"), world.hold_round("mixed")]
    first_pair += [open_round(world, public_id) for public_id in held]
    replayed_body = world.purchase_body("dice", "dice")
    first = world.api.purchase(**replayed_body)
    replay = world.api.purchase(**replayed_body)
    assert replay.replayed and replay.data == first.data
    first_pair += [first.json, replay.json]
    for _ in range(12):
        first_pair.append(buy(world, "dice", "dice"))

    rotation = rotated(world.api, PLAYER, committed["serverSeedHash"], clientSeed="second:pair")
    second_pair = [buy(world, "dice", "mixed") for _ in range(3)]
    second_pair.append(open_round(world, world.hold_round("dice")))
    second_rotation = rotated(world.api, PLAYER, rotation["current"]["serverSeedHash"])

    assert [nonce_of(a) for a in first_pair] == [0, 1, 2, 3, 4, 5, 5, *range(6, 18)]
    assert rotation["revealed"]["lastNonce"] == 17
    verifier.rounds(first_pair, rotation["revealed"])
    assert [nonce_of(a) for a in second_pair] == [0, 1, 2, 3]
    assert second_rotation["revealed"]["clientSeed"] == "second:pair"
    assert second_rotation["revealed"]["lastNonce"] == 3
    verifier.rounds(second_pair, second_rotation["revealed"])
    assert verifier.verified == 3 + 1 + 2 + 2 + 4 + 24 + 6 + 1
    # The draws are real: with the dice box's six prizes, more than one came up.
    dice = world.boxes["dice"]
    drawn = {
        reel["prize"]["itemId"]
        for answer in first_pair + second_pair
        for reel in answer["round"]["reels"]
        if reel["boxVersionId"] == dice
    }
    assert len(drawn) >= 3, drawn


def test_a_prize_claimed_against_the_wrong_seed_or_table_does_not_verify(world: World) -> None:
    committed = current(world.api)
    answers = [buy(world, "dice", "dice", "dice") for _ in range(4)]
    revealed = rotated(world.api, PLAYER, committed["serverSeedHash"])["revealed"]
    verifier = Verifier(world)
    verifier.rounds(answers, revealed)

    # Another seed (the next pair's hash: hex of the right length) cannot pass as the
    # committed one, and a reordered prize table no longer matches its snapshotHash.
    fairness = answers[0]["round"]["fairness"]
    table = verifier.snapshot(world.boxes["dice"])
    reordered = {**table, "prizes": list(reversed(table["prizes"]))}
    with pytest.raises(ServerSeedHashMismatch):
        verify_draw(
            current(world.api)["serverSeedHash"],
            fairness["clientSeed"],
            fairness["nonce"],
            0,
            table,
            expected_server_seed_hash=fairness["serverSeedHash"],
        )
    with pytest.raises(SnapshotHashMismatch):
        verify_draw(revealed["serverSeed"], fairness["clientSeed"], fairness["nonce"], 0, reordered)


# --- concurrency ----------------------------------------------------------------------------------

RACERS = 8


@pytest.mark.parametrize("first_read", [True, False], ids=["pair-exists", "first-purchases"])
def test_concurrent_purchases_by_one_player_take_each_nonce_exactly_once(
    world: World, first_read: bool
) -> None:
    player = f"u_race_{int(first_read)}"
    if first_read:
        current(world.api, player)

    replies = concurrently([purchase_call(world, player, "dice", "mixed") for _ in range(RACERS)])

    assert [r.status for r in replies] == [200] * RACERS, [r.data for r in replies]
    answers = [r.json for r in replies]
    assert sorted(nonce_of(a) for a in answers) == list(range(RACERS))
    hashes = {a["round"]["fairness"]["serverSeedHash"] for a in answers}
    pairs = world.query("SELECT id FROM seed_pairs WHERE player_external_id = :p", p=player)
    assert len(hashes) == 1 and len(pairs) == 1, "one pair, created once"
    (seed_hash,) = hashes
    assert current(world.api, player)["nextNonce"] == RACERS
    revealed = rotated(world.api, player, seed_hash)["revealed"]
    assert revealed["lastNonce"] == RACERS - 1
    Verifier(world).rounds(answers, revealed)


def next_nonce_in_database(world: World, seed_hash: str) -> int:
    (row,) = world.query(
        "SELECT next_nonce FROM seed_pairs WHERE server_seed_hash = :h", h=seed_hash
    )
    return int(row.next_nonce)


def rotate_once_drawn(world: World, player: str, seed_hash: str, drawn: int) -> Callable[[], Reply]:
    """A rotation of the pair ``seed_hash``, sent as soon as it has ``drawn`` rounds."""
    rotation = rotate_call(world, player, seed_hash)

    def call() -> Reply:
        deadline = time.monotonic() + BATCH_TIMEOUT / 2
        while next_nonce_in_database(world, seed_hash) < drawn:
            assert time.monotonic() < deadline, "the purchases never drew"
            time.sleep(0.002)
        return rotation()

    return call


def test_concurrent_retries_of_one_rotation_reveal_once_and_answer_alike(world: World) -> None:
    committed = current(world.api)
    buy(world, "dice")

    replies = concurrently(
        [rotate_call(world, PLAYER, committed["serverSeedHash"]) for _ in range(RACERS)]
    )

    assert [r.status for r in replies] == [200] * RACERS, [r.data for r in replies]
    assert len({r.data for r in replies}) == 1, "the same reveal and the same new pair"
    states = world.query("SELECT state FROM seed_pairs WHERE player_external_id = :p", p=PLAYER)
    assert sorted(row.state for row in states) == ["current", "revealed"]
    assert current(world.api)["serverSeedHash"] == replies[0].json["current"]["serverSeedHash"]


SLOW = RACERS // 2  # purchases whose debit the wallet delays, in "between-the-draws"


@pytest.mark.parametrize("timing", ["before-the-draws", "amid-the-draws", "between-the-draws"])
def test_a_rotation_racing_purchases_draws_each_round_with_exactly_one_pair(
    world: World, timing: str
) -> None:
    player = f"u_rotation_race_{timing}"
    before = buy(world, "dice", player=player)
    old_hash = before["round"]["fairness"]["serverSeedHash"]
    if timing == "before-the-draws":
        rotation_call = rotate_call(world, player, old_hash)
    elif timing == "amid-the-draws":  # queued on the pair's row lock behind a draw, likely
        rotation_call = rotate_once_drawn(world, player, old_hash, drawn=2)
    else:  # half the debits are slow: the rotation lands between two groups of draws
        world.wallet.fault("delay", delayMs=800, times=SLOW, types=["wallet.debit"])
        rotation_call = rotate_once_drawn(world, player, old_hash, drawn=1 + RACERS - SLOW)
    calls = [purchase_call(world, player, "dice", "mixed") for _ in range(RACERS)]

    replies = concurrently([rotation_call, *calls])

    assert [r.status for r in replies] == [200] * (RACERS + 1), [r.data for r in replies]
    rotation = replies[0].json
    answers = [before, *(r.json for r in replies[1:])]
    new_hash = rotation["current"]["serverSeedHash"]
    by_pair: dict[str, list[dict[str, Any]]] = {old_hash: [], new_hash: []}
    for answer in answers:
        by_pair[answer["round"]["fairness"]["serverSeedHash"]].append(answer)
    old, new = by_pair[old_hash], by_pair[new_hash]
    assert len(old) + len(new) == RACERS + 1, "every round drawn with one of the two pairs"
    assert sorted(nonce_of(a) for a in old) == list(range(len(old)))
    assert sorted(nonce_of(a) for a in new) == list(range(len(new)))
    assert rotation["revealed"]["lastNonce"] == len(old) - 1
    if timing == "between-the-draws":
        assert (len(old), len(new)) == (1 + RACERS - SLOW, SLOW)
    verifier = Verifier(world)
    verifier.rounds(old, rotation["revealed"])
    second = rotated(world.api, player, new_hash)["revealed"]
    assert second["lastNonce"] == (len(new) - 1 if new else None)
    verifier.rounds(new, second)
    assert verifier.verified == 1 + 2 * RACERS
