"""Bulk rows for the benchmark, written the way the service itself would have left them.

First-time requests need one fresh subject each: an ``unresolved`` inventory item per
cashout, a ``held`` round per cancel. Making them through the purchase API would cost as
much as the scenario itself, so they are written here with server-side
``INSERT … SELECT generate_series`` statements, one data-modifying CTE per batch, with
exactly the rows a successful purchase leaves (see ``lootbox/services/purchase.py`` and
``lootbox/persistence/repositories.py``):

* atomic open: ``rounds`` (``open``, ``settled``), ``round_reels`` (prize drawn),
  ``money_movements`` (``debit``/``open``, ``accepted``, key ``round:<publicId>``),
  ``idempotency_records`` (the purchase's completed answer), ``inventory_items``
  (``unresolved``);
* pre-pay: ``rounds`` (``prepay``, ``held``), ``round_reels`` (no prize yet),
  ``money_movements`` (``debit``/``prepay``, ``accepted``), ``idempotency_records``.

The background data of the scaling run adds, for every second item, the cashout that
already happened: the item ``cashed_back``, its ``credit``/``cashback`` movement and the
cashout's completed idempotency record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from bench.stack import BOX_PRICE, CASHBACK_BPS, PRIZE_VALUE, Operator

PLAYERS = 1000
CASHBACK = PRIZE_VALUE * CASHBACK_BPS // 10_000

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
         CASE WHEN %(cashed)s AND id %% 2 = 0 THEN 'cashed_back' ELSE 'unresolved' END,
         now(), now()
  FROM r
  RETURNING id, player_external_id, state
)
"""

_CASHED = """
credits AS (
  INSERT INTO money_movements (operator_id, idempotency_key, kind, reason, status,
                               player_external_id, amount_minor, currency,
                               operator_amount_minor, operator_currency, rate,
                               inventory_item_id, lease_token, attempts, balance_after_minor,
                               provider_txn_ref, created_at, updated_at, completed_at)
  SELECT %(op)s, 'cashback:inventory:' || id, 'credit', 'cashback', 'accepted',
         player_external_id, %(cashback)s, %(currency)s, %(cashback)s, %(currency)s, '1',
         id, 1, 1, 1000000, 'bench-c-' || id, now(), now(), now()
  FROM items WHERE state = 'cashed_back'
)
INSERT INTO idempotency_records (operator_id, idempotency_key, endpoint, fingerprint, state,
                                 request_id, lease_token, lease_expires_at, status_code,
                                 response_body, created_at, completed_at, expires_at)
SELECT %(op)s, 'cashback:inventory:' || id, 'cashout', 'sha256:' || md5(id::text)
         || md5(player_external_id), 'completed', 'bench-c-' || id, 1, now(), 200,
       '{"item":{"inventoryItemId":' || id || ',"state":"cashed_back","cashbackMinor":'
         || %(cashback)s || ',"currency":"' || %(currency)s || '"},"balanceAfterMinor":1000000}',
       now(), now(), now() + interval '7 days'
FROM items WHERE state = 'cashed_back'
"""


@dataclass
class Tags:
    """Unique, short prefixes for the public ids and action ids of each batch of rows."""

    counter: int = 0

    def next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:03d}"


def _params(operator: Operator, tag: str, lo: int, hi: int, prepay: bool) -> dict[str, object]:
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
        "cashback": CASHBACK,
        "box_version": operator.box_version_id,
        "prize": operator.prize_id,
        "reel_prize": None if prepay else operator.prize_id,
        "lo": lo,
        "hi": hi,
        "cashed": False,
    }


def create_items(
    conn: psycopg.Connection, operator: Operator, count: int, tag: str
) -> list[tuple[int, str]]:
    """``count`` fresh ``unresolved`` items (each its own settled round), as
    ``(inventoryItemId, playerExternalId)``, in id order."""
    if count <= 0:
        return []
    # Constant fragments only: every value is a bound parameter.
    sql = "WITH " + _ROUNDS + "," + _ITEMS + " SELECT id, player_external_id FROM items"  # noqa: S608
    with conn.transaction():
        rows = conn.execute(sql, _params(operator, tag, 1, count, prepay=False)).fetchall()
    return sorted((int(r[0]), str(r[1])) for r in rows)


def create_held_rounds(
    conn: psycopg.Connection, operator: Operator, count: int, tag: str
) -> list[tuple[str, str]]:
    """``count`` fresh ``held`` (pre-paid, unopened) rounds, as
    ``(roundPublicId, playerExternalId)``."""
    if count <= 0:
        return []
    sql = "WITH " + _ROUNDS + " SELECT public_id, player_external_id FROM r"  # noqa: S608
    with conn.transaction():
        rows = conn.execute(sql, _params(operator, tag, 1, count, prepay=True)).fetchall()
    return sorted((str(r[0]), str(r[1])) for r in rows)


def add_background(
    conn: psycopg.Connection,
    operator: Operator,
    count: int,
    tag: str,
    *,
    start: int = 1,
    batch: int = 50_000,
    progress: Callable[[int, float], None] | None = None,
) -> None:
    """``count`` items of history (numbered from ``start`` under ``tag``): each an
    atomic-open round with its prize; every second one already cashed back."""
    sql = "WITH " + _ROUNDS + "," + _ITEMS + "," + _CASHED
    began = time.monotonic()
    done = 0
    while done < count:
        size = min(batch, count - done)
        params = _params(operator, tag, start + done, start + done + size - 1, prepay=False)
        params["cashed"] = True
        with conn.transaction():
            conn.execute(sql, params)
        done += size
        if progress is not None:
            progress(done, time.monotonic() - began)


def analyze(conn: psycopg.Connection, vacuum: bool = False) -> None:
    """Fresh planner statistics (and, after a big load, a vacuum so that the first
    readers do not pay for setting hint bits during a measurement)."""
    conn.execute("VACUUM (ANALYZE)" if vacuum else "ANALYZE")


def count_items(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM inventory_items").fetchone()
    return int(row[0]) if row else 0
