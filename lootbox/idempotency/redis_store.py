"""The Redis fast path of the idempotency layer (contract section 7).

Redis is an accelerator, never the guarantee: any record here may vanish (flush,
eviction, failover, restart) and every Redis failure surfaces as ``StoreUnavailable`` so
callers fall back to the database, which enforces the invariants on its own.

One key per ``(operator, idempotencyKey)``: ``lootbox:idem:<operatorId>:<key>``, holding a
JSON object an on-call engineer can read with ``redis-cli GET``::

    {"op":7,"state":"completed","endpoint":"cashout","fingerprint":"sha256:<43 base64url>",
     "createdAt":"2024-05-01T12:00:00Z","status":200,"body":"{...}"}

Tenant isolation (docs/security.md): the key starts with the operator's numeric id, which
holds no ``:``, so no two ``(operator, key)`` pairs can share a Redis key, whatever the key
holds (a slug could: ``opa:cashback`` + ``inventory:1`` and ``opa`` + ``cashback:inventory:1``).
The value names its operator too (``op``), and a record of another operator is never
replayed: it reads as absent.

A completed record is kept a week, so it is written compactly (docs/benchmarks.md, Redis
memory per record): the fingerprint's digest in base64url instead of hex, ``createdAt`` to
the second, no ``requestId`` (only an in-progress record needs it: a release must delete
only its own claim; the database record still names the request, ``idem show`` prints
it), and no null fields. That keeps a record near 400 bytes of Redis memory instead of
540. Records written in the older, longer form are read as before.

Claim and release are single Lua scripts: one round trip each, and atomic, so a claim can
never see a key vanish between its SET and its GET, and a release never deletes a record
that another request has claimed in between.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.exceptions import (
    RedisError,
)

from lootbox.idempotency.redis_clients import LazyRedisCluster
from lootbox.ports import IdempotencyRecord, StoreUnavailable

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "lootbox:idem"

_STATES = ("in_progress", "completed")
_CORE_FIELDS = frozenset(
    ("op", "state", "endpoint", "fingerprint", "requestId", "createdAt", "status", "body")
)

# Both scripts touch one key only, the one passed as KEYS[1] (never a name built inside
# Lua), so they are cluster-safe: Redis Cluster runs each on the node that holds its key,
# atomically, as a single server would. A second key would have to share its hash slot.

# Shared by both scripts: the same notion of "a readable record" as ``_decode`` below.
_LUA_VALID = """
local function valid(raw)
  local ok, rec = pcall(cjson.decode, raw)
  if not ok or type(rec) ~= 'table' then return nil end
  if rec.state ~= 'in_progress' and rec.state ~= 'completed' then return nil end
  for _, f in ipairs({'endpoint', 'fingerprint', 'createdAt'}) do
    if type(rec[f]) ~= 'string' then return nil end
  end
  if rec.state == 'in_progress' and type(rec.requestId) ~= 'string' then return nil end
  return rec
end
"""

# KEYS[1] = record key; ARGV[1] = in-progress record; ARGV[2] = lease in ms.
# Returns nil when the caller now owns the key, else the existing record's raw value.
# A value that is not a readable record counts as absent (as in ``get``) and is replaced.
_CLAIM_LUA = (
    _LUA_VALID
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
local current = redis.call('GET', KEYS[1])
if current and valid(current) then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
)

# KEYS[1] = record key; ARGV[1] = request id. Deletes only an in-progress record that this
# request id still owns; returns the number of keys deleted.
_RELEASE_LUA = (
    _LUA_VALID
    + """
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local rec = valid(current)
if rec and rec.state == 'in_progress' and rec.requestId == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)


class RedisIdempotencyStore:
    """``IdempotencyStore`` on Redis. Thread-safe: it holds no state but
    the client, whose connection pool reconnects by itself after Redis comes back."""

    def __init__(
        self, client: redis.Redis | LazyRedisCluster, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._claim_script = client.register_script(_CLAIM_LUA)
        self._release_script = client.register_script(_RELEASE_LUA)

    def redis_key(self, operator_id: int, key: str) -> str:
        """The Redis key for ``(operator_id, key)``."""
        return f"{self._prefix}:{operator_id}:{key}"

    def claim(
        self, operator_id: int, key: str, record: IdempotencyRecord, lease_seconds: float
    ) -> IdempotencyRecord | None:
        name = self.redis_key(operator_id, key)
        lease_ms = max(1, round(lease_seconds * 1000))
        try:
            raw = self._claim_script(keys=[name], args=[_encode(operator_id, record), lease_ms])
        except (RedisError, UnicodeError) as exc:
            raise StoreUnavailable(f"redis claim of {name!r} failed: {exc}") from exc
        if raw is None:
            return None
        existing = _decode(name, raw, operator_id)
        if existing is None:
            # The script judged it readable and Python does not: do not guess who owns
            # the key; let the database decide.
            raise StoreUnavailable(f"unreadable idempotency record at {name!r}")
        if existing.state == "in_progress" and existing.request_id == record.request_id:
            # Our own claim, applied by an attempt whose reply was lost (the client retries
            # once after a dropped connection).
            return None
        return existing

    def get(self, operator_id: int, key: str) -> IdempotencyRecord | None:
        name = self.redis_key(operator_id, key)
        try:
            raw = self._client.get(name)
        except (RedisError, UnicodeError) as exc:
            raise StoreUnavailable(f"redis get of {name!r} failed: {exc}") from exc
        if raw is None:
            return None
        return _decode(name, raw, operator_id)

    def complete(
        self, operator_id: int, key: str, record: IdempotencyRecord, ttl_seconds: int
    ) -> None:
        if record.state != "completed":
            raise ValueError(f"complete() needs a completed record, got state {record.state!r}")
        name = self.redis_key(operator_id, key)
        try:
            self._client.set(name, _encode(operator_id, record), ex=max(1, int(ttl_seconds)))
        except (RedisError, UnicodeError) as exc:
            raise StoreUnavailable(f"redis complete of {name!r} failed: {exc}") from exc

    def release(self, operator_id: int, key: str, request_id: str) -> None:
        name = self.redis_key(operator_id, key)
        try:
            self._release_script(keys=[name], args=[request_id])
        except (RedisError, UnicodeError) as exc:
            raise StoreUnavailable(f"redis release of {name!r} failed: {exc}") from exc


def _encode(operator_id: int, record: IdempotencyRecord) -> bytes:
    doc: dict[str, Any] = {
        "op": operator_id,
        "state": record.state,
        "endpoint": record.endpoint,
        "fingerprint": _compact_fingerprint(record.fingerprint),
        "createdAt": _compact_time(record.created_at),
    }
    if record.state == "in_progress":
        doc["requestId"] = record.request_id  # whose claim it is: release checks it
    if record.status is not None:
        doc["status"] = record.status
    if record.body is not None:
        doc["body"] = record.body
    for name, value in record.extra.items():
        doc.setdefault(name, value)  # the core fields always win
    # ASCII-only JSON: any str (even a lone surrogate in a body) round-trips exactly.
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _decode(name: str, raw: bytes | str, operator_id: int) -> IdempotencyRecord | None:
    """The record in ``raw``, or ``None`` (logged) when it is not one of ``operator_id``'s:
    a fast path that cannot be read, or that names another operator, is treated as absent,
    never as an answer."""
    try:
        doc = json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        log.warning("idempotency record at %r is not valid JSON; treating it as absent", name)
        return None
    if not isinstance(doc, dict):
        log.warning("idempotency record at %r is not a JSON object; treating it as absent", name)
        return None
    state = doc.get("state")
    texts = [doc.get(f) for f in ("endpoint", "fingerprint", "createdAt")]
    request_id = doc.get("requestId", None if state == "in_progress" else "")
    status = doc.get("status")
    body = doc.get("body")
    if (
        state not in _STATES
        or not all(isinstance(t, str) for t in texts)
        or not isinstance(request_id, str)
        or not (status is None or (isinstance(status, int) and not isinstance(status, bool)))
        or not (body is None or isinstance(body, str))
    ):
        log.warning("idempotency record at %r is malformed; treating it as absent", name)
        return None
    if doc.get("op") != operator_id or isinstance(doc.get("op"), bool):
        log.warning(
            "idempotency record at %r belongs to operator %r, not %d; treating it as absent",
            name,
            doc.get("op"),
            operator_id,
        )
        return None
    return IdempotencyRecord(
        state=state,
        endpoint=doc["endpoint"],
        fingerprint=_full_fingerprint(doc["fingerprint"]),
        request_id=request_id,
        created_at=doc["createdAt"],
        status=status,
        body=body,
        extra={k: v for k, v in doc.items() if k not in _CORE_FIELDS},
    )


# The fingerprint as ``lootbox.idempotency.fingerprint`` makes it and the database keeps it.
_HEX_FINGERPRINT = re.compile(r"sha256:([0-9a-f]{64})")
_B64_FINGERPRINT = re.compile(r"sha256:([A-Za-z0-9_-]{43})")


def _compact_fingerprint(fingerprint: str) -> str:
    """``sha256:<64 hex>`` as ``sha256:<43 base64url>``; anything else as it is."""
    found = _HEX_FINGERPRINT.fullmatch(fingerprint)
    if found is None:
        return fingerprint
    digest = bytes.fromhex(found.group(1))
    return "sha256:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _full_fingerprint(stored: str) -> str:
    """The inverse of ``_compact_fingerprint`` (the lengths tell the forms apart)."""
    found = _B64_FINGERPRINT.fullmatch(stored)
    if found is None:
        return stored
    return "sha256:" + base64.urlsafe_b64decode(found.group(1) + "=").hex()


def _compact_time(created_at: str) -> str:
    """``2024-05-01T12:00:00.123456+00:00`` as ``2024-05-01T12:00:00Z``: the second is
    all anyone reads it for. A value that is not ISO 8601 UTC is kept as it is."""
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return created_at
    if moment.utcoffset() != timedelta(0):
        return created_at
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
