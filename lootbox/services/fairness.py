"""Provably fair draws (contract section 9): each player's seed pair, the nonce a round
takes when it is drawn, and rotation, which reveals a pair and starts the next one.

The draw itself is ``lootbox.domain.fairness``; a round is drawn in the transaction that
settles it, so a retried purchase or open replays the draw it stored and never draws again.
"""

from __future__ import annotations

from dataclasses import dataclass

from lootbox.domain.errors import InvalidClientSeed, SeedPairNotFound
from lootbox.domain.fairness import (
    CLIENT_SEED_BYTES,
    SERVER_SEED_BYTES,
    is_valid_client_seed,
    new_client_seed,
    new_server_seed,
)
from lootbox.domain.records import Operator, Round, RoundDraw, SeedPair
from lootbox.ports import UnitOfWork
from lootbox.services.context import ServiceContext


@dataclass(frozen=True)
class RotateSeeds:
    player_external_id: str
    server_seed_hash: str  # the pair to reveal: naming it makes a retry harmless
    client_seed: str | None = None  # the next pair's; None carries the old one forward


@dataclass(frozen=True)
class Rotation:
    revealed: SeedPair
    current: SeedPair


def current_seeds(ctx: ServiceContext, operator: Operator, player_external_id: str) -> SeedPair:
    """The player's current pair, created on first use."""
    with ctx.uow_factory() as uow:
        pair = _current_pair(ctx, uow, operator.id, player_external_id)
        uow.commit()
    return pair


def rotate_seeds(ctx: ServiceContext, operator: Operator, cmd: RotateSeeds) -> Rotation:
    """Reveal the named pair and start the next one. Naming a pair already revealed answers
    its reveal again, with the pair current now."""
    if cmd.client_seed is not None and not is_valid_client_seed(cmd.client_seed):
        raise InvalidClientSeed()
    with ctx.uow_factory() as uow:
        named = uow.seed_pairs.lock(operator.id, cmd.player_external_id, cmd.server_seed_hash)
        if named is None:
            raise SeedPairNotFound()
        if named.revealed_at is None:
            named = uow.seed_pairs.reveal(named.id, ctx.clock.now())
            _add_pair(
                ctx, uow, operator.id, cmd.player_external_id, cmd.client_seed or named.client_seed
            )
        current = _current_pair(ctx, uow, operator.id, cmd.player_external_id)
        uow.commit()
    return Rotation(named, current)


def draw_for(ctx: ServiceContext, uow: UnitOfWork, round_: Round) -> RoundDraw:
    """Take the next nonce of the player's current pair for ``round_`` (creating the pair
    on the player's first draw) and record both on the round."""
    draw = uow.seed_pairs.draw_round(round_.id, round_.operator_id, round_.player_external_id)
    if draw is None:  # the player's first draw (or a rotation just revealed the pair read)
        client_seed = new_client_seed(ctx.random_bytes(CLIENT_SEED_BYTES))
        _add_pair(ctx, uow, round_.operator_id, round_.player_external_id, client_seed)
        draw = uow.seed_pairs.draw_round(round_.id, round_.operator_id, round_.player_external_id)
    assert draw is not None, "the player has a current pair"
    return draw


def _current_pair(
    ctx: ServiceContext, uow: UnitOfWork, operator_id: int, player_external_id: str
) -> SeedPair:
    pair = uow.seed_pairs.current(operator_id, player_external_id)
    if pair is None:
        client_seed = new_client_seed(ctx.random_bytes(CLIENT_SEED_BYTES))
        _add_pair(ctx, uow, operator_id, player_external_id, client_seed)
        pair = uow.seed_pairs.current(operator_id, player_external_id)
    assert pair is not None, "added, or added by a concurrent first draw"
    return pair


def _add_pair(
    ctx: ServiceContext,
    uow: UnitOfWork,
    operator_id: int,
    player_external_id: str,
    client_seed: str,
) -> None:
    server_seed = new_server_seed(ctx.random_bytes(SERVER_SEED_BYTES))
    uow.seed_pairs.add_current(
        operator_id, player_external_id, server_seed, client_seed, ctx.clock.now()
    )
