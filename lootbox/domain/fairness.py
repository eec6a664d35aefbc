"""Provably fair draws, algorithm ``hmac_sha256_v1`` (contract section 9): we commit to a
secret server seed by publishing its hash, draw with it, reveal it, and anyone can redo
every draw.

Standard library only, no I/O and no randomness of its own (callers pass
``secrets.token_bytes``), so the verifier a player runs executes this very code. Every
decision is exact: odds are ``Decimal`` turned into ``Fraction``, the drawn value is a
``Fraction``, and no float ever takes part.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction

ALGORITHM = "hmac_sha256_v1"

SERVER_SEED_BYTES = 32
CLIENT_SEED_BYTES = 8
DRAW_BITS = 52  # what a double holds exactly: the value ports to any language without bigints

SNAPSHOT_HASH_KEY = "snapshotHash"

_SERVER_SEED = re.compile("[0-9a-f]{64}")
# Printable ASCII without the space (0x21 "!" to 0x7e "~"): a seed survives copy and paste
# and sits in a URL or a command line with at most some quoting.
_CLIENT_SEED = re.compile("[!-~]{1,64}")


# --- seeds -----------------------------------------------------------------------------------


def new_server_seed(random_bytes: bytes) -> str:
    """A server seed from 32 random bytes (pass ``secrets.token_bytes(32)``): 64 lowercase
    hex characters."""
    if len(random_bytes) != SERVER_SEED_BYTES:
        raise ValueError(f"a server seed takes {SERVER_SEED_BYTES} random bytes")
    return random_bytes.hex()


def is_valid_server_seed(text: object) -> bool:
    """64 lowercase hex characters, as :func:`new_server_seed` writes them."""
    return isinstance(text, str) and _SERVER_SEED.fullmatch(text) is not None


def server_seed_hash(server_seed: str) -> str:
    """The commitment: lowercase hex SHA-256 of the seed's 64 ASCII characters (the text,
    not the 32 bytes it spells, so a player can check it with any SHA-256 tool)."""
    _require_server_seed(server_seed)
    return hashlib.sha256(server_seed.encode("ascii")).hexdigest()


def new_client_seed(random_bytes: bytes) -> str:
    """The default client seed from 8 random bytes (pass ``secrets.token_bytes(8)``): 16
    lowercase hex characters."""
    if len(random_bytes) != CLIENT_SEED_BYTES:
        raise ValueError(f"a default client seed takes {CLIENT_SEED_BYTES} random bytes")
    return random_bytes.hex()


def is_valid_client_seed(text: object) -> bool:
    """1 to 64 printable ASCII characters without spaces (``0x21`` to ``0x7e``)."""
    return isinstance(text, str) and _CLIENT_SEED.fullmatch(text) is not None


# --- the draw --------------------------------------------------------------------------------


def draw_message(client_seed: str, nonce: int, reel_index: int) -> str:
    """``"{clientSeed}:{nonce}:{reelIndex}"``. A client seed may contain ``:``; the message
    still names one draw, because the last two fields are plain decimal numbers."""
    if not is_valid_client_seed(client_seed):
        raise ValueError("a client seed is 1 to 64 printable ASCII characters without spaces")
    _require_counter("nonce", nonce)
    _require_counter("reel index", reel_index)
    return f"{client_seed}:{nonce}:{reel_index}"


def draw_digest(server_seed: str, client_seed: str, nonce: int, reel_index: int) -> bytes:
    """HMAC-SHA256 keyed with the server seed's 64 ASCII characters, of the draw message."""
    _require_server_seed(server_seed)
    message = draw_message(client_seed, nonce, reel_index)
    return hmac.digest(server_seed.encode("ascii"), message.encode("ascii"), "sha256")


def first_52_bits(digest: bytes) -> int:
    """``u``: the digest's first 52 bits as an integer (its first 13 hex digits)."""
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("a draw digest is 32 bytes")
    return int.from_bytes(digest[:7], "big") >> (7 * 8 - DRAW_BITS)


def value_of_digest(digest: bytes) -> Fraction:
    """``x = u / 2^52``, exactly, in [0, 1)."""
    return Fraction(first_52_bits(digest), 1 << DRAW_BITS)


def draw_value(server_seed: str, client_seed: str, nonce: int, reel_index: int) -> Fraction:
    """``x`` for reel ``reel_index`` of the round with ``nonce``: uniform over the 2^52
    multiples of 2^-52 in [0, 1)."""
    return value_of_digest(draw_digest(server_seed, client_seed, nonce, reel_index))


def running_sums(odds: Sequence[Decimal | int]) -> tuple[Fraction, ...]:
    """The odds added up in their published order, exactly; the last is 1.

    Raises ``ValueError`` unless every odds is positive and they sum to exactly 1, and
    ``TypeError`` for a float (its binary expansion is not the published number)."""
    if not odds:
        raise ValueError("a box needs at least one prize")
    sums: list[Fraction] = []
    total = Fraction(0)
    for position, value in enumerate(odds):
        exact = _exact_odds(position, value)
        total += exact
        sums.append(total)
    if total != 1:
        raise ValueError(f"odds must sum to exactly 1, they sum to {total}")
    return tuple(sums)


def prize_position(x: Fraction, sums: Sequence[Fraction]) -> int:
    """The index of the first prize whose running sum is strictly greater than ``x``: a
    prize with odds ``p`` wins for exactly a share ``p`` of [0, 1)."""
    for position, running_sum in enumerate(sums):
        if running_sum > x:
            return position
    raise ValueError(f"x = {x} is beyond the last running sum {sums[-1] if sums else None}")


def draw_position(
    server_seed: str,
    client_seed: str,
    nonce: int,
    reel_index: int,
    odds: Sequence[Decimal | int],
) -> int:
    """Which prize reel ``reel_index`` of the round with ``nonce`` draws: its index in the
    version's published prize order."""
    sums = running_sums(odds)
    return prize_position(draw_value(server_seed, client_seed, nonce, reel_index), sums)


# --- the published snapshot ------------------------------------------------------------------


def canonical_json(value: object) -> str:
    """The one text a snapshot's hash is taken over: keys sorted, no whitespace, strings as
    ``json.dumps`` writes them with its default ``ensure_ascii`` (non-ASCII as lowercase
    ``\\u`` escapes, so the text is ASCII), and a ``Decimal`` as a JSON number with exactly
    its digits (``0.05`` stays ``0.05``, ``0.2500`` stays ``0.2500``).

    Takes only what a snapshot holds: dicts with string keys, lists, strings, ints,
    ``Decimal``, booleans and ``None``; anything else, a float included, is a ``TypeError``
    (a float's digits are not the published ones)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def snapshot_hash(snapshot: Mapping[str, object]) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of every key but ``snapshotHash``."""
    content = {key: value for key, value in snapshot.items() if key != SNAPSHOT_HASH_KEY}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


# --- steps -----------------------------------------------------------------------------------


def _require_server_seed(server_seed: object) -> None:
    if not is_valid_server_seed(server_seed):
        raise ValueError("a server seed is 64 lowercase hex characters")


def _require_counter(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"the {name} is an integer of at least 0")


def _exact_odds(position: int, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"odds #{position} must be a Decimal or an int, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"odds #{position} must be greater than 0, not {value}")
    exact = Fraction(value)  # exact for a Decimal: Fraction(Decimal("0.05")) == 1/20
    if exact <= 0:
        raise ValueError(f"odds #{position} must be greater than 0, not {value}")
    return exact


def _write(value: object, parts: list[str]) -> None:
    # bool before int: True is an int to isinstance.
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(json.dumps(value))
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        parts.append(_decimal_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, parts)
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"canonical JSON has no form for {type(value).__name__}")


def _write_object(mapping: Mapping[object, object], parts: list[str]) -> None:
    items: list[tuple[str, object]] = []
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"canonical JSON object keys are strings, not {type(key).__name__}")
        items.append((key, item))
    items.sort(key=lambda pair: pair[0])  # by code point, as json.dumps(sort_keys=True)
    parts.append("{")
    for index, (key, item) in enumerate(items):
        if index:
            parts.append(",")
        parts.append(json.dumps(key))
        parts.append(":")
        _write(item, parts)
    parts.append("}")


def _decimal_number(value: Decimal) -> str:
    # str() of a finite Decimal is always a valid JSON number ("0.05", "1E-7", "1.5E+3",
    # "0E-7"); NaN and the infinities have no JSON form.
    if not value.is_finite():
        raise ValueError(f"canonical JSON has no form for {value}")
    return str(value)
