"""``python -m lootbox.fairness verify``: redo one draw from its revealed seed and print the
prize with every number in between. Exit status 0 when the draw verifies, 1 when it does
not (a seed or snapshot that does not match its hash, a malformed input, an unreadable
snapshot), 2 for a usage error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lootbox.domain.fairness import DRAW_BITS
from lootbox.fairness import (
    ALGORITHM,
    VerificationError,
    VerifiedDraw,
    exact_decimal,
    load_snapshot,
    verify_draw,
)

PROG = "python -m lootbox.fairness"
VERIFIED = 0
NOT_VERIFIED = 1


# Options whose value may itself start with "-" (a client seed is any printable ASCII).
VALUE_OPTIONS = ("--client-seed",)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(_attach_values(sys.argv[1:] if argv is None else argv))
    try:
        snapshot = load_snapshot(args.snapshot)
        draw = verify_draw(
            args.server_seed,
            args.client_seed,
            args.nonce,
            args.reel,
            snapshot,
            expected_server_seed_hash=args.server_seed_hash,
        )
    except VerificationError as exc:
        print(f"{PROG}: NOT VERIFIED: {exc}", file=sys.stderr)
        return NOT_VERIFIED
    print(report(draw, seed_hash_was_checked=args.server_seed_hash is not None))
    return VERIFIED


def _attach_values(argv: Sequence[str]) -> list[str]:
    """``--client-seed -lucky`` as ``--client-seed=-lucky``: argparse takes a word that
    starts with ``-`` for an option, never for the value the option is waiting for."""
    attached: list[str] = []
    words = iter(argv)
    for word in words:
        if word in VALUE_OPTIONS:
            value = next(words, None)
            attached.append(word if value is None else f"{word}={value}")
        else:
            attached.append(word)
    return attached


def report(draw: VerifiedDraw, *, seed_hash_was_checked: bool) -> str:
    """The verified draw as a player reads it: the prize, the inputs, each step."""
    seed_hash_note = (
        "matches --server-seed-hash"
        if seed_hash_was_checked
        else "compare it with the serverSeedHash shown before the draw"
    )
    u_hex = draw.digest.hex()[: DRAW_BITS // 4]
    lines = [
        f"prize: {_prize_text(draw)}",
        "",
        "inputs",
        f"  server seed       {draw.server_seed}",
        f"  server seed hash  {draw.server_seed_hash}  ({seed_hash_note})",
        f"  client seed       {draw.client_seed}",
        f"  nonce             {draw.nonce}",
        f"  reel              {draw.reel_index}",
        f"  snapshot          box version {draw.snapshot.get('boxVersionId')}",
        f"  snapshot hash     {draw.snapshot_hash}  (matches its content)",
        "",
        f"draw ({draw.algorithm})",
        f"  message           {draw.message}",
        f"  digest            HMAC-SHA256(server seed, message) = {draw.digest.hex()}",
        f"  u                 first 52 bits of the digest = 0x{u_hex} = {draw.u}",
        f"  x                 u / 2^52 = {draw.x_decimal}",
        "",
        "walk: the first prize whose running sum is greater than x",
        *_walk_table(draw),
    ]
    return "\n".join(lines)


def _prize_text(draw: VerifiedDraw) -> str:
    name = json.dumps(draw.prize.get("name"), ensure_ascii=False)
    return f"itemId {draw.item_id} {name} (#{draw.position}, counting from #0)"


def _walk_table(draw: VerifiedDraw) -> list[str]:
    rows = [("#", "itemId", "odds", "running sum", "")]
    for position, (prize, running) in enumerate(
        zip(draw.snapshot["prizes"], draw.running_sums, strict=True)
    ):
        if position < draw.position:
            verdict = "not greater than x"
        elif position == draw.position:
            verdict = "greater than x: drawn"
        else:
            verdict = ""
        rows.append(
            (
                str(position),
                str(prize.get("itemId")),
                str(prize["odds"]),
                exact_decimal(running),
                verdict,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _whole_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Check provably fair draws ({ALGORITHM}) without trusting the service.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="redo one draw from its revealed server seed and print the prize",
        description="Redo reel R of the round with nonce N from the revealed server seed and"
        " print the prize it draws from the box version's snapshot, with every number in"
        " between. Exit status: 0 verified, 1 not verified, 2 usage error.",
    )
    verify.add_argument(
        "--server-seed",
        required=True,
        metavar="HEX",
        help="the revealed serverSeed (64 hex characters)",
    )
    verify.add_argument(
        "--client-seed", required=True, metavar="TEXT", help="the round's clientSeed"
    )
    verify.add_argument(
        "--nonce",
        required=True,
        type=_whole_number,
        metavar="N",
        help="the round's nonce (0, 1, …)",
    )
    verify.add_argument(
        "--reel",
        required=True,
        type=_whole_number,
        metavar="R",
        help="the reel's index in the round (0, 1, …)",
    )
    verify.add_argument(
        "--snapshot",
        required=True,
        metavar="FILE_OR_URL",
        help="the box version's snapshot: a JSON file, or its URL"
        " (…/fairness/box-version/{boxVersionId}/snapshot)",
    )
    verify.add_argument(
        "--server-seed-hash",
        metavar="HEX",
        help="the serverSeedHash shown before the draw; checked against the revealed seed",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
