"""The rows a run needs, written the way the service itself would have left them.

Our operator and its catalog are onboarded through the ``flask`` CLI, as an operator
would be. First-time requests need one fresh subject each (an ``unresolved`` item per
cashout, a ``held`` round per cancel); making them through the purchase API would cost
as much as the scenario itself, so they are written with server-side ``INSERT … SELECT
generate_series`` statements, one data-modifying CTE per batch, with exactly the rows a
successful purchase leaves (``lootbox/services/purchase.py``): the round, its reel, its
accepted debit, the purchase's completed idempotency record and, for an atomic open, the
item. The peer's items are rows of its own table, ``peer_items``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.servers import BIN, procfile_command
from tests.processes import run_json

PLAYERS = 1000
BOX_PRICE = 500
PRIZE_VALUE = 700
CASHBACK_BPS = 5000
WALLET_SECRET = "bench-wallet-secret"  # noqa: S105 - the local reference wallet's
PEER_WALLET_SECRET = "peer-wallet-secret"  # noqa: S105
CATALOG = {
    "boxes": [
        {
            "slug": "bench",
            "name": "Benchmark box",
            "priceMinor": BOX_PRICE,
            "refundable": True,
            "prizes": [{"name": "Coin", "valueMinor": PRIZE_VALUE, "odds": "1"}],
        }
    ]
}


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str


@dataclass(frozen=True)
class Operator:
    operator_id: int
    credentials: Credentials
    box_version_id: int
    prize_id: int
    currency: str = "EUR"


def onboard(
    env: dict[str, str], wallet_url: str, workdir: Path, conn: psycopg.Connection
) -> Operator:
    """Migrate (the Procfile's ``release:`` command), then create the operator ``bench``
    (EUR, cashback 50 %) and import its one-prize refundable box through the CLI."""
    run_json(procfile_command("release"), env, workdir / "cli.log", 120)

    def cli(*args: str) -> dict[str, object]:
        return run_json([str(BIN / "flask"), "--app", "app", *args], env, workdir / "cli.log", 120)

    created = cli(
        *("operators", "create", "bench", "--currency", "EUR", "--wallet-url", wallet_url),
        *("--wallet-secret", WALLET_SECRET, "--rate", "USD=1.0842"),
        *("--cashback-bps", str(CASHBACK_BPS)),
    )
    catalog = workdir / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    imported = cli("catalog", "import", "bench", str(catalog))
    box_version_id = int(imported["boxes"][0]["boxVersionId"])  # type: ignore[index]
    row = conn.execute(
        "SELECT o.id, p.id FROM operators o, prizes p"
        " WHERE o.slug = 'bench' AND p.box_version_id = %s ORDER BY p.position LIMIT 1",
        (box_version_id,),
    ).fetchone()
    assert row is not None
    return Operator(
        operator_id=int(row[0]),
        credentials=Credentials(str(created["keyId"]), str(created["secret"])),
        box_version_id=box_version_id,
        prize_id=int(row[1]),
    )


_ROUNDS = """
r AS (
  INSERT INTO rounds (public_id, operator_id, player_external_id, mode, status,
                      client_action_id, currency, bet_minor, operator_amount_minor, rate,
                      created_at, updated_at)
  SELECT 'r_' || %(tag)s || lpad(g::text, 12, '0'), %(op)s,
         %(player_prefix)s || (g %% %(players)s), %(mode)s, %(status)s,
         %(tag)s || '-' || g, %(currency)s, %(price)s, %(price)s, '1', now(), now()
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
  RETURNING id, public_id, player_external_id, client_action_id
),
reels AS (
  INSERT INTO round_reels (round_id, reel_index, box_version_id, price_minor, prize_id)
  SELECT id, 0, %(box_version)s, %(price)s, %(reel_prize)s::bigint FROM r
),
debits AS (
  INSERT INTO money_movements (operator_id, idempotency_key, kind, reason, status,
                               player_external_id, amount_minor, currency,
                               operator_amount_minor, operator_currency, rate, round_id,
                               round_public_id, lease_token, attempts, balance_after_minor,
                               provider_txn_ref, created_at, updated_at, completed_at)
  SELECT %(op)s, 'round:' || public_id, 'debit', %(debit_reason)s, 'accepted',
         player_external_id, %(price)s, %(currency)s, %(price)s, %(currency)s, '1', id,
         public_id, 1, 1, 1000000, 'bench-' || public_id, now(), now(), now()
  FROM r
),
purchase_records AS (
  INSERT INTO idempotency_records (operator_id, idempotency_key, endpoint, fingerprint,
                                   state, request_id, lease_token, lease_expires_at,
                                   status_code, response_body, created_at, completed_at,
                                   expires_at)
  SELECT %(op)s,
         'purchase:' || length(player_external_id) || ':' || player_external_id || ':'
           || client_action_id,
         'purchase', 'sha256:' || md5(public_id) || md5(client_action_id), 'completed',
         'bench-' || public_id, 1, now(), 200,
         '{"round":{"publicId":"' || public_id || '","status":"' || %(status)s
           || '","mode":"' || %(mode)s || '","betMinor":' || %(price)s
           || ',"currency":"' || %(currency)s || '"},"wonItems":[],"balanceAfterMinor":1000000}',
         now(), now(), now() + interval '7 days'
  FROM r
)
"""

_ITEMS = """
items AS (
  INSERT INTO inventory_items (operator_id, player_external_id, round_id, reel_index,
                               prize_id, box_version_id, name, value_minor, state,
                               created_at, updated_at)
  SELECT %(op)s, player_external_id, id, 0, %(prize)s, %(box_version)s, 'Coin',
         %(value)s,
         'unresolved', now(), now()
  FROM r
  RETURNING id, player_external_id
)
"""


@dataclass
class Tags:
    """Unique, short prefixes for the public ids and action ids of each batch of rows."""

    counter: int = 0

    def next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:03d}"


def _params(operator: Operator, tag: str, count: int, prepay: bool) -> dict[str, object]:
    return {
        "tag": tag,
        "op": operator.operator_id,
        "player_prefix": f"bench-{tag.lower()}-",
        "players": PLAYERS,
        "mode": "prepay" if prepay else "open",
        "status": "held" if prepay else "settled",
        "debit_reason": "prepay" if prepay else "open",
        "currency": operator.currency,
        "price": BOX_PRICE,
        "value": PRIZE_VALUE,
        "box_version": operator.box_version_id,
        "prize": operator.prize_id,
        "reel_prize": None if prepay else operator.prize_id,
        "lo": 1,
        "hi": count,
    }


def create_items(
    conn: psycopg.Connection, operator: Operator, count: int, tag: str
) -> list[tuple[int, str]]:
    """``count`` fresh ``unresolved`` items (each its own settled round), as
    ``(inventoryItemId, playerExternalId)``."""
    # Constant fragments only: every value is a bound parameter.
    sql = "WITH " + _ROUNDS + "," + _ITEMS + " SELECT id, player_external_id FROM items"  # noqa: S608
    with conn.transaction():
        rows = conn.execute(sql, _params(operator, tag, count, prepay=False)).fetchall()
    return sorted((int(r[0]), str(r[1])) for r in rows)


def create_held_rounds(
    conn: psycopg.Connection, operator: Operator, count: int, tag: str
) -> list[tuple[str, str]]:
    """``count`` fresh ``held`` (pre-paid, unopened) rounds, as
    ``(roundPublicId, playerExternalId)``."""
    sql = "WITH " + _ROUNDS + " SELECT public_id, player_external_id FROM r"  # noqa: S608
    with conn.transaction():
        rows = conn.execute(sql, _params(operator, tag, count, prepay=True)).fetchall()
    return sorted((str(r[0]), str(r[1])) for r in rows)


PEER_TABLE = """
CREATE TABLE IF NOT EXISTS peer_items (
  id bigserial PRIMARY KEY,
  player_external_id text NOT NULL,
  value_minor bigint NOT NULL,
  currency text NOT NULL,
  state text NOT NULL DEFAULT 'unresolved'
)
"""


def create_peer_items(conn: psycopg.Connection, count: int, tag: str) -> list[tuple[int, str]]:
    """``count`` fresh items of the peer's, as ``(inventoryItemId, playerExternalId)``."""
    with conn.transaction():
        conn.execute(PEER_TABLE)
        rows = conn.execute(
            "INSERT INTO peer_items (player_external_id, value_minor, currency)"
            " SELECT %s || (g %% %s), %s, 'EUR' FROM generate_series(1, %s) AS g"
            " RETURNING id, player_external_id",
            (f"peer-{tag.lower()}-", PLAYERS, PRIZE_VALUE, count),
        ).fetchall()
    return sorted((int(r[0]), str(r[1])) for r in rows)


def analyze(conn: psycopg.Connection) -> None:
    """Fresh planner statistics after a batch of new subjects."""
    conn.execute("ANALYZE")
