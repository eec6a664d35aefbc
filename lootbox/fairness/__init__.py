"""Check a provably fair draw without trusting the service (algorithm ``hmac_sha256_v1``).

From the revealed server seed, the client seed, the round's nonce, the reel and the box
version's public snapshot, :func:`verify_draw` redoes the draw and names the prize;
``python -m lootbox.fairness verify`` does the same from a shell. Standard library only,
so anyone can run it; ``docs/fairness.md`` explains the scheme.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from lootbox.domain.fairness import (
    ALGORITHM,
    SNAPSHOT_HASH_KEY,
    draw_digest,
    draw_message,
    first_52_bits,
    is_valid_client_seed,
    is_valid_server_seed,
    prize_position,
    running_sums,
    server_seed_hash,
    snapshot_hash,
    value_of_digest,
)

__all__ = [
    "ALGORITHM",
    "InvalidInput",
    "InvalidSnapshot",
    "ServerSeedHashMismatch",
    "SnapshotHashMismatch",
    "VerificationError",
    "VerifiedDraw",
    "exact_decimal",
    "load_snapshot",
    "parse_snapshot",
    "verify_draw",
]

SNAPSHOT_TIMEOUT_SECONDS = 10.0
MAX_SNAPSHOT_BYTES = 1 << 20  # a snapshot is a few KiB; a body this large is not one


class VerificationError(Exception):
    """The draw could not be verified; the message says why."""


class InvalidInput(VerificationError):
    """A seed, the nonce or the reel index is malformed."""


class InvalidSnapshot(VerificationError):
    """The snapshot could not be read, or is not a box version's snapshot."""


class SnapshotHashMismatch(VerificationError):
    """The snapshot's content is not what its ``snapshotHash`` commits to."""


class ServerSeedHashMismatch(VerificationError):
    """The revealed server seed is not the one whose hash the player was shown."""


@dataclass(frozen=True)
class VerifiedDraw:
    """One draw redone from its inputs, with every number in between."""

    prize: Mapping[str, Any]  # the snapshot's prize object: itemId, name, valueMinor, odds…
    position: int  # its index in the snapshot's prize order
    server_seed: str
    server_seed_hash: str
    client_seed: str
    nonce: int
    reel_index: int
    message: str  # "{clientSeed}:{nonce}:{reelIndex}"
    digest: bytes  # HMAC-SHA256(server seed, message)
    u: int  # the digest's first 52 bits
    x: Fraction  # u / 2^52
    running_sums: tuple[Fraction, ...]
    snapshot: Mapping[str, Any]
    snapshot_hash: str
    algorithm: str = ALGORITHM

    @property
    def item_id(self) -> Any:
        return self.prize.get("itemId")

    @property
    def x_decimal(self) -> str:
        """``x`` with all its decimal digits (at most 52 after the point)."""
        return exact_decimal(self.x)


def verify_draw(
    server_seed: str,
    client_seed: str,
    nonce: int,
    reel_index: int,
    snapshot: Mapping[str, Any],
    *,
    expected_server_seed_hash: str | None = None,
) -> VerifiedDraw:
    """Redo reel ``reel_index`` of the round with ``nonce`` and name its prize.

    Checks that the snapshot's content matches its ``snapshotHash`` and, when
    ``expected_server_seed_hash`` (the commitment shown before the draw) is given, that the
    revealed seed hashes to it. ``snapshot`` must hold its odds as ``Decimal`` (or ``int``),
    as :func:`load_snapshot` parses them. Raises a :class:`VerificationError` saying what
    failed."""
    seed_hash = _check_inputs(server_seed, client_seed, nonce, reel_index)
    if (
        expected_server_seed_hash is not None
        and seed_hash != expected_server_seed_hash.strip().lower()
    ):
        raise ServerSeedHashMismatch(
            f"the server seed hashes to {seed_hash}, not to the committed"
            f" {expected_server_seed_hash}: it is not the seed those draws were committed to"
        )
    content_hash = _check_snapshot_hash(snapshot)
    prizes, sums = _prize_table(snapshot)
    digest = draw_digest(server_seed, client_seed, nonce, reel_index)
    x = value_of_digest(digest)
    position = prize_position(x, sums)
    return VerifiedDraw(
        prize=prizes[position],
        position=position,
        server_seed=server_seed,
        server_seed_hash=seed_hash,
        client_seed=client_seed,
        nonce=nonce,
        reel_index=reel_index,
        message=draw_message(client_seed, nonce, reel_index),
        digest=digest,
        u=first_52_bits(digest),
        x=x,
        running_sums=sums,
        snapshot=snapshot,
        snapshot_hash=content_hash,
    )


def load_snapshot(source: str, *, timeout: float = SNAPSHOT_TIMEOUT_SECONDS) -> dict[str, Any]:
    """A snapshot from a file path or an ``http(s)://`` URL (such as
    ``https://…/fairness/box-version/1201/snapshot``), parsed by :func:`parse_snapshot`."""
    if source.lower().startswith(("http://", "https://")):
        return parse_snapshot(_download(source, timeout))
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise InvalidSnapshot(f"cannot read the snapshot {source}: {exc.strerror}") from exc
    return parse_snapshot(data)


def parse_snapshot(data: str | bytes) -> dict[str, Any]:
    """A snapshot's JSON text as a dict, numbers with a fraction or an exponent as
    ``Decimal`` (a float would change the odds' digits, and so the hash and the draw)."""
    try:
        value = json.loads(
            data,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object_without_duplicate_keys,
        )
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidSnapshot(f"the snapshot is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidSnapshot("a snapshot is a JSON object")
    return value


def exact_decimal(value: Fraction) -> str:
    """``value`` in decimal with every digit, for a fraction whose expansion ends (its
    denominator has no prime factor but 2 and 5): every ``x`` and every running sum."""
    denominator = value.denominator
    places = 0
    while (10**places) % denominator:
        places += 1
        if places > denominator.bit_length():  # 2^a·5^b needs max(a, b) places, no more
            raise ValueError(f"{value} has no finite decimal expansion")
    digits = str(abs(value.numerator) * (10**places // denominator)).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    if not places:
        return sign + digits
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


# --- steps ---------------------------------------------------------------------------------


def _check_inputs(server_seed: str, client_seed: str, nonce: int, reel_index: int) -> str:
    if not is_valid_server_seed(server_seed):
        raise InvalidInput(
            "the server seed is 64 lowercase hex characters (the revealed serverSeed)"
        )
    if not is_valid_client_seed(client_seed):
        raise InvalidInput("the client seed is 1 to 64 printable ASCII characters without spaces")
    for name, value in (("nonce", nonce), ("reel index", reel_index)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"the {name} is a whole number of at least 0")
    return server_seed_hash(server_seed)


def _check_snapshot_hash(snapshot: Mapping[str, Any]) -> str:
    if not isinstance(snapshot, Mapping):
        raise InvalidSnapshot("a snapshot is a JSON object")
    claimed = snapshot.get(SNAPSHOT_HASH_KEY)
    if not isinstance(claimed, str):
        raise InvalidSnapshot(f"the snapshot has no {SNAPSHOT_HASH_KEY}")
    try:
        computed = snapshot_hash(snapshot)
    except (TypeError, ValueError) as exc:
        raise InvalidSnapshot(
            f"the snapshot cannot be hashed: {exc} (parse it with parse_float=decimal.Decimal,"
            " as load_snapshot does)"
        ) from exc
    if computed != claimed:
        raise SnapshotHashMismatch(
            f"the snapshot's content hashes to {computed}, not to its {SNAPSHOT_HASH_KEY}"
            f" {claimed}: it was changed after it was published"
        )
    return computed


def _prize_table(
    snapshot: Mapping[str, Any],
) -> tuple[list[Mapping[str, Any]], tuple[Fraction, ...]]:
    prizes = snapshot.get("prizes")
    if not isinstance(prizes, list) or not all(isinstance(p, Mapping) for p in prizes):
        raise InvalidSnapshot("the snapshot's prizes are not a list of objects")
    try:
        sums = running_sums([prize.get("odds") for prize in prizes])
    except (TypeError, ValueError) as exc:
        raise InvalidSnapshot(f"the snapshot's odds are not a prize table: {exc}") from exc
    return prizes, sums


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(  # noqa: S310 (the caller let only http(s) through)
        url, headers={"Accept": "application/json", "User-Agent": "lootbox-fairness-verifier"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body: bytes = response.read(MAX_SNAPSHOT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise InvalidSnapshot(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise InvalidSnapshot(f"cannot fetch {url}: {exc.reason}") from exc
    except OSError as exc:  # a timeout while reading the body
        raise InvalidSnapshot(f"cannot fetch {url}: {exc}") from exc
    if len(body) > MAX_SNAPSHOT_BYTES:
        raise InvalidSnapshot(f"{url} answered more than {MAX_SNAPSHOT_BYTES} bytes")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a snapshot can hold")


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two "odds" in one prize would leave the reader to pick one: refuse instead.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result
